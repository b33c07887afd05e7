"""The job store interface every backend implements: the engine, CLI and API speak only this.

Two implementations: `local.LocalStore` (diskcache: shared by every process on this computer, crash-safe) and
`memory.MemoryStore` (one process, nothing on disk: for fast tests, like dramatiq's StubBroker). Both pass the
same contract tests (tests/unit/test_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.job import Job, JobState, Progress
from ..core.spec import JobSpec

JsonDict = dict[str, Any]  # JSON data: a job's result


@dataclass(frozen=True)
class Lease:
    """Proof that one worker runs a job until `deadline` (Unix seconds). Every later call must show the token."""

    job: Job
    token: str
    deadline: float


@dataclass(frozen=True)
class HeartbeatReply:
    cancel_requested: frozenset[str]  # running jobs someone asked to cancel
    lost: frozenset[str]  # leases no longer ours (expired and reaped): stop and do not complete


@dataclass(frozen=True)
class FarmUpdate:
    """What the farm says of a job a farm record follows (JobStore.mirror). None leaves a field as it is.

    `farm_id` set and new: the record starts following that farm job — a waiting local job becomes a farm record
    (it leaves the local queue and its supersede group), or a finished farm record is resubmitted (retry)."""

    state: JobState
    progress: Progress | None = None
    worker: str | None = None
    result: JsonDict | None = None
    error: str | None = None
    attempts_made: int | None = None
    farm_id: str | None = None
    superseded_by: str | None = None  # cancelled on the farm by a newer job of its project + timeline


@dataclass(frozen=True)
class Changes:
    rev: int
    job_ids: tuple[str, ...] | None  # None: the reader fell too far behind and should reload everything


class StoreWatch(Protocol):
    """A started watcher (see JobStore.watch). `stop` is idempotent; after it no call begins (one under way may end)."""

    def stop(self) -> None: ...


class JobStore(Protocol):
    """Every operation is atomic: no reader ever sees half of one. Ids of unknown jobs raise JobNotFound;
    transitions the state machine (core/job.py) forbids raise IllegalTransition."""

    # ------------------------------------------------------------------ submitting and reading
    def submit(self, spec: JobSpec, *, kind: str = ..., origin: str = ...) -> Job:
        """Queue a new job, superseding older unfinished ones of its project + timeline. QueueFull stores nothing."""
        ...

    def get(self, job_id: str) -> Job:
        """A copy: changing it changes nothing in the store."""
        ...

    def record_failed(self, spec_data: JsonDict, error: str, *, kind: str = ..., origin: str = ...) -> Job:
        """A job that is failed from the start: what could not be queued (a watched export whose intake failed),
        kept so the user sees why. Supersedes like submit; never counts as waiting."""
        ...

    def list_jobs(
        self, states: Iterable[JobState] | None = None, project_id: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Oldest first; `limit` keeps the newest ones."""
        ...

    def counts(self) -> dict[str, int]:
        """Jobs per state value (every JobState present), without loading the jobs."""
        ...

    # ------------------------------------------------------------------ running (workers)
    def lease(self, worker: str, lease_seconds: float, kinds: Iterable[str] | None = None) -> Lease | None:
        """The next runnable job (highest priority, then first in), or None (nothing runnable, or paused)."""
        ...

    def heartbeat(
        self, tokens: Mapping[str, str], lease_seconds: float, progress: Mapping[str, Progress] | None = None
    ) -> HeartbeatReply:
        """Extend leases (job id -> token), record progress; learn which jobs to cancel and which leases we lost."""
        ...

    def complete(self, job_id: str, token: str, result: JsonDict) -> Job: ...

    def fail(self, job_id: str, token: str, error: str, tb: str | None, retryable: bool,
             wait: float | None = None) -> Job:
        """Retry after an exponential backoff while attempts remain (and `retryable`), else failed. With `wait`
        (a full disk: not the job's fault) the attempt is not counted and the job runs again after `wait` s."""
        ...

    def acknowledge_cancel(self, job_id: str, token: str) -> Job:
        """The worker stopped a job whose cancel it saw on a heartbeat: cancelled."""
        ...

    def release(self, job_id: str, token: str) -> Job:
        """Give a running job back (shutdown): queued again, the attempt not counted."""
        ...

    # ------------------------------------------------------------------ user actions
    def cancel(self, job_id: str, superseded_by: str | None = None) -> Job:
        """A waiting job is cancelled at once; a running one gets a flag its worker sees on its next heartbeat."""
        ...

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again with fresh attempts."""
        ...

    def mirror(self, job_id: str, update: FarmUpdate) -> Job:
        """Write the farm's view of a farm record (state, progress, node, result or error), every state change
        checked against the state machine (a step the poll missed is walked through: queued → running →
        succeeded). A finished record stays finished unless a new `farm_id` resubmits it. IllegalTransition for
        a job that is not a farm record (and is not a waiting job being sent to the farm)."""
        ...

    def set_priority(self, job_id: str, priority: int) -> Job:
        """Clamped to 0..10; a queued job moves in the queue."""
        ...

    def remove(self, job_id: str) -> None:
        """Forget a finished job (its previews stay on disk)."""
        ...

    def set_paused(self, paused: bool) -> None:
        """A paused store leases nothing, to every worker that shares it."""
        ...

    def is_paused(self) -> bool: ...

    # ------------------------------------------------------------------ housekeeping (any worker, periodically)
    def reap(self) -> list[str]:
        """Requeue jobs whose lease expired or whose worker on this host died; promote due retries. Their ids."""
        ...

    def purge_finished(self, older_than_seconds: float) -> int:
        """Remove finished jobs older than the retention period. How many."""
        ...

    def next_due(self) -> float | None:
        """When the earliest retrying job becomes runnable (Unix seconds), for the dispatcher's timer."""
        ...

    # ------------------------------------------------------------------ following changes
    def current_rev(self) -> int:
        """The change log's revision: read it before a full load, then ask `changes_since` for what came after."""
        ...

    def changes_since(self, rev: int) -> Changes:
        """Jobs changed after `rev`, in order, once each; job_ids None when `rev` is too old (reload all)."""
        ...

    def watch(self, on_change: Callable[[], None]) -> StoreWatch:
        """Call `on_change` (from any thread, with no lock held) soon after each change by anyone. Started."""
        ...

    def close(self) -> None: ...
