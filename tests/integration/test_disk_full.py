"""A full disk, for real: DATA_DIR on a small tmpfs that a real render fills (docs/queue.md, "Disk full").

The job fails with a one-line "disk full" reason, waits for space without using up its attempts, publishes
nothing half-made; the store stays readable, the worker and its API stay up; once space is freed the job
succeeds by itself. Also: the store's own writes (SQLITE_FULL), the log file, the segment cache, and a DATA_DIR
that cannot be written at all (exit 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from preview_desktop.core.events import Event, NodeNotice
from preview_desktop.core.handler import HandlerRegistry, JobContext
from preview_desktop.core.job import Job, JobState
from preview_desktop.core.spec import JobSpec
from preview_desktop.engine.engine import Engine
from preview_desktop.errors import DiskFull
from preview_desktop.logs import LogFile
from preview_desktop.queue.local import LocalStore
from preview_desktop.render.segment_cache import SegmentMeta, SegmentStore
from preview_desktop.settings import load_settings
from tests.support.cli import run_cli, start_worker, wait_ready, worker_stderr
from tests.support.jobs import make_spec
from tests.support.noise import make_noise_clip
from tests.support.qtloop import run
from tests.support.tmpfs import MB, fill, tmpfs

pytestmark = pytest.mark.timeout(300)
TOKEN = "tok-disk-full-0123456789"


@pytest.fixture
def small_data_dir(data_dir: Path) -> Iterator[Path]:
    """DATA_DIR on a 40 MB tmpfs."""
    with tmpfs(data_dir, 40) as mounted:
        yield mounted


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def api_get(data_dir: Path, path: str) -> Any:
    url = json.loads((data_dir / "api.json").read_text())["url"]
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_render_that_fills_the_disk_waits_for_space_then_succeeds(small_data_dir: Path, tmp_path: Path) -> None:
    data_dir = small_data_dir
    clip = make_noise_clip(tmp_path / "media" / "noise.mp4", seconds=4)  # preview + cache copies: ~10 MB
    env = {"PREVIEW_DISK_FULL_RETRY_SECONDS": "3", "PREVIEW_API_TOKEN": TOKEN, "REDIS_URL": "",
           "PREVIEW_MAX_CONCURRENCY": "1", "QT_QPA_PLATFORM": ""}
    submitted = run_cli("submit", str(clip), "--project", "full", "--json", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    ballast = fill(data_dir, 4 * MB)
    store = LocalStore(data_dir / "queue")
    proc = start_worker(env=env)
    try:
        wait_ready(proc, timeout=60)
        job = wait_for("the disk-full failure", lambda: (j := store.get(job_id)).error and j, 180)
        assert job.error.startswith("disk full: no space left in DATA_DIR/"), job.error
        assert job.error.endswith("MB free)") and "\n" not in job.error
        assert job.state in (JobState.RETRYING, JobState.RUNNING, JobState.QUEUED)
        assert job.attempts_made <= 1  # a disk-full attempt is given back

        # the job keeps waiting for space without burning its attempts (3 allowed, retried every 3 s)
        seen_retrying = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            job = store.get(job_id)
            assert job.state is not JobState.FAILED, job.error
            if job.state is JobState.RETRYING:
                seen_retrying += 1
                assert job.attempts_made == 0
                assert not (data_dir / "previews" / "full" / job_id).exists()  # nothing published
            time.sleep(0.2)
        assert seen_retrying > 0
        assert proc.poll() is None, worker_stderr(proc)
        # the API answers with the reason while the job waits (a retry that is running has no error yet)
        waiting = wait_for("the API's retrying job",
                           lambda: (d := api_get(data_dir, f"/v1/jobs/{job_id}"))["state"] == "retrying" and d, 30)
        assert waiting["error"].startswith("disk full"), waiting
        with sqlite3.connect(data_dir / "queue" / "cache.db") as check:
            assert check.execute("PRAGMA quick_check").fetchall() == [("ok",)]

        ballast.unlink()  # space is back: the job succeeds by itself
        job = wait_for("success", lambda: (j := store.get(job_id)).state is JobState.SUCCEEDED and j, 180)
        assert job.attempts_made == 1 and job.error is None
        folder = data_dir / "previews" / "full" / job_id
        with av.open(str(folder / "preview.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 100
        assert json.loads((folder / "preview.json").read_text())["status"] == "succeeded"
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(".staging")]
    finally:
        store.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
    stderr = worker_stderr(proc)
    assert "--- Logging error ---" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert "disk full" in stderr


def test_store_writes_on_a_full_disk_raise_disk_full_and_leave_the_store_intact(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", 2) as disk:
        store = LocalStore(disk / "queue", queue_max=100_000)
        kept = [store.submit(make_spec(f"clip{i}")).id for i in range(5)]
        lease = store.lease("w1", 60)
        assert lease is not None
        ballast = fill(disk, 0)
        with pytest.raises(DiskFull) as raised:
            for i in range(2000):  # the WAL may hold a few more before SQLite meets the full disk
                kept.append(store.submit(make_spec(f"more{i}")).id)
        assert str(raised.value).startswith(f"disk full: no space left in {disk / 'queue'}")
        ballast.unlink()
        assert {job.id for job in store.list_jobs()} == set(kept)  # every submit that returned is kept
        done = store.complete(lease.job.id, lease.token, {"ok": True})  # the lease survived the outage
        assert done.state is JobState.SUCCEEDED
        store.close()
        with sqlite3.connect(disk / "queue" / "cache.db") as check:
            assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_engine_records_an_outcome_once_space_is_back(tmp_path: Path, qloop: asyncio.AbstractEventLoop) -> None:
    """The render succeeded, but the store cannot record it: the engine keeps trying, says "Disk full" once,
    and the success lands when space is freed. No engine task dies."""
    with tmpfs(tmp_path / "small", 2) as disk:
        store = LocalStore(disk / "queue")
        release = asyncio.Event()
        finished = []

        def handler(job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
            while not release.is_set():
                time.sleep(0.02)
            finished.append(job.id)
            return {"rendered": True}

        registry = HandlerRegistry()
        registry.register("render", handler)
        settings = load_settings().with_overrides(max_concurrency=1, lease_seconds=60.0)
        engine = Engine(settings, store, registry, qloop)
        engine.space.pause = 0.2
        events: list[Event] = []
        engine.subscribe(events.append)
        job = store.submit(make_spec("a"))
        run(qloop, engine.start())
        try:
            run(qloop, _until(lambda: job.id in engine.running), timeout=30)
            ballast = fill(disk, 0)
            release.set()
            run(qloop, _until(lambda: any(isinstance(e, NodeNotice) and e.kind == "disk_full" for e in events)),
                timeout=30)
            notice = next(e for e in events if isinstance(e, NodeNotice))
            assert notice.text.startswith("Disk full: no space left in ")
            assert store.get(job.id).state is JobState.RUNNING  # not recorded yet
            run(qloop, asyncio.sleep(1.0))
            assert all(not t.done() for t in engine._tasks if t.get_coro().__name__.endswith("_loop"))
            ballast.unlink()
            run(qloop, _until(lambda: store.get(job.id).state is JobState.SUCCEEDED), timeout=30)
            assert store.get(job.id).result == {"rendered": True}
            assert [e.kind for e in events if isinstance(e, NodeNotice)][-1] == "disk_ok"
        finally:
            release.set()
            run(qloop, engine.stop(grace=2))
            engine.close()
            store.close()


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.05)


def test_the_log_file_on_a_full_disk_drops_lines_without_tracebacks(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "small", 1) as disk:
        handler = LogFile(disk / "preview-desktop.log", maxBytes=50 * MB, backupCount=1, encoding="utf-8")
        logger = logging.getLogger("tests.disk_full.log")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            ballast = fill(disk, 0)
            for i in range(200):
                logger.warning("line %d %s", i, "x" * 200)
            assert handler.dropped > 0
            err = capfd.readouterr().err
            assert err.count("disk full: log lines to") == 1
            assert "Logging error" not in err and "Traceback" not in err
            ballast.unlink()
            logger.warning("after")
            text = (disk / "preview-desktop.log").read_text(encoding="utf-8", errors="replace")
            assert "after" in text and "log line(s) lost while the disk was full" in text
            assert handler.dropped == 0
        finally:
            logger.removeHandler(handler)
            handler.close()


def test_the_segment_cache_on_a_full_disk_renders_without_caching(tmp_path: Path) -> None:
    """Decided: a cache write that fails for space leaves the segment uncached; the render goes on."""
    segment = tmp_path / "segment.mp4"
    segment.write_bytes(b"\0" * MB)
    with tmpfs(tmp_path / "small", 4) as disk:
        store = SegmentStore(disk / "segments", max_bytes=10 * MB)
        ballast = fill(disk, 0)
        meta = SegmentMeta(frames=1, thumbs=[b""], picture=b"\1", good=b"\1")
        store.put_video("v1", segment, meta)  # must not raise
        assert store.get_video("v1") is None  # a miss: rendered again next time
        ballast.unlink()
        store.put_video("v1", segment, meta)
        found = store.get_video("v1")
        assert found is not None
        found[0].close()
        store.close()


@pytest.mark.parametrize("how", ["file", "read-only mount"])
@pytest.mark.parametrize("command", [("submit", "CLIP"), ("render", "CLIP", "--out", "OUT"), ("--worker",), ()])
def test_an_unwritable_data_dir_is_a_clear_error(tmp_path: Path, how: str, command: tuple[str, ...]) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    args = [str(clip) if a == "CLIP" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    target = tmp_path / "unwritable"
    env = {"DATA_DIR": str(target), "QT_QPA_PLATFORM": "offscreen", "REDIS_URL": ""}
    if how == "file":
        target.write_text("not a folder")
        done = run_cli(*args, env=env, timeout=60)
    else:
        with tmpfs(target, 1, read_only=True):
            done = run_cli(*args, env=env, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATA_DIR" in lines[0] and "not a writable folder" in lines[0], done.stderr


def test_publishing_into_a_full_farm_storage_is_disk_full_with_no_half_preview(tmp_path: Path) -> None:
    """The parent of a chunked farm preview joins (here: renders, the shared cache being empty) and publishes into
    PREVIEW_FARM_STORAGE; on a full farm storage it fails as disk full, leaves nothing there, and succeeds once
    space is back. The real renderer and the real farm handler, run at the real job boundary."""
    from preview_desktop.core.layout import Layout
    from preview_desktop.core.spec import parse_spec
    from preview_desktop.engine.boundary import run_at_boundary
    from preview_desktop.farm.flow_jobs import Join, Phases, PreviewHandler
    from preview_desktop.render.chunk_jobs import ChunkJobs

    clip = make_noise_clip(tmp_path / "media" / "noise.mp4", seconds=4)
    with tmpfs(tmp_path / "farm", 20) as storage:
        settings = load_settings().with_overrides(farm_storage=storage)
        phases = Phases()
        handler = PreviewHandler(settings, ChunkJobs(settings, Layout(settings.data_dir)), phases)
        spec_data = {"projectId": "farmfull", "timeline": str(clip)}
        job = Job(id="20261130-120000-0badf00d", project_id="farmfull", spec=spec_data)

        def attempt() -> Any:
            phases.offer(job.id, Join("77"))
            return run_at_boundary(handler, job, lambda j: parse_spec(j.spec), JobContext(job=job),
                                   settings.data_dir)

        ballast = fill(storage, 2 * MB)
        outcome = attempt()
        assert outcome.kind == "failure" and outcome.disk_full and outcome.retryable
        assert outcome.error.startswith("disk full: no space left in PREVIEW_FARM_STORAGE ("), outcome.error
        published = storage / "previews" / "farmfull"
        assert not published.exists() or not list(published.iterdir())  # no half preview, no staging left
        ballast.unlink()
        outcome = attempt()
        assert outcome.kind == "success", outcome.error
        with av.open(str(published / "77" / "preview.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 100


def test_render_out_onto_a_full_disk_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    clip = make_noise_clip(tmp_path / "media" / "noise.mp4", seconds=2)
    with tmpfs(tmp_path / "small", 4) as disk:
        fill(disk, MB)
        done = run_cli("render", str(clip), "--out", str(disk / "out"), env={"PREVIEW_CACHE_MAX_BYTES": "0"})
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"preview-desktop: error: disk full: no space left in {disk} (")
        assert sorted(p.name for p in disk.iterdir()) == ["ballast.bin"]  # no half output, no staging
