"""A job the window sends to the farm stays in its job table (issue #13, item 4): the window's node (in process, on
the farm, paused so it renders nothing itself) follows it as a farm record while a worker subprocess renders it,
and the preview comes back over the signed links of that worker's API (no shared storage). Real parts:
redis-server, a worker process with the real renderer, the window offscreen, ffprobe on the fetched file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.job import FARM_KIND, Job, JobState
from preview_desktop.core.submission import WireSource
from preview_desktop.errors import FarmJobNotWaiting
from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from tests.support.media import make_clip
from tests.support.qtloop import run, settle
from tests.support.redis_server import RedisServer
from tests.ui.conftest import wait_until

from .conftest import NodeProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
PUBLIC_API = {"PREVIEW_API_HOST": "0.0.0.0"}


class FarmWindows:
    """Windows on the farm: each a real Node (store, engine, farm member, tracker), the adapter and MainWindow, over
    the test's DATA_DIR (a second one after closing the first is the window restarted)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open_now: list[tuple[Node, Any, Any]] = []

    def open(self, redis_url: str) -> Any:
        from preview_desktop.ui.adapter import EngineAdapter
        from preview_desktop.ui.main_window import MainWindow

        env = dict(os.environ)
        env["REDIS_URL"] = redis_url
        settings = load_settings(env=env).with_overrides(max_concurrency=1, shutdown_grace=2.0)
        node = Node(settings, self.loop, with_api=False)
        assert node.farm is not None and node.tracker is not None
        node.tracker.interval = 0.1  # the window polls every second; the test wants to see every state
        node.tracker.use_paths = False  # as on a machine without shared storage: the links, not the folder
        adapter = EngineAdapter(node.engine, node.jobs, settings, self.loop)
        run(self.loop, node.start())
        run(self.loop, node.jobs.set_paused(True))  # this node takes no work: the worker process renders
        adapter.flush()
        window = MainWindow(adapter, settings)
        window.show()
        adapter.ready.emit()
        self.open_now.append((node, adapter, window))
        return window

    def close(self, window: Any) -> None:
        for entry in [e for e in self.open_now if e[2] is window]:
            self.open_now.remove(entry)
            node, adapter, _ = entry
            window._quitting = True  # closing must not ask questions
            window.close()
            stop = self.loop.create_task(node.stop(grace=1, interrupt=True))
            finished, _ = run(self.loop, asyncio.wait([stop], timeout=30))
            if not finished:  # say where it hangs rather than hang the suite
                for task in asyncio.all_tasks(self.loop):
                    if not task.done():
                        task.print_stack(limit=6, file=sys.stderr)
                stop.cancel()
            adapter.close()


@pytest.fixture
def farm_windows(qloop: asyncio.AbstractEventLoop, qtbot: Any) -> Iterator[FarmWindows]:
    windows = FarmWindows(qloop)
    yield windows
    for _node, _adapter, window in list(windows.open_now):
        windows.close(window)
    settle(qloop)


def record(window: Any, job_id: str) -> Job:
    job = window.adapter.job(job_id)
    assert job is not None
    return job


def node_column(window: Any, job_id: str) -> str:
    from preview_desktop.ui.job_model import COL

    model = window.model
    row = model.row_of(job_id)
    assert row is not None, "the job left the table"
    return str(model.data(model.index(row, COL["Node"])))


