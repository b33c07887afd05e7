"""Farm work that reaches the editor and counts: the local fallback while Redis is away, PREVIEW_QUEUE_MAX on farm
submissions, farm renders in the gauges, and a farm preview fetched over its signed URL from the node that rendered
it (no shared storage). Real parts: redis-server, worker subprocesses, the real renderer, ffprobe.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from preview_desktop.core.job import JobState
from tests.integration.api.harness import Api
from tests.support.cli import run_cli
from tests.support.media import make_clip
from tests.support.redis_server import RedisServer, free_port

from .conftest import NodeProcess, arun, wait_for
from .handlers import gap_spec
from .test_farm_api import call, wait_farm_state

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_farm_submission_with_redis_away_is_queued_locally_and_runs(make_api: Callable[..., Api]) -> None:
    api = make_api(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    async def scenario() -> tuple[int, dict[str, Any], str, Any]:
        async with api.session(headers=api.headers) as http:
            status, body, _, response = await call(http, "POST", "/v1/farm/jobs", json=gap_spec("fallback", 0.2))
            done = await api.wait_state(body["id"], JobState.SUCCEEDED)
            return status, body, response.headers["Location"], done

    status, body, location, done = api.run(scenario())
    assert status == 201 and body["queuedLocally"] is True, body
    assert "unreachable" in body["reason"] and body["projectId"] == "fallback"
    assert location == f"/v1/jobs/{body['id']}"
    assert done.origin == "local" and done.result is not None


def test_the_cli_falls_back_to_the_local_queue_in_one_line(tmp_path: Path) -> None:
    timeline = tmp_path / "cut.otio"
    timeline.write_text("{}")
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("--redis", url, "submit", str(timeline), "--farm", "--project", "cli-fallback")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and f"queued locally as {job_id}" in lines[0], lines
    listed = run_cli("list", "--json")
    assert [(j["id"], j["state"], j["projectId"]) for j in json.loads(listed.stdout)] == [
        (job_id, "queued", "cli-fallback")]
    off = run_cli("submit", str(timeline), "--farm")  # no REDIS_URL at all: not a farm, a usage error
    assert off.returncode == 2 and "not on a render farm" in off.stderr


def test_queue_max_refuses_farm_submissions_once_the_farm_queue_is_full(
    redis_server: RedisServer, make_api: Callable[..., Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREVIEW_QUEUE_MAX", "2")
    api = make_api(redis_server.url)
    timeline = tmp_path / "cut.otio"
    timeline.write_text("{}")

    async def scenario() -> list[tuple[int, Any]]:
        async with api.session(headers=api.headers) as http:
            await api.node.jobs.set_paused(True)  # this node takes no farm work: they stay waiting
            answers = []
            for i in range(3):
                status, body, _, _ = await call(http, "POST", "/v1/farm/jobs", json=gap_spec(f"full{i}", 5))
                answers.append((status, body))
            return answers

    answers = api.run(scenario())
    assert [status for status, _ in answers] == [201, 201, 429], answers
    assert answers[2][1]["error"]["code"] == "queue_full" and "PREVIEW_QUEUE_MAX" in answers[2][1]["error"]["message"]
    cli = run_cli("--redis", redis_server.url, "submit", str(timeline), "--farm")
    assert cli.returncode == 3 and "farm queue is full" in cli.stderr, cli.stderr


def test_the_gauges_count_farm_renders_here_and_the_farm_queue(
    redis_server: RedisServer, make_api: Callable[..., Api]
) -> None:
    api = make_api(redis_server.url)

    async def scenario() -> str:
        async with api.session(headers=api.headers) as http:
            running = await call(http, "POST", "/v1/farm/jobs", json=gap_spec("farm-render", 30))
            await wait_farm_state(http, running[1]["id"], "active")
            await call(http, "POST", "/v1/farm/jobs", json=gap_spec("farm-waits", 1))

            async def counted() -> str | None:  # the farm's waiting count comes with its heartbeat (2 s)
                async with http.get("/metrics") as r:
                    text = await r.text()
                return text if 'preview_worker_queue_size{queue="farm"} 1.0' in text else None

            text = str(await wait_for(counted, 10, interval=0.2))
            await call(http, "POST", f"/v1/farm/jobs/{running[1]['id']}/cancel")
            return text

    text = api.run(scenario())
    assert 'preview_worker_active_jobs{origin="farm"} 1.0' in text
    assert 'preview_worker_active_jobs{origin="local"} 0.0' in text
    assert 'preview_worker_queue_size{queue="local"} 0.0' in text


def test_a_farm_preview_is_fetched_over_its_signed_url_from_the_rendering_node(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    """No shared storage: the node that rendered serves the files; its API listens beyond loopback, so the result
    carries a signed URL, and the same id lists the artifacts on that node's API."""
    make_clip(tmp_path / "a.mp4", seconds=1.0, size=(320, 180))
    start_node(redis_server.url, concurrency=1, env={"PREVIEW_API_HOST": "0.0.0.0"},
               real_render=True)
    spec = {"projectId": "signed", "timeline": {"fps": 25, "clips": [{"source": str(tmp_path / "a.mp4")}]},
            "output": {"width": 160, "height": 90}}

    async def scenario() -> tuple[dict[str, Any], bytes, int, int]:
        from preview_desktop.farm.client import FarmClient

        client = FarmClient(redis_server.url, "previews")
        try:
            job = await client.queue.add("render", spec, {"attempts": 1})

            async def finished() -> dict[str, Any] | None:
                got = await client.get(str(job.id))
                return got if got is not None and got["state"] in ("completed", "failed") else None

            result = await wait_for(finished, 60, interval=0.1)
        finally:
            await client.close()
        artifacts = result["returnvalue"]["artifacts"]
        async with aiohttp.ClientSession() as http:
            async with http.get(artifacts["url"]) as r:
                body = await r.read()
                status = r.status
            tampered = artifacts["url"].replace("sig=", "sig=x")
            async with http.get(tampered) as r:
                refused = r.status
        return result, body, status, refused

    result, body, status, refused = arun(scenario())
    assert result["state"] == "completed", result.get("failedReason")
    assert status == 200 and refused == 403
    mp4 = tmp_path / "fetched.mp4"
    mp4.write_bytes(body)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(mp4)],
                           capture_output=True, text=True, timeout=60, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 160, 90)
    assert int(stream["nb_read_frames"]) == 25 == result["returnvalue"]["video"]["frames"]
