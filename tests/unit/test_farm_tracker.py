"""Farm records without Redis: the job service sends, cancels and retries them through a stand-in farm (the real
farm runs in tests/integration/farm/test_farm_records.py), and the tracker mirrors what the farm says, fetches the
files (a readable folder, or links served by a real HTTP server here) and sits out an outage."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.farm_status import FarmJobInfo, FarmStatus, NodeInfo
from preview_desktop.core.job import FARM_KIND, JobState
from preview_desktop.core.layout import Layout
from preview_desktop.core.spec import JobSpec
from preview_desktop.core.submission import WireSource
from preview_desktop.errors import FarmUnavailable, IllegalTransition
from preview_desktop.queue.base import FarmUpdate
from preview_desktop.queue.memory import MemoryStore
from preview_desktop.service.farm_tracker import FarmTracker, update_for
from preview_desktop.service.jobs import JobService, inline

SPEC = {"projectId": "p", "timeline": {"fps": 25, "clips": [{"gap": 1}]}}


class StandInFarm:
    """FarmPort with the farm's jobs in a dict: BullMQ's states, progress, results; `away` is Redis down."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cancelled: list[tuple[str, str]] = []
        self.away = False
        self.on_submit: Callable[[], None] | None = None
        self.nodes: list[NodeInfo] = []
        self.added = 0  # BullMQ's ids count up and are never reused

    def _check(self) -> None:
        if self.away:
            raise FarmUnavailable("the farm's Redis redis://farm is unreachable (test)")

    async def submit(self, spec: JobSpec) -> str:
        self._check()
        self.added += 1
        job_id = str(self.added)
        self.jobs[job_id] = {"id": job_id, "state": "waiting", "data": spec.to_wire(), "progress": 0,
                             "returnvalue": None, "failedReason": None, "attemptsMade": 0}
        if self.on_submit is not None:
            self.on_submit()
        return job_id

    async def state(self, job_id: str) -> str | None:
        return self.jobs[job_id]["state"]

    async def get(self, job_id: str) -> dict[str, Any] | None:
        self._check()
        return dict(self.jobs[job_id]) if job_id in self.jobs else None

    async def cancel(self, job_id: str, reason: str) -> str:
        self._check()
        self.cancelled.append((job_id, reason))
        job = self.jobs[job_id]
        if job["state"] in ("completed", "failed"):
            return "finished"
        if job["state"] == "active":
            return "requested"
        del self.jobs[job_id]
        return "removed"

    async def waiting(self) -> int:
        self._check()
        return sum(j["state"] == "waiting" for j in self.jobs.values())

    async def signing_secret(self) -> str:
        return "secret"

    async def set_draining(self, node_id: str, draining: bool) -> bool:
        return any(n.nodeId == node_id for n in self.nodes)

    def status(self) -> FarmStatus:
        return FarmStatus(url="redis://farm", queue="previews", connected=not self.away, nodes=self.nodes)

    def on_status(self, callback: Callable[[FarmStatus], None]) -> None:
        pass


@pytest.fixture
def farm() -> StandInFarm:
    return StandInFarm()


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    s = MemoryStore()
    yield s
    s.close()


@pytest.fixture
def service(store: MemoryStore, farm: StandInFarm, tmp_path: Path) -> JobService:
    return JobService(store, [tmp_path], inline, farm=farm)


@pytest.fixture
def tracker(service: JobService, store: MemoryStore, tmp_path: Path) -> FarmTracker:
    return FarmTracker(service, Layout(tmp_path / "data"), lambda: store.list_jobs())


def go(coro: Any) -> Any:
    return asyncio.run(coro)


async def settle(tracker: FarmTracker) -> None:
    """One poll, then wait for any delivery it started (files are fetched on a worker thread)."""
    await tracker.poll()
    while tracker._delivering:
        await asyncio.sleep(0.01)


def test_send_to_farm_converts_the_waiting_job_in_place(service: JobService, farm: StandInFarm,
                                                        store: MemoryStore) -> None:
    job = go(service.submit(WireSource(SPEC)))
    sent = go(service.send_to_farm(job.id))
    assert (sent.id, sent.kind, sent.origin, sent.farm_id, sent.state) == (job.id, FARM_KIND, "farm", "1",
                                                                           JobState.QUEUED)
    assert farm.jobs["1"]["data"]["projectId"] == "p"
    assert store.lease("w", 30) is None
    with pytest.raises(IllegalTransition, match="on the farm"):
        go(service.send_to_farm(job.id))  # sent once is enough


def test_a_job_the_engine_took_first_is_withdrawn_from_the_farm(service: JobService, farm: StandInFarm,
                                                                 store: MemoryStore) -> None:
    job = go(service.submit(WireSource(SPEC)))
    farm.on_submit = lambda: store.lease("engine", 30) and None  # the engine leases it while the farm adds it
    with pytest.raises(IllegalTransition, match="running"):
        go(service.send_to_farm(job.id))
    assert farm.cancelled == [("1", "its local job started here first")]
    assert store.get(job.id).state is JobState.RUNNING and store.get(job.id).farm_id is None


