"""The API over a real socket: auth matrix, job routes, error format, limits, api.json and the token file."""

from __future__ import annotations

import json
import os
import stat
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from preview_desktop.api_token import load_or_create_token, regenerate_token
from preview_desktop.core.job import JobState
from preview_desktop.core.layout import Layout
from preview_desktop.settings import load_settings

from .harness import TOKEN, Api, inline_spec

pytestmark = pytest.mark.timeout(120)

JOB_ID = "20260101-000000-00000000"
V1_ROUTES = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", f"/v1/jobs/{JOB_ID}"),
    ("POST", f"/v1/jobs/{JOB_ID}/cancel"),
    ("POST", f"/v1/jobs/{JOB_ID}/retry"),
    ("GET", f"/v1/jobs/{JOB_ID}/artifacts"),
    ("GET", f"/v1/jobs/{JOB_ID}/artifacts/preview.mp4"),
    ("GET", "/v1/events"),
]


def test_auth_matrix(api: Api) -> None:
    async def scenario() -> None:
        async with api.session() as http:
            for method, path in V1_ROUTES:
                async with http.request(method, path) as r:
                    body = await r.json()
                    assert r.status == 401, (method, path)
                    assert body["error"]["code"] == "unauthorized"
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer x"):
                    async with http.request(method, path, headers={"Authorization": header}) as r:
                        assert r.status == 403, (method, path, header)
                        assert (await r.json())["error"]["code"] == "forbidden"
                async with http.request(method, path, headers={"Authorization": f"Basic {TOKEN}"}) as r:
                    assert r.status == 401
                if path == "/v1/events":
                    continue  # a stream: covered by the SSE tests
                async with http.request(method, path, headers=api.headers, json=inline_spec()) as r:
                    assert r.status not in (401, 403), (method, path, r.status)
            for path in ("/healthz", "/metrics", "/openapi.json"):  # open on loopback
                async with http.get(path) as r:
                    assert r.status == 200, path
            async with http.get("/nope", headers=api.headers) as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
            async with http.delete("/v1/jobs", headers=api.headers) as r:
                assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"

    api.run(scenario())


