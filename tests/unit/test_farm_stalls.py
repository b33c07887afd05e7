"""A farm job and a local job survive the same number of worker deaths (found by tests/bench/soak_day.py: with
BullMQ's maxStalledCount 1 a farm job whose node was killed twice failed, while a local job gets 5 more runs)."""

from __future__ import annotations

from preview_desktop.farm.connection import FarmConfig
from preview_desktop.queue.rules import MAX_STALLS


def test_farm_nodes_allow_as_many_stalls_as_the_local_queue() -> None:
    assert FarmConfig().worker_opts()["maxStalledCount"] == MAX_STALLS == 5
