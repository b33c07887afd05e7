"""A real Node (store, engine, API) on the qasync loop, a fast fake `render` handler and HTTP helpers.

The fake handler stands in for the renderer (built elsewhere) where a real render is beside the point, but it
publishes real files the way the renderer does: a small real H.264 MP4 made with PyAV, preview.json, poster.jpg,
written into a staging folder and renamed into place. It writes no thumbnails: thumbs.jpg and thumbs.vtt, and the
real renderer behind the API, are covered end to end by test_real_render.py.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from preview_desktop.core.handler import HandlerRegistry, JobContext
from preview_desktop.core.job import Job, JobState
from preview_desktop.core.layout import Layout
from preview_desktop.core.spec import JobSpec
from preview_desktop.node import Node
from preview_desktop.settings import Settings
from tests.support.qtloop import run as run_loop

T = TypeVar("T")

TOKEN = "tok-" + secrets.token_urlsafe(24)  # the suite's API token (the log test looks for it)
REDIS_PASSWORD = "redispw-" + secrets.token_hex(12)
REDIS_URL = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"  # never connected to: the farm is not started here


def make_mp4(path: Path, seconds: float = 2.0, size: tuple[int, int] = (160, 90)) -> None:
    """A small, real, browser-playable H.264 MP4 (moov first) of moving noise, so it is not tiny."""
    import av
    import numpy as np

    rng = np.random.default_rng(5)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for _ in range(int(seconds * 25)):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


_MP4_CACHE: dict[str, bytes] = {}


def sample_mp4(tmp: Path) -> bytes:
    if "mp4" not in _MP4_CACHE:
        path = tmp / "sample.mp4"
        make_mp4(path)
        _MP4_CACHE["mp4"] = path.read_bytes()
    return _MP4_CACHE["mp4"]


def fake_render(layout: Layout, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Inline clips drive it: source 'fail' raises; otherwise it 'renders' for the clips' total seconds."""
    clips = job.spec["timeline"]["clips"] if isinstance(job.spec["timeline"], dict) else []
    if any(c.get("source") == "fail" for c in clips):
        raise RuntimeError("fake render failed on purpose")
    seconds = sum(float(c.get("out") or 0) - float(c.get("in") or 0) for c in clips if "source" in c)
    frames = max(1, int(seconds * 25))
    step = seconds / frames
    for frame in range(1, frames + 1):
        ctx.check()
        time.sleep(step)
        ctx.progress(frame, frames)
    staging = layout.staging_dir(job.project_id, job.id)
    (staging / "preview.mp4").write_bytes(_MP4_CACHE["mp4"])
    summary = {"jobId": job.id, "projectId": job.project_id, "status": "succeeded", "frames": frames}
    (staging / "preview.json").write_text(json.dumps(summary), encoding="utf-8")
    (staging / "poster.jpg").write_bytes(b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9")
    layout.publish(staging, job.project_id, job.id)
    return summary


def inline_spec(seconds: float = 0.2, project: str = "proj", source: str = "clip.mp4", **fields: Any) -> dict[str, Any]:
    return {"projectId": project, "timeline": {"fps": 25, "clips": [{"source": source, "in": 0, "out": seconds}]},
            **fields}


@dataclass
class Api:
    node: Node
    loop: asyncio.AbstractEventLoop
    settings: Settings
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {TOKEN}"})
    started: bool = False
    stopped: bool = False

    def run(self, coro: Coroutine[Any, Any, T], *, final: bool = True, timeout: float = 90) -> T:
        """Run `coro` on the loop with the node started first and (when `final`) stopped after, in one go.

        Why in one go: pytest-qt processes Qt events between a test's phases, which would step the engine's
        qasync tasks while no asyncio loop runs (they die with "no running event loop"). A node that lives only
        inside the test's own loop runs never meets that.
        """

        async def whole() -> T:
            if not self.started:
                self.started = True
                await self.node.start()
            try:
                return await coro
            finally:
                if final:
                    await self.shutdown()

        return run_loop(self.loop, whole(), timeout)

    async def shutdown(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.node.stop(grace=1, interrupt=True)
            await asyncio.sleep(0.05)  # cancelled engine and server tasks finish while the loop still runs

    @property
    def url(self) -> str:
        assert self.node.api is not None and self.node.api.url
        return str(self.node.api.url)

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=self.url, **kwargs)

    async def submit(self, session: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
        async with session.post("/v1/jobs", json=spec, headers=self.headers) as response:
            body = await response.json()
            assert response.status == 201, body
            return dict(body)

    async def wait_state(self, job_id: str, *states: JobState, timeout: float = 20) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.node.engine.jobs.get(job_id)
            if job is not None and job.state in states:
                return job
            await asyncio.sleep(0.02)
        engine = self.node.engine
        raise AssertionError(
            f"job {job_id} never reached {states}: {engine.jobs.get(job_id)}; engine: free={engine.pool.free} "
            f"running={list(engine.running)} status={engine.status()} tasks={engine._tasks}"
        )


def build_registry(layout: Layout) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("render", partial(fake_render, layout))
    return registry


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """Parse a text/event-stream into dicts {event, id, data} (comments skipped)."""
    current: dict[str, Any] = {}
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        if not line:
            if "data" in current:
                current["data"] = json.loads(current["data"])
                yield current
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        current[key] = value[1:] if value.startswith(" ") else value


def copy_tree_text(folder: Path) -> str:
    """Every file's text under `folder` (for the secrets check)."""
    if not folder.exists():
        return ""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


__all__ = ["REDIS_URL", "TOKEN", "Api", "build_registry", "copy_tree_text", "inline_spec", "sample_mp4",
           "sse_events"]
