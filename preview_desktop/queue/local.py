"""The local job store: diskcache (SQLite, WAL) shared safely by the window, the CLI and headless workers.

Why leases: a job popped by a process that is then killed would be lost. Instead a worker *leases* a job
(token + deadline) and heartbeats while it runs; a reaper puts expired leases back in the queue, so delivery is
at-least-once and a kill -9 loses nothing. Every operation is one `transact()` (BEGIN IMMEDIATE, a
cross-process write lock), so no reader ever sees half an operation. What each operation does to a job is in
rules.py (shared with the in-memory store); this module is where things are kept.

Keys:
  job:{id}         the job record (Job.to_record())
  log:{rev}        change log: which job changed at each revision (the last LOG_KEEP are kept)
  sup:{digest}     ids of jobs for one project + timeline, to supersede older ones
  q{NN}-{n}        queue entries (id, seq) pushed per priority; NN = 10 - priority, so the first prefix wins
  meta             rev, counts by state, leases, retry due times, queue lengths, paused flag (kept small:
                   it is read and written by every operation)
Queue entries are deleted lazily: an entry whose job is no longer queued, or whose seq is stale (the job was
re-prioritised), is skipped when pulled.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import diskcache

from ..core.job import Job, JobState, Progress
from ..core.spec import JobSpec
from ..errors import JobNotFound, StoreUnavailable, disk_full_as_typed
from . import rules
from .base import Changes, FarmUpdate, HeartbeatReply, JsonDict, Lease, StoreWatch
from .rules import LOG_KEEP, MAX_STALLS, RETRY_BASE_SECONDS
from .watch import StoreWatcher

META = "meta"
JOB_PREFIX = "job:"


def _queue_prefix(priority: int) -> str:
    return f"q{10 - priority:02d}"


def _new_meta() -> dict[str, Any]:
    return {
        "rev": 0,
        "counts": rules.new_counts(),
        "leases": {},  # id -> [deadline, token, worker]
        "delayed": {},  # id -> due time (state retrying)
        "qlen": {},  # prefix -> entries (stale ones included)
        "paused": False,
        "seq": 0,
    }


class LocalStore:
    """The diskcache job store. Thread-safe (one SQLite connection per thread) and multi-process safe."""

    def __init__(self, directory: Path, queue_max: int = 1000, clock: Callable[[], float] = time.time,
                 max_stalls: int = MAX_STALLS, retry_base: float = RETRY_BASE_SECONDS) -> None:
        self.directory = Path(directory)
        self.queue_max = queue_max
        self.max_stalls = max_stalls
        self.retry_base = retry_base
        self._clock = clock
        try:
            # Everything stays inside SQLite (no side files) so one transaction covers it all.
            with disk_full_as_typed(self.directory):
                self._cache = diskcache.Cache(str(self.directory), eviction_policy="none", size_limit=2**62,
                                              cull_limit=0, timeout=30, disk_min_file_size=2**30)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the job store at {self.directory}: {exc}") from exc
        with self._transact():
            if self._cache.get(META) is None:
                self._cache.set(META, _new_meta())

    @contextlib.contextmanager
    def _transact(self) -> Iterator[None]:
        """One operation, one transaction. A full disk rolls it back whole and becomes DiskFull: the store stays
        as it was, and the caller (the engine) writes again once there is space."""
        with disk_full_as_typed(self.directory), self._cache.transact():
            yield

    # ------------------------------------------------------------------ helpers (inside a transaction)
    def _meta(self) -> dict[str, Any]:
        meta = self._cache.get(META)
        return meta if meta is not None else _new_meta()

    def _load(self, job_id: str) -> Job:
        record = self._cache.get(JOB_PREFIX + job_id)
        if record is None:
            raise JobNotFound(job_id)
        return Job.from_record(record)

    def _save(self, meta: dict[str, Any], job: Job, previous: JobState | None) -> None:
        """Write a job and account for it in meta (counts, change log)."""
        rules.recount(meta["counts"], previous, job.state)
        self._cache.set(JOB_PREFIX + job.id, job.to_record())
        self._log(meta, job.id)

    def _log(self, meta: dict[str, Any], job_id: str) -> None:
        meta["rev"] += 1
        rev = meta["rev"]
        self._cache.set(f"log:{rev:012d}", job_id)
        if rev > LOG_KEEP:
            self._cache.delete(f"log:{rev - LOG_KEEP:012d}")

    def _enqueue(self, meta: dict[str, Any], job: Job) -> None:
        meta["seq"] += 1
        job.queue_seq = meta["seq"]
        prefix = _queue_prefix(job.priority)
        self._cache.push((job.id, job.queue_seq), prefix=prefix)
        meta["qlen"][prefix] = meta["qlen"].get(prefix, 0) + 1

    def _promote_due(self, meta: dict[str, Any], now: float) -> bool:
        """Retrying jobs whose backoff has passed go back into the queue. Whether meta changed (any was due)."""
        due = [job_id for job_id, when in meta["delayed"].items() if when <= now]
        for job_id in due:
            del meta["delayed"][job_id]
            try:
                job = self._load(job_id)
            except JobNotFound:
                continue
            if job.state is JobState.RETRYING:
                job.transition(JobState.QUEUED, now)
                self._enqueue(meta, job)
                self._save(meta, job, JobState.RETRYING)
        return bool(due)

    def _state_of(self, job_id: str) -> JobState | None:
        record = self._cache.get(JOB_PREFIX + job_id)
        return None if record is None else JobState(record["state"])

    # ------------------------------------------------------------------ submitting and reading
    def submit(self, spec: JobSpec, *, kind: str = "render", origin: str = "local") -> Job:
        """A new queued job (QueueFull, storing nothing, at PREVIEW_QUEUE_MAX); it supersedes (cancels) older
        unfinished jobs of its project and timeline unless the spec says `"supersede": false`."""
        return self._add(rules.new_job(spec, kind, origin, self._clock()), cancel_older=spec.supersede, queue=True)

    def record_failed(self, spec_data: dict[str, Any], error: str, *, kind: str = "render",
                      origin: str = "local") -> Job:
        """A job failed from the start, kept so the user sees why (see JobStore.record_failed)."""
        job = rules.failed_job(spec_data, error, kind, origin, self._clock())
        return self._add(job, cancel_older=spec_data.get("supersede") is not False, queue=False)

    def restore(self, job: Job) -> Job:
        """Put back a finished job found on disk (queue/recovery.py, after a damaged store was set aside)."""
        return self._add(job, cancel_older=False, queue=False)

    def _add(self, job: Job, cancel_older: bool, queue: bool) -> Job:
        """Store a new job in its supersede group, cancelling the group's unfinished jobs unless told not to."""
        with self._transact():
            meta = self._meta()
            if queue:
                rules.check_room(meta["counts"], self.queue_max)
            group = rules.group_of(job)
            if group is not None:

                def cancel(other_id: str) -> None:
                    self._cancel_locked(meta, other_id, job.created_at, superseded_by=job.id)

                key = "sup:" + group
                self._cache.set(key, rules.supersede(self._cache.get(key) or [], job.id, self._state_of,
                                                     cancel if cancel_older else None))
            if queue:
                self._enqueue(meta, job)
            self._save(meta, job, None)
            self._cache.set(META, meta)
        return job

    def get(self, job_id: str) -> Job:
        return self._load(job_id)

    def _records(self) -> Iterator[JsonDict]:
        for key in self._cache.iterkeys():  # sorted: job: keys come together
            if not isinstance(key, str) or not key.startswith(JOB_PREFIX):
                if isinstance(key, str) and key > JOB_PREFIX:
                    break
                continue
            record = self._cache.get(key)
            if record is not None:
                yield record

    def list_jobs(
        self, states: Iterable[JobState] | None = None, project_id: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs, oldest first, optionally filtered. O(number of jobs): fine for tens of thousands."""
        wanted = rules.state_values(states)
        jobs = [Job.from_record(r) for r in self._records() if rules.matches(r, wanted, project_id)]
        return rules.oldest_first(jobs, limit)

    def counts(self) -> dict[str, int]:
        return dict(self._meta()["counts"])

    def is_paused(self) -> bool:
        return bool(self._meta()["paused"])

    def set_paused(self, paused: bool) -> None:
        with self._transact():
            meta = self._meta()
            meta["paused"] = paused
            self._log(meta, "")
            self._cache.set(META, meta)

    def next_due(self) -> float | None:
        """When the earliest retrying job becomes runnable (for the dispatcher's timer)."""
        delayed = self._meta()["delayed"]
        return min(delayed.values()) if delayed else None

    def current_rev(self) -> int:
        return int(self._meta()["rev"])

    def changes_since(self, rev: int) -> Changes:
        """Jobs changed after revision `rev` (ids in order, once each); None: too far behind, or the window was
        pruned meanwhile (plain reads: every engine asks after each commit; a write lock each time queued them)."""
        current = int(self._meta()["rev"])
        found = rules.changes(rev, current, lambda r: self._cache.get(f"log:{r:012d}"))
        if int(self._meta()["rev"]) - rev > LOG_KEEP - 1:
            return Changes(current, None)
        return found

    def watch(self, on_change: Callable[[], None]) -> StoreWatch:
        """Sees commits by every process on this store (polls SQLite's data_version every 10 ms)."""
        watcher = StoreWatcher(self.db_path, on_change)
        watcher.start()
        return watcher

    # ------------------------------------------------------------------ running
    def lease(self, worker: str, lease_seconds: float, kinds: Iterable[str] | None = None) -> Lease | None:
        """The next runnable job (highest priority, then oldest) for `lease_seconds`, or None (writing nothing)."""
        allowed = set(kinds) if kinds is not None else None
        now = self._clock()
        with self._transact():
            meta = self._meta()
            changed = self._promote_due(meta, now)
            if meta["paused"]:
                if changed:
                    self._cache.set(META, meta)
                return None
            skipped: list[tuple[str, tuple[str, int]]] = []
            lease: Lease | None = None
            for prefix in sorted(p for p, n in meta["qlen"].items() if n > 0):
                while meta["qlen"][prefix] > 0:
                    changed = True  # an entry is pulled, or the count corrected
                    key, entry = self._cache.pull(prefix=prefix)
                    if key is None:
                        meta["qlen"][prefix] = 0
                        break
                    meta["qlen"][prefix] -= 1
                    job_id, seq = entry
                    record = self._cache.get(JOB_PREFIX + job_id)
                    if not rules.is_current(record, seq):
                        continue  # stale entry: cancelled, re-prioritised or removed
                    job = Job.from_record(record)
                    if allowed is not None and job.kind not in allowed:
                        skipped.append((prefix, entry))
                        continue
                    token = rules.start_attempt(job, worker, now)
                    deadline = now + lease_seconds
                    meta["leases"][job.id] = [deadline, token, worker]
                    self._save(meta, job, JobState.QUEUED)
                    lease = Lease(job, token, deadline)
                    break
                if lease is not None:
                    break
            for prefix, entry in skipped:  # kinds this worker cannot run go back to the front
                self._cache.push(entry, prefix=prefix, side="front")
                meta["qlen"][prefix] += 1
            if changed:
                self._cache.set(META, meta)
            return lease

    def heartbeat(
        self, tokens: Mapping[str, str], lease_seconds: float, progress: Mapping[str, Progress] | None = None
    ) -> HeartbeatReply:
        """Extend our leases, record progress, and learn which jobs were cancelled or lost."""
        now = self._clock()
        cancel: set[str] = set()
        lost: set[str] = set()
        with self._transact():
            meta = self._meta()
            for job_id, token in tokens.items():
                lease = meta["leases"].get(job_id)
                if lease is None or lease[1] != token:
                    lost.add(job_id)
                    continue
                lease[0] = now + lease_seconds
                record = self._cache.get(JOB_PREFIX + job_id)
                if record is None:
                    lost.add(job_id)
                    continue
                if record["cancel_requested"]:
                    cancel.add(job_id)
                if progress and job_id in progress:
                    job = Job.from_record(record)
                    job.progress = progress[job_id]
                    job.updated_at = now
                    self._cache.set(JOB_PREFIX + job_id, job.to_record())
                    self._log(meta, job_id)
            self._cache.set(META, meta)
        return HeartbeatReply(frozenset(cancel), frozenset(lost))

    def _finish(self, job_id: str, token: str, update: Callable[[Job, dict[str, Any], float], None]) -> Job:
        now = self._clock()
        with self._transact():
            meta = self._meta()
            held = meta["leases"].get(job_id)
            rules.check_token(held[1] if held else None, job_id, token)
            job = self._load(job_id)
            previous = job.state
            del meta["leases"][job_id]
            update(job, meta, now)
            self._save(meta, job, previous)
            self._cache.set(META, meta)
        return job

    def complete(self, job_id: str, token: str, result: JsonDict) -> Job:
        return self._finish(job_id, token, lambda job, meta, now: rules.succeed(job, result, now))

    def fail(self, job_id: str, token: str, error: str, tb: str | None, retryable: bool,
             wait: float | None = None) -> Job:
        """Record a failed attempt: retry after an exponential backoff while attempts remain, else failed."""

        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            due = rules.fail(job, error, tb, retryable, now, self.retry_base, wait)
            if due is not None:
                meta["delayed"][job.id] = due

        return self._finish(job_id, token, update)

    def acknowledge_cancel(self, job_id: str, token: str) -> Job:
        return self._finish(job_id, token, lambda job, meta, now: rules.acknowledge_cancel(job, now))

    def release(self, job_id: str, token: str) -> Job:
        """Give a running job back (shutdown): queued again, the attempt not counted."""

        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            if rules.release(job, now):
                self._enqueue(meta, job)

        return self._finish(job_id, token, update)

    # ------------------------------------------------------------------ user actions
    def _cancel_locked(self, meta: dict[str, Any], job_id: str, now: float, superseded_by: str | None) -> Job:
        job = self._load(job_id)
        previous = job.state
        if rules.cancel(job, now, superseded_by):
            meta["delayed"].pop(job_id, None)
            self._save(meta, job, previous)
        return job

    def cancel(self, job_id: str, superseded_by: str | None = None) -> Job:
        """Cancel a waiting job now; ask a running one to stop (its worker sees the flag on its heartbeat)."""
        now = self._clock()
        with self._transact():
            meta = self._meta()
            job = self._cancel_locked(meta, job_id, now, superseded_by)
            self._cache.set(META, meta)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again, with a fresh set of attempts."""
        now = self._clock()
        with self._transact():
            meta = self._meta()
            job = self._load(job_id)
            if job.state in (JobState.FAILED, JobState.CANCELLED):
                rules.check_room(meta["counts"], self.queue_max, job_id)
            previous = job.state
            rules.retry(job, now)
            self._enqueue(meta, job)
            self._save(meta, job, previous)
            self._cache.set(META, meta)
        return job

    def mirror(self, job_id: str, update: FarmUpdate) -> Job:
        """Write the farm's view of a farm record (rules.mirror); a job sent to the farm leaves the local queue."""
        now = self._clock()
        with self._transact():
            meta = self._meta()
            job = self._load(job_id)
            previous = job.state
            if rules.mirror(job, update, now):
                meta["delayed"].pop(job_id, None)
                if (group := rules.group_of(job)) is not None:  # it leaves the local supersede group too
                    self._cache.set("sup:" + group, [i for i in self._cache.get("sup:" + group) or [] if i != job_id])
            self._save(meta, job, previous)
            self._cache.set(META, meta)
        return job

    def set_priority(self, job_id: str, priority: int) -> Job:
        now = self._clock()
        with self._transact():
            meta = self._meta()
            job = self._load(job_id)
            if rules.set_priority(job, priority, now):
                self._enqueue(meta, job)  # the old entry becomes stale
            self._save(meta, job, job.state)
            self._cache.set(META, meta)
        return job

    def remove(self, job_id: str) -> None:
        """Forget a finished job's record (its preview folder is left alone)."""
        with self._transact():
            meta = self._meta()
            job = self._load(job_id)
            rules.check_removable(job)
            self._cache.delete(JOB_PREFIX + job_id)
            rules.recount(meta["counts"], job.state, None)
            self._log(meta, job_id)
            self._cache.set(META, meta)

    # ------------------------------------------------------------------ housekeeping
    def reap(self) -> list[str]:
        """Requeue jobs whose lease expired, or whose worker on this host has died. Returns their ids."""
        now = self._clock()
        reaped: list[str] = []
        with self._transact():
            meta = self._meta()
            for job_id, (deadline, _token, worker) in list(meta["leases"].items()):
                if not rules.lease_expired(deadline, worker, now):
                    continue
                del meta["leases"][job_id]
                try:
                    job = self._load(job_id)
                except JobNotFound:
                    continue
                previous = job.state
                if rules.stalled(job, now, self.max_stalls):
                    self._enqueue(meta, job)
                self._save(meta, job, previous)
                reaped.append(job_id)
            promoted = self._promote_due(meta, now)
            if reaped or promoted:  # an idle reap writes nothing either
                self._cache.set(META, meta)
        return reaped

    def purge_finished(self, older_than_seconds: float) -> int:
        """Delete finished job records older than the retention period (their previews stay on disk)."""
        return rules.purge_finished(self, self._clock() - older_than_seconds)

    def close(self) -> None:
        self._cache.close()

    @property
    def db_path(self) -> Path:
        return self.directory / diskcache.core.DBNAME
