"""Fixtures for window tests: a real Node (real LocalStore in the test's DATA_DIR, real engine on a qasync loop)
with a fake `render` handler, so tests exercise everything but the video code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.handler import HandlerRegistry, JobContext
from preview_desktop.core.job import Job, JobState
from preview_desktop.core.spec import JobSpec, parse_spec
from preview_desktop.node import Node
from preview_desktop.qt_compat import protect_bools
from preview_desktop.settings import Settings, load_settings
from tests.support.qtloop import run

protect_bools()


def fake_render(job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Behaves by the timeline's name: '*fail*' raises, '*slow*' runs until cancelled, else 10 quick frames."""
    name = Path(str(job.spec["timeline"])).name
    if "fail" in name:
        raise RuntimeError(f"disk on fire while rendering {name}")
    frames = 100_000 if "slow" in name else 10
    for frame in range(1, frames + 1):
        ctx.check()
        time.sleep(0.01)
        ctx.progress(frame, frames)
    return {"ok": True}


def fake_demo(media_dir: Path) -> Path:
    """The window's demo maker without rendering media (the real one is tested in tests/integration/render)."""
    media_dir.mkdir(parents=True, exist_ok=True)
    timeline = media_dir / "demo.otio"
    timeline.write_text("{}")
    return timeline


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings().with_overrides(max_concurrency=2, lease_seconds=3.0, shutdown_grace=2.0)


@pytest.fixture
def node(qloop: asyncio.AbstractEventLoop, settings: Settings) -> Iterator[Node]:
    registry = HandlerRegistry()
    registry.register("render", fake_render)
    node = Node(settings, qloop, registry=registry, with_api=False, with_farm=False)
    node.store.retry_base = 0.05
    yield node
    if not node.engine.stopping:
        run(qloop, node.stop(grace=1, interrupt=True))


@pytest.fixture
def adapter(node: Node, qloop: asyncio.AbstractEventLoop) -> Any:
    from preview_desktop.ui.adapter import EngineAdapter

    adapter = EngineAdapter(node.engine, node.jobs, node.settings, qloop, api=node.api, make_demo=fake_demo,
                            watch=node.watch)
    run(qloop, node.start())
    adapter.flush()
    yield adapter
    adapter.close()


@pytest.fixture
def window(adapter: Any, settings: Settings, qtbot: Any) -> Any:
    from preview_desktop.ui.main_window import MainWindow

    win = MainWindow(adapter, settings)  # not qtbot.addWidget: pytest-qt would close it (and ask) before teardown
    win.show()
    adapter.ready.emit()
    yield win
    win._quitting = True  # closing at teardown must not ask questions
    win.close()


def wait_until(loop: asyncio.AbstractEventLoop, predicate: Callable[[], Any], timeout: float = 15,
               what: str = "condition") -> Any:
    async def poll() -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    return run(loop, poll(), timeout=timeout + 5)


def submit(node: Node, loop: asyncio.AbstractEventLoop, name: str, project: str = "proj", **fields: Any) -> Job:
    spec = parse_spec({"projectId": project, "timeline": f"/media/{name}", **fields})
    return run(loop, node.engine.call(node.store.submit, spec))


def state_of(node: Node, job_id: str) -> JobState:
    return node.store.get(job_id).state
