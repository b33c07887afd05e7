"""Supersede on the farm: real redis-server, real worker processes, producers on the test's side (FarmClient,
and plain BullMQ `Queue.add` as a Node.js backend would do)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.spec import parse_spec
from preview_desktop.farm.client import FarmClient, job_options
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, arun, runs, wait_for
from .handlers import gap_spec, timeline_file

pytestmark = [pytest.mark.redis, pytest.mark.slow]
QUEUE = "previews"


async def submit(client: FarmClient, project: str, timeline: str, **fields: Any) -> str:
    return await client.submit(parse_spec({"projectId": project, "timeline": timeline, **fields}))


async def state(client: FarmClient, job_id: str) -> str:
    return str(await client.queue.getJobState(job_id))


def test_waiting_jobs_are_removed_by_a_newer_one(redis_server: RedisServer, tmp_path: Path) -> None:
    cut = timeline_file(tmp_path / "cut.otio", 1.0)
    other_cut = timeline_file(tmp_path / "other.otio", 1.0)

    async def scenario() -> dict[str, str]:
        client = FarmClient(redis_server.url, QUEUE)  # no node runs: every job waits
        first = await submit(client, "promo", cut)
        other_project = await submit(client, "teaser", cut)
        other_timeline = await submit(client, "promo", other_cut)
        inline = await client.submit(parse_spec(gap_spec("promo", 1.0)))
        second = await submit(client, "promo", cut)
        kept_by = await submit(client, "promo", cut, supersede=False)
        result = {"second_beside_kept_by": await state(client, second)}
        third = await submit(client, "promo", cut)
        names = {"first": first, "other_project": other_project, "other_timeline": other_timeline,
                 "inline": inline, "second": second, "kept_by": kept_by, "third": third}
        result.update({name: await state(client, job_id) for name, job_id in names.items()})
        await client.close()
        return result

    result = arun(scenario())
    assert result["first"] == "unknown"  # removed from the queue when `second` arrived
    assert result["other_project"] != "unknown" and result["other_timeline"] != "unknown"
    assert result["inline"] != "unknown"  # inline timelines never supersede (as locally)
    assert result["second_beside_kept_by"] != "unknown"  # kept: `kept_by` said supersede false
    assert result["second"] == result["kept_by"] == "unknown"  # `third` supersedes every older one
    assert result["third"] != "unknown"


def test_a_running_job_is_stopped_by_a_newer_one(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], run_log: Path, tmp_path: Path
) -> None:
    start_node(redis_server.url, concurrency=1)
    cut = timeline_file(tmp_path / "cut.otio", 30.0)

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None, float, str]:
        client = FarmClient(redis_server.url, QUEUE)
        old = await submit(client, "promo", cut)

        async def running() -> bool:
            job = await client.get(old)
            return bool(job and job["state"] == "active" and job["progress"])

        await wait_for(running, 15)
        timeline_file(tmp_path / "cut.otio", 0.5)  # the editor saved a shorter cut
        t0 = time.monotonic()
        new = await submit(client, "promo", cut)

        async def old_failed() -> bool:
            return await state(client, old) == "failed"

        await wait_for(old_failed, 15, interval=0.02)  # a 30 s render: stopped by the newer job, not run out
        seconds = time.monotonic() - t0

        async def new_done() -> bool:
            return await state(client, new) == "completed"

        await wait_for(new_done, 15)
        result = await client.get(old), await client.get(new), seconds, new
        await client.close()
        return result

    old_job, new_job, seconds, new_id = arun(scenario())
    assert old_job is not None and old_job["failedReason"] == f"cancelled: superseded by job {new_id}"
    assert old_job["attemptsMade"] == 1  # not retried
    assert new_job is not None and new_job["returnvalue"]["status"] == "succeeded"
    print(f"the old job stopped {seconds:.2f}s after the new one was submitted")
    assert [p for p, _ in runs(run_log)] == ["promo", "promo"]


def test_jobs_added_by_a_plain_bullmq_producer_supersede_at_pickup(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    start_node(redis_server.url, concurrency=2)
    cut = timeline_file(tmp_path / "cut.otio", 30.0)

    async def scenario() -> tuple[dict[str, Any] | None, str, str]:
        client = FarmClient(redis_server.url, QUEUE)
        spec = parse_spec({"projectId": "promo", "timeline": cut})
        options = job_options(spec, client.config)
        old = str((await client.queue.add("render", spec.to_wire(), options)).id)  # no FarmClient.submit

        async def running() -> bool:
            job = await client.get(old)
            return bool(job and job["state"] == "active")

        await wait_for(running, 15)
        new = str((await client.queue.add("render", spec.to_wire(), options)).id)

        async def old_failed() -> bool:
            return await state(client, old) == "failed"

        await wait_for(old_failed, 15, interval=0.02)  # a 30 s render: stopped by the newer job, not run out
        result = await client.get(old), new, await state(client, new)
        await client.cancel(new)
        await client.close()
        return result

    old_job, new_id, new_state = arun(scenario())
    assert old_job is not None and old_job["failedReason"] == f"cancelled: superseded by job {new_id}"
    assert new_state == "active"
