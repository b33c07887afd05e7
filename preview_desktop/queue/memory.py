"""The in-memory job store: LocalStore's semantics without a disk, for fast tests (dramatiq's StubBroker is the
model). One process only; everything is lost when it ends.

The rules (what an operation does to a job) are rules.py, shared with LocalStore; here is only where things are
kept: job records pickled (a copy in and a copy out, as on disk, so a caller's Job never aliases the store's),
a heap of queue entries (-priority, seq, id) deleted lazily like LocalStore's, and one lock around each operation.
Each operation changes its Job copy first and the store after, so one that raises leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.job import Job, JobState, Progress
from ..core.spec import JobSpec
from ..errors import JobNotFound
from . import rules
from .base import Changes, FarmUpdate, HeartbeatReply, JsonDict, Lease, StoreWatch
from .rules import LOG_KEEP, MAX_STALLS, RETRY_BASE_SECONDS

if TYPE_CHECKING:
    from .base import JobStore

log = logging.getLogger(__name__)


@dataclass
class _Held:
    """A lease as the store keeps it."""

    deadline: float
    token: str
    worker: str


class _Watch:
    """A MemoryStore subscription: calls come from the thread that made the change, after the lock is released."""

    def __init__(self, store: MemoryStore, on_change: Callable[[], None]) -> None:
        self._store = store
        self.on_change = on_change
        self.active = True

    def stop(self) -> None:
        self.active = False
        self._store._unwatch(self)


class MemoryStore:
    """A job store in this process's memory. Thread-safe (one lock); the same contract as LocalStore."""

    def __init__(
        self,
        queue_max: int = 1000,
        clock: Callable[[], float] = time.time,
        max_stalls: int = MAX_STALLS,
        retry_base: float = RETRY_BASE_SECONDS,
    ) -> None:
        self.queue_max = queue_max
        self.max_stalls = max_stalls
        self.retry_base = retry_base
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, bytes] = {}  # id -> pickled Job.to_record(), in submit order
        self._counts = rules.new_counts()
        self._leases: dict[str, _Held] = {}
        self._delayed: dict[str, float] = {}  # id -> due time (state retrying)
        self._queue: list[tuple[int, int, str]] = []  # heap of (-priority, seq, id); stale entries are skipped
        self._groups: dict[str, list[str]] = {}  # supersede group -> job ids
        self._log: dict[int, str] = {}  # rev -> job id ("" for the pause flag); the last LOG_KEEP
        self._rev = 0
        self._seq = 0
        self._paused = False
        self._watches: list[_Watch] = []

    # ------------------------------------------------------------------ helpers (lock held)
    @contextlib.contextmanager
    def _op(self) -> Iterator[None]:
        """One atomic operation; watchers hear of it afterwards (with the lock released) if it changed anything."""
        with self._lock:
            rev = self._rev
            yield
            watches = list(self._watches) if self._rev != rev else []
        for watch in watches:
            if watch.active:
                try:
                    watch.on_change()
                except Exception:
                    log.exception("a store watcher failed")

    def _record(self, job_id: str) -> JsonDict | None:
        data = self._records.get(job_id)
        return None if data is None else pickle.loads(data)

    def _load(self, job_id: str) -> Job:
        record = self._record(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return Job.from_record(record)

    def _save(self, job: Job, previous: JobState | None) -> None:
        rules.recount(self._counts, previous, job.state)
        self._records[job.id] = pickle.dumps(job.to_record(), pickle.HIGHEST_PROTOCOL)
        self._logged(job.id)

    def _logged(self, job_id: str) -> None:
        self._rev += 1
        self._log[self._rev] = job_id
        self._log.pop(self._rev - LOG_KEEP, None)

    def _enqueue(self, job: Job) -> None:
        self._seq += 1
        job.queue_seq = self._seq
        heapq.heappush(self._queue, (-job.priority, job.queue_seq, job.id))

    def _place(self, job: Job) -> None:
        """After a change of state: a queued job joins the queue, a retrying one waits for its due time."""
        if job.state is JobState.QUEUED:
            self._enqueue(job)
        elif job.state is JobState.RETRYING and job.not_before is not None:
            self._delayed[job.id] = job.not_before

    def _promote_due(self, now: float) -> None:
        for job_id in [i for i, when in self._delayed.items() if when <= now]:
            del self._delayed[job_id]
            record = self._record(job_id)
            if record is not None and record["state"] == JobState.RETRYING.value:
                job = Job.from_record(record)
                job.transition(JobState.QUEUED, now)
                self._enqueue(job)
                self._save(job, JobState.RETRYING)

    def _state_of(self, job_id: str) -> JobState | None:
        record = self._record(job_id)
        return None if record is None else JobState(record["state"])

    def _unwatch(self, watch: _Watch) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._watches.remove(watch)

    # ------------------------------------------------------------------ submitting and reading
    def submit(self, spec: JobSpec, *, kind: str = "render", origin: str = "local") -> Job:
        now = self._clock()
        job = rules.new_job(spec, kind, origin, now)
        with self._op():
            rules.check_room(self._counts, self.queue_max)
            self._join_group(job, now, cancel_older=spec.supersede)
            self._enqueue(job)
            self._save(job, None)
        return job

    def record_failed(self, spec_data: dict[str, Any], error: str, *, kind: str = "render",
                      origin: str = "local") -> Job:
        now = self._clock()
        job = rules.failed_job(spec_data, error, kind, origin, now)
        with self._op():
            self._join_group(job, now, cancel_older=spec_data.get("supersede") is not False)
            self._save(job, None)
        return job

    def _join_group(self, job: Job, now: float, cancel_older: bool) -> None:
        group = rules.group_of(job)
        if group is None:
            return

        def cancel(other_id: str) -> None:
            self._cancel_locked(other_id, now, superseded_by=job.id)

        self._groups[group] = rules.supersede(self._groups.get(group, []), job.id, self._state_of,
                                              cancel if cancel_older else None)

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._load(job_id)

    def list_jobs(
        self, states: Iterable[JobState] | None = None, project_id: str | None = None, limit: int | None = None
    ) -> list[Job]:
        wanted = rules.state_values(states)
        with self._lock:
            records = [pickle.loads(data) for data in self._records.values()]
        jobs = [Job.from_record(r) for r in records if rules.matches(r, wanted, project_id)]
        return rules.oldest_first(jobs, limit)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def is_paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        with self._op():
            self._paused = paused
            self._logged("")

    def next_due(self) -> float | None:
        with self._lock:
            return min(self._delayed.values()) if self._delayed else None

    def current_rev(self) -> int:
        return self._rev

    def changes_since(self, rev: int) -> Changes:
        with self._lock:
            return rules.changes(rev, self._rev, self._log.get)

    def watch(self, on_change: Callable[[], None]) -> StoreWatch:
        """`on_change` runs in the thread that made the change, right after it (exceptions are logged)."""
        watch = _Watch(self, on_change)
        with self._lock:
            self._watches.append(watch)
        return watch

    # ------------------------------------------------------------------ running
    def lease(self, worker: str, lease_seconds: float, kinds: Iterable[str] | None = None) -> Lease | None:
        allowed = set(kinds) if kinds is not None else None
        now = self._clock()
        with self._op():
            self._promote_due(now)
            if self._paused:
                return None
            skipped: list[tuple[int, int, str]] = []
            try:
                while self._queue:
                    entry = heapq.heappop(self._queue)
                    record = self._record(entry[2])
                    if record is None or not rules.is_current(record, entry[1]):
                        continue  # stale entry: cancelled, re-prioritised or removed
                    job = Job.from_record(record)
                    if allowed is not None and job.kind not in allowed:
                        skipped.append(entry)
                        continue
                    held = _Held(now + lease_seconds, rules.start_attempt(job, worker, now), worker)
                    self._leases[job.id] = held
                    self._save(job, JobState.QUEUED)
                    return Lease(job, held.token, held.deadline)
                return None
            finally:
                for entry in skipped:  # kinds this worker cannot run keep their place
                    heapq.heappush(self._queue, entry)

    def heartbeat(
        self, tokens: Mapping[str, str], lease_seconds: float, progress: Mapping[str, Progress] | None = None
    ) -> HeartbeatReply:
        now = self._clock()
        cancel: set[str] = set()
        lost: set[str] = set()
        with self._op():
            for job_id, token in tokens.items():
                held = self._leases.get(job_id)
                record = self._record(job_id)
                if held is None or held.token != token or record is None:
                    lost.add(job_id)
                    continue
                held.deadline = now + lease_seconds
                if record["cancel_requested"]:
                    cancel.add(job_id)
                if progress and job_id in progress:
                    job = Job.from_record(record)
                    job.progress, job.updated_at = progress[job_id], now
                    self._save(job, job.state)
        return HeartbeatReply(frozenset(cancel), frozenset(lost))

    def _finish(self, job_id: str, token: str, update: Callable[[Job, float], object]) -> Job:
        now = self._clock()
        with self._op():
            held = self._leases.get(job_id)
            rules.check_token(held.token if held else None, job_id, token)
            job = self._load(job_id)
            previous = job.state
            update(job, now)
            del self._leases[job_id]
            self._place(job)
            self._save(job, previous)
        return job

    def complete(self, job_id: str, token: str, result: JsonDict) -> Job:
        return self._finish(job_id, token, lambda job, now: rules.succeed(job, result, now))

    def fail(self, job_id: str, token: str, error: str, tb: str | None, retryable: bool,
             wait: float | None = None) -> Job:
        return self._finish(job_id, token,
                            lambda job, now: rules.fail(job, error, tb, retryable, now, self.retry_base, wait))

    def acknowledge_cancel(self, job_id: str, token: str) -> Job:
        return self._finish(job_id, token, rules.acknowledge_cancel)

    def release(self, job_id: str, token: str) -> Job:
        return self._finish(job_id, token, rules.release)

    # ------------------------------------------------------------------ user actions
    def _cancel_locked(self, job_id: str, now: float, superseded_by: str | None) -> Job:
        job = self._load(job_id)
        previous = job.state
        if rules.cancel(job, now, superseded_by):
            self._delayed.pop(job_id, None)
            self._save(job, previous)
        return job

    def cancel(self, job_id: str, superseded_by: str | None = None) -> Job:
        now = self._clock()
        with self._op():
            return self._cancel_locked(job_id, now, superseded_by)

    def retry(self, job_id: str) -> Job:
        now = self._clock()
        with self._op():
            job = self._load(job_id)
            if job.state in (JobState.FAILED, JobState.CANCELLED):
                rules.check_room(self._counts, self.queue_max, job_id)
            previous = job.state
            rules.retry(job, now)
            self._enqueue(job)
            self._save(job, previous)
        return job

    def mirror(self, job_id: str, update: FarmUpdate) -> Job:
        now = self._clock()
        with self._op():
            job = self._load(job_id)
            previous = job.state
            if rules.mirror(job, update, now):
                self._delayed.pop(job_id, None)
                group = rules.group_of(job)
                if group is not None and group in self._groups:
                    self._groups[group] = [i for i in self._groups[group] if i != job_id]
            self._save(job, previous)
        return job

    def set_priority(self, job_id: str, priority: int) -> Job:
        now = self._clock()
        with self._op():
            job = self._load(job_id)
            if rules.set_priority(job, priority, now):
                self._enqueue(job)  # the old entry becomes stale
            self._save(job, job.state)
        return job

    def remove(self, job_id: str) -> None:
        with self._op():
            job = self._load(job_id)
            rules.check_removable(job)
            del self._records[job_id]
            rules.recount(self._counts, job.state, None)
            self._logged(job_id)

    # ------------------------------------------------------------------ housekeeping
    def reap(self) -> list[str]:
        """Requeue expired leases (and those of dead processes on this host); promote due retries."""
        now = self._clock()
        reaped: list[str] = []
        with self._op():
            for job_id, held in list(self._leases.items()):
                if not rules.lease_expired(held.deadline, held.worker, now):
                    continue
                del self._leases[job_id]
                record = self._record(job_id)
                if record is None:
                    continue
                job = Job.from_record(record)
                previous = job.state
                rules.stalled(job, now, self.max_stalls)
                self._place(job)
                self._save(job, previous)
                reaped.append(job_id)
            self._promote_due(now)
        return reaped

    def purge_finished(self, older_than_seconds: float) -> int:
        return rules.purge_finished(self, self._clock() - older_than_seconds)

    def close(self) -> None:
        with self._lock:
            self._watches.clear()


if TYPE_CHECKING:

    def _is_a_job_store(store: MemoryStore) -> JobStore:
        return store  # mypy checks that MemoryStore implements the whole interface
