"""Running a farm job on one of this node's render slots, and its outcome in BullMQ's terms.

`start` runs the render on a pool thread at once (the caller checked for a free slot in the same loop step) and
hands the job to bullmq, which holds its lock and calls `process`; that waits for the render and maps its
outcome: success → the return value (preview.json + artifacts), invalid input → UnrecoverableError (no retry),
cancelled → UnrecoverableError `cancelled: <reason>`, or back to the queue (DelayedError) when this node stops,
any other failure → retried with backoff. Renders never run on the event loop: a blocked loop loses the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from ..core.events import JobOutcome
from ..core.farm_status import FarmJobInfo
from ..core.handler import JobContext, ProgressFn, SpecIntake
from ..core.intake import prepare_wire_spec
from ..core.job import Job, JobState, new_job_id
from ..core.layout import ARTIFACT_NAMES, Layout
from ..core.spec import JobSpec
from ..engine.boundary import Outcome
from ..engine.slots import SlotRun
from ..errors import MediaNotFound, MissingOnNode, TimelineNotFound
from ..settings import Settings
from .bullmq_compat import BullJob, FarmWorker, add_job_log, default_retry, move_back
from .client import FarmClient
from .connection import FarmConfig, Link, describe_error, is_connection_error
from .supersede import supersede, supersede_group_of

log = logging.getLogger("preview_desktop.farm")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class FarmJobFailed(Exception):
    """A retryable failure of a farm job: BullMQ retries it with backoff while attempts remain."""


@dataclass
class FarmRun:
    job: BullJob
    token: str
    ctx: JobContext
    future: asyncio.Future[Outcome]
    local_id: str
    started: float = field(default_factory=time.time)
    frame: int = 0
    frames: int = 0
    progress_dirty: bool = False
    announced: bool = False  # recorded as the job's processedBy (with its first progress report)
    # one progress write at a time: the final report must not be overtaken by an older one still in flight
    progress_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cancel_reason: str | None = None
    artifact_path: str | None = None  # set when the result is published elsewhere (a joined chunked preview)

    @property
    def percent(self) -> float:
        return round(100.0 * self.frame / self.frames, 1) if self.frames > 0 else 0.0

    def progress(self) -> dict[str, float]:
        return {"frame": self.frame, "frames": self.frames, "percent": self.percent}

    def stop(self, reason: str) -> bool:
        """Stop the render at its next frame and fail the job with `cancelled: <reason>`; False if already asked."""
        if self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.ctx.cancel_event.set()
        return True

    def info(self) -> FarmJobInfo:
        data = self.job.data if isinstance(self.job.data, dict) else {}
        project = data.get("projectId")
        return FarmJobInfo(
            jobId=str(self.job.id), name=self.job.name, projectId=project if isinstance(project, str) else None,
            startedAt=self.started, frame=self.frame, frames=self.frames, percent=self.percent,
            attempt=int(self.job.attemptsMade) + 1,
        )


class NodeApi(Protocol):
    """What the farm needs of this node's HTTP API: where it listens, and signed links to a render's files."""

    @property
    def url(self) -> str | None: ...
    def signed_artifact_url(self, job_id: str, name: str) -> str | None: ...


class Flows(Protocol):
    """Chunked previews (farm/flows.py): which jobs are theirs, and their outcome in BullMQ's terms."""

    def route(self, job: BullJob) -> tuple[str, SpecIntake | None] | None: ...
    def started(self, job: BullJob, token: str, run: FarmRun) -> None: ...
    async def settle(self, job: BullJob, token: str, run: FarmRun, outcome: Outcome) -> Outcome: ...


class Outcomes(Protocol):
    """Who learns how this node's farm jobs end (farm/standing.py: resting, keeping failing nodes off a job)."""

    async def failed(self, job_id: str, reason: str) -> None: ...
    def succeeded(self) -> None: ...


class SlotRunner(Protocol):
    """What running a farm job needs of the engine: a render slot, and this node's metrics."""

    def run_on_slot(self, job: Job, intake: SpecIntake, on_progress: ProgressFn) -> SlotRun: ...
    def record_outcome(self, outcome: JobOutcome) -> None: ...


def _attempts_allowed(job: BullJob) -> int:
    return int(job.opts.get("attempts") or 1)


