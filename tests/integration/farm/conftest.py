"""Farm test fixtures: real redis-server processes and real worker processes (`preview-desktop --worker`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.cli import wait_ready
from tests.support.redis_server import RedisServer, redis_server, redis_server_with_password  # noqa: F401

from .handlers import RUN_LOG_ENV

REPO = Path(__file__).resolve().parents[3]
T = TypeVar("T")


class NodeProcess:
    def __init__(self, proc: subprocess.Popen[str], log_path: Path, data_dir: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.data_dir = data_dir

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def run_log(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


def runs(run_log: Path) -> list[tuple[str, int]]:
    if not run_log.exists():
        return []
    return [(p, int(pid)) for p, pid in (line.split() for line in run_log.read_text().splitlines() if line)]


@pytest.fixture
def start_node(tmp_path: Path, run_log: Path) -> Iterator[Callable[..., NodeProcess]]:
    nodes: list[NodeProcess] = []

    def start(url: str, concurrency: int = 2, name: str | None = None, wait: bool = True,
              env: dict[str, str] | None = None) -> NodeProcess:
        name = name or f"node{len(nodes)}"
        data_dir = tmp_path / name
        full_env = dict(os.environ)
        full_env.update({
            "DATA_DIR": str(data_dir), "PREVIEW_SETTINGS": str(tmp_path / f"{name}-settings.json"),
            "PREVIEW_MEDIA_ROOTS": str(tmp_path), "PREVIEW_API_PORT": "0", "PREVIEW_MAX_CONCURRENCY": str(concurrency),
            "PREVIEW_EXTRA_HANDLERS": "tests.integration.farm.handlers:register", RUN_LOG_ENV: str(run_log),
            "PYTHONPATH": str(REPO), "PREVIEW_SHUTDOWN_GRACE": "2",
        })
        full_env.update(env or {})
        log_path = tmp_path / f"{name}.stderr"
        proc = subprocess.Popen(
            [sys.executable, "-m", "preview_desktop", "--worker", "--redis", url],
            stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True, env=full_env, cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
        node = NodeProcess(proc, log_path, data_dir)
        nodes.append(node)
        if wait:
            wait_ready(proc)
        return node

    yield start
    for node in nodes:
        node.stop()


def arun(coro: Awaitable[T], timeout: float = 120) -> T:
    """Run a coroutine on a fresh asyncio loop (the test's side: a producer, like a backend would be)."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