def test_a_job_sent_to_the_farm_stays_in_the_table_and_plays_here_when_done(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], farm_windows: FarmWindows,
    qloop: asyncio.AbstractEventLoop, tmp_path: Path,
) -> None:
    # long enough to be seen running: the Node column learns the worker from the farm's node registry (every node
    # refreshes its entry every second, this node reads them every heartbeat), so a second or three after it starts
    make_clip(tmp_path / "a.mp4", seconds=48.0, size=(320, 180), audio=False)
    worker = start_node(redis_server.url, concurrency=1, env=PUBLIC_API, real_render=True)
    window = farm_windows.open(redis_server.url)
    adapter = window.adapter
    spec = {"projectId": "farmed", "timeline": {"fps": 25, "clips": [{"source": str(tmp_path / "a.mp4")}]},
            "output": {"width": 320, "height": 180}}
    job = run(qloop, adapter.service.submit(WireSource(spec)))
    wait_until(qloop, lambda: window.model.row_of(job.id) is not None, what="the job in the table")
    seen: list[tuple[JobState, int, int, str | None, float]] = []
    adapter.jobsChanged.connect(lambda updated, removed: seen.extend(
        (j.state, j.progress.frame, j.progress.frames, j.worker, time.monotonic()) for j in updated if j.id == job.id))

    run(qloop, adapter.send_to_farm([job.id]))
    sent = wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.farm_id and j, what="farm id")
    assert (sent.kind, sent.origin) == (FARM_KIND, "farm")
    assert window.model.row_of(job.id) is not None and node_column(window, job.id).startswith("farm")

    done = wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state.finished and j,
                      timeout=120, what="the farm record to finish")
    assert done.state is JobState.SUCCEEDED, (done.error, worker.log()[-3000:])
    assert done.result is not None
    rendered_on = done.result["artifacts"]["nodeId"]
    assert rendered_on != adapter.worker_id and done.worker == rendered_on
    running = [s for s in seen if s[0] is JobState.RUNNING and s[2] > 0 and 0 < s[1] < s[2]]
    assert running, f"never seen running with progress: {seen}"
    assert any(s[3] == rendered_on for s in running), seen  # the Node column named the worker while it ran
    assert done.result["fetched"]["how"] == "url"
    assert {"preview.mp4", "preview.json", "poster.jpg"} <= set(done.result["fetched"]["files"])
    host = rendered_on.partition(":")[0]
    assert node_column(window, job.id).startswith(f"farm · {host}")

    folder = adapter.layout.preview_dir("farmed", job.id)
    mp4 = folder / "preview.mp4"
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(mp4)],
                           capture_output=True, text=True, timeout=60, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)
    assert int(stream["nb_read_frames"]) == 1200 == done.result["video"]["frames"]
    assert json.loads((folder / "preview.json").read_text())["status"] == "succeeded"

    pane = window.detail
    pane.set_job(window.model.job(job.id))
    wait_until(qloop, lambda: not pane.loading, what="the detail pane to load the fetched files")
    assert pane._poster is not None and not pane._poster.isNull()
    assert pane.play_button.isEnabled() and pane.artifacts is not None and pane.artifacts.video == mp4
    assert "farm job" in pane.state.text()


