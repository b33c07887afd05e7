"""Workstation mode end to end (issue 17): a real redis-server, a real X server (Xvfb) whose input xdotool
simulates, and real worker processes. An idle workstation takes a farm job; the user comes back and the job goes
back to the queue within 2 s without using an attempt, another node finishes it, and the workstation's local
render goes on untouched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.farm_status import NodeState
from preview_desktop.core.spec import parse_spec
from preview_desktop.farm.client import FarmClient
from tests.support.cli import run_cli, wait_ready
from tests.support.redis_server import RedisServer
from tests.support.xvfb import Xvfb, xvfb  # noqa: F401  (the fixture)

from .conftest import NodeProcess, arun, runs, wait_for
from .handlers import gap_spec

pytestmark = [pytest.mark.redis, pytest.mark.slow]
QUEUE = "previews"
TOKEN = "workstation-test-token"
IDLE_MINUTES = 0.05  # away after 3 s without input


def farm_api(api: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{api}/v1/farm", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


async def node_state(client: FarmClient, pid: int) -> str | None:
    """The node's state as it publishes it in the registry (every heartbeat)."""
    status = await client.status()
    return next((n.state for n in status.nodes if n.pid == pid), None)


def test_an_idle_workstation_hands_its_farm_job_back_when_the_user_returns(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], run_log: Path, tmp_path: Path,
    xvfb: Xvfb,  # noqa: F811
) -> None:
    env = {"DISPLAY": xvfb.display, "WAYLAND_DISPLAY": "", "XDG_SESSION_TYPE": "x11", "PREVIEW_FARM_WHEN": "idle",
           "PREVIEW_FARM_IDLE_MINUTES": str(IDLE_MINUTES), "PREVIEW_API_TOKEN": TOKEN}
    workstation = start_node(redis_server.url, concurrency=2, name="workstation", wait=False, env=env)
    api = re.search(r"API (http://\S+?),", wait_ready(workstation.proc))
    assert api is not None
    other = start_node(redis_server.url, concurrency=1, name="other")  # a render box: always lends
    # the render box is busy with a local render first, so the farm job goes to the workstation
    blocker, local = tmp_path / "blocker.json", tmp_path / "local.json"
    blocker.write_text(json.dumps(gap_spec("blocker", 15.0)))
    local.write_text(json.dumps(gap_spec("localjob", 12.0)))

    def submit_local(node: NodeProcess, name: str, spec: Path) -> str:
        env = {"DATA_DIR": str(node.data_dir), "PREVIEW_SETTINGS": str(tmp_path / f"{name}-settings.json")}
        proc = run_cli("submit", str(spec), env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    async def scenario() -> dict[str, Any]:
        client = FarmClient(redis_server.url, QUEUE)
        await asyncio.to_thread(submit_local, other, "other", blocker)
        await wait_for(_ran("blocker", other.pid, run_log), 10)
        # the X server has had no input since it started: after 3 s the workstation lends itself
        await wait_for(lambda: _equals(node_state(client, workstation.pid), NodeState.LENDING), 20)
        seen = farm_api(api.group(1))
        assert seen["state"] == NodeState.LENDING and "away" in seen["stateReason"]
        farm_id = await client.submit(parse_spec(gap_spec("farmjob", 6.0)))
        await wait_for(_ran("farmjob", workstation.pid, run_log), 10)
        local_id = await asyncio.to_thread(submit_local, workstation, "workstation", local)
        await wait_for(_ran("localjob", workstation.pid, run_log), 10)
        assert (await client.queue.getJobState(farm_id)) == "active"  # rendering on the workstation

        xvfb.input()  # the user is back
        back = time.monotonic()
        handed_back = None
        while time.monotonic() - back < 10:
            # back in the queue (delayed: moved back with a delay of 0, waiting once a fetch promotes it); the
            # render box is busy, so it stays there for now
            if await client.queue.getJobState(farm_id) in ("waiting", "prioritized", "delayed"):
                handed_back = time.monotonic() - back
                break
            await asyncio.sleep(0.02)
        job = await client.queue.getJob(farm_id)
        attempts_after_hand_back = job.attemptsMade if job is not None else None
        working = asyncio.get_running_loop().create_task(_keep_working(xvfb))  # the user goes on working
        try:
            own = farm_api(api.group(1))
            await wait_for(lambda: _equals(node_state(client, workstation.pid), NodeState.IDLE_ONLY_ACTIVE), 10)
            await wait_for(lambda: _equals(client.queue.getJobState(farm_id), "completed"), 40)
            result = await client.get(farm_id)
            local_job = await _local_job_done(local_id, {"DATA_DIR": str(workstation.data_dir),
                                                         "PREVIEW_SETTINGS": str(tmp_path / "ws-settings.json")})
        finally:
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
        await client.close()
        return {"handed_back": handed_back, "attempts": attempts_after_hand_back, "own": own, "result": result,
                "local": local_job}

    out = arun(scenario(), timeout=150)
    print(f"workstation: farm job handed back {out['handed_back']}s after the user's input")
    assert out["handed_back"] is not None and out["handed_back"] <= 2.0, workstation.log()[-3000:]
    assert out["attempts"] == 0  # going back used no attempt
    assert out["own"]["state"] == NodeState.IDLE_ONLY_ACTIVE and "active" in out["own"]["stateReason"]
    result = out["result"]
    assert result is not None and result["returnvalue"]["pid"] == other.pid  # the other node finished it
    assert result["attemptsMade"] <= 1
    assert out["local"]["state"] == "succeeded", out["local"]
    farm_runs = [pid for project, pid in runs(run_log) if project == "farmjob"]
    assert farm_runs == [workstation.pid, other.pid]  # never back on the workstation
    assert [p for p, _ in runs(run_log)].count("localjob") == 1  # the local render was not restarted
    assert "handing 1 farm job(s) back to the queue" in workstation.log()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


def _ran(project: str, pid: int, run_log: Path) -> Callable[[], Any]:
    async def check() -> bool:
        return (project, pid) in runs(run_log)

    return check


async def _keep_working(server: Xvfb) -> None:
    while True:
        await asyncio.to_thread(server.input)
        await asyncio.sleep(0.5)


async def _local_job_done(job_id: str, env: dict[str, str]) -> dict[str, Any]:
    async def status() -> dict[str, Any] | None:
        proc = await asyncio.to_thread(run_cli, "status", job_id, "--json", env=env)
        job: dict[str, Any] = json.loads(proc.stdout)
        return job if job.get("state") in ("succeeded", "failed", "cancelled") else None

    done: dict[str, Any] = await wait_for(status, 40, interval=0.5)
    return done
