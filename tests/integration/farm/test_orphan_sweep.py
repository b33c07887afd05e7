"""The orphan sweep's verdicts (farm/orphans.py) on real BullMQ jobs in a real redis-server: a marked farm
preview is removed when its job completed with another run's artifacts or failed for good, and kept when its job
is pending, gone from Redis, or completed naming this very folder; unmarked folders, marks of another queue and
the farm storage are never looked at."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.farm_mark import FarmMark
from preview_desktop.core.layout import STAGING_PREFIX
from preview_desktop.farm import orphans
from preview_desktop.farm.orphans import OrphanSweep, RedisJobLookup
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]
NODE = "box:1:ab12"


def folder(previews: Path, local_id: str, mark: FarmMark | None) -> Path:
    path = previews / "p" / local_id
    path.mkdir(parents=True)
    (path / "preview.mp4").write_bytes(b"x")
    if mark is not None:
        mark.write(path)
    return path


async def bullmq_jobs(url: str) -> dict[str, str]:
    """Real BullMQ jobs in each state the sweep tells apart, by what they stand for."""
    from bullmq import Queue, Worker
    from bullmq.custom_errors import UnrecoverableError

    async def process(job: Any, token: str) -> Any:
        if job.data["do"] == "fail":
            raise UnrecoverableError("bad input")
        return {"video": {}, "artifacts": {"nodeId": job.data["node"], "jobId": job.data["local"]}}

    queue = Queue("previews", {"connection": url})
    ids: dict[str, str] = {}
    try:
        for name, data in (("elsewhere", {"do": "ok", "node": "other:2:cd34", "local": "20260101-000000-00000009"}),
                           ("here", {"do": "ok", "node": NODE, "local": "20260101-000000-00000002"}),
                           ("failed", {"do": "fail"})):
            ids[name] = str((await queue.add("render", data, {"attempts": 1})).id)
        worker = Worker("previews", process, {"connection": url})
        try:
            for _ in range(200):
                done = await queue.getJobCounts("completed", "failed")
                if done["completed"] == 2 and done["failed"] == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.close()
        ids["waiting"] = str((await queue.add("render", {"do": "ok"})).id)
        gone = await queue.add("render", {"do": "ok"})
        await gone.remove()
        ids["gone"] = str(gone.id)
    finally:
        await queue.close()
    return ids


def test_the_sweep_removes_only_copies_another_run_replaced_or_whose_job_failed(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orphans, "BATCH", 2)  # several pipelined round trips
    ids = asyncio.run(bullmq_jobs(redis_server.url))
    previews = tmp_path / "data" / "previews"
    local_ids = {"elsewhere": "20260101-000000-00000001", "here": "20260101-000000-00000002",
                 "failed": "20260101-000000-00000003", "waiting": "20260101-000000-00000004",
                 "gone": "20260101-000000-00000005"}
    made = {name: folder(previews, local, FarmMark("previews", ids[name], NODE, local))
            for name, local in local_ids.items()}
    unmarked = folder(previews, "20260101-000000-00000006", None)
    other_queue = folder(previews, "20260101-000000-00000007",
                         FarmMark("other", ids["elsewhere"], NODE, "20260101-000000-00000007"))
    leftover = previews / "p" / f"{STAGING_PREFIX}20260101-000000-00000008{orphans.ORPHAN_TAG}abcdef"
    leftover.mkdir()  # a sweep killed between its rename and its delete

    async def sweep() -> tuple[list[Path], int, list[Path], int]:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_server.url)
        try:
            sweeper = OrphanSweep(previews, "previews", 60.0)
            lookup = RedisJobLookup(redis, prefix="bull", queue="previews")
            first = await sweeper.sweep_once(lookup)
            second = await sweeper.sweep_once(lookup)  # settled folders are not asked about again
            return first.removed, first.checked, second.removed, second.checked
        finally:
            await redis.aclose()

    removed, checked, removed_again, checked_again = asyncio.run(sweep())
    assert checked == 5 and sorted(removed) == sorted([made["elsewhere"], made["failed"]])
    assert not made["elsewhere"].exists() and not made["failed"].exists()
    for name in ("here", "waiting", "gone"):
        assert (made[name] / "preview.mp4").is_file(), name
    assert unmarked.is_dir() and other_queue.is_dir() and not leftover.exists()
    assert removed_again == [] and checked_again == 1  # only the waiting one is asked about again
    assert not [p for p in (previews / "p").iterdir() if p.name.startswith(STAGING_PREFIX)]
