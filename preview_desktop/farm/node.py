"""FarmNode: this node's seat on the farm. A bullmq Worker whose fetching we drive ourselves.

Why not `Worker.run()` with `concurrency`: bullmq's loop keeps `concurrency` fetches in flight whatever else
the node does, so it would lock farm jobs it cannot start while local renders hold the slots (and other idle
nodes could not take them). Instead one fetch loop asks for a job only while `engine.pool` has a free slot,
and starts the render on the pool in the same loop step the job arrives, so local and farm work together never
exceed PREVIEW_MAX_CONCURRENCY. If a local job took the slot while we were fetching, the job goes straight back
to the queue (moveToDelayed(now) with skipAttempt: no attempt is used). bullmq still does the rest: locks and
their renewal (LockManager), the stalled-job check, completing, failing, retries and backoff (processJob).

Farm jobs are not copied into the local diskcache store: the farm's record is Redis. The window's Farm view
and `FarmNode.status` show them; their artifacts are written under DATA_DIR/previews like local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from .. import __version__
from ..core.events import JobOutcome
from ..core.farm_status import FarmJobInfo, FarmStatus, NodeInfo
from ..core.handler import JobContext, ProgressFn, SpecIntake
from ..core.intake import prepare_wire_spec
from ..core.job import Job, JobState, new_job_id
from ..core.layout import Layout
from ..core.spec import JobSpec
from ..engine.boundary import Outcome
from ..engine.slots import SlotRun
from ..settings import Settings
from .client import FarmClient
from .connection import FarmConfig, Link, describe_error, is_connection_error, make_client, register_url_secret
from .registry import FarmKeys, publish, read_counts, read_nodes, unpublish
from .supersede import supersede, supersede_group_of

log = logging.getLogger("preview_desktop.farm")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class FarmJobFailed(Exception):
    """A retryable failure of a farm job: BullMQ retries it with backoff while attempts remain."""


@dataclass
class FarmRun:
    job: Any  # bullmq.Job
    token: str
    ctx: JobContext
    future: asyncio.Future[Outcome]
    local_id: str
    started: float = field(default_factory=time.time)
    frame: int = 0
    frames: int = 0
    progress_dirty: bool = False
    cancel_reason: str | None = None
    interrupted: bool = False

    @property
    def percent(self) -> float:
        return round(100.0 * self.frame / self.frames, 1) if self.frames > 0 else 0.0

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


class FarmEngine(Protocol):
    """What the farm needs of the engine: render slots shared with local jobs, and this node's metrics."""

    @property
    def worker_id(self) -> str: ...
    @property
    def free_slots(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def local_running(self) -> int: ...
    @property
    def stopping(self) -> bool: ...
    def on_slots_changed(self, callback: Callable[[], None]) -> Callable[[], None]: ...
    def run_on_slot(self, job: Job, intake: SpecIntake, on_progress: ProgressFn) -> SlotRun: ...
    def record_outcome(self, outcome: JobOutcome) -> None: ...


class FarmNode:
    def __init__(self, settings: Settings, engine: FarmEngine, layout: Layout, config: FarmConfig | None = None,
                 prefix: str = "bull") -> None:
        assert settings.redis_url, "FarmNode needs settings.redis_url"
        self.engine = engine
        self.settings = settings
        self.layout = layout
        self.api: NodeApi | None = None  # attached by the node's wiring once the API exists
        self.config = config or FarmConfig()
        self.url = settings.redis_url
        register_url_secret(self.url)
        self.link = Link(self.url)
        self.keys = FarmKeys(prefix, settings.farm_queue)
        self.node_id = engine.worker_id
        self.host = socket.gethostname()
        self.running: dict[str, FarmRun] = {}
        self.status = FarmStatus(url=self.link.url, queue=self.keys.queue, connected=False, nodeId=self.node_id)
        self._listeners: list[Callable[[FarmStatus], None]] = []
        self._prefix = prefix
        self._redis: Any = None
        self._client: FarmClient | None = None
        self._worker: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._slot = asyncio.Event()
        self._tokens = itertools.count(1)
        self._fetching = 0  # fetches in flight: each one holds a claim on a free slot
        self._fetchers = 0
        self._unsubscribe: Callable[[], None] = lambda: None
        self.completed = 0  # attempts that ended on this node (any outcome): for tests and the bench

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Never blocks on Redis and never raises for an outage: the loops connect (and reconnect) on their own."""
        from bullmq import Worker

        self._redis = make_client(self.url, self.config, name=f"preview-desktop:{self.node_id}")
        opts: dict[str, Any] = {
            **self.config.worker_opts(),
            "connection": self._redis,
            "prefix": self._prefix,
            "autorun": False,
            "name": self.node_id,
        }
        self._worker = Worker(self.keys.queue, self._process, opts)
        self._worker.on("error", self._on_worker_error)
        self._move_to_completed = self._worker.backend.moveToCompleted
        self._worker.backend.moveToCompleted = self._complete_and_fetch
        self._worker.lockManager.start()
        from bullmq.timer import Timer

        self._worker.stalledCheckTimer = Timer(
            self.config.stalled_interval_ms / 1000, self._worker.runStalledJobsCheck, self._worker.emit
        )
        self._unsubscribe = self.engine.on_slots_changed(self._on_slots_changed)  # freed, resumed, capacity up
        self.link.on_change(self._notify)
        # one fetcher per slot: fetch round trips overlap (throughput) while each still needs a free slot
        self._fetchers = max(1, self.engine.capacity)
        for _ in range(self._fetchers):
            self._spawn(self._fetch_loop())
        for loop_fn in (self._heartbeat_loop, self._cancel_loop, self._progress_loop):
            self._spawn(loop_fn())
        log.info("farm: node %s joins queue %r on %s", self.node_id, self.keys.queue, self.link.url)

    async def stop(self) -> None:
        """Stop fetching; let running farm jobs finish briefly, then hand them back to the queue."""
        self._stopping = True
        self._unsubscribe()
        self._slot.set()
        for task in self._tasks[: self._fetchers]:
            task.cancel()
        deadline = time.monotonic() + min(2.0, self.settings.shutdown_grace)
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for run in self.running.values():
            run.interrupted = True
            run.ctx.cancel_event.set()
        deadline = time.monotonic() + 3.0
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.running:
            log.warning("farm: %d job(s) still running at exit; their locks expire and another node re-runs them",
                        len(self.running))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.link.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(unpublish(self._redis, self.keys, self.node_id), 2.0)
        if self._worker is not None:
            self._worker.stalledCheckTimer.stop()
            self._worker.closing = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._worker.close(force=True), 3.0)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.close(), 2.0)
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # ------------------------------------------------------------------ actions for the window and the API
    @property
    def client(self) -> FarmClient:
        if self._client is None:
            self._client = FarmClient(self.url, self.keys.queue, self.config, prefix=self._prefix)
        return self._client

    async def submit(self, spec: JobSpec) -> str:
        """Send a job to the farm (any node may run it, this one included). Returns the BullMQ job id."""
        return await self.client.submit(spec)

    async def cancel(self, job_id: str, reason: str = "cancelled from the window") -> str:
        return await self.client.cancel(job_id, reason)

    def snapshot(self) -> FarmStatus:
        """The farm as the last heartbeat saw it, with the link's state as it is now."""
        return replace(self.status, connected=self.link.connected, error=self.link.error)

    def on_status(self, callback: Callable[[FarmStatus], None]) -> None:
        """Called on the loop thread whenever the farm snapshot or the link state changes."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        self.status.connected = self.link.connected
        self.status.error = self.link.error
        for callback in list(self._listeners):
            callback(self.status)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    def _on_worker_error(self, err: BaseException, *args: Any) -> None:
        if is_connection_error(err):
            self.link.down(err)
        elif "could not renew lock" in str(err):
            job_id = str(err).rsplit(" ", 1)[-1]
            if job_id in self.running:
                log.warning("farm: %s (the job may be re-run elsewhere)", describe_error(err))
            else:  # its render had ended: the renewal crossed its completion, which removed the lock
                log.debug("farm: %s after the job ended here", describe_error(err))
        else:
            log.warning("farm: worker error: %s", describe_error(err))

    async def _backoff(self, delay: float) -> None:
        """Sleep `delay`, or less if another loop sees Redis come back."""
        await self.link.wait_up(delay)

    # ------------------------------------------------------------------ fetching
    def _on_slots_changed(self) -> None:
        """A slot freed, the queue resumed or capacity rose: wake the fetch loops, but only if one may fetch now."""
        if self._may_fetch(self._fetching):
            self._slot.set()

    def _may_fetch(self, claimed: int = 0) -> bool:
        engine = self.engine
        return not self._stopping and engine.free_slots - claimed > 0

    async def _fetch_loop(self) -> None:
        worker = self._worker
        delay = self.config.backoff_min_s
        while not self._stopping:
            if not self._may_fetch(self._fetching):
                self._slot.clear()
                if self.engine.stopping:
                    await asyncio.sleep(0.2)
                else:
                    await self._slot.wait()
                continue
            waiting = worker.waiting
            if waiting is not None and not waiting.done():
                # the queue is drained and another fetcher blocks on it: wait for that one (as bullmq's run does)
                await asyncio.wait([waiting])
                continue
            token = f"{worker.id}:{next(self._tokens)}"
            self._fetching += 1
            try:
                job = await worker.getNextJob(token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis trouble: reported once by the link, retried with backoff
                self.link.down(exc)
                await self._backoff(delay)
                delay = min(self.config.backoff_max_s, delay * 2)
                continue
            finally:
                self._fetching -= 1
            self.link.up()
            delay = self.config.backoff_min_s
            if job is None:
                continue
            if not self._may_fetch(self._fetching):
                await self._give_back(job, token)
                continue
            self._start(job, token)

    async def _complete_and_fetch(self, job: Any, result: Any, remove_on_complete: Any, token: str,
                                  fetch_next: bool = False) -> Any:
        """bullmq's completion, which also takes this node's next job in the same Redis script when a slot is free.

        One round trip per job instead of two, as Node's BullMQ worker does; the Python Worker (3.4.4, pinned)
        always passes fetch_next=False. The completion claims the slot before it awaits, so the fetch loops,
        woken by the same free slot, leave it alone. The next job keeps the finished job's lock token (as in Node).
        """
        claim = self._may_fetch(self._fetching) and not self._worker.closing
        self._fetching += int(claim)
        try:
            done = await self._move_to_completed(job, result, remove_on_complete, token, fetch_next=claim)
        finally:
            self._fetching -= int(claim)
        started = False
        if claim:
            try:
                job_data, job_id, limit_until, delay_until = done["result"] or (None, None, None, None)
                following = await self._worker.nextJobFromJobData(job_data, job_id, limit_until or 0,
                                                                  delay_until or 0, token)
                if following is not None:
                    self._worker.emit("active", following, "waiting")
                    if self._may_fetch(self._fetching):
                        self._start(following, token)
                        started = True
                    else:
                        await self._give_back(following, token)
            except Exception as exc:  # never fail the job that did complete; a lost next job's lock expires
                log.warning("farm: job %s completed; taking the next job failed: %s", job.id, describe_error(exc))
            if not started:  # the slot we held back from the fetch loops is theirs again
                self._slot.set()
        return done

    async def _give_back(self, job: Any, token: str) -> None:
        """Return a job we cannot start now to the queue at once, without using one of its attempts."""
        try:
            await job.moveToDelayed(int(time.time() * 1000), token)
        except Exception as exc:  # its lock expires and the stalled check requeues it instead
            log.warning("farm: could not hand job %s back (%s); it returns when its lock expires",
                        job.id, describe_error(exc))

    def _start(self, job: Any, token: str) -> None:
        """Start the render on a pool thread now (same loop step as the slot check), then let bullmq track it."""
        raw = job.data
        data = raw if isinstance(raw, dict) else {}
        project = data.get("projectId")
        local = Job(
            id=new_job_id(), project_id=project if isinstance(project, str) else "farm", spec=dict(data),
            kind=job.name, state=JobState.RUNNING, attempts_made=int(job.attemptsMade) + 1,
            attempts_allowed=int(job.opts.get("attempts") or 1), origin="farm", worker=self.node_id,
            started_at=time.time(),
        )
        slot = self.engine.run_on_slot(local, self._intake, partial(self._on_progress, str(job.id)))
        self.running[str(job.id)] = FarmRun(job, token, slot.ctx, slot.outcome, local.id)
        log.info("farm: job %s (%s) started here, attempt %d", job.id, local.project_id, local.attempts_made,
                 extra={"job_id": local.id})
        self._spawn_job(self._worker.processJob(job, token))
        if supersede_group_of(raw) is not None:
            self._spawn_job(self._settle_supersede(job))
        self._notify_soon()

    async def _settle_supersede(self, job: Any) -> None:
        """At pickup: register the job for supersede (it may come from a producer other than FarmClient),
        cancel older ones of its project + timeline, and stop this one if a newer live one supersedes it."""
        try:
            outcome = await supersede(self.client, str(job.id), job.timestamp, job.data)
        except Exception as exc:  # a lost link is reported once by the link; the render goes on regardless
            if is_connection_error(exc):
                self.link.down(exc)
            else:
                log.warning("farm: job %s: supersede check failed (%s)", job.id, describe_error(exc))
            return
        if outcome.cancelled:
            log.info("farm: job %s supersedes %s", job.id, ", ".join(outcome.cancelled))
        run = self.running.get(str(job.id))
        if outcome.superseded_by and run is not None and run.cancel_reason is None:
            run.cancel_reason = f"superseded by job {outcome.superseded_by}"
            run.ctx.cancel_event.set()
            log.info("farm: job %s is superseded by job %s; stopping it", job.id, outcome.superseded_by)

    def _spawn_job(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    def _intake(self, job: Job) -> JobSpec:
        """On the render thread: a farm job's spec comes from any producer, so it gets the whole intake here
        (bad input fails the job for good, at the job boundary)."""
        spec = prepare_wire_spec(job.spec, self.settings.effective_media_roots)
        job.spec, job.project_id, job.priority = spec.to_wire(), spec.projectId, spec.priority
        return spec

    # ------------------------------------------------------------------ the processor (bullmq calls it)
    async def _process(self, job: Any, token: str) -> dict[str, Any]:
        from bullmq.custom_errors import DelayedError, UnrecoverableError

        run = self.running[str(job.id)]
        try:
            outcome = await run.future
        finally:
            self.running.pop(str(job.id), None)
            self.completed += 1
            self._notify_soon()
        # Deliver only with Redis up: bullmq's completion needs our lock, which survives an outage shorter
        # than its remaining life. Longer than that, the stalled check has requeued the job: it re-runs.
        if not self.link.connected:
            await self.link.wait_up(self.config.lock_duration_ms / 1000)
        log.info("farm: job %s %s after %.1fs", job.id, outcome.kind, outcome.seconds, extra={"job_id": run.local_id})
        if run.progress_dirty and self.link.connected:  # the last frame, which the progress loop may not have sent
            with contextlib.suppress(Exception):
                await job.updateProgress({"frame": run.frame, "frames": run.frames, "percent": run.percent})
        if outcome.kind == "failure" and outcome.retryable:
            self._apply_spec_attempts(job)
        # this node's metrics (window, /metrics) count the attempt, as they count local ones
        self.engine.record_outcome(JobOutcome(run.local_id, self._outcome_kind(job, run, outcome), outcome.seconds,
                                              run.frames, origin="farm"))
        if outcome.kind == "success":
            return {**(outcome.result or {}), "artifacts": self._artifacts(run)}
        if outcome.kind == "cancelled":
            if run.cancel_reason is not None:
                raise UnrecoverableError(f"cancelled: {run.cancel_reason}")
            await job.moveToDelayed(int(time.time() * 1000), token)  # shutdown: back to the queue, no attempt used
            raise DelayedError()
        if not outcome.retryable:
            raise UnrecoverableError(outcome.error or "failed")
        raise FarmJobFailed(outcome.error or "failed")

    @staticmethod
    def _outcome_kind(job: Any, run: FarmRun, outcome: Outcome) -> str:
        """The attempt's outcome in the engine's words (success, failure, retry, cancelled, released)."""
        if outcome.kind == "success":
            return "success"
        if outcome.kind == "cancelled":
            return "cancelled" if run.cancel_reason is not None else "released"
        attempts = int(job.opts.get("attempts") or 1)
        return "retry" if outcome.retryable and int(job.attemptsMade) + 1 < attempts else "failure"

    def _apply_spec_attempts(self, job: Any) -> None:
        """A producer that set no `attempts` option gets the spec's `attempts` (with exponential backoff)."""
        data = job.data if isinstance(job.data, dict) else {}
        attempts = data.get("attempts", 3)
        if not job.opts.get("attempts") and isinstance(attempts, int) and not isinstance(attempts, bool):
            job.opts["attempts"] = max(1, min(20, attempts))
            if not job.opts.get("backoff"):
                job.opts["backoff"] = {"type": "exponential", "delay": self.config.default_backoff_ms}

    def _artifacts(self, run: FarmRun) -> dict[str, Any]:
        """Where the artifacts are: this node, the folder, and a signed URL when the API is reachable off-host."""
        path: str | None = None
        project = run.ctx.job.project_id
        with contextlib.suppress(Exception):
            path = str(self.layout.preview_path(project, run.local_id))
        return {"nodeId": self.node_id, "host": self.host, "jobId": run.local_id, "path": path,
                "url": self._signed_url(run.local_id)}

    def _signed_url(self, local_id: str) -> str | None:
        api = self.api
        if api is None or self.settings.api_host in LOOPBACK:
            return None
        return api.signed_artifact_url(local_id, "preview.mp4")

    # ------------------------------------------------------------------ progress, cancel, heartbeat
    def _on_progress(self, job_id: str, frame: int, frames: int) -> None:
        """Loop thread (the engine delivers it there and feeds this node's metrics itself)."""
        run = self.running.get(job_id)
        if run is not None:
            run.frame, run.frames, run.progress_dirty = frame, frames, True

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.progress_interval_s)
            if not self.link.connected:
                continue
            for run in list(self.running.values()):
                if not run.progress_dirty:
                    continue
                run.progress_dirty = False
                try:
                    await run.job.updateProgress({"frame": run.frame, "frames": run.frames, "percent": run.percent})
                except Exception as exc:
                    if is_connection_error(exc):
                        self.link.down(exc)
                    run.progress_dirty = True
                    break

    async def _cancel_loop(self) -> None:
        """Poll the cancel keys of the jobs running here (one MGET): a request is seen within cancel_poll_s."""
        while True:
            await asyncio.sleep(self.config.cancel_poll_s)
            if not self.running or not self.link.connected:
                continue
            ids = list(self.running)
            try:
                reasons = await self._redis.mget([self.keys.cancel(i) for i in ids])
            except Exception as exc:
                if is_connection_error(exc):
                    self.link.down(exc)
                continue
            for job_id, reason in zip(ids, reasons, strict=True):
                run = self.running.get(job_id)
                if reason is not None and run is not None and run.cancel_reason is None:
                    run.cancel_reason = reason or "cancelled"
                    run.ctx.cancel_event.set()
                    log.info("farm: job %s: cancel requested (%s); stopping it", job_id, run.cancel_reason)
                    with contextlib.suppress(Exception):
                        await self._redis.delete(self.keys.cancel(job_id))

    def node_info(self) -> NodeInfo:
        return NodeInfo(
            nodeId=self.node_id, host=self.host, pid=os.getpid(), version=__version__,
            capacity=self.engine.capacity, running=[r.info() for r in self.running.values()],
            localRunning=self.engine.local_running, api=self.api.url if self.api is not None else None,
        )

    async def _heartbeat_loop(self) -> None:
        """Publish this node and refresh the farm snapshot. Also the link probe while nothing else talks."""
        delay = self.config.backoff_min_s
        while True:
            try:
                await publish(self._redis, self.keys, self.node_info(), self.config.node_ttl_s)
                nodes = await read_nodes(self._redis, self.keys)
                counts = await read_counts(self._redis, self.keys)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.link.down(exc)
                await asyncio.sleep(delay)
                delay = min(self.config.backoff_max_s, delay * 2)
                continue
            delay = self.config.backoff_min_s
            self.link.up()
            self.status = FarmStatus(url=self.link.url, queue=self.keys.queue, connected=True, nodes=nodes,
                                     counts=counts, nodeId=self.node_id)
            self._notify()
            await asyncio.sleep(self.config.heartbeat_s)

    def _notify_soon(self) -> None:
        """Running jobs changed: show it now in this node's status (the registry catches up at the heartbeat)."""
        mine = next((n for n in self.status.nodes if n.nodeId == self.node_id), None)
        if mine is not None:
            mine.running = [r.info() for r in self.running.values()]
        self._notify()
