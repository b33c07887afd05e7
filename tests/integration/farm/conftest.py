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

from preview_desktop.core.handler import HandlerRegistry
from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from tests.integration.api.harness import TOKEN, Api
from tests.support.cli import wait_ready
from tests.support.qtloop import run, settle
from tests.support.redis_server import RedisServer, redis_server, redis_server_with_password  # noqa: F401

from .handlers import RUN_LOG_ENV, register

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


FAKE_HANDLERS = "tests.integration.farm.handlers:register"
LEGACY_REAL_RENDER = "PREVIEW_EXTRA_HANDLERS"  # the removed product hook's variable, still understood here


def node_command(url: str, real_render: bool, handlers: str = FAKE_HANDLERS) -> list[str]:
    """`preview-desktop --worker`: as shipped, or through the test launcher that adds fake job kinds."""
    if real_render:
        return [sys.executable, "-m", "preview_desktop", "--worker", "--redis", url]
    return [sys.executable, "-m", "tests.support.fake_node", handlers, "--worker", "--redis", url]


@pytest.fixture
def start_node(tmp_path: Path, run_log: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Starts `preview-desktop --worker` processes on the farm. By default they run the fake job kinds of
    handlers.py (through tests/support/fake_node.py; `handlers="module:function"` names other ones);
    `real_render=True` runs the product exactly as shipped."""
    nodes: list[NodeProcess] = []

    def start(url: str, concurrency: int = 2, name: str | None = None, wait: bool = True,
              env: dict[str, str] | None = None, real_render: bool = False,
              handlers: str = FAKE_HANDLERS) -> NodeProcess:
        name = name or f"node{len(nodes)}"
        data_dir = tmp_path / name
        extra = dict(env or {})
        if LEGACY_REAL_RENDER in extra:  # the old spelling: "" = the real renderer, "module:function" = those
            value = extra.pop(LEGACY_REAL_RENDER).strip()
            if value:
                handlers = value
            else:
                real_render = True
        full_env = dict(os.environ)
        full_env.pop(LEGACY_REAL_RENDER, None)
        full_env.update({
            "DATA_DIR": str(data_dir), "PREVIEW_SETTINGS": str(tmp_path / f"{name}-settings.json"),
            "PREVIEW_MEDIA_ROOTS": str(tmp_path), "PREVIEW_API_PORT": "0", "PREVIEW_MAX_CONCURRENCY": str(concurrency),
            RUN_LOG_ENV: str(run_log), "PYTHONPATH": str(REPO), "PREVIEW_SHUTDOWN_GRACE": "2",
        })
        full_env.update(extra)
        log_path = tmp_path / f"{name}.stderr"
        proc = subprocess.Popen(
            node_command(url, real_render, handlers),
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


@pytest.fixture
def make_api(qloop: asyncio.AbstractEventLoop, run_log: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    """An in-process Node with the real API; on the farm when given a Redis URL. One render slot."""
    monkeypatch.setenv(RUN_LOG_ENV, str(run_log))  # runs on the in-process node are logged too

    def factory(redis_url: str | None) -> Api:
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        env["PREVIEW_API_TOKEN"] = TOKEN
        settings = load_settings(env=env).with_overrides(max_concurrency=1, shutdown_grace=2.0)
        registry = HandlerRegistry()
        register(registry)
        node = Node(settings, qloop, registry=registry)
        assert (node.farm is not None) == (redis_url is not None)
        api = Api(node, qloop, settings)
        apis.append(api)
        return api

    apis: list[Api] = []
    yield factory
    for api in apis:
        run(qloop, api.shutdown())
    settle(qloop)
