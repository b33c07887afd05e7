"""Farm citizenship (issue #17, points 2 and 3): failing nodes are kept off a job, a node that keeps failing rests,
an operator drains a node through any node's API. Real redis-server, three real `--worker` processes (the fake
handlers of handlers.py), a producer and HTTP calls on the test's side."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from preview_desktop.core.farm_status import NodeInfo
from preview_desktop.farm.client import FarmClient
from preview_desktop.farm.registry import read_nodes, set_draining
from preview_desktop.farm.standing import node_seat
from tests.integration.api.harness import TOKEN
from tests.support.media import make_clip
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, arun, wait_for
from .handlers import gap_spec

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]
QUEUE = "previews"
API_ENV = {"PREVIEW_API_TOKEN": TOKEN}


async def node_of(client: FarmClient, proc: NodeProcess) -> NodeInfo | None:
    return next((n for n in await read_nodes(client.redis, client.keys) if n.pid == proc.pid), None)


async def node_id(client: FarmClient, proc: NodeProcess) -> str:
    async def found() -> NodeInfo | None:
        return await node_of(client, proc)

    info: NodeInfo = await wait_for(found, 30)
    return info.nodeId


async def add(client: FarmClient, data: dict[str, Any], **opts: Any) -> str:
    """As a backend would: a plain BullMQ add (no spec check on this side)."""
    job = await client.queue.add("render", data, {"removeOnComplete": False, "removeOnFail": False, **opts})
    return str(job.id)


async def finished(client: FarmClient, job_id: str, timeout: float) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = await client.get(job_id)
        return job if job and job["state"] in ("completed", "failed") else None

    result: dict[str, Any] = await wait_for(done, timeout, 0.1)
    return result


async def with_client(redis_server: RedisServer,
                      scenario: Callable[[FarmClient], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    client = FarmClient(redis_server.url, QUEUE)
    try:
        return await scenario(client)
    finally:
        await client.close()


async def _drain(client: FarmClient, seat: str, draining: bool) -> dict[str, Any]:
    await set_draining(client.redis, client.keys, seat, draining)
    return {}


def started_lines(proc: NodeProcess, job_id: str) -> int:
    return sum(1 for line in proc.log().splitlines() if f"farm: job {job_id} (" in line and "started here" in line)


def test_job_failing_on_a_node_completes_elsewhere_and_never_returns(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    """Node C's media roots lack the timeline: C fails the job once (a node problem, retried). While A and B are busy
    C meets the job again and again but passes it on each time (about once a second, no hot loop); the job then
    completes on A or B and never runs on C again."""
    roots = {}
    for name in ("a", "b", "c"):
        roots[name] = tmp_path / f"media-{name}"
        (roots[name] / "show").mkdir(parents=True)
    for name in ("a", "b"):
        (roots[name] / "show" / "cut.otio").write_text(json.dumps({"seconds": 0.5}))
    procs = {name: start_node(redis_server.url, concurrency=1, name=name, wait=False,
                              env={"PREVIEW_MEDIA_ROOTS": str(roots[name])}) for name in ("a", "b", "c")}

    async def scenario(client: FarmClient) -> dict[str, Any]:
        ids = {name: await node_id(client, proc) for name, proc in procs.items()}

        async def state_is(name: str, state: str) -> bool:
            node = await node_of(client, procs[name])
            return node is not None and node.state == state

        # A and B get a long job each while C is drained (the operator's key); then C alone is free
        c_node = await node_of(client, procs["c"])
        assert c_node is not None and c_node.seat
        await client.redis.set(client.keys.drain(c_node.seat), "{}")
        await wait_for(lambda: state_is("c", "draining"), 10)
        busy = [await add(client, gap_spec(f"busy{i}", 6.0)) for i in range(2)]

        async def both_busy() -> bool:
            return [await client.queue.getJobState(j) for j in busy] == ["active", "active"]

        await wait_for(both_busy, 15)
        await client.redis.delete(client.keys.drain(c_node.seat))
        await wait_for(lambda: state_is("c", "lending"), 10)
        job_id = await add(client, {"projectId": "lost", "timeline": "show/cut.otio"},
                           attempts=4, backoff={"type": "fixed", "delay": 1000})
        job = await finished(client, job_id, 60)
        failed_on = await client.redis.smembers(client.keys.failed_on(job_id))
        for j in busy:
            await finished(client, j, 20)
        busy_by = []
        for j in busy:
            busy_by.append(((await client.get(j) or {}).get("returnvalue") or {}).get("artifacts", {}).get("nodeId"))
        return {"job": job, "job_id": job_id, "ids": ids, "failed_on": failed_on, "busy_by": busy_by}

    out = arun(with_client(redis_server, scenario))
    job, job_id, ids = out["job"], out["job_id"], out["ids"]
    assert sorted(out["busy_by"]) == sorted([ids["a"], ids["b"]])
    assert job["state"] == "completed", job
    assert job["attemptsMade"] == 2  # C's failure and the completion (BullMQ counts both); passing on: none
    rendered_by = job["returnvalue"]["artifacts"]["nodeId"]
    assert rendered_by in (ids["a"], ids["b"])
    assert out["failed_on"] == {ids["c"]}
    c_log = procs["c"].log()
    assert started_lines(procs["c"], job_id) == 1, c_log
    assert f"timeline not found on node {ids['c']}" in c_log
    passed_on = sum(1 for line in c_log.splitlines() if f"farm: job {job_id} failed here before" in line)
    print(f"C passed the job on {passed_on} times while A and B were busy")
    assert 1 <= passed_on <= 12, c_log  # met again while A and B were busy; held off ~1 s each time
    winner = next(p for n, p in procs.items() if ids[n] == rendered_by)
    assert started_lines(winner, job_id) == 1


def test_strict_clip_missing_on_a_node_is_rendered_by_another_one(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    """The real renderer: C's media root lacks the clip of a `strict` preview (MediaNotFound, a node problem on the
    farm, not bad input), so the job is retried and A, whose root has it, renders it; C never starts it again."""
    roots = {name: tmp_path / f"media-{name}" for name in ("a", "c")}
    for root in roots.values():
        root.mkdir()
    make_clip(roots["a"] / "a.mp4", seconds=1.0, size=(320, 180))
    real = {"PREVIEW_EXTRA_HANDLERS": ""}
    # A is up before the job, but drained (its seat: host + DATA_DIR, which start_node puts at tmp_path / name), so
    # C meets the job first; A is resumed once C failed, and is then a live node C leaves the job to — however
    # slowly a loaded machine starts processes.
    a_seat = node_seat(socket.gethostname(), tmp_path / "a")
    arun(with_client(redis_server, lambda client: _drain(client, a_seat, True)))
    a = start_node(redis_server.url, concurrency=1, name="a", env={**real, "PREVIEW_MEDIA_ROOTS": str(roots["a"])})
    c = start_node(redis_server.url, concurrency=1, name="c", env={**real, "PREVIEW_MEDIA_ROOTS": str(roots["c"])})
    spec = {"projectId": "strict", "timeline": {"fps": 25, "clips": [{"source": "a.mp4"}]},
            "output": {"width": 160, "height": 90, "strict": True}}

    async def scenario(client: FarmClient) -> dict[str, Any]:
        c_id, a_id = await node_id(client, c), await node_id(client, a)
        job_id = await add(client, spec, attempts=3, backoff={"type": "fixed", "delay": 3000})

        async def failed_once() -> bool:
            job = await client.get(job_id)
            return bool(job) and job["attemptsMade"] >= 1

        await wait_for(failed_once, 30)
        await _drain(client, a_seat, False)
        return {"job": await finished(client, job_id, 60), "job_id": job_id, "a_id": a_id, "c_id": c_id}

    out = arun(with_client(redis_server, scenario))
    job = out["job"]
    assert job["state"] == "completed", job
    assert job["returnvalue"]["artifacts"]["nodeId"] == out["a_id"]
    assert job["returnvalue"]["video"]["frames"] == 25
    assert started_lines(c, out["job_id"]) == 1
    assert "a.mp4" in c.log() and "file not found" in c.log()


def test_three_failures_in_a_row_rest_a_node_until_forgiven(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess]
) -> None:
    """Three different jobs fail on R (not bad input): R rests for PREVIEW_FARM_REST_MINUTES (0.1 = 6 s here),
    shows "resting" in the registry and GET /v1/farm, takes no job meanwhile, then is forgiven and takes it."""
    rest_s = 6.0
    r = start_node(redis_server.url, concurrency=1, name="r",
                   env={**API_ENV, "PREVIEW_FARM_REST_MINUTES": str(rest_s / 60)})

    async def scenario(client: FarmClient) -> dict[str, Any]:
        r_id = await node_id(client, r)
        bad = [await add(client, gap_spec(f"bad{i}", 0.1, timeline={"fps": 25, "clips": [{"source": "fail.mp4"}]}),
                         attempts=1) for i in range(3)]
        for job_id in bad:
            assert (await finished(client, job_id, 30))["state"] == "failed"

        async def resting() -> NodeInfo | None:
            node = await node_of(client, r)
            return node if node is not None and node.state == "resting" else None

        node: NodeInfo = await wait_for(resting, 5)
        rested_at = time.time()
        assert node.restingUntil is not None
        assert rest_s - 2 <= node.restingUntil - rested_at <= rest_s + 0.5
        async with aiohttp.ClientSession() as http, \
                http.get(f"{node.api}/v1/farm", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            farm = await resp.json()
        mine = next(n for n in farm["nodes"] if n["nodeId"] == r_id)
        good = await add(client, gap_spec("good", 0.2))
        await asyncio.sleep(2.0)
        waited = await client.queue.getJobState(good)
        done = await finished(client, good, rest_s + 15)
        bull = await client.queue.getJob(good)
        done["processedOn"] = bull.processedOn
        return {"api": mine, "waited": waited, "done": done, "rested_at": rested_at, "until": node.restingUntil,
                "r_id": r_id}

    out = arun(with_client(redis_server, scenario))
    assert out["api"]["state"] == "resting" and out["api"]["restingUntil"] == pytest.approx(out["until"], abs=0.01)
    assert out["waited"] == "waiting"  # not taken while resting
    done = out["done"]
    assert done["state"] == "completed" and done["returnvalue"]["artifacts"]["nodeId"] == out["r_id"]
    assert done["processedOn"] / 1000 >= out["until"] - 0.1  # forgiven only when the cool-down was over
    log = r.log()
    assert sum(1 for line in log.splitlines() if "farm: resting until" in line) == 1, log
    assert "3 farm jobs failed here in a row" in log and "rest over" in log


def test_drain_a_node_through_another_nodes_api(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess]
) -> None:
    """Drain B through A's API: B finishes its running job and takes no new one (A and C take them); B restarted
    is still drained; resumed through A's API it takes work again. The token is required; an unknown node is a
    404."""
    procs = {name: start_node(redis_server.url, concurrency=1, name=name, wait=False, env=API_ENV)
             for name in ("a", "b", "c")}
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario(client: FarmClient) -> dict[str, Any]:
        ids = {name: await node_id(client, proc) for name, proc in procs.items()}
        a_api = (await node_of(client, procs["a"]))
        assert a_api is not None and a_api.api
        base = a_api.api
        async with aiohttp.ClientSession() as http:

            async def post(path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
                async with http.post(f"{base}{path}", headers=auth if headers is None else headers) as resp:
                    return resp.status, await resp.json()

            async def state_of(name: str) -> str | None:
                async with http.get(f"{base}/v1/farm", headers=auth) as resp:
                    farm = await resp.json()
                return next((n["state"] for n in farm["nodes"] if n["nodeId"] == ids[name]), None)

            unauthorized, _ = await post(f"/v1/farm/nodes/{ids['b']}/drain", headers={})
            unknown, unknown_body = await post("/v1/farm/nodes/nobody:1:ffff/drain")
            # B gets a long job: A and C are drained meanwhile, through A's own API
            for name in ("a", "c"):
                assert (await post(f"/v1/farm/nodes/{ids[name]}/drain"))[0] == 200
            for name in ("a", "c"):
                await wait_for(lambda n=name: _is(state_of(n), "draining"), 5)
            long_job = await add(client, gap_spec("long", 4.0))

            async def on_b() -> bool:
                job = await client.get(long_job)
                return bool(job) and job["state"] == "active" and job.get("processedBy") == ids["b"]

            await wait_for(on_b, 15)
            for name in ("a", "c"):
                assert (await post(f"/v1/farm/nodes/{ids[name]}/resume"))[0] == 200
            drained_at = time.monotonic()
            status, body = await post(f"/v1/farm/nodes/{ids['b']}/drain")
            await wait_for(lambda: _is(state_of("b"), "draining"), 5)
            seen_after = time.monotonic() - drained_at
            short = [await add(client, gap_spec(f"short{i}", 0.3)) for i in range(4)]
            shorts = [await finished(client, j, 40) for j in short]
            long_done = await finished(client, long_job, 20)
            first_log = procs["b"].log()
            # B restarts while drained (a new process, a new node id; same host and DATA_DIR): still drained
            procs["b"].stop()
            procs["b"] = await asyncio.to_thread(start_node, redis_server.url, 1, "b", env=API_ENV)
            ids["b0"], ids["b"] = ids["b"], await node_id(client, procs["b"])
            await wait_for(lambda: _is(state_of("b"), "draining"), 10)
            for name in ("a", "c"):  # now nobody takes a job until B is resumed
                assert (await post(f"/v1/farm/nodes/{ids[name]}/drain"))[0] == 200
            for name in ("a", "c"):
                await wait_for(lambda n=name: _is(state_of(n), "draining"), 5)
            after_id = await add(client, gap_spec("after", 0.2))
            await asyncio.sleep(2.0)
            waited = await client.queue.getJobState(after_id)
            resumed = await post(f"/v1/farm/nodes/{ids['b']}/resume")
            after = await finished(client, after_id, 20)
        return {"ids": ids, "unauthorized": unauthorized, "unknown": (unknown, unknown_body), "drain": (status, body),
                "seen_after": seen_after, "shorts": shorts, "long": long_done, "resumed": resumed, "after": after,
                "waited": waited, "first_log": first_log}

    out = arun(with_client(redis_server, scenario))
    ids = out["ids"]
    assert out["unauthorized"] == 401
    assert out["unknown"][0] == 404 and out["unknown"][1]["error"]["code"] == "not_found"
    assert out["drain"] == (200, {"nodeId": ids["b0"], "draining": True})
    assert ids["b0"] != ids["b"]  # the restarted B is another process with another node id
    print(f"B showed draining in A's GET /v1/farm {out['seen_after']:.2f}s after the drain request")
    assert out["seen_after"] < 3.0  # B reads its drain key every 0.5 s and publishes its state at once
    assert out["long"]["state"] == "completed" and out["long"]["processedBy"] == ids["b0"]  # finished what it ran
    for job in out["shorts"]:
        assert job["state"] == "completed" and job["returnvalue"]["artifacts"]["nodeId"] in (ids["a"], ids["c"])
    # B restarted drained; A and C drained: nobody took it (a fetch that was already blocked on the queue when its
    # node was drained hands the job straight back: BullMQ then keeps it as delayed until a node fetches again)
    assert out["waited"] in ("waiting", "delayed")
    assert out["resumed"] == (200, {"nodeId": ids["b"], "draining": False})
    assert out["after"]["state"] == "completed" and out["after"]["returnvalue"]["artifacts"]["nodeId"] == ids["b"]
    assert "farm: draining" in out["first_log"]
    assert "resumed: taking farm jobs again" in procs["b"].log()


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)