def test_with_the_farm_away_a_job_stays_queued_here(service: JobService, farm: StandInFarm,
                                                    store: MemoryStore) -> None:
    job = go(service.submit(WireSource(SPEC)))
    farm.away = True
    with pytest.raises(FarmUnavailable):
        go(service.send_to_farm(job.id))
    assert store.get(job.id).farm_id is None and store.get(job.id).state is JobState.QUEUED
    fallback = go(service.submit_tracked(WireSource({**SPEC, "projectId": "q"})))
    assert fallback.farm_id is None and fallback.kind == "render"  # queued locally instead: nothing lost


def test_queued_on_the_farm_with_a_record(service: JobService, farm: StandInFarm, store: MemoryStore) -> None:
    job = go(service.submit_tracked(WireSource(SPEC)))
    assert (job.kind, job.farm_id, job.state) == (FARM_KIND, "1", JobState.QUEUED)
    assert store.lease("w", 30) is None


def test_cancel_and_retry_act_on_the_farm_job(service: JobService, farm: StandInFarm, store: MemoryStore) -> None:
    job = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    cancelled = go(service.cancel(job.id))
    assert cancelled.state is JobState.CANCELLED and "1" not in farm.jobs  # it waited: removed from the farm
    again = go(service.retry(job.id))
    assert (again.state, again.farm_id) == (JobState.QUEUED, "2") and "2" in farm.jobs
    farm.jobs["2"]["state"] = "active"
    store.mirror(job.id, FarmUpdate(JobState.RUNNING))
    asked = go(service.cancel(job.id))
    assert asked.display_state == "cancelling" and farm.cancelled[-1] == ("2", "cancelled by user")
    with pytest.raises(IllegalTransition):
        go(service.retry(job.id))  # it still runs


def test_what_the_farm_says_becomes_the_record(service: JobService, store: MemoryStore) -> None:
    record = store.mirror(store.submit(JobSpec.model_validate(SPEC)).id, FarmUpdate(JobState.QUEUED, farm_id="7"))
    farm: dict[str, Any] = {"state": "waiting", "attemptsMade": 0, "progress": 0}
    assert update_for(record, farm, {}) is None  # nothing new: no store write
    running = update_for(record, {**farm, "state": "active", "progress": {"frame": 5, "frames": 10, "percent": 50}},
                         {"7": "box:1:ab"})
    assert running is not None and running.state is JobState.RUNNING and running.worker == "box:1:ab"
    assert running.progress is not None and (running.progress.frame, running.progress.fraction) == (5, 0.5)
    # before the registry's next heartbeat names it, BullMQ's own record of the node (processedBy) does
    early = update_for(record, {**farm, "state": "active", "processedBy": "box:2:cd"}, {})
    assert early is not None and early.worker == "box:2:cd"
    retrying = update_for(record, {**farm, "state": "delayed", "attemptsMade": 1}, {})
    assert retrying is not None and retrying.state is JobState.RETRYING
    cancelled = update_for(record, {**farm, "state": "failed", "failedReason": "cancelled: superseded by job 9"}, {},
                           {"9": "20261130-120000-0000beef"})
    assert cancelled is not None and cancelled.state is JobState.CANCELLED and "superseded" in str(cancelled.error)
    assert cancelled.superseded_by == "20261130-120000-0000beef"  # the row that replaced it
    elsewhere = update_for(record, {**farm, "state": "failed", "failedReason": "cancelled: superseded by job 12"}, {})
    assert elsewhere is not None and elsewhere.superseded_by == "farm job 12"
    store.mirror(record.id, elsewhere)
    assert store.get(record.id).display_state == "superseded"
    failed = update_for(record, {**farm, "state": "failed", "failedReason": "clip 'a.mp4': cannot decode"}, {})
    assert failed is not None and failed.state is JobState.FAILED and failed.error == "clip 'a.mp4': cannot decode"
    gone = update_for(record, None, {})
    assert gone is not None and gone.state is JobState.FAILED and "no longer on the farm" in str(gone.error)


def rendered_folder(root: Path) -> Path:
    folder = root / "other-node" / "previews" / "p" / "20261130-120000-0000abcd"
    folder.mkdir(parents=True)
    (folder / "preview.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 video")
    (folder / "preview.json").write_text('{"status": "succeeded"}')
    (folder / "poster.jpg").write_bytes(b"\xff\xd8 poster")
    return folder


def completed(folder: Path | None, files: dict[str, str] | None = None) -> dict[str, Any]:
    return {"state": "completed", "attemptsMade": 1, "progress": {"frame": 25, "frames": 25, "percent": 100},
            "returnvalue": {"status": "succeeded", "video": {"frames": 25},
                            "artifacts": {"nodeId": "box:1:ab", "host": "box", "jobId": "20261130-120000-0000abcd",
                                          "path": str(folder) if folder else None,
                                          "url": (files or {}).get("preview.mp4"), "files": files}}}


