"""JobService: queue, cancel, retry, re-prioritise, remove and read jobs — in the local store and on the farm.

Every consumer (the CLI, the HTTP API, the window's adapter) acts on jobs through this one class, so the rules
live once: spec intake (a path or a wire object becomes a checked JobSpec here and nowhere else), where blocking
store calls run (`StoreCall`: the engine's store thread in a node, inline in the CLI), and how the farm is
reached. Consumers depend on small Protocols of their own that this class satisfies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..core.farm_status import FarmStatus
from ..core.intake import prepare_spec, prepare_wire_spec
from ..core.job import FARM_KIND, Job, JobState
from ..core.pathmap import PathMap
from ..core.spec import JobSpec
from ..core.submission import FarmSubmission, PathSource, QueuedLocally, SpecSource, WireSource
from ..errors import (
    FarmDisabled,
    FarmJobNotWaiting,
    FarmNodeNotFound,
    FarmUnavailable,
    IllegalTransition,
    PreviewError,
    QueueFull,
)
from ..queue.base import FarmUpdate, JobStore

T = TypeVar("T")
log = logging.getLogger(__name__)

# why a farm job's priority cannot change any more, by what FarmPort.set_priority answered
NOT_WAITING = {
    "active": "a farm node is running it",
    "waiting-children": "its chunks are running on the farm",
    "completed": "it has finished on the farm",
    "failed": "it has ended on the farm (failed or cancelled)",
    "not-found": "it is no longer on the farm",
}


class StoreCall(Protocol):
    """Runs a blocking store call where it may block: the engine's store thread, or inline in the CLI."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def inline(fn: Callable[[], T]) -> T:
    """StoreCall for a process with nothing else to do (the CLI): block right here."""
    return fn()


class FarmPort(Protocol):
    """What the service needs of this node's seat on the farm (farm/gateway.py provides it)."""

    async def submit(self, spec: JobSpec) -> str: ...
    async def state(self, job_id: str) -> str | None: ...
    async def get(self, job_id: str) -> dict[str, Any] | None: ...
    async def cancel(self, job_id: str, reason: str) -> str: ...
    async def set_priority(self, job_id: str, priority: int) -> str: ...
    async def waiting(self) -> int: ...
    async def signing_secret(self) -> str: ...
    async def set_draining(self, node_id: str, draining: bool) -> bool: ...
    def status(self) -> FarmStatus: ...
    def on_status(self, callback: Callable[[FarmStatus], None]) -> None: ...


