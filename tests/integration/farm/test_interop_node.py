"""Interop: a Node.js producer using BullMQ (5 and 6, with ioredis) feeds the farm and reads results from Node:
with the fake renderer (fast: the protocol), and with the real one (a real render job; Node downloads every file
of the preview over the result's signed links, and the files are judged by decoding them).

The npm packages are installed once into a cache folder outside the repository (PREVIEW_NPM_CACHE or
~/.cache/preview-desktop-tests). Without node/npm or network the test skips with the reason, except in CI.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.layout import ARTIFACT_NAMES
from tests.support.media import make_clip
from tests.support.previews import check_preview
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("node_producer.js")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def bullmq_dir(major: int) -> Path:
    """A folder with bullmq@major and ioredis installed (installed on first use, once even with several test
    processes: under a file lock, into a fresh folder renamed into place). No prompt can block it: stdin is
    closed and npm is told so (CI=true machines included)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed for the Node.js interop test (scripts/setup-env.sh installs them)")
    root = Path(os.environ.get("PREVIEW_NPM_CACHE") or Path.home() / ".cache" / "preview-desktop-tests")
    folder = root / f"bullmq{major}"
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".bullmq{major}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / "bullmq" / "package.json").exists():
            staging = Path(tempfile.mkdtemp(prefix=f"bullmq{major}-", dir=root))
            (staging / "package.json").write_text('{"name": "bullmq-interop", "private": true}\n')
            env = dict(os.environ, npm_config_yes="true", npm_config_update_notifier="false",
                       npm_config_fund="false", npm_config_audit="false", npm_config_progress="false")
            proc = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", f"bullmq@{major}", "ioredis@5"],
                cwd=staging, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env,
            )
            if proc.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                _unavailable(f"npm install bullmq@{major} failed (offline?): {proc.stderr.strip()[-300:]}")
            shutil.rmtree(folder, ignore_errors=True)  # a half install left by an older version of this test
            staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
            staging.rename(folder)
    return folder


def run_producer(folder: Path, redis_url: str, timeout: float = 90, **extra: str) -> dict[str, Any]:
    env = dict(os.environ, BULLMQ_DIR=str(folder), REDIS_URL=redis_url, QUEUE="previews", **extra)
    proc = subprocess.run(["node", str(SCRIPT)], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("major", [5, 6])
def test_node_bullmq_producer(
    major: int, redis_server: RedisServer, start_node: Callable[..., NodeProcess]
) -> None:
    folder = bullmq_dir(major)
    start_node(redis_server.url, concurrency=1)
    out = run_producer(folder, redis_server.url)
    print(f"interop: Node {out['node']} bullmq {out['bullmq']} ioredis {out['ioredis']} <-> Python bullmq 3.4.4")
    assert out["bullmq"].startswith(f"{major}.")
    result = out["result"]
    assert result["status"] == "succeeded" and result["projectId"] == "from_node"
    assert result["artifacts"]["nodeId"]
    assert out["goodProgress"] == {"frame": 25, "frames": 25, "percent": 100.0}
    assert out["progress"] and all(set(p) == {"frame", "frames", "percent"} for p in out["progress"])
    assert "projectId" in out["failure"]
    assert out["badState"] == "failed" and out["badAttempts"] == 1  # invalid input: not retried


def test_node_producer_gets_a_real_preview(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    folder = bullmq_dir(6)
    media = tmp_path / "media"
    media.mkdir()
    clip = make_clip(media / "shot.mp4", seconds=2.0, tone=330.0)
    node = start_node(redis_server.url, concurrency=1, env={"PREVIEW_API_HOST": "0.0.0.0"}, real_render=True)
    spec = {"projectId": "node_real", "timeline": {"fps": 25, "clips": [{"source": str(clip)}]},
            "output": {"width": 160, "height": 90}}
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    out = run_producer(folder, redis_server.url, timeout=150, GOOD_SPEC=json.dumps(spec), FETCH_DIR=str(fetched),
                       WAIT_MS="120000")
    result = out["result"]
    assert result["status"] == "succeeded" and result["projectId"] == "node_real", node.log()[-2000:]
    assert out["fetched"] == dict.fromkeys(ARTIFACT_NAMES, 200)
    files = {name: (fetched / name).read_bytes() for name in ARTIFACT_NAMES}
    summary = check_preview(files, frames=50, size=(160, 90))
    assert summary["jobId"] == result["jobId"] == result["artifacts"]["jobId"]
    assert summary["video"]["sha256"] == result["video"]["sha256"]
    assert out["goodProgress"] == {"frame": 50, "frames": 50, "percent": 100.0}
    assert out["badState"] == "failed"
