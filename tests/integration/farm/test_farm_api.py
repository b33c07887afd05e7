"""The farm through the HTTP API: submit, read and cancel farm jobs from any client, not only the window.

Real pieces only: a redis-server per test, a Node (store, engine, farm, API) on the qasync loop serving over a
socket, and `preview-desktop --worker` subprocesses that run the jobs. The in-process node is on the farm too, so
where a job must run on *another* node, its one render slot is first filled with a long local job (as a window
busy with local previews): farm jobs then go to the worker process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from preview_desktop.core.events import EngineStatus, JobOutcome, JobProgress
from preview_desktop.core.job import JobState
from tests.integration.api.harness import Api
from tests.support.fuzz import fuzz_api
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, runs, wait_for
from .handlers import gap_spec

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]
QUEUE = "previews"
CANCEL_REASON = "cancelled: cancelled through the API"


async def call(http: aiohttp.ClientSession, method: str, path: str,
               **kwargs: Any) -> tuple[int, Any, str, aiohttp.ClientResponse]:
    """(status, parsed JSON body, raw body text, response)."""
    async with http.request(method, path, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text), text, response


async def submit_farm(http: aiohttp.ClientSession, spec: dict[str, Any]) -> str:
    status, body, _, response = await call(http, "POST", "/v1/farm/jobs", json=spec)
    assert status == 201, body
    assert response.headers["Location"] == f"/v1/farm/jobs/{body['id']}"
    assert body["state"] in ("waiting", "prioritized", "active", "delayed"), body
    return str(body["id"])


async def farm_job(http: aiohttp.ClientSession, job_id: str) -> dict[str, Any] | None:
    status, body, _, _ = await call(http, "GET", f"/v1/farm/jobs/{job_id}")
    if status == 404:
        assert body["error"]["code"] == "not_found"
        return None
    assert status == 200, body
    return dict(body)


async def wait_farm_state(http: aiohttp.ClientSession, job_id: str, *states: str,
                          timeout: float = 20) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        job = await farm_job(http, job_id)
        return job if job is not None and job["state"] in states else None

    return dict(await wait_for(reached, timeout, interval=0.02))


async def fill_local_slot(api: Api, http: aiohttp.ClientSession) -> str:
    """A long local job in the in-process node's only slot: its farm fetcher then leaves farm jobs to others."""
    job = await api.submit(http, gap_spec("local-busy", 120))
    await api.wait_state(job["id"], JobState.RUNNING)
    return str(job["id"])


def farm_runs(run_log: Path) -> list[tuple[str, int]]:
    return [(project, pid) for project, pid in runs(run_log) if project != "local-busy"]


def test_submit_through_the_api_completes_on_a_worker_node(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], run_log: Path, make_api: Callable[..., Api]
) -> None:
    worker = start_node(redis_server.url, concurrency=1)
    api = make_api(redis_server.url)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with api.session(headers=api.headers) as http:
            await fill_local_slot(api, http)
            job_id = await submit_farm(http, gap_spec("viaapi", 0.3))
            job = await wait_farm_state(http, job_id, "completed", "failed")

            async def caught_up() -> dict[str, Any] | None:  # the snapshot is refreshed every heartbeat (2 s)
                _, body, _, _ = await call(http, "GET", "/v1/farm")
                return body if len(body["nodes"]) == 2 and body["counts"].get("completed") == 1 else None

            status = await wait_for(caught_up, 10, interval=0.2)
            return job, status

    job, status = api.run(scenario())
    assert job["state"] == "completed", job
    assert job["returnvalue"]["status"] == "succeeded"
    assert job["returnvalue"]["projectId"] == "viaapi"
    assert job["returnvalue"]["pid"] == worker.pid  # ran on the worker process, not on the API's node
    assert job["progress"] == {"frame": 8, "frames": 8, "percent": 100.0}
    assert job["data"]["projectId"] == "viaapi" and job["failedReason"] is None and job["attemptsMade"] == 1
    assert farm_runs(run_log) == [("viaapi", worker.pid)]
    assert status["enabled"] is True and status["connected"] is True and status["error"] is None
    assert status["queue"] == QUEUE and status["url"] == redis_server.url
    node_ids = {n["nodeId"] for n in status["nodes"]}
    assert status["nodeId"] in node_ids
    assert job["returnvalue"]["artifacts"]["nodeId"] in node_ids - {status["nodeId"]}
    assert job["processedBy"] == job["returnvalue"]["artifacts"]["nodeId"]  # BullMQ's own record of the node
    assert status["counts"]["completed"] == 1


