"""Actions reach the engine and apply to every selected job."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QItemSelectionModel
from PySide6.QtGui import QGuiApplication

from preview_desktop.core.job import JobState
from preview_desktop.node import Node
from tests.support.qtloop import run
from tests.ui.conftest import state_of, submit, wait_until


def select(window: Any, *job_ids: str) -> None:
    sel = window.table.selectionModel()
    sel.clearSelection()
    for job_id in job_ids:
        source_row = window.model.row_of(job_id)
        index = window.proxy.mapFromSource(window.model.index(source_row, 0))
        sel.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def shown(window: Any, loop: asyncio.AbstractEventLoop, *job_ids: str) -> None:
    wait_until(loop, lambda: all(window.model.row_of(i) is not None for i in job_ids), what="rows")


def test_cancel_applies_to_every_selected_job(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    run(qloop, node.engine.set_paused(True))
    jobs = [submit(node, qloop, f"cut_{i}.otio", project=f"p{i}") for i in range(4)]
    shown(window, qloop, *(j.id for j in jobs))
    select(window, jobs[0].id, jobs[2].id, jobs[3].id)
    assert window.actions_.cancel.isEnabled()
    window.actions_.cancel.trigger()
    wait_until(qloop, lambda: state_of(node, jobs[3].id) is JobState.CANCELLED, what="cancel")
    assert [state_of(node, j.id) for j in jobs] == [JobState.CANCELLED, JobState.QUEUED, JobState.CANCELLED,
                                                      JobState.CANCELLED]


def test_retry_priority_and_remove(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    failed = submit(node, qloop, "fail.otio", attempts=1)
    wait_until(qloop, lambda: state_of(node, failed.id) is JobState.FAILED, what="failure")
    run(qloop, node.engine.set_paused(True))
    shown(window, qloop, failed.id)
    wait_until(qloop, lambda: window.model.job(failed.id).state is JobState.FAILED)
    select(window, failed.id)
    assert window.actions_.retry.isEnabled() and not window.actions_.cancel.isEnabled()
    window.actions_.retry.trigger()
    wait_until(qloop, lambda: state_of(node, failed.id) is JobState.QUEUED, what="retry")

    waiting = submit(node, qloop, "cut.otio", priority=5)
    shown(window, qloop, waiting.id)
    select(window, waiting.id, failed.id)
    window.actions_.raise_priority.trigger()
    wait_until(qloop, lambda: node.store.get(waiting.id).priority == node.store.get(failed.id).priority == 6,
               what="raise both")
    wait_until(qloop, lambda: window.model.job(waiting.id).priority == 6)
    window.actions_.lower_priority.trigger()
    wait_until(qloop, lambda: node.store.get(waiting.id).priority == 5, what="lower")

    run(qloop, node.engine.call(node.store.cancel, waiting.id))
    wait_until(qloop, lambda: window.model.job(waiting.id).state is JobState.CANCELLED)
    select(window, waiting.id, failed.id)  # one finished, one queued: only the finished one goes
    window.actions_.remove.trigger()
    wait_until(qloop, lambda: window.model.row_of(waiting.id) is None, what="removal")
    assert state_of(node, failed.id) is JobState.QUEUED


def test_pause_and_resume_the_queue(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    window.actions_.pause.trigger()
    wait_until(qloop, lambda: node.engine.status().paused, what="pause")
    assert window.actions_.pause.text() == "Resume queue" and window.actions_.pause.isChecked()
    job = submit(node, qloop, "cut.otio")
    run(qloop, asyncio.sleep(0.3))
    assert state_of(node, job.id) is JobState.QUEUED
    window.actions_.pause.trigger()
    wait_until(qloop, lambda: state_of(node, job.id) is JobState.SUCCEEDED, what="the job to run after resume")
    assert window.actions_.pause.text() == "Pause queue"


def test_cancel_a_running_job(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    job = submit(node, qloop, "slow.otio")
    wait_until(qloop, lambda: state_of(node, job.id) is JobState.RUNNING, what="running")
    shown(window, qloop, job.id)
    select(window, job.id)
    window.actions_.cancel.trigger()
    wait_until(qloop, lambda: state_of(node, job.id) is JobState.CANCELLED, what="cancelled")


def test_copy_job_ids(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    run(qloop, node.engine.set_paused(True))
    a, b = submit(node, qloop, "a.otio", project="a"), submit(node, qloop, "b.otio", project="b")
    shown(window, qloop, a.id, b.id)
    select(window, a.id, b.id)
    window.actions_.copy_id.trigger()
    assert set(QGuiApplication.clipboard().text().splitlines()) == {a.id, b.id}


def test_shortcuts_are_set(window: Any) -> None:
    a = window.actions_
    assert a.retry.shortcut().toString() == "Ctrl+R"
    assert a.cancel.shortcut().toString() == "Ctrl+."
    assert not a.add.shortcut().isEmpty() and not a.copy_id.shortcut().isEmpty()
    menu = a.context_menu(window)
    assert a.cancel in menu.actions() and a.reveal in menu.actions()
