"""The Engine: leases jobs from the store while render slots are free, runs them, and reports what happens.

Threads: the loop thread runs this class; a single store thread runs every store call (SQLite can block);
handlers run on the RenderPool's threads and talk back only through `loop.call_soon_threadsafe`.
Events come from the store's change log (so changes made by other processes, e.g. `preview-desktop submit`,
reach the window too) plus live progress of the jobs running here. Keeping their leases alive and the store
tidy (heartbeats, reaping, purging) is upkeep.py's, on loops this class starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ParamSpec, TypeVar

from ..core.events import (
    PROGRESS_EVENT_INTERVAL,
    EngineStatus,
    EventHub,
    JobOutcome,
    JobProgress,
    JobRemoved,
    JobUpdated,
    Subscriber,
)
from ..core.handler import HandlerRegistry, JobContext, ProgressFn, SpecIntake
from ..core.job import Job, JobState, Progress
from ..core.layout import Layout
from ..core.process import make_worker_id
from ..errors import DiskFull, IllegalTransition, JobNotFound
from ..queue.base import JobStore, Lease, StoreWatch
from ..settings import Settings
from .boundary import Outcome, run_at_boundary
from .pool import RenderPool
from .slots import SlotRun, stored_spec
from .space import SpaceWatch
from .upkeep import Upkeep

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class RunningJob:
    lease: Lease
    ctx: JobContext
    started: float = field(default_factory=time.monotonic)
    progress: Progress = field(default_factory=Progress)
    last_event: float = 0.0
    interrupted: bool = False  # stopped by shutdown: give the job back instead of marking it cancelled


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        registry: HandlerRegistry,
        loop: asyncio.AbstractEventLoop | None = None,
        mirror_finished: bool = True,
    ) -> None:
        """mirror_finished=False (a headless worker): finished jobs leave the mirror, so its memory follows the
        running and waiting jobs, not every job the store holds (which retention bounds only after days). Their
        JobUpdated events are still emitted; readers of finished jobs ask the store (the job service does)."""
        self.settings = settings
        self.store = store
        self.registry = registry
        self.loop = loop or asyncio.get_event_loop()
        self.events = EventHub()
        self.space = SpaceWatch(self.events)  # a full disk: said once, store writes retried until they land
        self.worker_id = make_worker_id()
        self.layout = Layout(settings.data_dir)
        self.pool = RenderPool(settings.max_concurrency, self.loop)
        self.pool.on_free(self._wake_dispatcher)
        self.running: dict[str, RunningJob] = {}
        self.jobs: dict[str, Job] = {}  # mirror of the store, kept by the change log
        self._mirror_finished = mirror_finished
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._watch: StoreWatch | None = None  # started by start(): store commits by anyone wake the sync
        self._wake = asyncio.Event()
        self._sync_pending = False
        self._rev = -1
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self._paused = False
        self.leasing = True  # False: this node runs no local jobs (e.g. a farm-only node)
        self.upkeep = Upkeep(self, store, settings, self.space)  # heartbeats of our leases; reaping, purging

    # ------------------------------------------------------------------ plumbing
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store operation on the store thread; the loop stays free. Errors propagate to the caller."""
        result = await self.loop.run_in_executor(self._store_thread, partial(fn, *args, **kwargs))
        self._request_sync()
        return result

    def _on_store_commit(self) -> None:  # watcher thread
        self.loop.call_soon_threadsafe(self._request_sync)

    def _request_sync(self) -> None:
        if not self._sync_pending and not self._stopped.is_set():
            self._sync_pending = True
            self._spawn(self._sync())

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    def _wake_dispatcher(self) -> None:
        self._wake.set()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Engine events on the loop thread (the adapter, the API's event stream and metrics listen)."""
        return self.events.subscribe(subscriber)

    def status(self) -> EngineStatus:
        """`running` counts every render on this computer: local jobs and farm jobs share the slots."""
        active = self.pool.active
        return EngineStatus(active, self.pool.capacity, self._paused, self._stopping,
                            farm=max(0, active - len(self.running)))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the job mirror, clean leftovers of dead workers, then start the loops."""
        try:
            reaped = await self.call(self.store.reap)
        except DiskFull as exc:  # the housekeeping loop reaps once there is space
            reaped = []
            self.space.saw_full(str(exc))
        if reaped:
            log.info("requeued %d job(s) left running by a stopped worker", len(reaped))
        await self._sync(full=True)
        await self.remove_orphan_staging()
        self._watch = self.store.watch(self._on_store_commit)
        self._spawn(self._dispatch_loop())
        self.upkeep.start(self._spawn)
        self.events.emit(self.status())

    async def remove_orphan_staging(self) -> None:
        """Staging folders of jobs not running anywhere are leftovers of killed renders (at start, after a reap)."""
        await self.loop.run_in_executor(self._store_thread, self._remove_orphan_staging)

    def _remove_orphan_staging(self) -> None:  # on the store thread
        here = set(self.running)

        def runs_somewhere(job_id: str) -> bool:
            try:
                return job_id in here or self.store.get(job_id).state is JobState.RUNNING
            except JobNotFound:
                return False

        self.layout.remove_orphan_staging(runs_somewhere)

    def set_concurrency(self, n: int) -> None:
        self.pool.set_capacity(n)
        self.events.emit(self.status())

    async def set_paused(self, paused: bool) -> None:
        await self.call(self.store.set_paused, paused)

    async def stop(self, grace: float | None = None, interrupt: bool = False) -> None:
        """Stop leasing; let running jobs finish within `grace` (interrupt them at once if asked); give back
        whatever still runs so another worker can take it. Never hangs."""
        grace = self.settings.shutdown_grace if grace is None else grace
        if not self._stopping:
            self._stopping = True
            self.events.emit(self.status())
            log.info("stopping: no new jobs; %d running", len(self.running))
        self._wake.set()
        if interrupt:
            self.interrupt_running()
        deadline = time.monotonic() + grace
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.running:
            self.interrupt_running()
            deadline = time.monotonic() + 2.0
            while self.running and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        for job_id, run in list(self.running.items()):
            log.warning("job %s still running at exit: giving it back to the queue", job_id)
            with contextlib.suppress(IllegalTransition, JobNotFound, DiskFull):  # DiskFull: its lease will expire
                await self.call(self.store.release, job_id, run.lease.token)
        if self._watch is not None:
            self._watch.stop()
        self.upkeep.stop()
        for task in list(self._tasks):
            task.cancel()
        self._stopped.set()

    def interrupt_running(self) -> None:
        for run in self.running.values():
            run.interrupted = True
            run.ctx.cancel_event.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def paused(self) -> bool:
        """The queue is paused on this node (the window's Pause queue): no local job and no farm job starts."""
        return self._paused

    def close(self) -> None:
        self._store_thread.shutdown(wait=True)
        self.pool.close()

    # ------------------------------------------------------------------ mirroring the store
    async def _sync(self, full: bool = False) -> None:
        self._sync_pending = False
        if full or self._rev < 0:
            rev = await self.loop.run_in_executor(self._store_thread, self.store.current_rev)
            jobs = await self.loop.run_in_executor(self._store_thread, self.store.list_jobs)
            paused = await self.loop.run_in_executor(self._store_thread, self.store.is_paused)
            self._rev = rev
            self.jobs = {j.id: j for j in jobs if self._mirrored(j)}
            self._set_paused(paused)
            for job in jobs:
                self.events.emit(JobUpdated(job))
            self._wake.set()
            return
        changes = await self.loop.run_in_executor(self._store_thread, self.store.changes_since, self._rev)
        if changes.job_ids is None:
            self._rev = -1
            await self._sync(full=True)
            return
        if changes.rev == self._rev:
            return
        self._rev = changes.rev
        fetched = await self.loop.run_in_executor(self._store_thread, self._fetch, changes.job_ids)
        paused = await self.loop.run_in_executor(self._store_thread, self.store.is_paused)
        self._set_paused(paused)
        for job_id, fresh in fetched:
            if fresh is None:
                if self.jobs.pop(job_id, None) is not None or not self._mirror_finished:
                    self.events.emit(JobRemoved(job_id))
                continue
            job = fresh
            if self._mirrored(job):
                self.jobs[job_id] = job
            else:
                self.jobs.pop(job_id, None)
            run = self.running.get(job_id)
            if run is not None and job.cancel_requested:
                run.ctx.cancel_event.set()
            self.events.emit(JobUpdated(job))
            if job.state is JobState.QUEUED:
                self._wake.set()

    def _mirrored(self, job: Job) -> bool:
        return self._mirror_finished or not job.state.finished

    def _fetch(self, job_ids: tuple[str, ...]) -> list[tuple[str, Job | None]]:
        out: list[tuple[str, Job | None]] = []
        for job_id in job_ids:
            try:
                out.append((job_id, self.store.get(job_id)))
            except JobNotFound:
                out.append((job_id, None))
        return out

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            self.events.emit(self.status())
            self._wake.set()

    # ------------------------------------------------------------------ dispatching
    async def _dispatch_loop(self) -> None:
        kinds = self.registry.kinds()
        due: float | None = None  # when the next retry becomes leasable
        empty_at: int | None = None  # the store revision at which the last lease found nothing
        while not self._stopping:
            self._wake.clear()
            # Nothing can have become leasable without a store change (submit, retry, reaped lease) or a retry
            # falling due. Skipping the store then matters on a farm node: every finished farm job frees a slot
            # and wakes us, hundreds of times a second.
            unchanged = empty_at == self._rev and (due is None or time.time() < due)
            while not unchanged and self.leasing and not self._paused and not self._stopping and self.pool.free > 0:
                rev = self._rev
                lease = await self.space.patiently(lambda: self.loop.run_in_executor(
                    self._store_thread, self.store.lease, self.worker_id, self.settings.lease_seconds, kinds
                ))
                empty_at = rev if lease is None else None
                # pool.free is checked again: the farm node may have taken the slot while we leased
                if lease is None or self._stopping or self.pool.free <= 0:
                    if lease is not None:
                        await self.space.patiently(partial(self.call, self.store.release, lease.job.id, lease.token))
                    break
                self._start(lease)
            if not unchanged:
                due = await self.loop.run_in_executor(self._store_thread, self.store.next_due)
            timeout = 1.0 if due is None else max(0.01, min(1.0, due - time.time()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _start(self, lease: Lease) -> None:
        job = lease.job
        ctx, future = self._launch(job, stored_spec, partial(self._on_progress, job.id))
        self.running[job.id] = RunningJob(lease, ctx)
        self.jobs[job.id] = job
        self.events.emit(JobUpdated(job))
        log.info("job %s started (%s, attempt %d/%d)", job.id, job.project_id, job.attempts_made,
                 job.attempts_allowed, extra={"job_id": job.id})

        def finished(f: asyncio.Future[Outcome], job_id: str = job.id) -> None:
            self._spawn(self._finish(job_id, f.result()))

        future.add_done_callback(finished)

    def _launch(
        self, job: Job, intake: SpecIntake, on_progress: ProgressFn
    ) -> tuple[JobContext, asyncio.Future[Outcome]]:
        """Start the job's handler on a free slot now; `on_progress` is called on the loop thread."""
        timeout = self.settings.job_timeout
        ctx = JobContext(
            job=job,
            progress_fn=partial(self._progress_from_thread, on_progress),
            deadline=time.monotonic() + timeout if timeout > 0 else None,
        )
        handler = self.registry.get(job.kind)
        if handler is None:
            future: asyncio.Future[Outcome] = self.loop.create_future()
            future.set_result(Outcome("failure", 0.0, error=f"unknown job name {job.kind!r} (this node runs: "
                                      f"{', '.join(self.registry.kinds())})", retryable=False))
        else:
            future = self.pool.submit(partial(run_at_boundary, handler, job, intake, ctx, self.settings.data_dir))
        self.events.emit(self.status())  # after submit: `running` counts the pool's slots
        return ctx, future

    # ------------------------------------------------------------------ slots for other parts (the farm)
    @property
    def free_slots(self) -> int:
        """Slots a new render may take now: none while paused or stopping (local and farm work share them)."""
        return 0 if self._paused or self._stopping else self.pool.free

    @property
    def capacity(self) -> int:
        return self.pool.capacity

    @property
    def local_running(self) -> int:
        return len(self.running)

    def on_slots_changed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (loop thread) when a slot frees or pause, resume, capacity or stopping change it."""
        self.pool.on_free(callback)
        unsubscribe = self.events.subscribe(lambda event: callback() if isinstance(event, EngineStatus) else None)

        def off() -> None:
            self.pool.off_free(callback)
            unsubscribe()

        return off

    def run_on_slot(self, job: Job, intake: SpecIntake, on_progress: ProgressFn) -> SlotRun:
        """Run another part's job (a farm job) on a free slot now; the caller checked `free_slots` in the same
        loop step. Its live progress reaches this node's metrics as origin "farm"; `record_outcome` counts it."""
        started = time.monotonic()

        def progress(frame: int, frames: int) -> None:
            on_progress(frame, frames)
            self._emit_progress(job.id, started, frame, frames, "farm")

        ctx, future = self._launch(job, intake, progress)
        future.add_done_callback(lambda _f: self.events.emit(self.status()))
        return SlotRun(job, ctx, future)

    def record_outcome(self, outcome: JobOutcome) -> None:
        """An attempt that ran on a slot for another part ended: this node's metrics count it."""
        self.events.emit(outcome)

    def _progress_from_thread(self, on_progress: ProgressFn, frame: int, frames: int) -> None:
        self.loop.call_soon_threadsafe(on_progress, frame, frames)

    def _on_progress(self, job_id: str, frame: int, frames: int) -> None:
        run = self.running.get(job_id)
        if run is None:
            return
        elapsed = time.monotonic() - run.started
        fraction = min(1.0, frame / frames) if frames > 0 else 0.0
        run.progress = Progress(fraction, frame, frames, frame / elapsed if elapsed > 0 else 0.0)
        if self._emit_progress(job_id, run.started, frame, frames, "local", run.last_event):
            run.last_event = time.monotonic()

    def _emit_progress(self, job_id: str, started: float, frame: int, frames: int, origin: str,
                       last_event: float = 0.0) -> bool:
        """A JobProgress event, at most every PROGRESS_EVENT_INTERVAL per job (the last frame always)."""
        now = time.monotonic()
        if now - last_event < PROGRESS_EVENT_INTERVAL and frame < frames:
            return False
        elapsed = now - started
        fraction = min(1.0, frame / frames) if frames > 0 else 0.0
        self.events.emit(JobProgress(job_id, frame, frames, fraction, frame / elapsed if elapsed > 0 else 0.0,
                                     origin=origin))
        return True

    async def _finish(self, job_id: str, outcome: Outcome) -> None:
        run = self.running.pop(job_id)
        token = run.lease.token
        kind = outcome.kind
        wait = self.settings.disk_full_retry_seconds if outcome.disk_full else None
        if outcome.disk_full:
            self.space.saw_full(outcome.error or "disk full")
        elif kind == "success":
            self.space.saw_space()
        patiently = self.space.patiently  # the outcome lands once the store has room again
        try:
            if kind == "success":
                job = await patiently(lambda: self.call(self.store.complete, job_id, token, outcome.result or {}))
            elif kind == "cancelled" and run.interrupted:
                job = await patiently(lambda: self.call(self.store.release, job_id, token))
                kind = "released"
            elif kind == "cancelled":
                job = await patiently(lambda: self.call(self.store.acknowledge_cancel, job_id, token))
            else:
                job = await patiently(lambda: self.call(self.store.fail, job_id, token, outcome.error or "failed",
                                                        outcome.traceback, outcome.retryable, wait))
                kind = "retry" if job.state is JobState.RETRYING else (
                    "cancelled" if job.state is JobState.CANCELLED else "failure")
        except (IllegalTransition, JobNotFound) as exc:
            log.warning("job %s: result dropped: %s", job_id, exc, extra={"job_id": job_id})
            kind = "lost"
        else:
            log.info("job %s: attempt ended after %.1fs, now %s", job_id, outcome.seconds, job.state.value,
                     extra={"job_id": job_id})
        self.events.emit(JobOutcome(job_id, kind, outcome.seconds, run.progress.frames))
        self.events.emit(self.status())
        self._wake.set()