async def settled_waiting(http: aiohttp.ClientSession, job_id: str) -> str:
    """Its state once no node holds it: the busy in-process node may grab it for a moment and hand it back."""
    last: str | None = None
    since = time.monotonic()
    deadline = since + 10
    while time.monotonic() < deadline:
        job = await farm_job(http, job_id)
        assert job is not None
        state = str(job["state"])
        if state != last:
            last, since = state, time.monotonic()
        elif state != "active" and time.monotonic() - since >= 0.3:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"farm job {job_id} never settled (last state {last})")


def test_cancel_a_waiting_job_removes_it_and_it_never_runs(
    redis_server: RedisServer, run_log: Path, make_api: Callable[..., Api]
) -> None:
    api = make_api(redis_server.url)  # the only node on the farm, and busy: the farm job waits

    async def scenario() -> list[Any]:
        async with api.session(headers=api.headers) as http:
            local = await fill_local_slot(api, http)
            job_id = await submit_farm(http, gap_spec("waiter", 0.2))
            assert await settled_waiting(http, job_id) in ("waiting", "prioritized", "delayed")
            cancel = await call(http, "POST", f"/v1/farm/jobs/{job_id}/cancel")
            after = await farm_job(http, job_id)
            again = await call(http, "POST", f"/v1/farm/jobs/{job_id}/cancel")
            # free the slot: the node takes farm work again, and would run the job now if it were still queued
            async with http.post(f"/v1/jobs/{local}/cancel") as r:
                assert r.status in (200, 202)
            await api.wait_state(local, JobState.CANCELLED)
            await asyncio.sleep(1.5)
            return [job_id, cancel, after, again, await farm_job(http, job_id)]

    job_id, cancel, after, again, later = api.run(scenario())
    assert cancel[0] == 200 and cancel[1] == {"id": job_id, "result": "removed"}, cancel[1]
    assert after is None and later is None
    assert again[0] == 404 and again[1]["error"]["code"] == "not_found"
    assert farm_runs(run_log) == []


def test_cancel_a_job_running_on_another_node_stops_it_within_seconds(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], run_log: Path, make_api: Callable[..., Api]
) -> None:
    worker = start_node(redis_server.url, concurrency=1)
    api = make_api(redis_server.url)

    async def scenario() -> list[Any]:
        async with api.session(headers=api.headers) as http:
            await fill_local_slot(api, http)
            job_id = await submit_farm(http, gap_spec("runner", 30.0))

            async def rendering() -> dict[str, Any] | None:
                job = await farm_job(http, job_id)
                return job if job and job["state"] == "active" and job["progress"] else None

            await wait_for(rendering, 15)
            t0 = time.monotonic()
            cancel = await call(http, "POST", f"/v1/farm/jobs/{job_id}/cancel")
            job = await wait_farm_state(http, job_id, "failed", "completed", timeout=20)
            seconds = time.monotonic() - t0
            again = await call(http, "POST", f"/v1/farm/jobs/{job_id}/cancel")
            return [job_id, cancel, job, seconds, again]

    job_id, cancel, job, seconds, again = api.run(scenario())
    assert cancel[0] == 202 and cancel[1] == {"id": job_id, "result": "requested"}, cancel[1]
    assert job["state"] == "failed" and job["failedReason"] == CANCEL_REASON, job
    assert job["attemptsMade"] == 1  # not retried
    assert job["progress"]["frame"] < job["progress"]["frames"]  # stopped mid-render
    assert seconds < 15.0, f"the job stopped {seconds:.2f}s after the cancel"  # well before the 30 s render's end
    assert again[0] == 409 and again[1]["error"]["code"] == "conflict"  # finished: nothing to cancel
    assert farm_runs(run_log) == [("runner", worker.pid)]
    print(f"a job running on another node failed {seconds:.2f}s after the API's cancel")


def test_unknown_and_malformed_farm_job_ids_are_404(redis_server: RedisServer, make_api: Callable[..., Api]) -> None:
    api = make_api(redis_server.url)

    async def scenario() -> list[tuple[str, str, int, str]]:
        results = []
        async with api.session(headers=api.headers) as http:
            # one job first, so BullMQ's own keys exist (meta hash, events stream, completed set): an id equal
            # to one of their names must not read them as a job
            await wait_farm_state(http, await submit_farm(http, gap_spec("first", 0.1)), "completed")
            for job_id in ("424242", "no-such-job", "meta", "events", "completed", "id", "x" * 129, "a:b",
                           "sp%20ace"):
                for method, path in (("GET", f"/v1/farm/jobs/{job_id}"), ("POST", f"/v1/farm/jobs/{job_id}/cancel")):
                    status, body, _, _ = await call(http, method, path)
                    results.append((method, job_id, status, body["error"]["code"]))
        return results

    for method, job_id, status, code in api.run(scenario()):
        assert (status, code) == (404, "not_found"), (method, job_id, status, code)