class FarmRunner:
    def __init__(self, settings: Settings, engine: SlotRunner, layout: Layout, worker: FarmWorker, link: Link,
                 config: FarmConfig, node_id: str, host: str, client: Callable[[], FarmClient],
                 changed: Callable[[], None]) -> None:
        self._settings = settings
        self._engine = engine
        self._layout = layout
        self._worker = worker
        self._link = link
        self._config = config
        self._node_id = node_id
        self._host = host
        self._client = client  # the member's FarmClient, made on first use
        self._changed = changed  # the running jobs changed
        self.running: dict[str, FarmRun] = {}
        self.completed = 0  # attempts that ended on this node (any outcome): for tests and the bench
        self.api: NodeApi | None = None
        self.flows: Flows | None = None  # attached by the member (chunked previews)
        self.outcomes: Outcomes | None = None  # attached by the member (the node's standing)

    def start(self, job: BullJob, token: str) -> None:
        """Start the render on a pool thread now (same loop step as the slot check), then let bullmq track it."""
        raw = job.data
        data = raw if isinstance(raw, dict) else {}
        project = data.get("projectId")
        route = self.flows.route(job) if self.flows is not None else None
        kind, intake = route if route is not None else (job.name, None)
        local = Job(
            id=new_job_id(), project_id=project if isinstance(project, str) else "farm", spec=dict(data),
            kind=kind, state=JobState.RUNNING, attempts_made=int(job.attemptsMade) + 1,
            attempts_allowed=_attempts_allowed(job), origin="farm", worker=self._node_id, started_at=time.time(),
            farm_id=str(job.id),  # the renderer marks the published preview with it (core/farm_mark.py)
        )
        slot = self._engine.run_on_slot(local, intake or self._intake, partial(self._on_progress, str(job.id)))
        run = self.running[str(job.id)] = FarmRun(job, token, slot.ctx, slot.outcome, local.id)
        if route is not None and self.flows is not None:
            self.flows.started(job, token, run)
        log.info("farm: job %s (%s) started here, attempt %d", job.id, local.project_id, local.attempts_made,
                 extra={"job_id": local.id})
        self._spawn(self._worker.process(job, token))
        if supersede_group_of(raw) is not None:
            self._spawn(self._settle_supersede(job))
        self._changed()

    def interrupt_all(self) -> None:
        """This node stops: renders stop at their next frame; their jobs go back to the queue (no attempt used)."""
        for run in self.running.values():
            run.ctx.cancel_event.set()

    def hand_back_all(self, why: str) -> int:
        """This node stops lending itself (its user came back): as `interrupt_all`, the farm renders stop at their
        next frame and their jobs go back to the queue at once, no attempt used; local renders are not touched.
        Returns how many were asked."""
        runs = [r for r in self.running.values() if r.cancel_reason is None and not r.ctx.cancel_event.is_set()]
        for run in runs:
            run.ctx.cancel_event.set()
        if runs:
            log.info("farm: handing %d farm job(s) back to the queue (%s): %s", len(runs), why,
                     ", ".join(str(r.job.id) for r in runs))
        return len(runs)

    async def _settle_supersede(self, job: BullJob) -> None:
        """At pickup: register the job for supersede (it may come from a producer other than FarmClient),
        cancel older ones of its project + timeline, and stop this one if a newer live one supersedes it."""
        try:
            result = await supersede(self._client(), str(job.id), job.timestamp, job.data)
        except Exception as exc:  # a lost link is reported once by the link; the render goes on regardless
            if is_connection_error(exc):
                self._link.down(exc)
            else:
                log.warning("farm: job %s: supersede check failed (%s)", job.id, describe_error(exc))
            return
        if result.cancelled:
            log.info("farm: job %s supersedes %s", job.id, ", ".join(result.cancelled))
        run = self.running.get(str(job.id))
        if result.superseded_by and run is not None and run.stop(f"superseded by job {result.superseded_by}"):
            log.info("farm: job %s is superseded by job %s; stopping it", job.id, result.superseded_by)

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    def _intake(self, job: Job) -> JobSpec:
        """On the render thread: a farm job's spec comes from any producer, so it gets the whole intake here
        (bad input fails the job for good, at the job boundary). A timeline missing here is this node's problem,
        not the job's: another node may have it (retried elsewhere)."""
        try:
            spec = prepare_wire_spec(job.spec, self._settings.effective_media_roots,
                                     path_map=self._settings.path_map)
        except TimelineNotFound as exc:
            raise MissingOnNode(f"timeline not found on node {self._node_id}: {exc.path}") from None
        job.spec, job.project_id, job.priority = spec.to_wire(), spec.projectId, spec.priority
        return spec

    def _on_progress(self, job_id: str, frame: int, frames: int) -> None:
        """Loop thread (the engine delivers it there and feeds this node's metrics itself)."""
        run = self.running.get(job_id)
        if run is not None:
            run.frame, run.frames, run.progress_dirty = frame, frames, True

    # ------------------------------------------------------------------ the processor (bullmq calls it)
    async def process(self, job: BullJob, token: str) -> dict[str, Any]:
        from bullmq.custom_errors import DelayedError, UnrecoverableError

        run = self.running[str(job.id)]
        try:
            outcome = await run.future
        finally:
            self.running.pop(str(job.id), None)
            self.completed += 1
            self._changed()
        # Deliver only with Redis up: bullmq's completion needs our lock, which survives an outage shorter
        # than its remaining life. Longer than that, the stalled check has requeued the job: it re-runs.
        if not self._link.connected:
            await self._link.wait_up(self._config.lock_duration_ms / 1000)
        log.info("farm: job %s %s after %.1fs", job.id, outcome.kind, outcome.seconds, extra={"job_id": run.local_id})
        async with run.progress_lock:  # after any report in flight: the last frame is the last word
            if run.progress_dirty and self._link.connected:  # the last frame, which the progress loop may not have sent
                run.progress_dirty = False
                with contextlib.suppress(Exception):
                    await job.updateProgress(run.progress())
        if self.flows is not None and self.flows.route(job) is not None:  # a flow's job: may raise bullmq's errors
            outcome = await self.flows.settle(job, token, run, outcome)
        if outcome.kind == "failure" and outcome.code == MediaNotFound.code:  # this node lacks the media: not
            outcome = replace(outcome, retryable=True)                        # the job's fault, retried elsewhere
        if outcome.kind == "failure" and outcome.disk_full:
            await self._wait_for_space(job, token, run, outcome)  # raises DelayedError: no attempt used
        if outcome.kind == "failure" and outcome.retryable:
            self._apply_spec_attempts(job)
        await self._report(str(job.id), outcome)
        # this node's metrics (window, /metrics) count the attempt, as they count local ones
        self._engine.record_outcome(JobOutcome(run.local_id, self._outcome_kind(job, run, outcome), outcome.seconds,
                                               run.frames, origin="farm"))
        if outcome.kind == "success":
            return {**(outcome.result or {}), "artifacts": self._artifacts(run)}
        if outcome.kind == "cancelled":
            if run.cancel_reason is not None:
                raise UnrecoverableError(f"cancelled: {run.cancel_reason}")
            await move_back(job, token)  # this node stops: back to the queue, no attempt used
            raise DelayedError()
        if not outcome.retryable:
            raise UnrecoverableError(outcome.error or "failed")
        raise FarmJobFailed(outcome.error or "failed")

    async def _wait_for_space(self, job: BullJob, token: str, run: FarmRun, outcome: Outcome) -> None:
        """A full disk here (DATA_DIR, the farm storage) is not the job's fault and not lasting: the job goes back
        to the farm queue after PREVIEW_DISK_FULL_RETRY_SECONDS with no attempt used, as a local job waits (the
        reason lands in the job's BullMQ log). It does not count against this node's standing: a full farm storage
        would otherwise rest every node."""
        from bullmq.custom_errors import DelayedError

        delay = self._settings.disk_full_retry_seconds
        reason = f"{outcome.error}; back to the farm queue in {delay:.0f} s, no attempt used"
        log.warning("farm: job %s: %s", job.id, reason, extra={"job_id": run.local_id})
        with contextlib.suppress(Exception):
            await add_job_log(job, reason)
        self._engine.record_outcome(JobOutcome(run.local_id, "retry", outcome.seconds, run.frames, origin="farm"))
        await move_back(job, token, delay)
        raise DelayedError()

    async def _report(self, job_id: str, outcome: Outcome) -> None:
        """Successes and failures that are not the input's fault (retryable ones) count for the node's standing."""
        if self.outcomes is None:
            return
        if outcome.kind == "success":
            self.outcomes.succeeded()
        elif outcome.kind == "failure" and outcome.retryable:
            await self.outcomes.failed(job_id, outcome.error or "failed")

    @staticmethod
    def _outcome_kind(job: BullJob, run: FarmRun, outcome: Outcome) -> str:
        """The attempt's outcome in the engine's words (success, failure, retry, cancelled, released)."""
        if outcome.kind == "success":
            return "success"
        if outcome.kind == "cancelled":
            return "cancelled" if run.cancel_reason is not None else "released"
        return "retry" if outcome.retryable and int(job.attemptsMade) + 1 < _attempts_allowed(job) else "failure"

    def _apply_spec_attempts(self, job: BullJob) -> None:
        """A producer that set no `attempts` option gets the spec's `attempts` (with exponential backoff)."""
        data = job.data if isinstance(job.data, dict) else {}
        attempts = data.get("attempts", 3)
        if isinstance(attempts, int) and not isinstance(attempts, bool):
            default_retry(job, max(1, min(20, attempts)), self._config.default_backoff_ms)

    def _artifacts(self, run: FarmRun) -> dict[str, Any]:
        """Where the artifacts are: this node, the folder, and signed URLs when the API is reachable off-host
        (`url` for preview.mp4; `files` for every artifact name, so a node without shared storage can fetch the
        poster, thumbnails and preview.json too — a name the render did not write answers 404). A preview
        published into the farm storage names its folder there (`path`), which every node reads: no URLs."""
        path: str | None = run.artifact_path
        project = run.ctx.job.project_id
        with contextlib.suppress(Exception):
            path = path or str(self._layout.preview_path(project, run.local_id))
        files = None if run.artifact_path else self._signed_urls(run.local_id)
        return {"nodeId": self._node_id, "host": self._host, "jobId": run.local_id, "path": path,
                "url": files.get("preview.mp4") if files else None, "files": files}

    def _signed_urls(self, local_id: str) -> dict[str, str] | None:
        api = self.api
        if api is None or self._settings.api_host in LOOPBACK:
            return None
        urls = {name: api.signed_artifact_url(local_id, name) for name in ARTIFACT_NAMES}
        return {name: url for name, url in urls.items() if url is not None} or None
