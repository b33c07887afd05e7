"""A node's standing: 3 different farm jobs failed in a row rest it, a success resets the count, the cool-down
forgives it (the Redis side is tested in tests/integration/farm/test_farm_standing.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from preview_desktop.farm.connection import Link
from preview_desktop.farm.registry import FarmKeys
from preview_desktop.farm.standing import Standing, node_seat
from tests.support.clock import Clock


def standing(clock: Clock) -> tuple[Standing, list[str]]:
    s = Standing(FarmKeys("bull", "previews"), "box:1:aaaa", "box:12345678", 60.0, Link("redis://x:6379/0"),
                 clock=clock)
    changes: list[str | None] = []
    s.on_change(lambda: changes.append(s.state))
    return s, changes


def test_three_different_jobs_in_a_row_rest_the_node_and_the_cool_down_forgives_it() -> None:
    clock = Clock(1000.0)
    s, changes = standing(clock)
    for job in ("1", "2", "2"):  # the same job failing twice counts once
        asyncio.run(s.failed(job, "boom"))
    assert s.state is None and s.resting_until is None
    asyncio.run(s.failed("3", "boom"))
    assert s.state == "resting" and s.resting_until == 1060.0 and not s.open()
    assert changes == ["resting"]
    clock.now = 1059.0
    s._forgive_if_due()
    assert s.state == "resting"
    clock.now = 1060.0
    s._forgive_if_due()
    assert s.state is None and s.resting_until is None and changes == ["resting", None]
    asyncio.run(s.failed("4", "boom"))  # forgiven: the count starts again
    assert s.state is None


def test_a_success_resets_the_count() -> None:
    s, _ = standing(Clock(1000.0))
    asyncio.run(s.failed("1", "boom"))
    asyncio.run(s.failed("2", "boom"))
    s.succeeded()
    asyncio.run(s.failed("3", "boom"))
    asyncio.run(s.failed("4", "boom"))
    assert s.state is None


def test_seat_is_stable_for_a_host_and_data_dir(tmp_path: Path) -> None:
    assert node_seat("box", tmp_path) == node_seat("box", tmp_path / "." / "")
    assert node_seat("box", tmp_path) != node_seat("box", tmp_path / "other")
    assert node_seat("box", tmp_path).startswith("box:")
