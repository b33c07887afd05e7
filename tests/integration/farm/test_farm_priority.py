"""A priority change on a farm record reaches the farm job while it waits there, and is refused, changing nothing,
once a node took it, it ended or it left the farm. Real parts: redis-server, the job service over a real local store
and the farm gateway (as the CLI builds them), `--worker` processes that take the jobs in the farm's order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.submission import WireSource
from preview_desktop.errors import FarmJobNotWaiting, IllegalTransition
from preview_desktop.farm.client import bullmq_priority
from preview_desktop.farm.gateway import ClientSeat, FarmGateway
from preview_desktop.queue.local import LocalStore
from preview_desktop.service.jobs import JobService, inline
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, arun, runs, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]
QUEUE = "previews"


def spec(project: str, seconds: float, priority: int = 5) -> WireSource:
    return WireSource({"projectId": project, "priority": priority,
                       "timeline": {"fps": 25, "clips": [{"gap": seconds}]}})


class Editor:
    """The editor's side: the job service with a local store and a seat on the farm (no node of its own, so
    nothing here consumes farm jobs and no tracker rewrites the records while the test reads them)."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.seat = ClientSeat(url, QUEUE)
        self.store = LocalStore(tmp_path / "editor-store")
        self.jobs = JobService(self.store, [tmp_path], inline, farm=FarmGateway(self.seat))

    async def farm_priority(self, farm_id: str) -> int:
        job = await self.seat.client.queue.getJob(farm_id)
        assert job is not None, f"farm job {farm_id} is gone"
        return int(job.priority)

    async def prioritized(self) -> list[str]:
        """BullMQ's prioritized set, in the order nodes take from it."""
        return [str(i) for i in await self.seat.client.redis.zrange(f"bull:{QUEUE}:prioritized", 0, -1)]

    async def close(self) -> None:
        await self.seat.close()
        self.store.close()


def test_raising_a_waiting_farm_record_makes_a_node_take_it_first(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], run_log: Path, tmp_path: Path,
) -> None:
    async def change() -> tuple[str, str, str]:
        editor = Editor(redis_server.url, tmp_path)
        try:
            first = await editor.jobs.submit_tracked(spec("first", 0.2))
            later = await editor.jobs.submit_tracked(spec("later", 0.2))
            lowered = await editor.jobs.submit_tracked(spec("lowered", 0.2, priority=7))
            assert first.farm_id and later.farm_id and lowered.farm_id
            assert await editor.prioritized() == [lowered.farm_id, first.farm_id, later.farm_id]  # as submitted

            raised = await editor.jobs.set_priority(later.id, 9)
            down = await editor.jobs.set_priority(lowered.id, 1)
            assert (raised.priority, raised.spec["priority"], raised.state) == (9, 9, JobState.QUEUED)
            assert (down.priority, down.spec["priority"]) == (1, 1)
            assert (await editor.jobs.get(later.id)).priority == 9  # stored, not only returned
            # the submit's mapping: spec 9 → BullMQ 2, spec 1 → 10 (lower first there)
            assert await editor.farm_priority(later.farm_id) == bullmq_priority(9) == 2
            assert await editor.farm_priority(lowered.farm_id) == bullmq_priority(1) == 10
            assert await editor.farm_priority(first.farm_id) == bullmq_priority(5)
            assert await editor.prioritized() == [later.farm_id, first.farm_id, lowered.farm_id]
            # a farm record never enters the local queue, whatever its priority
            assert editor.store.lease("a-local-worker", 10) is None
            return first.farm_id, later.farm_id, lowered.farm_id
        finally:
            await editor.close()

    first_id, later_id, lowered_id = arun(change())
    start_node(redis_server.url, concurrency=1)  # one slot: it takes the jobs one by one, in the farm's order

    async def taken_in_order() -> list[str]:
        editor = Editor(redis_server.url, tmp_path)
        try:
            async def all_done() -> bool:
                states = [await editor.seat.client.queue.getJobState(i) for i in (first_id, later_id, lowered_id)]
                return all(s == "completed" for s in states)

            await wait_for(all_done, timeout=60)
            started: dict[str, Any] = {}
            for farm_id in (first_id, later_id, lowered_id):
                job = await editor.seat.client.queue.getJob(farm_id)
                started[farm_id] = job.processedOn
            return sorted(started, key=lambda i: started[i])
        finally:
            await editor.close()

    assert arun(taken_in_order()) == [later_id, first_id, lowered_id]
    assert [project for project, _pid in runs(run_log)] == ["later", "first", "lowered"]