def test_cancel_and_retry_from_the_table_act_on_the_farm_job(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], farm_windows: FarmWindows,
    qloop: asyncio.AbstractEventLoop,
) -> None:
    start_node(redis_server.url, concurrency=1)  # the fake renderer: 60 s of gap, one frame period per frame
    window = farm_windows.open(redis_server.url)
    adapter = window.adapter
    job = run(qloop, adapter.service.submit(WireSource({"projectId": "stopme",
                                                         "timeline": {"fps": 25, "clips": [{"gap": 60}]}})))
    wait_until(qloop, lambda: window.model.row_of(job.id) is not None, what="the job in the table")
    run(qloop, adapter.send_to_farm([job.id]))
    wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state is JobState.RUNNING
               and j.progress.frame > 0, timeout=30, what="the farm job running")
    farm_id = record(window, job.id).farm_id
    assert farm_id is not None

    window.table.selectRow(window.proxy.mapFromSource(window.model.index(window.model.row_of(job.id), 0)).row())
    assert [j.id for j in window.selected_jobs()] == [job.id]
    window.actions_.update_enabled()
    assert window.actions_.cancel.isEnabled()
    window.actions_.cancel.trigger()

    done = wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state.finished and j,
                      timeout=15, what="the record cancelled")
    assert done.state is JobState.CANCELLED and done.error is not None and "cancelled" in done.error
    farm = run(qloop, adapter.service.farm_job(farm_id))
    assert farm is not None and farm["state"] == "failed"
    assert farm["failedReason"] == "cancelled: cancelled by user"
    assert farm["progress"]["frame"] < farm["progress"]["frames"]  # stopped mid-render, not run to the end
    assert window.model.row_of(job.id) is not None and window.model.job(job.id).display_state == "cancelled"

    window.actions_.update_enabled()
    assert window.actions_.retry.isEnabled()
    window.actions_.retry.trigger()  # retry resubmits it to the farm: a new farm job, the same row
    again = wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state is JobState.RUNNING
                       and j.farm_id != farm_id and j.progress.frame > 0 and j, timeout=30, what="the retry running")
    assert again.farm_id is not None and again.attempts_made == 1 and again.error is None
    rerun = run(qloop, adapter.service.farm_job(again.farm_id))
    assert rerun is not None and rerun["state"] == "active"
    run(qloop, adapter.cancel([job.id]))
    wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state is JobState.CANCELLED,
               timeout=15, what="the retry cancelled")


def test_a_file_queued_on_the_farm_is_followed_again_by_a_restarted_window(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], farm_windows: FarmWindows,
    qloop: asyncio.AbstractEventLoop, tmp_path: Path,
) -> None:
    from dataclasses import replace

    from preview_desktop.ui.queue_dialog import QueueDialog

    clip = make_clip(tmp_path / "b.mp4", seconds=48.0, size=(320, 180), audio=False)
    start_node(redis_server.url, concurrency=1, env=PUBLIC_API, real_render=True)
    first = farm_windows.open(redis_server.url)
    dialog = QueueDialog([clip], first.settings, first)
    assert dialog.on_farm.isVisibleTo(dialog)  # shown because a farm is configured
    dialog.on_farm.setChecked(True)
    options = replace(dialog.options(), output={"width": 320, "height": 180})
    assert options.on_farm
    first.queue([clip], options)
    record = wait_until(qloop, lambda: next((j for j in first.adapter.jobs().values() if j.farm_id), None),
                        what="the farm record")
    assert (record.kind, record.origin, record.project_id) == (FARM_KIND, "farm", "b")
    wait_until(qloop, lambda: (j := first.adapter.job(record.id)) is not None and j.state is JobState.RUNNING,
               timeout=30, what="the farm job running")

    farm_windows.close(first)  # the editor quits mid-render; the worker renders on
    second = farm_windows.open(redis_server.url)
    assert second.model.row_of(record.id) is not None  # the row is back: the record is in the store
    done = wait_until(qloop, lambda: (j := second.adapter.job(record.id)) is not None and j.state.finished and j,
                      timeout=120, what="the farm record to finish after the restart")
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None and done.result["fetched"]["how"] == "url"
    mp4 = second.adapter.layout.preview_dir("b", record.id) / "preview.mp4"
    assert mp4.stat().st_size > 0


def test_farm_records_keep_their_state_through_a_redis_outage_and_catch_up(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], farm_windows: FarmWindows,
    qloop: asyncio.AbstractEventLoop, tmp_path: Path,
) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=48.0, size=(320, 180), audio=False)
    start_node(redis_server.url, concurrency=1, env=PUBLIC_API, real_render=True)
    window = farm_windows.open(redis_server.url)
    adapter = window.adapter
    spec = {"projectId": "outage", "timeline": {"fps": 25, "clips": [{"source": str(clip)}]},
            "output": {"width": 320, "height": 180}}
    job = run(qloop, adapter.service.submit(WireSource(spec)))
    wait_until(qloop, lambda: window.model.row_of(job.id) is not None, what="the job in the table")
    run(qloop, adapter.send_to_farm([job.id]))
    wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state is JobState.RUNNING
               and j.progress.frame > 0, timeout=30, what="the farm job running")

    redis_server.kill()
    run(qloop, asyncio.sleep(3.0))  # the window goes on; its tracker cannot read the farm
    during = record(window, job.id)
    assert during.state is JobState.RUNNING and during.error is None  # kept, not failed
    redis_server.restart()

    done = wait_until(qloop, lambda: (j := adapter.job(job.id)) is not None and j.state.finished and j,
                      timeout=120, what="the record to catch up")
    assert done.state is JobState.SUCCEEDED, done.error
    assert (adapter.layout.preview_dir("outage", job.id) / "preview.mp4").stat().st_size > 0


