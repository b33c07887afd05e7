"""Supersede end to end: a running job is stopped by a newer one of the same project and timeline, and the
window's row reads "superseded" (real Node, real store, real engine; the fake renderer runs until cancelled)."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt

from preview_desktop.core.job import JobState
from preview_desktop.node import Node
from tests.ui.conftest import state_of, submit, wait_until


def test_a_running_job_is_superseded_and_the_row_says_so(window: Any, node: Node,
                                                         qloop: asyncio.AbstractEventLoop) -> None:
    from preview_desktop.ui.job_model import COL

    old = submit(node, qloop, "slow_cut.otio", project="promo")
    wait_until(qloop, lambda: state_of(node, old.id) is JobState.RUNNING, what="the old job to run")
    other = submit(node, qloop, "slow_cut.otio", project="another")  # other project: untouched
    kept = submit(node, qloop, "slow_other.otio", project="promo")  # other timeline: untouched
    new = submit(node, qloop, "slow_cut.otio", project="promo")
    wait_until(qloop, lambda: state_of(node, old.id) is JobState.CANCELLED, what="the old job to stop")
    record = node.store.get(old.id)
    assert record.superseded_by == new.id and record.finished_at is not None
    assert state_of(node, other.id) is not JobState.CANCELLED and state_of(node, kept.id) is not JobState.CANCELLED
    model = window.model

    def row_text() -> Any:
        row = model.row_of(old.id)
        return row is not None and model.data(model.index(row, COL["State"]), Qt.ItemDataRole.DisplayRole)

    wait_until(qloop, lambda: row_text() == "superseded", what="the row to read 'superseded'")
    for job in (other, kept, new):
        node.store.cancel(job.id)


def test_supersede_false_keeps_the_running_job(node: Node, adapter: Any, qloop: asyncio.AbstractEventLoop) -> None:
    old = submit(node, qloop, "slow_cut.otio", project="promo")
    wait_until(qloop, lambda: state_of(node, old.id) is JobState.RUNNING, what="the old job to run")
    new = submit(node, qloop, "slow_cut.otio", project="promo", supersede=False)
    wait_until(qloop, lambda: state_of(node, new.id) is JobState.RUNNING, what="the new job to run beside it")
    assert state_of(node, old.id) is JobState.RUNNING and not node.store.get(old.id).cancel_requested
    for job in (old, new):
        node.store.cancel(job.id)