def test_a_farm_job_that_runs_ended_or_left_keeps_its_priority_and_so_does_its_record(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path,
) -> None:
    start_node(redis_server.url, concurrency=2)

    async def scenario() -> None:
        editor = Editor(redis_server.url, tmp_path)
        client = editor.seat.client
        try:
            running = await editor.jobs.submit_tracked(spec("running", 30.0))
            quick = await editor.jobs.submit_tracked(spec("quick", 0.1))
            assert running.farm_id and quick.farm_id

            async def state_is(farm_id: str, state: str) -> bool:
                return await client.queue.getJobState(farm_id) == state

            await wait_for(lambda: state_is(running.farm_id, "active"), timeout=30)
            await wait_for(lambda: state_is(quick.farm_id, "completed"), timeout=30)

            cases = [(running, "a farm node is running it"), (quick, "it has finished on the farm")]
            for record, why in cases:
                before = await editor.jobs.get(record.id)
                assert before.state is JobState.QUEUED  # no tracker here: the record is a poll behind the farm
                with pytest.raises(FarmJobNotWaiting) as refused:
                    await editor.jobs.set_priority(record.id, 10)
                assert str(refused.value) == (f"cannot change the priority of job {record.id}: farm job "
                                              f"{record.farm_id} no longer waits ({why})")
                assert (refused.value.http_status, refused.value.code) == (409, "farm_job_not_waiting")
                after = await editor.jobs.get(record.id)
                assert after == before  # not a field changed, not even updated_at
                assert await editor.farm_priority(str(record.farm_id)) == bullmq_priority(5)

            assert await client.queue.remove(quick.farm_id) == 1  # gone from the farm (e.g. past its history)
            with pytest.raises(FarmJobNotWaiting, match=r"no longer waits \(it is no longer on the farm\)"):
                await editor.jobs.set_priority(quick.id, 0)
            assert (await editor.jobs.get(quick.id)).priority == 5

            # a record the tracker has finished is refused by the store's rules, as a finished local job is
            await editor.jobs.cancel(running.id)
            await wait_for(lambda: state_is(str(running.farm_id), "failed"), timeout=15)
            cancelled = await editor.jobs.get(running.id)
            assert cancelled.state is JobState.CANCELLED
            with pytest.raises(IllegalTransition, match="it is cancelled"):
                await editor.jobs.set_priority(running.id, 9)

            # a local job is as before: no farm involved, it moves in the local queue
            local = await editor.jobs.submit(spec("local", 0.1))
            assert (await editor.jobs.set_priority(local.id, 8)).priority == 8
            lease = editor.store.lease("a-local-worker", 10)
            assert lease is not None and lease.job.id == local.id and lease.job.priority == 8
        finally:
            await editor.close()

    arun(scenario())


def test_a_node_taking_the_job_between_the_check_and_the_change_wins(redis_server: RedisServer) -> None:
    """The race the WATCH closes: the state is read (prioritized), a node takes the job, then the change would run.
    BullMQ's script alone would still write the new priority into the running job's hash and report success."""
    from bullmq import Worker

    from preview_desktop.farm.bullmq_compat import change_priority_if_waiting
    from preview_desktop.farm.client import FarmClient

    async def scenario() -> None:
        client = FarmClient(redis_server.url, QUEUE)

        async def process(job: Any, token: str) -> None:
            return None

        node = Worker(QUEUE, process, {"connection": redis_server.url, "prefix": "bull", "autorun": False})
        taken: list[Any] = []

        class NodeTakesItRightAfterTheRead:
            """The real queue's scripts and state; after the first read a real bullmq worker takes the job."""

            scripts = client.queue.scripts

            async def getJobState(self, job_id: str) -> str:
                state = str(await client.queue.getJobState(job_id))
                if not taken:
                    taken.append(await node.getNextJob("node-token"))
                return state

        try:
            added = await client.queue.add("render", {"projectId": "raced"}, {"priority": bullmq_priority(5)})
            job_id = str(added.id)
            found = await change_priority_if_waiting(NodeTakesItRightAfterTheRead(), client.redis, job_id,
                                                     bullmq_priority(10))
            assert taken and taken[0] is not None and str(taken[0].id) == job_id
            assert found == "active"  # read again after the aborted transaction: not changed
            assert await client.queue.getJobState(job_id) == "active"
            job = await client.queue.getJob(job_id)
            assert job is not None and int(job.priority) == bullmq_priority(5)  # the hash kept its priority
        finally:
            await node.close(force=True)
            await client.close()
            await client.redis.aclose()

    arun(scenario())


def test_a_farm_job_delayed_for_a_retry_runs_again_at_its_new_priority(redis_server: RedisServer) -> None:
    """A record retrying on the farm (its job delayed for backoff) still waits: the change is taken, and the job
    comes back in its new place when its delay is over (BullMQ reads the priority from the job's hash then)."""
    from preview_desktop.farm.client import FarmClient

    async def scenario() -> None:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            other = await client.queue.add("render", {"projectId": "other"}, {"priority": bullmq_priority(8)})
            later = await client.queue.add("render", {"projectId": "retrying"},
                                           {"priority": bullmq_priority(5), "delay": 60_000})
            assert await client.queue.getJobState(str(later.id)) == "delayed"
            assert await client.set_priority(str(later.id), 10) == "changed"
            assert await client.queue.getJobState(str(later.id)) == "delayed"  # it still waits for its time
            job = await client.queue.getJob(str(later.id))
            assert job is not None and int(job.priority) == bullmq_priority(10)
            await job.promote()  # its backoff is over
            order = [str(i) for i in await client.redis.zrange(f"bull:{QUEUE}:prioritized", 0, -1)]
            assert order == [str(later.id), str(other.id)]
            assert await client.set_priority("no-such-job", 3) == "not-found"
        finally:
            await client.close()
            await client.redis.aclose()

    arun(scenario())
