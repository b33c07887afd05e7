"""A farm node whose disk fills up mid-render: the job waits for space on the farm queue, no attempt used.

A real node (the shipped renderer) with DATA_DIR on a small tmpfs that is nearly full: the farm job fails as
"disk full", goes back to the farm queue after PREVIEW_DISK_FULL_RETRY_SECONDS with its attempts untouched and the
reason in its BullMQ log, nothing half-made stays under previews/, and once space is freed the job succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.farm.client import FarmClient
from tests.support.noise import make_noise_clip
from tests.support.redis_server import RedisServer
from tests.support.tmpfs import fill, tmpfs

from .conftest import NodeProcess, arun, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_farm_job_that_fills_a_nodes_disk_waits_for_space_without_using_attempts(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    clip = make_noise_clip(tmp_path / "media" / "noise.mp4", seconds=3)
    with tmpfs(tmp_path / "full", 24) as disk:
        node = start_node(redis_server.url, concurrency=1, name="full", real_render=True,
                          env={"PREVIEW_DISK_FULL_RETRY_SECONDS": "2", "PREVIEW_CACHE_MAX_BYTES": "0"})
        assert node.data_dir == disk
        ballast = fill(disk, 256 * 1024)  # less than the ~3 MB preview of 3 s of noise

        async def scenario(client: FarmClient) -> dict[str, Any]:
            job = await client.queue.add("render", {"projectId": "full", "timeline": str(clip), "attempts": 2},
                                         {"removeOnComplete": False, "removeOnFail": False})
            job_id = str(job.id)

            async def logged() -> list[str] | None:
                logs = await client.queue.getJobLogs(job_id)
                return logs["logs"] or None

            lines: list[str] = await wait_for(logged, 90)
            waiting = await client.get(job_id)
            previews = disk / "previews" / "full"
            half_made = [p for p in previews.rglob("*") if p.is_file()] if previews.exists() else []
            ballast.unlink()  # space is back
            # runs again after the retry delay (2 s here), at most once per delay while the disk stays full
            done: dict[str, Any] = await wait_for(lambda: _finished(client, job_id), 90, 0.2)
            return {"lines": lines, "waiting": waiting, "half_made": half_made, "done": done}

        out = arun(_with_client(redis_server, scenario))
    assert out["lines"][0].startswith("disk full: no space left in DATA_DIR/"), out["lines"]
    assert "no attempt used" in out["lines"][0]
    assert out["waiting"]["state"] in ("delayed", "waiting", "active"), out["waiting"]
    assert out["waiting"]["attemptsMade"] == 0 and out["waiting"]["failedReason"] is None, out["waiting"]
    assert out["half_made"] == []
    done = out["done"]
    assert done["state"] == "completed", done
    assert done["attemptsMade"] <= 1  # the completion; the disk-full rounds used none
    assert done["returnvalue"]["video"]["frames"] == 75
    assert "Traceback" not in node.log()
    assert node.proc.poll() is None  # the node lived through it


async def _finished(client: FarmClient, job_id: str) -> dict[str, Any] | None:
    job = await client.get(job_id)
    return job if job and job["state"] in ("completed", "failed") else None


async def _with_client(redis_server: RedisServer, scenario: Callable[[FarmClient], Any]) -> dict[str, Any]:
    client = FarmClient(redis_server.url, "previews")
    try:
        result: dict[str, Any] = await asyncio.wait_for(scenario(client), 170)
        return result
    finally:
        await client.close()
