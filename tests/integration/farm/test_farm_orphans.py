"""A farm node killed -9 between publishing a preview and completing its BullMQ job leaves a whole preview no job
names; its orphan sweep (farm/orphans.py) removes it once another node has completed the job, and not before.

Real parts: redis-server, `preview-desktop --worker` subprocesses rendering for real. The kill window (a few
milliseconds between the folder's rename into place and the job's completion) is held open with Redis's own
`CLIENT PAUSE WRITE`: the render runs and publishes (no Redis on the render thread) while the node's completion
script waits; the test sees the folder on disk and kills the node there, as a power cut would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from preview_desktop.core.farm_mark import MARK_NAME, read_mark
from preview_desktop.farm.client import FarmClient
from tests.support.media import make_clip
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, arun

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
PROJECT = "orphans"
SWEEP = {"farm_orphan_sweep_minutes": 0.02}  # a round every 1.2 s


def published(data_dir: Path) -> list[Path]:
    folder = data_dir / "previews" / PROJECT
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def staging(data_dir: Path) -> list[Path]:
    folder = data_dir / "previews" / PROJECT
    return [p for p in folder.iterdir() if p.name.startswith(".staging-")] if folder.is_dir() else []


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s")


def job_state(url: str, job_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        client = FarmClient(url, "previews")
        try:
            return await client.get(job_id) or {}
        finally:
            await client.close()

    return arun(read())


def test_an_orphan_preview_is_kept_while_its_job_is_pending_and_removed_once_another_node_completes_it(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    make_clip(tmp_path / "a.mp4", seconds=6.0, size=(320, 180))
    (tmp_path / "a-settings.json").write_text(json.dumps(SWEEP))
    a = start_node(redis_server.url, concurrency=1, name="a", real_render=True)
    local = a.data_dir / "previews" / PROJECT / "20260101-000000-0123abcd"  # a local preview: no mark
    local.mkdir(parents=True)
    (local / "preview.json").write_text("{}")
    spec = {"projectId": PROJECT, "timeline": {"fps": 25, "clips": [{"source": str(tmp_path / "a.mp4")}]},
            "output": {"width": 160, "height": 90}}

    async def add() -> str:
        client = FarmClient(redis_server.url, "previews")
        try:
            return str((await client.queue.add("render", spec, {"attempts": 3})).id)
        finally:
            await client.close()

    job_id = arun(add())
    r = redis.Redis.from_url(redis_server.url)
    poll(lambda: staging(a.data_dir), 60)  # the render is under way on node a
    r.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # node a's completion will wait here
    try:
        orphan = poll(lambda: [p for p in published(a.data_dir) if p != local], 60)[0]
        a.kill()
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
    mark = read_mark(orphan)
    assert mark is not None and (mark.queue, mark.jobId, mark.localId) == ("previews", job_id, orphan.name)
    assert job_state(redis_server.url, job_id)["state"] == "active"  # a died holding it: never completed

    # a comes back but takes no farm jobs: its sweep at join finds the job still pending and keeps the folder
    a = start_node(redis_server.url, concurrency=1, name="a", real_render=True, env={"PREVIEW_FARM_WHEN": "never"})
    poll(lambda: "orphan sweep: 1 farm preview(s) checked, 0 removed" in a.log(), 30, 0.1)
    time.sleep(3)  # more rounds
    assert orphan.is_dir() and local.is_dir()

    b = start_node(redis_server.url, concurrency=1, name="b", real_render=True)

    def finished() -> dict[str, Any] | None:
        got = job_state(redis_server.url, job_id)
        return got if got.get("state") in ("completed", "failed") else None

    result = poll(finished, 90, 0.2)
    assert result["state"] == "completed", result.get("failedReason")
    artifacts = result["returnvalue"]["artifacts"]
    assert (artifacts["nodeId"], artifacts["jobId"]) != (mark.nodeId, mark.localId)
    winner = Path(artifacts["path"])
    assert winner.parent.parent == b.data_dir / "previews" and (winner / "preview.mp4").is_file()

    poll(lambda: not orphan.exists(), 30, 0.1)  # a's next round
    assert f"removed orphan preview {PROJECT}/{orphan.name} of job {job_id}" in a.log()
    assert local.is_dir() and (local / "preview.json").read_text() == "{}"  # a local preview: untouched
    assert not staging(a.data_dir)  # renamed aside, then deleted
    assert winner.is_dir() and (winner / MARK_NAME).is_file()  # the winner's folder stays on b
    assert published(b.data_dir) == [winner]