def test_a_node_without_redis_url_says_farm_disabled(make_api: Callable[..., Api]) -> None:
    api = make_api(None)

    async def scenario() -> list[Any]:
        async with api.session(headers=api.headers) as http:
            return [
                await call(http, "GET", "/v1/farm"),
                await call(http, "POST", "/v1/farm/jobs", json=gap_spec("nofarm", 0.1)),
                await call(http, "GET", "/v1/farm/jobs/1"),
                await call(http, "POST", "/v1/farm/jobs/1/cancel"),
                await call(http, "GET", "/v1/jobs"),
            ]

    status, *farm_routes, local = api.run(scenario())
    assert status[0] == 200
    assert status[1]["enabled"] is False and status[1]["connected"] is False and status[1]["nodes"] == []
    for code, body, _, _ in farm_routes:
        assert code == 409, body
        assert body["error"]["code"] == "farm_disabled"
        assert "REDIS_URL" in body["error"]["message"] and "--redis" in body["error"]["message"]
    assert local[0] == 200 and local[1]["count"] == 0  # nothing was queued locally instead


def test_a_bad_spec_is_400_and_nothing_reaches_the_queue(
    redis_server: RedisServer, make_api: Callable[..., Api]
) -> None:
    api = make_api(redis_server.url)
    bad_bodies: list[dict[str, Any]] = [
        {"data": b"{not json"},
        {"json": {"projectId": "bad", "timeline": {"fps": 25, "clips": []}, "colour": "red"}},
        {"json": {"projectId": "bad project!", "timeline": {"fps": 25, "clips": [{"gap": 1}]}}},
        {"json": {"projectId": "outside", "timeline": "/etc/hostname"}},
        {"json": ["not", "an", "object"]},
    ]

    async def scenario() -> tuple[list[tuple[int, str]], dict[str, int]]:
        results = []
        async with api.session(headers=api.headers) as http:
            for kwargs in bad_bodies:
                status, body, _, _ = await call(http, "POST", "/v1/farm/jobs", **kwargs)
                results.append((status, body["error"]["code"]))
        import redis.asyncio as aredis

        client = aredis.from_url(redis_server.url, decode_responses=True)
        base = f"bull:{QUEUE}"
        counts = {"ids": await client.exists(f"{base}:id"), "wait": await client.llen(f"{base}:wait"),
                  "prioritized": await client.zcard(f"{base}:prioritized"),
                  "jobs": len([k for k in await client.keys(f"{base}:*") if str(k).split(":")[2].isdigit()])}
        await client.aclose()
        return results, counts

    results, counts = api.run(scenario())
    for status, code in results:
        assert status == 400 and code in ("invalid", "unsafe_path"), results
    assert results[3][1] == "unsafe_path"
    assert counts == {"ids": 0, "wait": 0, "prioritized": 0, "jobs": 0}