def test_a_completed_farm_job_brings_its_files_from_a_readable_folder(
    service: JobService, farm: StandInFarm, store: MemoryStore, tracker: FarmTracker, tmp_path: Path
) -> None:
    job = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    farm.jobs["1"].update(completed(rendered_folder(tmp_path)))
    go(settle(tracker))
    done = store.get(job.id)
    assert done.state is JobState.SUCCEEDED and done.worker == "box:1:ab", done.error
    assert done.result is not None and done.result["fetched"] == {
        "how": "path", "files": ["preview.mp4", "preview.json", "poster.jpg"]}
    here = Layout(tmp_path / "data").preview_dir("p", job.id)
    assert (here / "poster.jpg").read_bytes() == b"\xff\xd8 poster"
    assert not list(here.parent.glob(".staging-*"))


def test_files_that_cannot_be_fetched_fail_the_record_saying_why(
    service: JobService, farm: StandInFarm, store: MemoryStore, tracker: FarmTracker
) -> None:
    job = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    farm.jobs["1"].update(completed(None))  # loopback-only API, no shared storage
    go(settle(tracker))
    failed = store.get(job.id)
    assert failed.state is JobState.FAILED
    assert failed.error is not None and "could not be fetched" in failed.error and "PREVIEW_API_HOST" in failed.error


class Files(http.server.BaseHTTPRequestHandler):
    served: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:
        status, body = self.served.get(self.path.split("?")[0], (404, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def files_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_files_come_over_the_signed_links_and_a_refused_link_is_a_clear_error(
    service: JobService, farm: StandInFarm, store: MemoryStore, tracker: FarmTracker, files_server: str,
    tmp_path: Path,
) -> None:
    Files.served = {"/a/preview.mp4": (200, b"video bytes"), "/a/poster.jpg": (200, b"poster"),
                    "/b/preview.mp4": (403, b"")}
    links = {name: f"{files_server}/a/{name}?exp=1&sig=s" for name in ("preview.mp4", "poster.jpg", "thumbs.jpg")}
    first = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    farm.jobs["1"].update(completed(tmp_path / "elsewhere", links))  # that folder is not readable here
    go(settle(tracker))
    done = store.get(first.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None and done.result["fetched"] == {
        "how": "url", "files": ["preview.mp4", "poster.jpg", "preview.json"]}  # no thumbs (404); json from result
    here = Layout(tmp_path / "data").preview_dir("p", first.id)
    assert (here / "preview.mp4").read_bytes() == b"video bytes"

    second = go(service.send_to_farm(go(service.submit(WireSource({**SPEC, "projectId": "q"}))).id))
    farm.jobs["2"].update(completed(None, {"preview.mp4": f"{files_server}/b/preview.mp4?exp=1&sig=s"}))
    go(settle(tracker))
    failed = store.get(second.id)
    assert failed.state is JobState.FAILED and failed.error is not None
    assert "HTTP 403" in failed.error and "sig=" not in failed.error  # the signature stays out of the record


def test_records_keep_their_state_while_redis_is_away_and_catch_up(
    service: JobService, farm: StandInFarm, store: MemoryStore, tracker: FarmTracker, caplog: Any
) -> None:
    job = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    farm.nodes = [NodeInfo(nodeId="box:1:ab", host="box", pid=1, version="x", capacity=1,
                           running=[FarmJobInfo(jobId="1", name="render", projectId="p", startedAt=0.0)])]
    farm.jobs["1"].update({"state": "active", "progress": {"frame": 3, "frames": 25, "percent": 12}})
    farm.away = True
    for _ in range(3):
        go(settle(tracker))
    assert store.get(job.id).state is JobState.QUEUED
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1  # said once per outage
    farm.away = False
    go(settle(tracker))
    caught = store.get(job.id)
    assert (caught.state, caught.worker, caught.progress.frame) == (JobState.RUNNING, "box:1:ab", 3)
    farm.jobs["1"].update({"state": "failed", "failedReason": "disk on fire", "attemptsMade": 3})
    go(settle(tracker))
    assert store.get(job.id).state is JobState.FAILED and store.get(job.id).error == "disk on fire"


def test_a_new_tracker_resumes_the_records_of_the_last_one(
    service: JobService, farm: StandInFarm, store: MemoryStore, tmp_path: Path
) -> None:
    job = go(service.send_to_farm(go(service.submit(WireSource(SPEC))).id))
    farm.jobs["1"].update(completed(rendered_folder(tmp_path)))

    async def lifetime() -> None:
        tracker = FarmTracker(service, Layout(tmp_path / "data"), lambda: store.list_jobs(), interval=0.05)
        await tracker.start()
        for _ in range(250):
            if store.get(job.id).state.finished:
                break
            await asyncio.sleep(0.02)
        await tracker.stop()

    go(lifetime())
    assert store.get(job.id).state is JobState.SUCCEEDED
