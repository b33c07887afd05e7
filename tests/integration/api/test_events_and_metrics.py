"""The SSE stream (live, replay with Last-Event-ID, resync) and /metrics agreeing with the store while jobs run."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from preview_desktop.core.job import JobState
from preview_desktop.core.metrics import DURATION_BUCKETS, counts_to_gauges

from .harness import Api, inline_spec, sse_events

pytestmark = pytest.mark.timeout(120)

METRIC_NAMES = {
    "preview_worker_jobs",  # the counter family (samples: preview_worker_jobs_total)
    "preview_worker_job_duration_seconds",
    "preview_worker_queue_size",
    "preview_worker_active_jobs",
}


async def collect_until(response: aiohttp.ClientResponse, stop: Any, timeout: float = 15) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    async def reader() -> None:
        async for event in sse_events(response):
            events.append(event)
            if stop(event):
                return

    await asyncio.wait_for(reader(), timeout)
    return events


def test_sse_streams_state_and_progress_and_replays(api: Api) -> None:
    async def scenario() -> None:
        async with api.session(headers=api.headers, timeout=aiohttp.ClientTimeout(total=60)) as http:
            async with http.get("/v1/events") as stream:
                assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
                job = await api.submit(http, inline_spec(seconds=1.2))
                events = await collect_until(
                    stream, lambda e: e["event"] == "job" and e["data"]["id"] == job["id"]
                    and e["data"]["state"] == "succeeded")
            mine = [e for e in events if e["data"].get("id") == job["id"]]
            states = [e["data"]["state"] for e in mine if e["event"] == "job"]
            assert states[0] == "queued" and "running" in states and states[-1] == "succeeded"
            progress = [e for e in mine if e["event"] == "progress"]
            assert 1 <= len(progress) <= 6, len(progress)  # throttled to ~2/s, the last frame always sent
            assert progress[-1]["data"]["fraction"] == 1.0 and all("id" not in e for e in progress)
            assert any(e["event"] == "outcome" and e["data"]["outcome"] == "success" for e in mine)
            ids = [e["id"] for e in events if "id" in e]
            assert len(ids) == len(set(ids))

            # Reconnect from the first event: everything with an id after it comes back, in order.
            first_running = next(e for e in mine if e["event"] == "job" and e["data"]["state"] == "running")
            async with http.get("/v1/events", headers={"Last-Event-ID": first_running["id"]}) as again:
                replay = await collect_until(again, lambda e: e["id"] == ids[-1] if "id" in e else False)
            expected = ids[ids.index(first_running["id"]) + 1:]
            assert [e["id"] for e in replay if "id" in e] == expected

            # An id from another server run or older than the buffer: one resync event, then live events.
            for stale in ("00000000-5", "garbage"):
                async with http.get("/v1/events", headers={"Last-Event-ID": stale}) as again:
                    first = await collect_until(again, lambda e: True)
                assert first[0]["event"] == "resync" and "lastEventId" in first[0]["data"]

    api.run(scenario())


def test_sse_resync_when_the_buffer_has_moved_on(api: Api) -> None:
    broker = api.node.api.events

    async def scenario() -> None:
        first_id = broker.last_event_id
        for i in range(broker._buffer.maxlen + 5):  # type: ignore[operator]
            broker._publish("status", {"n": i})
        async with api.session(headers=api.headers) as http, \
                http.get("/v1/events", headers={"Last-Event-ID": first_id}) as stream:
            event = (await collect_until(stream, lambda e: True))[0]
        assert event["event"] == "resync" and event["data"]["lastEventId"] == broker.last_event_id

    api.run(scenario())


def parse_metrics(text: str) -> dict[str, Any]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) >= METRIC_NAMES, set(families)
    ours = {n for n in families if n.startswith("preview_")}
    assert ours == METRIC_NAMES  # exactly the four of DESIGN.md
    values: dict[str, Any] = {"jobs_total": {}}
    for sample in families["preview_worker_jobs"].samples:
        if sample.name == "preview_worker_jobs_total":
            values["jobs_total"][sample.labels["outcome"]] = sample.value
    for sample in families["preview_worker_job_duration_seconds"].samples:
        if sample.name.endswith("_count"):
            values["duration_count"] = sample.value
        if sample.name.endswith("_bucket"):
            values.setdefault("buckets", []).append(sample.labels["le"])
    queue = {sample.labels["queue"]: sample.value for sample in families["preview_worker_queue_size"].samples}
    active = {sample.labels["origin"]: sample.value for sample in families["preview_worker_active_jobs"].samples}
    assert "farm" not in queue and active["farm"] == 0  # a node without a farm: no farm queue, no farm renders
    values["queue_size"], values["active_jobs"] = queue["local"], active["local"]
    return values


def test_metrics_agree_with_the_store_while_jobs_run(api: Api) -> None:
    store = api.node.store

    async def scrape(http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get("/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            return parse_metrics(await r.text())

    async def scenario() -> tuple[int, int]:
        async with api.session() as http:  # no token: open on loopback
            first = await scrape(http)
            assert first["jobs_total"] == {"success": 0.0, "failure": 0.0, "retry": 0.0}
            assert first["buckets"][:-1] == [str(float(b)) for b in DURATION_BUCKETS]
            async with api.session(headers=api.headers) as authed:
                ids = [(await api.submit(authed, inline_spec(seconds=0.4, project=f"m{i}")))["id"] for i in range(6)]
                ids.append((await api.submit(authed, inline_spec(project="bad", source="fail", attempts=2)))["id"])
            compared = busy = 0
            while True:
                before = counts_to_gauges(await api.node.engine.call(store.counts))
                seen = await scrape(http)
                after = counts_to_gauges(await api.node.engine.call(store.counts))
                if before == after:  # nothing moved during the scrape: it must match exactly
                    compared += 1
                    assert (seen["queue_size"], seen["active_jobs"]) == before
                    busy += before[1] > 0
                if before == after == (0, 0) and all(api.node.engine.jobs[i].state.finished for i in ids):
                    break
                await asyncio.sleep(0.03)
            final = await scrape(http)
        assert final["jobs_total"] == {"success": 6.0, "failure": 1.0, "retry": 1.0}
        assert final["duration_count"] == 8.0
        snapshot = await api.node.api.metrics.snapshot()
        assert snapshot.jobs_total == {"success": 6, "failure": 1, "retry": 1} and snapshot.duration_count == 8
        assert (snapshot.queue_size, snapshot.active_jobs) == (0, 0)
        return compared, busy

    compared, busy = api.run(scenario(), timeout=90)
    assert compared >= 10 and busy >= 3, (compared, busy)
    assert api.node.engine.jobs and all(j.state in (JobState.SUCCEEDED, JobState.FAILED)
                                        for j in api.node.engine.jobs.values())