def test_redis_down_is_503_without_the_password(
    redis_server_with_password: RedisServer, make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_with_password
    password = server.password
    assert password
    api = make_api(server.url)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> dict[str, Any]:
        async with api.session(headers=api.headers) as http:
            async def connected() -> dict[str, Any] | None:
                _, body, _, _ = await call(http, "GET", "/v1/farm")
                return body if body["connected"] else None

            up = await wait_for(connected, 10, interval=0.1)
            job_id = await submit_farm(http, gap_spec("before", 0.1))
            await wait_farm_state(http, job_id, "completed")
            await asyncio.to_thread(server.stop)
            t0 = time.monotonic()
            down = [
                await call(http, "POST", "/v1/farm/jobs", json=gap_spec("during", 0.1)),
                await call(http, "GET", f"/v1/farm/jobs/{job_id}"),
                await call(http, "POST", f"/v1/farm/jobs/{job_id}/cancel"),
            ]
            seconds = time.monotonic() - t0

            async def disconnected() -> dict[str, Any] | None:
                _, body, text, _ = await call(http, "GET", "/v1/farm")
                return {"body": body, "text": text} if not body["connected"] else None

            status_down = await wait_for(disconnected, 10, interval=0.1)
            await asyncio.to_thread(server.start)
            back = await wait_farm_state(http, job_id, "completed", timeout=15)
            return {"up": up, "down": down, "seconds": seconds, "status_down": status_down, "back": back}

    result = api.run(scenario())
    assert result["up"]["url"] == server.url.replace(password, "***")
    fallback_status, fallback, fallback_text, _ = result["down"][0]  # a submission is queued here instead
    assert fallback_status == 201 and fallback["queuedLocally"] is True and fallback["projectId"] == "during"
    assert "unreachable" in fallback["reason"] and password not in fallback_text
    for status, body, text, _ in result["down"][1:]:
        assert status == 503, body
        assert body["error"]["code"] == "farm_unavailable"
        message = body["error"]["message"]
        assert "unreachable" in message and "\n" not in message and "Traceback" not in message
        assert "redis://:***@127.0.0.1" in message
        assert password not in text
    assert result["seconds"] < 10
    status_down = result["status_down"]
    assert status_down["body"]["enabled"] is True and status_down["body"]["error"]
    assert password not in status_down["text"]
    assert result["back"]["state"] == "completed"  # the outage was transient: the same route answers again
    own = [r for r in caplog.records if r.name.startswith(("preview_desktop", "aiohttp"))]
    assert own, "no log records captured"
    for record in own:
        assert password not in record.getMessage(), record.getMessage()
        if record.name.startswith("preview_desktop.api"):
            assert record.exc_info is None, record.getMessage()  # no traceback for an outage


def fuzz_farm_routes(url: str, headers: dict[str, str], budget: float) -> list[str]:
    """Schemathesis on the /v1/farm routes only: no 5xx, and every answer as the OpenAPI document says."""
    return fuzz_api(url, headers, budget=budget, examples=25, include=lambda path: path.startswith("/v1/farm"),
                    timeout=15)


def test_schemathesis_on_the_farm_routes_of_a_farm_node(
    redis_server: RedisServer, make_api: Callable[..., Api]
) -> None:
    """The API suite fuzzes a node without a farm (every farm route 409); this one has a live farm behind it."""
    from concurrent.futures import ThreadPoolExecutor

    api = make_api(redis_server.url)
    gc.collect()

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        async with api.session(headers=api.headers) as http:
            # a finished job and the nodes in the snapshot: real FarmJob and FarmStatus bodies, as documented
            job = await wait_farm_state(http, await submit_farm(http, gap_spec("fuzzed", 0.1)), "completed")
            await wait_for(lambda: _has_nodes(http), 10, interval=0.2)
            _, farm, _, _ = await call(http, "GET", "/v1/farm")
            _, document, _, _ = await call(http, "GET", "/openapi.json")
            assert_conforms(document, "FarmJob", job)
            assert_conforms(document, "FarmStatus", farm)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="schemathesis") as pool:
            tested = await asyncio.get_running_loop().run_in_executor(pool, fuzz_farm_routes, api.url, api.headers,
                                                                      60.0)
        async with api.session(headers=api.headers) as http:
            _, status, _, _ = await call(http, "GET", "/v1/farm")
        return tested, status

    tested, status = api.run(scenario(), timeout=150)
    print(f"schemathesis on a farm node: {tested}")
    assert len(tested) == 16, tested  # 8 farm routes (artifacts, node drain/resume included), positive and negative
    assert status["connected"] is True  # the fuzzing left the farm working


def assert_conforms(document: dict[str, Any], name: str, body: Any) -> None:
    import jsonschema_rs  # schemathesis's validator

    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(body)


async def _has_nodes(http: aiohttp.ClientSession) -> bool:
    _, body, _, _ = await call(http, "GET", "/v1/farm")
    return bool(body["nodes"])


def test_a_paused_node_takes_no_farm_job_until_resumed(
    redis_server: RedisServer, run_log: Path, make_api: Callable[..., Api]
) -> None:
    """Pause queue (the window's toolbar) stops this computer rendering: farm jobs included; they wait for it,
    or for another node."""
    api = make_api(redis_server.url)  # the only node on the farm

    async def scenario() -> tuple[str, dict[str, Any], list[tuple[str, int]]]:
        async with api.session(headers=api.headers) as http:
            await api.node.engine.set_paused(True)
            await wait_for(lambda: asyncio.sleep(0, api.node.engine.paused), 5)
            job_id = await submit_farm(http, gap_spec("paused", 0.1))
            state = await settled_waiting(http, job_id)
            ran_while_paused = farm_runs(run_log)
            await api.node.engine.set_paused(False)
            done = await wait_farm_state(http, job_id, "completed", "failed", timeout=10)
            return state, done, ran_while_paused

    state, done, ran_while_paused = api.run(scenario())
    assert state in ("waiting", "prioritized"), state
    assert ran_while_paused == []
    assert done["state"] == "completed", done
    assert farm_runs(run_log) == [("paused", os.getpid())]


