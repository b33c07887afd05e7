"""The job table model: follows engine events by job id, in place; sorts and filters."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from PySide6.QtCore import QModelIndex, Qt

from preview_desktop.core.job import Job, JobState
from preview_desktop.node import Node
from preview_desktop.ui.job_model import COL, STATE_FILTERS, JobFilterProxy, JobTableModel, ProgressRole
from tests.support.qtloop import run
from tests.ui.conftest import state_of, submit, wait_until


def make_job(i: int, state: JobState = JobState.QUEUED, project: str = "proj", priority: int = 5) -> Job:
    return Job(id=f"20261128-120000-{i:08x}", project_id=project, spec={"timeline": f"/m/cut_{i}.otio"},
               state=state, priority=priority, created_at=1000.0 + i)


class Spy:
    def __init__(self, signal: Any) -> None:
        self.calls: list[tuple[Any, ...]] = []
        signal.connect(lambda *args: self.calls.append(args))


def test_the_model_follows_engine_events(node: Node, adapter: Any, qloop: asyncio.AbstractEventLoop) -> None:
    model = JobTableModel(adapter.worker_id)
    adapter.jobsChanged.connect(model.apply)
    adapter.jobProgress.connect(model.set_progress)
    inserted = Spy(model.rowsInserted)
    progress: list[str] = []
    model.dataChanged.connect(lambda a, b, roles=(): progress.append(str(model.data(a, Qt.ItemDataRole.DisplayRole))))
    job = submit(node, qloop, "cut.otio")
    wait_until(qloop, lambda: model.row_of(job.id) is not None, what="the job's row")
    wait_until(qloop, lambda: (j := model.job(job.id)) is not None and j.state is JobState.SUCCEEDED,
               what="the job to succeed in the model")
    assert model.rowCount() == 1 and len(inserted.calls) == 1  # one insert, then updates in place
    assert any("%" in text for text in progress), "live progress reached the progress column"
    fraction, text = model.data(model.index(0, COL["Progress"]), ProgressRole)
    assert fraction == 1.0 and text == "done"
    run(qloop, node.engine.call(node.store.remove, job.id))
    wait_until(qloop, lambda: model.rowCount() == 0, what="the row to go")


def test_failed_and_retrying_states_reach_the_model(node: Node, adapter: Any,
                                                    qloop: asyncio.AbstractEventLoop) -> None:
    model = JobTableModel(adapter.worker_id)
    adapter.jobsChanged.connect(model.apply)
    seen: set[str] = set()
    adapter.jobsChanged.connect(lambda updated, removed: seen.update(j.state.value for j in updated))
    job = submit(node, qloop, "fail.otio", attempts=2)
    wait_until(qloop, lambda: state_of(node, job.id) is JobState.FAILED, what="failure")
    wait_until(qloop, lambda: model.job(job.id) and model.job(job.id).state is JobState.FAILED)  # type: ignore[union-attr]
    assert {"queued", "running", "retrying", "failed"} <= seen
    assert "disk on fire" in (model.job(job.id).error or "")  # type: ignore[union-attr]


def test_updates_touch_only_their_row() -> None:
    model = JobTableModel()
    model.apply([make_job(i) for i in range(50)])
    changed = Spy(model.dataChanged)
    moved = Spy(model.layoutChanged)
    job = make_job(7, JobState.RUNNING)
    model.apply([job])
    row = model.row_of(job.id)
    assert [(a.row(), b.row()) for a, b, *_ in changed.calls] == [(row, row)]
    assert not moved.calls  # created order unchanged: no re-sort
    model.set_progress(job.id, 5, 10, 0.5, 25.0)
    assert "50%" in model.data(model.index(row, COL["Progress"]))  # type: ignore[arg-type]
    assert "0:00 left" in model.data(model.index(row, COL["Progress"]))  # type: ignore[arg-type]


def test_ten_thousand_jobs_arrive_in_one_insert_quickly() -> None:
    model = JobTableModel()
    proxy = JobFilterProxy(model)
    inserted = Spy(model.rowsInserted)
    jobs = [make_job(i, project=f"p{i % 7}") for i in range(10_000)]
    t0 = time.perf_counter()
    model.apply(jobs)
    assert proxy.rowCount() == 10_000
    elapsed = time.perf_counter() - t0
    assert len(inserted.calls) == 1
    # Linear work: per-row inserts or a quadratic merge of 10,000 rows take minutes. The figures (first paint and
    # scrolling with 10,000 jobs) are measured in tests/bench/bench_ui.py.
    assert elapsed < 10, f"loading 10,000 jobs took {elapsed:.2f}s"
    t0 = time.perf_counter()
    proxy.sort(COL["Project"], Qt.SortOrder.AscendingOrder)
    assert time.perf_counter() - t0 < 10
    assert model.job_at(0).project_id == "p0"


def test_sorting_keeps_the_selection_on_the_same_jobs() -> None:
    model = JobTableModel()
    model.apply([make_job(i, priority=i % 10) for i in range(20)])
    proxy = JobFilterProxy(model)
    target = make_job(3).id
    persistent = [model.index(model.row_of(target) or 0, 0)]
    from PySide6.QtCore import QPersistentModelIndex

    keep = QPersistentModelIndex(persistent[0])
    proxy.sort(COL["Priority"], Qt.SortOrder.DescendingOrder)
    assert model.job_at(keep.row()).id == target
    assert model.job_at(0).priority == 9


def test_filter_by_state_and_text() -> None:
    model = JobTableModel()
    model.apply([make_job(1, JobState.FAILED, "promo"), make_job(2, JobState.SUCCEEDED, "promo"),
                 make_job(3, JobState.QUEUED, "trailer"), make_job(4, JobState.RUNNING, "trailer")])
    proxy = JobFilterProxy(model)
    proxy.set_states(STATE_FILTERS["Failed"])
    assert [proxy.job_at(r).id for r in range(proxy.rowCount())] == [make_job(1).id]
    proxy.set_states(STATE_FILTERS["Active"])
    assert proxy.rowCount() == 2
    proxy.set_text("TRAILER cut_3")
    assert [proxy.job_at(r).id for r in range(proxy.rowCount())] == [make_job(3).id]
    proxy.set_states(None)
    proxy.set_text("")
    assert proxy.rowCount() == 4
    assert proxy.rowCount(QModelIndex()) == 4


def test_superseded_and_cancelling_are_shown_as_such() -> None:
    job = make_job(1, JobState.CANCELLED)
    job.superseded_by = "x"
    assert job.display_state == "superseded"
    running = make_job(2, JobState.RUNNING)
    running.cancel_requested = True
    assert running.display_state == "cancelling"
    assert make_job(3, JobState.FAILED).display_state == "failed"