class JobService:
    def __init__(self, store: JobStore, media_roots: Sequence[Path], run: StoreCall,
                 farm: FarmPort | None = None, queue_max: int = 1000, path_map: PathMap | None = None) -> None:
        self._store = store
        self._roots = tuple(media_roots)
        self._path_map = path_map
        self._run = run
        self._farm = farm
        self._queue_max = queue_max

    # ------------------------------------------------------------------ intake (the only place)
    def intake(self, source: SpecSource) -> JobSpec:
        """A checked spec: paths mapped from the submitting machine (PREVIEW_PATH_MAP) and made absolute, the
        timeline inside the media roots. Blocking (reads files)."""
        if isinstance(source, PathSource):
            return prepare_spec(source.argument, source.cwd, self._roots, source.overrides, path_map=self._path_map)
        return prepare_wire_spec(source.data, self._roots, path_map=self._path_map)

    async def submit(self, source: SpecSource) -> Job:
        """Queue locally; QueueFull past PREVIEW_QUEUE_MAX, InvalidInput naming the field for bad input."""

        def intake_and_submit() -> Job:
            return self._store.submit(self.intake(source))

        return await self._run(intake_and_submit)

    async def record_failure(self, spec_data: Mapping[str, Any], error: str) -> Job:
        """A failed job for what could not be queued (a watched export whose intake failed): the user sees the
        reason in the job list instead of a log line nobody reads."""
        return await self._run(partial(self._store.record_failed, dict(spec_data), error))

    async def submit_to_farm(self, source: SpecSource, *, fallback: bool = True) -> FarmSubmission | QueuedLocally:
        """Queue on the farm (any node may run it, this one included).

        PREVIEW_QUEUE_MAX applies to the farm's waiting jobs too (QueueFull). With the farm's Redis unreachable
        the job is queued locally instead (DEV_JOB_STORE's promise: nothing is lost) and the answer says so.
        Bad input is refused before the farm is asked, so it never falls back. `fallback=False` (moving a job
        that is queued here already) raises FarmUnavailable instead."""
        farm = self._farm_or_refuse()
        spec = await self._run(partial(self.intake, source))
        try:
            job_id = await self._farm_submit(farm, spec)
        except FarmUnavailable as exc:
            if not fallback:
                raise
            job = await self._run(partial(self._store.submit, spec))
            log.info("%s: job %s queued locally instead", exc, job.id)
            return QueuedLocally(job, str(exc))
        return FarmSubmission(job_id, await farm.state(job_id))

    async def _farm_submit(self, farm: FarmPort, spec: JobSpec) -> str:
        waiting = await farm.waiting()
        if waiting >= self._queue_max:
            raise QueueFull(f"the farm queue is full ({waiting} waiting; PREVIEW_QUEUE_MAX is "
                            f"{self._queue_max}); try again later")
        return await farm.submit(spec)

    # ------------------------------------------------------------------ farm records: local jobs that run on the farm
    async def submit_tracked(self, source: SpecSource) -> Job:
        """Queue on the farm and keep a farm record here, so the window follows it like a local job (the farm
        tracker mirrors its state and fetches its files when it is done). With the farm's Redis unreachable the
        job is queued locally instead (a plain local job: nothing is lost). As queueing it here would, the record
        supersedes older local jobs of its project and timeline; it then leaves their supersede group."""
        farm = self._farm_or_refuse()
        spec = await self._run(partial(self.intake, source))
        try:
            farm_id = await self._farm_submit(farm, spec)
        except FarmUnavailable as exc:
            job = await self._run(partial(self._store.submit, spec))
            log.info("%s: job %s queued locally instead", exc, job.id)
            return job
        try:
            job = await self._run(partial(self._store.submit, spec, kind=FARM_KIND, origin="farm"))
            return await self._follow(job.id, farm_id)
        except PreviewError:
            await self._withdraw(farm, farm_id, "its local record could not be stored")
            raise

    async def send_to_farm(self, job_id: str) -> Job:
        """A waiting local job goes to the farm and stays here, same id, as its farm record (converted in place:
        it leaves the local queue, so it cannot also run here). With the farm away it stays queued here
        (FarmUnavailable). If this node's engine started it first, the farm job is withdrawn again."""
        farm = self._farm_or_refuse()
        job = await self.get(job_id)
        if not job.state.waiting or job.farm_id is not None:
            raise IllegalTransition(f"cannot send job {job_id} to the farm: it is {job.display_state}"
                                    + (" on the farm" if job.farm_id is not None else ""), job_id=job_id)
        spec = await self._run(partial(self.intake, WireSource(job.spec)))
        farm_id = await self._farm_submit(farm, spec)
        try:
            return await self._follow(job_id, farm_id)
        except PreviewError:
            await self._withdraw(farm, farm_id, "its local job started here first")
            raise

    async def mirror(self, job_id: str, update: FarmUpdate) -> Job:
        """The farm tracker writes what the farm says of a farm record (JobStore.mirror)."""
        return await self._run(partial(self._store.mirror, job_id, update))

    async def _follow(self, job_id: str, farm_id: str) -> Job:
        return await self.mirror(job_id, FarmUpdate(JobState.QUEUED, farm_id=farm_id))

    @staticmethod
    async def _withdraw(farm: FarmPort, farm_id: str, why: str) -> None:
        try:
            await farm.cancel(farm_id, why)
        except PreviewError as exc:
            log.warning("farm job %s could not be withdrawn (%s): %s", farm_id, why, exc)

    async def _cancel_farm_record(self, job: Job) -> Job:
        """Cancel the farm job first (a queued one is removed, a running one is stopped by its node); the record
        is cancelled now, or marked "cancelling" until the tracker sees the farm job end."""
        assert job.farm_id is not None
        if job.state.finished:
            return await self._run(partial(self._store.cancel, job.id))  # refused by the state machine
        result = await self._farm_or_refuse().cancel(job.farm_id, "cancelled by user")
        if result == "finished":
            return job  # it ended meanwhile: the tracker mirrors how
        return await self._run(partial(self._store.cancel, job.id))

    async def _set_farm_priority(self, job: Job, priority: int) -> Job:
        """The farm job's BullMQ priority changes first, only while it waits there (the farm decides, atomically: the
        record may be a poll behind); then the record. FarmJobNotWaiting, both unchanged, once a node took it, it
        ended or it left the farm. If the record cannot take it, the farm job gets its old priority back."""
        assert job.farm_id is not None
        if job.state.finished:
            return await self._run(partial(self._store.set_priority, job.id, priority))  # refused by the rules
        farm = self._farm_or_refuse()
        result = await farm.set_priority(job.farm_id, priority)
        if result == "busy":
            raise FarmUnavailable(f"farm job {job.farm_id} kept changing while its priority was set; try again")
        if result != "changed":
            raise FarmJobNotWaiting(job.id, job.farm_id, NOT_WAITING.get(result, f"it is {result} there"))
        try:
            return await self._run(partial(self._store.set_priority, job.id, priority))
        except PreviewError:
            try:
                await farm.set_priority(job.farm_id, job.priority)
            except PreviewError as exc:
                log.warning("farm job %s keeps priority %d; its record %s could not take it: %s", job.farm_id,
                            priority, job.id, exc)
            raise

    async def _retry_farm_record(self, job: Job) -> Job:
        """Retry resubmits to the farm: a new farm job, the same record (fresh attempts)."""
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise IllegalTransition(f"cannot retry job {job.id}: it is {job.state.value}", job_id=job.id)
        farm = self._farm_or_refuse()
        spec = await self._run(partial(self.intake, WireSource(job.spec)))
        farm_id = await self._farm_submit(farm, spec)
        try:
            return await self._follow(job.id, farm_id)
        except PreviewError:
            await self._withdraw(farm, farm_id, "its local record could not be retried")
            raise

    # ------------------------------------------------------------------ local jobs
    async def get(self, job_id: str) -> Job:
        return await self._run(partial(self._store.get, job_id))

    async def list_jobs(self, states: Iterable[JobState] | None = None, project_id: str | None = None,
                        limit: int | None = None) -> list[Job]:
        return await self._run(partial(self._store.list_jobs, states, project_id, limit))

    async def counts(self) -> dict[str, int]:
        return await self._run(self._store.counts)

    async def cancel(self, job_id: str) -> Job:
        """A waiting job is cancelled now; a running one is asked to stop (it stays running until it does).
        A farm record's farm job is cancelled on the farm."""
        job = await self.get(job_id)
        if job.farm_id is not None:
            return await self._cancel_farm_record(job)
        return await self._run(partial(self._store.cancel, job_id))

    async def retry(self, job_id: str) -> Job:
        """A failed or cancelled job runs again; a farm record is resubmitted to the farm."""
        job = await self.get(job_id)
        if job.farm_id is not None:
            return await self._retry_farm_record(job)
        return await self._run(partial(self._store.retry, job_id))

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Clamped to 0-10 (higher first). A farm record's farm job gets it too, while it waits on the farm."""
        priority = max(0, min(10, priority))
        job = await self.get(job_id)
        if job.kind == FARM_KIND and job.farm_id is not None:
            return await self._set_farm_priority(job, priority)
        return await self._run(partial(self._store.set_priority, job_id, priority))

    async def remove(self, job_id: str) -> None:
        await self._run(partial(self._store.remove, job_id))

    async def set_paused(self, paused: bool) -> None:
        """Pause the queue on every node sharing this store (running jobs finish); farm intake pauses too."""
        await self._run(partial(self._store.set_paused, paused))

    # ------------------------------------------------------------------ farm jobs
    @property
    def farm_enabled(self) -> bool:
        return self._farm is not None

    def farm_status(self) -> FarmStatus | None:
        """The farm as last seen (refreshed every heartbeat); None when this node is not on a farm."""
        return self._farm.status() if self._farm is not None else None

    def on_farm_status(self, callback: Callable[[FarmStatus], None]) -> None:
        if self._farm is not None:
            self._farm.on_status(callback)

    async def farm_job(self, job_id: str) -> dict[str, Any] | None:
        return await self._farm_or_refuse().get(job_id)

    async def cancel_farm_job(self, job_id: str, reason: str) -> str:
        """'removed' (it waited), 'requested' (it runs: its node stops it), 'finished' or 'not-found'."""
        return await self._farm_or_refuse().cancel(job_id, reason)

    async def farm_signing_secret(self) -> str:
        """The farm-wide secret that signs artifact URLs, so any node can check a link another node made."""
        return await self._farm_or_refuse().signing_secret()

    async def drain_farm_node(self, node_id: str, draining: bool) -> None:
        """Drain a farm node (it finishes what it runs and takes no more farm jobs) or resume it; any node of the
        farm, not only this one. FarmNodeNotFound for a node the farm does not know."""
        if not await self._farm_or_refuse().set_draining(node_id, draining):
            raise FarmNodeNotFound(node_id)

    def _farm_or_refuse(self) -> FarmPort:
        if self._farm is None:
            raise FarmDisabled()
        return self._farm