def test_a_lock_renewal_crossing_a_completion_is_no_warning(
    redis_server: RedisServer, make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    """bullmq renews locks on a timer; when a renewal meets a job that just completed here, the lock is gone
    because the job is done: not the "may be re-run elsewhere" warning a really lost lock deserves."""
    api = make_api(redis_server.url)
    farm = api.node.farm
    caplog.set_level(logging.DEBUG, logger="preview_desktop.farm")
    farm._on_worker_error(Exception("could not renew lock for job 41"))  # bullmq's words; 41 ended here
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    farm.running["42"] = object()  # 42 still renders here: its lock is really lost
    try:
        farm._on_worker_error(Exception("could not renew lock for job 42"))
    finally:
        farm.running.pop("42")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "job 42" in warnings[0] and "re-run elsewhere" in warnings[0]


def test_a_farm_render_here_counts_in_this_nodes_slots(
    redis_server: RedisServer, make_api: Callable[..., Api]
) -> None:
    """The window's "1/1 slots on this computer" and /healthz count farm renders too: they share the slots."""
    api = make_api(redis_server.url)  # the only node: it runs the farm job itself
    seen: list[int] = []
    api.node.engine.events.subscribe(lambda e: seen.append(e.running) if isinstance(e, EngineStatus) else None)

    async def scenario() -> tuple[int, int, dict[str, Any]]:
        async with api.session(headers=api.headers) as http:
            job_id = await submit_farm(http, gap_spec("slot-user", 1.5))
            await wait_farm_state(http, job_id, "active")
            await wait_for(lambda: asyncio.sleep(0, api.node.engine.status().running == 1), 5)
            async with http.get("/healthz") as r:
                during = (await r.json())["running"]
            done = await wait_farm_state(http, job_id, "completed", "failed")
            return during, api.node.engine.status().running, done

    during, after, done = api.run(scenario())
    assert done["state"] == "completed"
    assert during == 1 and after == 0
    assert 1 in seen and seen[-1] == 0  # the window heard both changes


def test_farm_renders_here_feed_this_nodes_metrics_but_not_its_job_events(
    redis_server: RedisServer, make_api: Callable[..., Api]
) -> None:
    """The window's fps and finished-per-minute plots and /metrics count a farm job rendered here; the SSE stream,
    whose ids name local jobs, does not carry it."""
    api = make_api(redis_server.url)  # the only node: it renders the farm job
    events: list[Any] = []
    api.node.engine.events.subscribe(events.append)

    async def scenario() -> tuple[dict[str, Any], str, list[str]]:
        async with api.session(headers=api.headers) as http:
            sse: list[str] = []

            async def listen() -> None:
                async with http.get("/v1/events") as r:
                    async for line in r.content:
                        sse.append(line.decode())

            listener = asyncio.get_running_loop().create_task(listen())
            job_id = await submit_farm(http, gap_spec("metered", 0.8))
            done = await wait_farm_state(http, job_id, "completed", "failed")
            await asyncio.sleep(0.3)
            listener.cancel()
            async with http.get("/metrics") as r:
                metrics = await r.text()
            return done, metrics, sse

    done, metrics, sse = api.run(scenario())
    assert done["state"] == "completed"
    render_id = done["returnvalue"]["artifacts"]["jobId"]
    progress = [e for e in events if isinstance(e, JobProgress)]
    outcomes = [e for e in events if isinstance(e, JobOutcome)]
    assert progress and {(e.job_id, e.origin) for e in progress} == {(render_id, "farm")}
    assert progress[-1].frame == progress[-1].frames and progress[-1].fps > 0
    assert [(e.job_id, e.outcome, e.origin) for e in outcomes] == [(render_id, "success", "farm")]
    assert 'preview_worker_jobs_total{outcome="success"} 1.0' in metrics
    assert "preview_worker_job_duration_seconds_count 1.0" in metrics
    assert any(line.startswith("event: status") for line in sse)  # the stream was live: it saw the slot taken
    assert not [line for line in sse if render_id in line]
