"""The render-thread side of a chunked farm preview (docs/farm.md, "One preview, many nodes"): the handlers that
farm/flows.py runs on this node's render slots through `Engine.run_on_slot`.

- `PreviewHandler` (kind `render-preview`): a farm `render` job on a node with PREVIEW_FARM_STORAGE. What it does
  depends on the job's phase, which the loop side learns from Redis (cancel key, children) and hands over through
  `PHASES`: plan (split into chunks, or render normally when the preview is too short), wait (children pending),
  join (the normal render, which finds every chunk's segments in the shared store and only joins; published into
  PREVIEW_FARM_STORAGE/previews/{projectId}/{jobId}), or fail (a chunk failed for good).
- `ChunkHandler` (kind `render-chunk`): one chunk job, `render.chunks.render_chunk_for`.

Why a rendezvous instead of deciding on the loop first: the farm starts a job on a free slot in the same loop step
it arrives (farm/fetching.py), so the phase, which needs a Redis round trip, is handed to the already running
handler; it waits a few milliseconds for it, still honouring cancel.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..core.handler import HandlerRegistry, JobContext
from ..core.layout import FarmLayout
from ..errors import InvalidInput, RenderError, disk_full_from, is_disk_full

if TYPE_CHECKING:
    from ..core.job import Job
    from ..core.spec import JobSpec
    from ..settings import Settings

PREVIEW_KIND = "render-preview"
CHUNK_KIND = "render-chunk"


@dataclass(frozen=True)
class Plan:
    """First pickup: cut into at most `count` chunks of at least `min_seconds`; fewer than 2 → render here."""

    count: int
    min_seconds: float


@dataclass(frozen=True)
class Wait:
    """Children are still pending: the job moved to waiting-children; end at once."""


@dataclass(frozen=True)
class Fail:
    reason: str
    retryable: bool = False  # True: the phase could not be read (Redis trouble), not a failed chunk


@dataclass(frozen=True)
class Join:
    """Every chunk is done: render (join) and publish into the farm storage under the BullMQ job id."""

    bull_id: str
    farm: dict[str, Any] = field(default_factory=dict)  # preview.json's "farm" entry


Phase = Plan | Wait | Fail | Join


class Phases:
    """Local job id → its phase, set on the loop thread, taken once on the render thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Phase]] = {}

    def _future(self, job_id: str) -> Future[Phase]:
        with self._lock:
            return self._futures.setdefault(job_id, Future())

    def offer(self, job_id: str, phase: Phase) -> None:
        future = self._future(job_id)
        if not future.done():
            future.set_result(phase)

    def take(self, job_id: str, ctx: JobContext) -> Phase:
        future = self._future(job_id)
        try:
            while True:
                ctx.check()  # a cancel reaches a handler still waiting for its phase
                try:
                    return future.result(timeout=0.05)
                except FutureTimeout:
                    continue
        finally:
            self.discard(job_id)

    def discard(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)


PHASES = Phases()


class FlowRenderer(Protocol):
    """The renderer's side (render/chunks.py `ChunkJobs`, given by the node's wiring: farm/ may not import render/)."""

    def plan(self, spec: JobSpec, count: int, min_seconds: float) -> list[dict[str, Any]]: ...
    def chunk(self, spec: JobSpec, chunk: Any, ctx: JobContext) -> dict[str, Any]: ...
    def join(self, spec: JobSpec, folder: Path, ctx: JobContext, *, job_id: str, created_at: float | None,
             farm: dict[str, Any]) -> dict[str, Any]: ...
    def plain(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]: ...


class PreviewHandler:
    """Kind `render-preview`: the parent of a chunked preview (or a plain render when it is too short)."""

    def __init__(self, settings: Settings, renderer: FlowRenderer, phases: Phases = PHASES) -> None:
        self.settings = settings
        self.renderer = renderer
        self.phases = phases

    def __call__(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
        phase = self.phases.take(job.id, ctx)
        if isinstance(phase, Wait):
            return {"flow": "wait"}
        if isinstance(phase, Fail):
            return {"flow": "failed", "reason": phase.reason, "retryable": phase.retryable}
        if isinstance(phase, Join):
            return self._join(job, spec, ctx, phase)
        chunks = self.renderer.plan(spec, phase.count, phase.min_seconds)
        if len(chunks) >= 2:
            return {"flow": "split", "chunks": chunks, "frames": int(chunks[-1]["frames"][1])}
        return self.renderer.plain(job, spec, ctx)

    def _join(self, job: Job, spec: JobSpec, ctx: JobContext, phase: Join) -> dict[str, Any]:
        if self.settings.farm_storage is None:
            raise RenderError("joining a chunked preview needs PREVIEW_FARM_STORAGE")
        layout = FarmLayout(self.settings.farm_storage)
        layout.remove_staging_for(phase.bull_id)
        staging = layout.staging_dir(spec.projectId, phase.bull_id)
        # the preview's progress stays the chunks' sum (written by their nodes): the join reports none
        quiet = JobContext(job=ctx.job, cancel_event=ctx.cancel_event, deadline=ctx.deadline)
        try:
            document = self.renderer.join(spec, staging, quiet, job_id=phase.bull_id, created_at=job.created_at,
                                          farm=phase.farm)
            final = layout.publish(staging, spec.projectId, phase.bull_id)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)  # no half preview in the farm storage
            if is_disk_full(exc):
                raise disk_full_from(exc, staging, name="PREVIEW_FARM_STORAGE") from exc
            raise
        return {**document, "flow": "joined", "path": str(final)}


class ChunkHandler:
    """Kind `render-chunk`: render one chunk's segments and audio into the shared store (no preview.mp4)."""

    def __init__(self, renderer: FlowRenderer) -> None:
        self.renderer = renderer

    def __call__(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
        data = job.spec
        if not isinstance(data, dict) or "chunk" not in data:
            raise InvalidInput("a render-chunk job needs {spec, chunk} data")
        return self.renderer.chunk(spec, data["chunk"], ctx)


def register_flow_handlers(registry: HandlerRegistry, settings: Settings, renderer: FlowRenderer) -> None:
    """The two kinds a farm node runs for chunked previews (wired in node.default_registry)."""
    registry.register(PREVIEW_KIND, PreviewHandler(settings, renderer))
    registry.register(CHUNK_KIND, ChunkHandler(renderer))