def select(window: Any, job_id: str) -> None:
    window.table.selectRow(window.proxy.mapFromSource(window.model.index(window.model.row_of(job_id), 0)).row())
    assert [j.id for j in window.selected_jobs()] == [job_id]
    window.actions_.update_enabled()


def test_raise_priority_in_the_table_reorders_the_farm_and_a_running_record_offers_none(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], farm_windows: FarmWindows,
    qloop: asyncio.AbstractEventLoop, run_log: Path,
) -> None:
    from .conftest import runs

    window = farm_windows.open(redis_server.url)
    adapter = window.adapter
    errors: list[tuple[str, str]] = []
    adapter.error.connect(lambda title, text: errors.append((title, text)))
    ids = [run(qloop, adapter.service.submit(WireSource({"projectId": project, "timeline": {
        "fps": 25, "clips": [{"gap": seconds}]}}))).id for project, seconds in (("first", 0.2), ("later", 0.2),
                                                                                  ("long", 30.0))]
    wait_until(qloop, lambda: all(window.model.row_of(i) is not None for i in ids), what="the jobs in the table")
    run(qloop, adapter.send_to_farm(ids[:2]))  # no node on the farm yet: both wait there, first before later
    wait_until(qloop, lambda: all((j := adapter.job(i)) is not None and j.farm_id for i in ids[:2]),
               what="farm records")

    select(window, ids[1])
    assert window.actions_.raise_priority.isEnabled()
    window.actions_.raise_priority.trigger()  # Ctrl+Up: 5 → 6, on the farm too
    wait_until(qloop, lambda: record(window, ids[1]).priority == 6, what="the raised priority")
    assert not errors, errors
    start_node(redis_server.url, concurrency=1)  # one slot: it takes them in the farm's order
    # the fake renderer writes no files, so the records end failing to fetch them: the order is what counts here
    wait_until(qloop, lambda: all(record(window, i).state.finished for i in ids[:2]), timeout=60,
               what="both farm records done")
    assert [project for project, _pid in runs(run_log)] == ["later", "first"]
    for i in ids[:2]:
        farm = run(qloop, adapter.service.farm_job(str(record(window, i).farm_id)))
        assert farm is not None and farm["state"] == "completed"

    run(qloop, adapter.send_to_farm([ids[2]]))
    wait_until(qloop, lambda: record(window, ids[2]).state is JobState.RUNNING, timeout=30, what="the long one running")
    select(window, ids[2])
    # a farm node runs it: its order on the farm is decided, so neither action is offered, and a change asked
    # anyway (a shortcut, a selection that also holds it) skips it
    assert not window.actions_.raise_priority.isEnabled() and not window.actions_.lower_priority.isEnabled()
    run(qloop, adapter.change_priority([ids[2]], +1))
    assert not errors, errors
    assert record(window, ids[2]).priority == 5
    # the service refuses it too: what the window shows when its record was a poll behind the farm
    with pytest.raises(FarmJobNotWaiting, match="a farm node is running it"):
        run(qloop, adapter.service.set_priority(ids[2], 7))
    assert record(window, ids[2]).priority == 5
    run(qloop, adapter.cancel([ids[2]]))
