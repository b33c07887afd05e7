"""Interop: a Node.js producer using BullMQ (5 and 6, with ioredis) feeds the farm and reads results from Node.

The npm packages are installed once into a cache folder outside the repository (PREVIEW_NPM_CACHE or
~/.cache/preview-desktop-tests). Without node/npm or network the test skips with the reason, except in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer

from .conftest import NodeProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("node_producer.js")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def bullmq_dir(major: int) -> Path:
    """A folder with bullmq@major and ioredis installed (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed for the Node.js interop test")
    root = Path(os.environ.get("PREVIEW_NPM_CACHE") or Path.home() / ".cache" / "preview-desktop-tests")
    folder = root / f"bullmq{major}"
    if not (folder / "node_modules" / "bullmq" / "package.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"name": "bullmq-interop", "private": true}\n')
        proc = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"bullmq@{major}", "ioredis@5"],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0:
            _unavailable(f"npm install bullmq@{major} failed (offline?): {proc.stderr.strip()[-300:]}")
    return folder


@pytest.mark.parametrize("major", [5, 6])
def test_node_bullmq_producer(
    major: int, redis_server: RedisServer, start_node: Callable[..., NodeProcess]
) -> None:
    folder = bullmq_dir(major)
    start_node(redis_server.url, concurrency=1)
    env = dict(os.environ, BULLMQ_DIR=str(folder), REDIS_URL=redis_server.url, QUEUE="previews")
    proc = subprocess.run(["node", str(SCRIPT)], capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"interop: Node {out['node']} bullmq {out['bullmq']} ioredis {out['ioredis']} <-> Python bullmq 3.4.4")
    assert out["bullmq"].startswith(f"{major}.")
    result = out["result"]
    assert result["status"] == "succeeded" and result["projectId"] == "from_node"
    assert result["artifacts"]["nodeId"]
    assert out["goodProgress"] == {"frame": 25, "frames": 25, "percent": 100.0}
    assert out["progress"] and all(set(p) == {"frame", "frames", "percent"} for p in out["progress"])
    assert "projectId" in out["failure"]
    assert out["badState"] == "failed" and out["badAttempts"] == 1  # invalid input: not retried
