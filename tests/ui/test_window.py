"""The window's parts around the table: first-run state, detail pane, tray notifications, metrics throttling,
closing while rendering."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.events import JobOutcome
from preview_desktop.core.job import JobState
from preview_desktop.node import Node
from preview_desktop.settings import Settings
from tests.support.qtloop import run
from tests.ui.conftest import state_of, submit, wait_until
from tests.ui.populate import populate


def test_the_empty_table_explains_and_offers_the_demo(window: Any, node: Node,
                                                      qloop: asyncio.AbstractEventLoop) -> None:
    assert window.empty.isVisible()
    assert "Drop an edit here" in window.empty.text.text()
    assert window.empty.demo_button.isVisible() and window.empty.add_button.isVisible()
    run(qloop, node.engine.set_paused(True))
    submit(node, qloop, "cut.otio")
    wait_until(qloop, lambda: not window.empty.isVisible(), what="the table to show the job")
    window.search.setText("no such thing")
    assert window.empty.isVisible() and window.empty.clear_button.isVisible()
    assert not window.empty.demo_button.isVisible()
    window.empty.clear_button.click()
    assert not window.empty.isVisible()


def test_the_demo_button_queues_the_demo_project(window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    run(qloop, node.engine.set_paused(True))
    window.empty.demo_button.click()
    job = wait_until(qloop, lambda: next(iter(node.engine.jobs.values()), None), what="the demo job")
    assert job.project_id == "demo" and job.label.endswith("demo.otio")


@pytest.fixture
def populated(data_dir: Path) -> dict[str, str]:
    return populate(data_dir)


def test_the_detail_pane_shows_artifacts_log_and_errors(populated: dict[str, str], window: Any,
                                                        qloop: asyncio.AbstractEventLoop) -> None:
    pane = window.detail
    window.model.apply(list(window.adapter.jobs().values()))
    pane.set_job(window.model.job(populated["succeeded"]))
    wait_until(qloop, lambda: not pane.loading, what="artifacts")
    assert pane._poster is not None and not pane._poster.isNull()
    assert pane.scrub.isEnabled() and pane.scrub.maximum() == 9
    pane.scrub.setValue(4)
    assert pane.scrub_label.text() == "5/10"
    assert "media offline" in pane.summary.toPlainText() and "640×360" in pane.summary.toPlainText()
    assert "attempt ended" in pane.log_view.toPlainText()
    assert pane.play_button.isEnabled() is False  # no preview.mp4 in the fixture data
    assert not pane.tabs.isTabEnabled(3)

    pane.set_job(window.model.job(populated["failed"]))
    wait_until(qloop, lambda: not pane.loading, what="the failed job")
    assert pane.tabs.isTabEnabled(3) and pane.tabs.currentIndex() == 3
    text = pane.error_view.toPlainText()
    assert "missing format" in text and "Traceback" in text


def test_every_state_is_in_the_table(populated: dict[str, str], data_dir: Path, qapp: Any) -> None:
    from preview_desktop.queue.local import LocalStore
    from preview_desktop.ui.job_model import JobTableModel, StateRole

    store = LocalStore(data_dir / "queue")
    model = JobTableModel()
    model.apply(store.list_jobs())
    store.close()
    states = {model.data(model.index(r, 0), StateRole) for r in range(model.rowCount())}
    assert {"queued", "running", "retrying", "succeeded", "failed", "cancelled", "superseded"} <= states


def test_a_farm_job_failing_here_raises_no_desktop_notification(window: Any) -> None:
    """Its id names no job in this window's table ("see the job's Error tab" would lead nowhere): the farm's
    producer and the Farm view report it."""
    notes: list[tuple[str, str]] = []
    window.tray.notified.connect(lambda title, text: notes.append((title, text)))
    window.adapter._on_event(JobOutcome("20261129-040000-0badf00d", "failure", 1.0, 10, origin="farm"))
    assert notes == []


def test_notifications_one_per_failure_and_one_when_all_done(window: Any, node: Node,
                                                             qloop: asyncio.AbstractEventLoop) -> None:
    notes: list[tuple[str, str]] = []
    window.tray.notified.connect(lambda title, text: notes.append((title, text)))
    jobs = [submit(node, qloop, f"cut_{i}.otio", project=f"ok{i}") for i in range(3)]
    bad = submit(node, qloop, "fail.otio", project="broken", attempts=1)
    wait_until(qloop, lambda: all(state_of(node, j.id).finished for j in [*jobs, bad]), what="all done")
    wait_until(qloop, lambda: any(t == "All previews finished" for t, _ in notes), what="the final notification")
    titles = [t for t, _ in notes]
    assert titles.count("Preview failed: broken") == 1
    assert titles.count("All previews finished") == 1
    assert len(titles) == 2, titles  # nothing per successful job
    assert "3 preview(s) ready, 1 failed" in dict(notes)["All previews finished"]


def test_the_metrics_dock_redraws_at_most_twice_a_second(window: Any, qloop: asyncio.AbstractEventLoop) -> None:
    dock = window.metrics
    dock.show()
    run(qloop, asyncio.sleep(0.6))
    before = dock.redraws
    t0 = time.monotonic()
    for i in range(200):
        window.adapter.jobProgress.emit("job", i, 200, i / 200, 50.0)
        run(qloop, asyncio.sleep(0.005))
    run(qloop, asyncio.sleep(0.6))
    elapsed = time.monotonic() - t0
    assert dock.numbers.fps == 50.0
    assert 1 <= dock.redraws - before <= elapsed / 0.5 + 1.5
    dock.hide()
    hidden = dock.redraws
    window.adapter.jobProgress.emit("job", 1, 2, 0.5, 10.0)
    run(qloop, asyncio.sleep(0.6))
    assert dock.redraws == hidden  # no plotting while nobody looks


def test_closing_while_rendering_asks(window: Any, node: Node, qloop: asyncio.AbstractEventLoop,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit(node, qloop, "slow.otio")
    wait_until(qloop, lambda: window.adapter.status.running == 1, what="running")
    quits: list[bool] = []
    window.quitRequested.connect(quits.append)
    monkeypatch.setattr(window, "ask_keep_rendering", lambda: "cancel")
    window.close()
    assert window.isVisible() and not quits
    monkeypatch.setattr(window, "ask_keep_rendering", lambda: "stop")
    window._quitting = False
    window.close()
    assert quits == [True]
    assert state_of(node, job.id) is JobState.RUNNING  # the app stops the node after the signal, not the window


def test_settings_live_in_the_window(window: Any, settings: Settings) -> None:
    assert window.settings.data_dir == settings.data_dir
    assert "slots on this computer" in window.status_label.text()