def test_submit_get_list_and_filters(api: Api, tmp_path: Path) -> None:
    (tmp_path / "cuts").mkdir()
    (tmp_path / "cuts" / "promo.otio").write_text("{}", encoding="utf-8")

    async def scenario() -> None:
        await api.node.engine.set_paused(True)  # keep jobs queued so filters are deterministic
        async with api.session(headers=api.headers) as http:
            a = await api.submit(http, inline_spec(project="alpha"))
            b = await api.submit(http, inline_spec(project="beta", priority=9))
            # A relative timeline path resolves against the first media root.
            async with http.post("/v1/jobs", json={"projectId": "gamma", "timeline": "cuts/promo.otio"}) as r:
                c = await r.json()
                assert r.status == 201 and r.headers["Location"] == f"/v1/jobs/{c['id']}"
                assert c["spec"]["timeline"] == str(tmp_path / "cuts" / "promo.otio")
            assert a["state"] == "queued" and b["priority"] == 9
            async with http.get(f"/v1/jobs/{a['id']}") as r:
                assert r.status == 200 and (await r.json())["id"] == a["id"]
            async with http.get("/v1/jobs") as r:
                assert [j["id"] for j in (await r.json())["jobs"]] == [a["id"], b["id"], c["id"]]
            async with http.get("/v1/jobs", params={"projectId": "beta"}) as r:
                assert [j["id"] for j in (await r.json())["jobs"]] == [b["id"]]
            async with http.post(f"/v1/jobs/{b['id']}/cancel") as r:
                assert r.status == 200 and (await r.json())["state"] == "cancelled"
            async with http.get("/v1/jobs", params={"state": "cancelled"}) as r:
                assert [j["id"] for j in (await r.json())["jobs"]] == [b["id"]]
            async with http.get("/v1/jobs", params={"state": "queued,cancelled", "limit": "2"}) as r:
                assert (await r.json())["count"] == 2
            for params in ({"state": "sleeping"}, {"projectId": "../x"}, {"limit": "0"}):
                async with http.get("/v1/jobs", params=params) as r:
                    body = await r.json()
                    assert r.status == 400 and body["error"]["code"] == "invalid"
                    assert body["error"]["message"].startswith(next(iter(params))), body
            async with http.get("/v1/jobs/20990101-000000-deadbeef") as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
            async with http.get("/v1/jobs/..%2F..%2Fapi-token") as r:
                assert r.status == 404

    api.run(scenario())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"projectId": "p", "timeline": "x.otio", "output": {"width": 5}}, "output.width"),
        ({"projectId": "p", "timeline": "x.otio", "colour": "red"}, "colour"),
        ({"projectId": "../etc", "timeline": "x.otio"}, "projectId"),
        ({"projectId": "p", "timeline": "missing.otio"}, "timeline"),
        ({"projectId": "p", "timeline": "/etc/passwd"}, "timeline"),
        ({"timeline": "x.otio"}, "projectId"),
        ([1, 2], "spec"),
    ],
)
def test_bad_specs_are_400_naming_the_field(api: Api, body: object, field: str) -> None:
    async def scenario() -> None:
        async with api.session(headers=api.headers) as http:
            async with http.post("/v1/jobs", json=body) as r:
                error = (await r.json())["error"]
                assert r.status == 400, error
                assert error["message"].startswith(field), error
            async with http.post("/v1/jobs", data=b"{not json", headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400 and (await r.json())["error"]["message"].startswith("spec:")
        assert await api.node.engine.call(api.node.store.list_jobs) == []

    api.run(scenario())


def test_body_limit_is_413(api: Api) -> None:
    async def scenario() -> None:
        big = json.dumps(inline_spec(project="big", label="x" * (5 * 1024 * 1024)))
        async with api.session(headers=api.headers) as http, \
                http.post("/v1/jobs", data=big, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"

    api.run(scenario())


def test_queue_full_is_429_and_queues_nothing(make_api: Callable[..., Api]) -> None:
    api = make_api(queue_max=2)
    api.node.store.queue_max = 2

    async def scenario() -> None:
        await api.node.engine.set_paused(True)
        async with api.session(headers=api.headers) as http:
            for i in range(2):
                await api.submit(http, inline_spec(project=f"p{i}"))
            async with http.post("/v1/jobs", json=inline_spec(project="p9")) as r:
                error = (await r.json())["error"]
                assert r.status == 429 and error["code"] == "queue_full" and "PREVIEW_QUEUE_MAX" in error["message"]
        jobs = await api.node.engine.call(api.node.store.list_jobs)
        assert sorted(j.project_id for j in jobs) == ["p0", "p1"]

    api.run(scenario())


def test_cancel_and_retry_transitions(api: Api) -> None:
    async def scenario() -> None:
        async with api.session(headers=api.headers) as http:
            done = await api.submit(http, inline_spec(seconds=0.05, project="done"))
            await api.wait_state(done["id"], JobState.SUCCEEDED)
            async with http.post(f"/v1/jobs/{done['id']}/cancel") as r:
                assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"
            async with http.post(f"/v1/jobs/{done['id']}/retry") as r:
                assert r.status == 409
            running = await api.submit(http, inline_spec(seconds=20, project="long"))
            await api.wait_state(running["id"], JobState.RUNNING)
            async with http.post(f"/v1/jobs/{running['id']}/cancel") as r:
                assert r.status == 202 and (await r.json())["cancelRequested"] is True
            await api.wait_state(running["id"], JobState.CANCELLED, timeout=5)
            async with http.post(f"/v1/jobs/{running['id']}/cancel") as r:
                assert r.status == 409
            async with http.post(f"/v1/jobs/{running['id']}/retry") as r:
                assert r.status == 200 and (await r.json())["state"] == "queued"
            async with http.post(f"/v1/jobs/{running['id']}/retry") as r:
                assert r.status == 409
            async with http.post(f"/v1/jobs/{running['id']}/cancel") as r:
                assert r.status in (200, 202)
            async with http.post("/v1/jobs/20990101-000000-deadbeef/retry") as r:
                assert r.status == 404

    api.run(scenario())


def test_api_json_written_and_removed(api: Api) -> None:
    layout = Layout(api.settings.data_dir)

    async def scenario() -> None:
        info = json.loads(layout.api_json.read_text(encoding="utf-8"))
        assert info == {"url": api.url, "pid": os.getpid()}
        assert api.url.startswith("http://127.0.0.1:") and not api.url.endswith(":0")
        await api.node.api.stop()
        assert not layout.api_json.exists() and api.node.api.url is None

    api.run(scenario())
    assert not layout.api_json.exists()


def test_healthz(api: Api) -> None:
    async def scenario() -> dict[str, object]:
        async with aiohttp.ClientSession() as http, http.get(api.url + "/healthz") as r:
            return dict(await r.json())

    health = api.run(scenario())
    assert health["status"] == "ok" and health["capacity"] == 2 and health["pid"] == os.getpid()


def test_generated_token_file_is_private_and_stable(data_dir: Path, make_api: Callable[..., Api]) -> None:
    settings = load_settings()
    layout = Layout(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = load_or_create_token(settings, layout)
    assert len(token) >= 32 and layout.api_token.read_text(encoding="utf-8").strip() == token
    assert stat.S_IMODE(layout.api_token.stat().st_mode) == 0o600
    assert load_or_create_token(settings, layout) == token
    fresh = regenerate_token(layout)
    assert fresh != token and stat.S_IMODE(layout.api_token.stat().st_mode) == 0o600

    api = make_api(token=None)  # no PREVIEW_API_TOKEN: the node uses the file
    assert api.node.api.token == fresh

    async def status(token_value: str) -> int:
        async with aiohttp.ClientSession() as http, http.get(
            api.url + "/v1/jobs", headers={"Authorization": f"Bearer {token_value}"}
        ) as r:
            return r.status

    assert api.run(status(fresh), final=False) == 200
    newest = api.node.api.regenerate_token()
    assert api.run(status(fresh), final=False) == 403 and api.run(status(newest)) == 200
    assert layout.api_token.read_text(encoding="utf-8").strip() == newest


def test_get_job_latency(api: Api) -> None:
    """Not a benchmark: a guard that reading one job costs the HTTP round trip plus one store read and nothing
    more (no blocking on a render, a lock or the whole store). The three are sampled interleaved in the same run,
    so machine load weighs on all of them alike."""

    async def timed(call: Callable[[], Awaitable[object]]) -> float:
        t0 = time.perf_counter()
        await call()
        return time.perf_counter() - t0

    async def scenario() -> tuple[float, float, float]:
        async with api.session() as http:
            job = await api.submit(http, inline_spec(seconds=0.01))

            async def get(path: str, headers: dict[str, str]) -> None:
                async with http.get(path, headers=headers) as r:
                    await r.read()
                    assert r.status == 200

            samples: dict[str, list[float]] = {"job": [], "health": [], "store": []}
            for _ in range(200):
                samples["job"].append(await timed(lambda: get(f"/v1/jobs/{job['id']}", api.headers)))
                samples["health"].append(await timed(lambda: get("/healthz", {})))
                samples["store"].append(await timed(lambda: api.node.jobs.get(job["id"])))
            med = {name: statistics.median(values) for name, values in samples.items()}
            return med["job"], med["health"], med["store"]

    job_p50, health_p50, store_p50 = api.run(scenario())
    print(f"GET /v1/jobs/{{id}} p50 {job_p50 * 1000:.2f} ms = {job_p50 / (health_p50 + store_p50):.1f}x "
          f"(GET /healthz {health_p50 * 1000:.2f} ms + the store read {store_p50 * 1000:.2f} ms)")
    assert job_p50 < 3 * (health_p50 + store_p50) + 0.002, (job_p50, health_p50, store_p50)
