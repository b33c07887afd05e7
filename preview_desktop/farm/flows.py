"""One preview, many nodes (docs/farm.md): a farm `render` job long enough to pay off becomes a BullMQ flow.

A node that picks up a plain `render` job (any producer: a Node.js `queue.add` works unchanged) runs it as kind
`render-preview` on a slot (farm/flow_jobs.py). On its first pickup the handler plans the preview and, when it
holds at least two chunks of PREVIEW_FARM_CHUNK_SECONDS, returns the chunks instead of rendering; here the job then
gets a progress marker (`"chunks": N`), one `render-chunk` child job per chunk (parent option,
continueParentOnFailure) and moves to waiting-children, which frees the slot. Chunk jobs run on any node, each
rendering its segments into the shared store; their nodes keep the parent's progress current (sum of the chunks'
frames / total). When the last child completes BullMQ moves the parent back to wait; the node that picks it up
sees the marker, finds no pending child, and joins: the normal render, all cache hits, published into
PREVIEW_FARM_STORAGE/previews/{projectId}/{jobId}. A child that fails for good moves the parent to wait at once;
its processor fails it naming the chunk and its reason and cancels the other chunks. A cancel of the parent
reaches its chunks (FarmClient.cancel). Without PREVIEW_FARM_STORAGE nothing here runs: farm renders are as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..core.handler import SpecIntake
from ..core.intake import prepare_wire_spec
from ..engine.boundary import Outcome
from ..settings import Settings
from .bullmq_compat import (
    BullJob,
    child_key_id,
    children_values,
    chunk_progress,
    failed_children,
    flow_progress,
    move_back,
    parent_option,
    wait_for_children,
)
from .connection import FarmConfig, Link, describe_error
from .flow_jobs import CHUNK_KIND, PHASES, PREVIEW_KIND, Fail, Join, Phase, Phases, Plan, Wait
from .registry import FarmKeys

if TYPE_CHECKING:
    from ..core.job import Job
    from ..core.spec import JobSpec
    from .client import FarmClient
    from .runner import FarmRun

log = logging.getLogger("preview_desktop.farm")
FLOW_TTL_S = 24 * 3600
RENDER_NAME = "render"


class FlowFailed(Exception):
    """A parent that could not learn its phase (Redis trouble): retried with backoff like any farm failure."""


class FarmFlows:
    def __init__(self, settings: Settings, config: FarmConfig, keys: FarmKeys, link: Link, node_id: str,
                 client: Callable[[], FarmClient], farm_slots: Callable[[], int], phases: Phases = PHASES) -> None:
        self._settings = settings
        self._config = config
        self._keys = keys
        self._link = link
        self._node_id = node_id
        self._client = client
        self._farm_slots = farm_slots  # render slots of the live nodes, from the last heartbeat
        self._phases = phases

    @property
    def enabled(self) -> bool:
        return self._settings.farm_storage is not None and self._settings.farm_chunk_seconds > 0

    def route(self, job: BullJob) -> tuple[str, SpecIntake | None] | None:
        """The local kind (and spec intake, None: the runner's) for a flow job; None for any other job."""
        if job.name == CHUNK_KIND:
            return CHUNK_KIND, self._chunk_intake
        if job.name == RENDER_NAME and self.enabled:
            return PREVIEW_KIND, None
        return None

    def started(self, job: BullJob, token: str, run: FarmRun) -> None:
        """Loop thread, right after the job started on a slot."""
        if job.name == CHUNK_KIND:
            self._spawn(self._chunk_progress(job, run))
        else:
            self._spawn(self._resolve(job, token, run))

    def _chunk_intake(self, job: Job) -> JobSpec:
        """On the render thread: the chunk's copy of the parent's data, through this node's whole intake."""
        data = job.spec if isinstance(job.spec, dict) else {}
        spec = prepare_wire_spec(data.get("spec"), self._settings.effective_media_roots,
                                 path_map=self._settings.path_map)
        job.project_id = spec.projectId
        return spec

    # ------------------------------------------------------------------ the parent: which phase
    async def _resolve(self, job: BullJob, token: str, run: FarmRun) -> None:
        marker = flow_progress(job)
        if not (isinstance(marker, dict) and marker.get("chunks")):
            count = max(2, self._farm_slots())
            self._phases.offer(run.local_id, Plan(count, self._settings.farm_chunk_seconds))
            return
        phase: Phase
        try:
            phase = await self._later_phase(job, token, run, marker)
        except Exception as exc:
            log.warning("farm: preview %s: cannot read its chunks (%s)", job.id, describe_error(exc))
            phase = Fail(f"farm: cannot read the chunks of preview {job.id}: {describe_error(exc)}", retryable=True)
        self._phases.offer(run.local_id, phase)

    async def _later_phase(self, job: BullJob, token: str, run: FarmRun, marker: dict[str, Any]) -> Phase:
        client = self._client()
        reason = await self._cancel_reason(client, str(job.id))
        if reason is not None:  # cancelled while it waited for its chunks
            run.stop(reason)
            await client.cancel_children(str(job.id), reason)
            return Fail(f"cancelled: {reason}")  # if the handler takes it before it sees the cancel
        failed = await failed_children(client.redis, self._keys.prefix, self._keys.queue, str(job.id))
        if failed:
            reason = await self._describe_failure(client, int(marker.get("chunks") or 0), failed)
            await client.cancel_children(str(job.id), f"preview {job.id} failed: {reason}")
            return Fail(reason)
        if await wait_for_children(job, token):
            return Wait()
        values = await children_values(job)
        return Join(str(job.id), self._farm_entry(int(marker.get("chunks") or 0), values))

    async def _cancel_reason(self, client: FarmClient, job_id: str) -> str | None:
        raw = await client.redis.get(self._keys.cancel(job_id))
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return text or "cancelled"

    async def _describe_failure(self, client: FarmClient, chunks: int, failed: dict[str, str]) -> str:
        key, reason = sorted(failed.items())[0]
        child_id = child_key_id(key)
        index = None
        child = await client.queue.getJob(child_id)
        data = getattr(child, "data", None)
        if isinstance(data, dict) and isinstance(data.get("chunk"), dict):
            index = data["chunk"].get("index")
        which = f"chunk {int(index) + 1} of {chunks}" if isinstance(index, int) else "a chunk"
        return f"{which} (job {child_id}) failed: {reason}"

    def _farm_entry(self, chunks: int, values: dict[str, Any]) -> dict[str, Any]:
        """preview.json's "farm": how many chunks, which nodes rendered them, who joined."""
        results = sorted((v for v in values.values() if isinstance(v, dict)), key=lambda v: v.get("index", 0))
        nodes = sorted({str((r.get("artifacts") or {}).get("nodeId")) for r in results
                        if isinstance(r.get("artifacts"), dict)})
        return {
            "chunks": chunks, "nodes": nodes, "joinedBy": self._node_id,
            "chunkResults": [{"index": r.get("index"), "node": (r.get("artifacts") or {}).get("nodeId"),
                              "frames": r.get("frames"), "segmentsRendered": r.get("segmentsRendered"),
                              "segmentsReused": r.get("segmentsReused"), "mismatched": r.get("mismatched")}
                             for r in results],
        }

    # ------------------------------------------------------------------ the parent: after its slot run
    async def settle(self, job: BullJob, token: str, run: FarmRun, outcome: Outcome) -> Outcome:
        """Map a flow outcome: split → children + waiting-children, wait → waiting-children, failed → no retry,
        joined → the preview (its artifacts in the farm storage). Raises bullmq's control errors."""
        from bullmq.custom_errors import UnrecoverableError, WaitingChildrenError

        self._phases.discard(run.local_id)
        if job.name == CHUNK_KIND:
            if self._link.connected:  # its last frames reach the preview before the chunk completes
                await self._chunk_report(job, run)
            return outcome
        if outcome.kind != "success":
            return outcome
        result = dict(outcome.result or {})
        flow = result.pop("flow", None)
        if flow == "wait":
            raise WaitingChildrenError()
        if flow == "failed":
            if result.get("retryable"):
                raise FlowFailed(str(result.get("reason")))
            raise UnrecoverableError(str(result.get("reason")))
        if flow == "split":
            await self._split(job, token, result)
        if flow == "joined":
            run.artifact_path = str(result.pop("path", "")) or None
            log.info("farm: preview %s joined from %s chunk(s)", job.id, (result.get("farm") or {}).get("chunks"))
        return replace(outcome, result=result)

    async def _split(self, job: BullJob, token: str, result: dict[str, Any]) -> None:
        from bullmq.custom_errors import DelayedError, WaitingChildrenError

        client = self._client()
        chunks: list[dict[str, Any]] = result["chunks"]
        total = int(result["frames"])
        parent = str(job.id)
        # the marker first: a node that dies from here on leaves a parent that waits for, or joins, its chunks
        await job.updateProgress({"frame": 0, "frames": total, "percent": 0.0, "chunks": len(chunks)})
        data = job.data if isinstance(job.data, dict) else {}
        opts: dict[str, Any] = {
            "attempts": int(job.opts.get("attempts") or data.get("attempts") or 3),
            "backoff": job.opts.get("backoff") or {"type": "exponential", "delay": self._config.default_backoff_ms},
            "removeOnComplete": {"count": self._config.keep_completed},
            "removeOnFail": {"count": self._config.keep_failed},
            # the priority now, not the producer's option: a waiting record's priority may have changed since
            **({"priority": priority} if (priority := job.priority or job.opts.get("priority")) else {}),
            **parent_option(self._keys.prefix, self._keys.queue, parent),
        }
        for chunk in chunks:
            await client.queue.add(CHUNK_KIND, {"projectId": data.get("projectId"), "parentId": parent,
                                                "frames": total, "chunks": len(chunks), "chunk": chunk,
                                                "spec": data}, opts)
        log.info("farm: preview %s split into %d chunks (%d frames)", parent, len(chunks), total)
        if await wait_for_children(job, token):
            reason = await self._cancel_reason(client, parent)
            if reason is not None:  # cancelled while it split: its chunks stop too
                await client.cancel_children(parent, reason)
            raise WaitingChildrenError()
        await move_back(job, token)  # every chunk finished already: pick it up again to join
        raise DelayedError()

    # ------------------------------------------------------------------ chunks: the preview's progress
    async def _chunk_progress(self, job: BullJob, run: FarmRun) -> None:
        """Keep the parent's progress = the sum of its chunks' frames / total while this chunk runs (the last
        report is `settle`'s, before the chunk completes)."""
        last = -1
        while not run.future.done():
            if run.frame != last and self._link.connected:
                last = run.frame
                await self._chunk_report(job, run)
            await asyncio.sleep(self._config.progress_interval_s)

    async def _chunk_report(self, job: BullJob, run: FarmRun) -> None:
        data = job.data if isinstance(job.data, dict) else {}
        try:
            parent, total, chunks = str(data["parentId"]), int(data["frames"]), int(data["chunks"])
            index = int(data["chunk"]["index"])
            await self._report(parent, index, run.frame, total, chunks)
        except (KeyError, TypeError, ValueError):
            return
        except Exception as exc:  # progress is best effort; the link reports outages
            log.debug("farm: progress of chunk %s: %s", job.id, describe_error(exc))

    async def _report(self, parent: str, index: int, frame: int, total: int, chunks: int) -> None:
        client = self._client()
        await chunk_progress(client.redis, self._keys.prefix, self._keys.queue, f"{self._keys.base}:flow:{parent}",
                             parent, index, frame, total, chunks, FLOW_TTL_S)

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
