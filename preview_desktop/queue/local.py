"""The local job store: diskcache (SQLite, WAL) shared safely by the window, the CLI and headless workers.

Why leases: a job popped by a process that is then killed would be lost. Instead a worker *leases* a job
(token + deadline) and heartbeats while it runs; a reaper puts expired leases back in the queue, so delivery is
at-least-once and a kill -9 loses nothing. Every operation is one `transact()` (BEGIN IMMEDIATE, a
cross-process write lock), so no reader ever sees half an operation.

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
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import diskcache

from ..core.ids import supersede_group
from ..core.job import FINISHED_STATES, Job, JobState, Progress, new_job_id
from ..core.spec import JobSpec
from ..errors import IllegalTransition, JobNotFound, QueueFull, StoreUnavailable
from .base import Changes, HeartbeatReply, Lease

LOG_KEEP = 4000
META = "meta"
JOB_PREFIX = "job:"
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
MAX_STALLS = 5


def _queue_prefix(priority: int) -> str:
    return f"q{10 - priority:02d}"


def _new_meta() -> dict[str, Any]:
    return {
        "rev": 0,
        "counts": {s.value: 0 for s in JobState},
        "leases": {},  # id -> [deadline, token, worker]
        "delayed": {},  # id -> due time (state retrying)
        "qlen": {},  # prefix -> entries (stale ones included)
        "paused": False,
        "seq": 0,
    }


def supersede_key(job: Job) -> str | None:
    """The store key listing the jobs of the job's supersede group (core/ids.py); None for inline timelines."""
    group = supersede_group(job.project_id, job.spec.get("timeline"))
    return None if group is None else "sup:" + group


def pid_alive(pid: int) -> bool:
    """POSIX only; elsewhere we cannot ask cheaply and safely, so assume alive and wait for the deadline."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


HOSTNAME = socket.gethostname()


def make_worker_id() -> str:
    return f"{HOSTNAME}:{os.getpid()}:{secrets.token_hex(2)}"


class LocalStore:
    """The diskcache job store. Thread-safe (one SQLite connection per thread) and multi-process safe."""

    def __init__(
        self,
        directory: Path,
        queue_max: int = 1000,
        clock: Callable[[], float] = time.time,
        max_stalls: int = MAX_STALLS,
        retry_base: float = RETRY_BASE_SECONDS,
    ) -> None:
        self.directory = Path(directory)
        self.queue_max = queue_max
        self.max_stalls = max_stalls
        self.retry_base = retry_base
        self._clock = clock
        try:
            # Everything stays inside SQLite (no side files) so one transaction covers it all.
            self._cache = diskcache.Cache(
                str(self.directory),
                eviction_policy="none",
                size_limit=2**62,
                cull_limit=0,
                timeout=30,
                disk_min_file_size=2**30,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the job store at {self.directory}: {exc}") from exc
        with self._cache.transact():
            if self._cache.get(META) is None:
                self._cache.set(META, _new_meta())

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
        """Write a job and account for it in meta (counts, active set, change log)."""
        counts = meta["counts"]
        if previous is not None:
            counts[previous.value] -= 1
        counts[job.state.value] += 1
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

    def _waiting(self, meta: dict[str, Any]) -> int:
        counts = meta["counts"]
        return int(counts[JobState.QUEUED.value] + counts[JobState.RETRYING.value])

    def _promote_due(self, meta: dict[str, Any], now: float) -> None:
        """Retrying jobs whose backoff has passed go back into the queue."""
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

    def _check_token(self, meta: dict[str, Any], job_id: str, token: str) -> Job:
        lease = meta["leases"].get(job_id)
        if lease is None or lease[1] != token:
            raise IllegalTransition(f"job {job_id}: this worker no longer holds its lease", job_id=job_id)
        return self._load(job_id)

    # ------------------------------------------------------------------ submitting and reading
    def submit(self, spec: JobSpec, *, kind: str = "render", origin: str = "local") -> Job:
        """Store a new queued job. Refuses with QueueFull (storing nothing) when PREVIEW_QUEUE_MAX is reached.

        A new job for the same project and timeline supersedes (cancels) older unfinished ones unless the spec
        says `"supersede": false`.
        """
        now = self._clock()
        job = Job(
            id=new_job_id(now),
            project_id=spec.projectId,
            spec=spec.to_wire(),
            kind=kind,
            priority=spec.priority,
            attempts_allowed=spec.attempts,
            created_at=now,
            updated_at=now,
            origin=origin,
        )
        with self._cache.transact():
            meta = self._meta()
            if self._waiting(meta) >= self.queue_max:
                raise QueueFull(
                    f"the queue is full ({self.queue_max} jobs waiting, PREVIEW_QUEUE_MAX); nothing was queued"
                )
            self._supersede(meta, job, now, cancel_older=spec.supersede)
            self._enqueue(meta, job)
            self._save(meta, job, None)
            self._cache.set(META, meta)
        return job

    def record_failed(self, spec_data: dict[str, Any], error: str, *, kind: str = "render",
                      origin: str = "local") -> Job:
        """Store a job that failed before it could be queued (a watched export whose intake failed), so the
        user sees it with its reason. It counts as failed, never as waiting, and supersedes like a submit;
        retrying it runs the recorded spec, which fails again at the job boundary if it is still invalid."""
        now = self._clock()
        project, priority = spec_data.get("projectId"), spec_data.get("priority")
        job = Job(
            id=new_job_id(now),
            project_id=project if isinstance(project, str) and project else "untitled",
            spec=dict(spec_data),
            kind=kind,
            state=JobState.FAILED,
            priority=max(0, min(10, priority)) if isinstance(priority, int) else 5,
            created_at=now,
            updated_at=now,
            finished_at=now,
            error=error,
            origin=origin,
        )
        with self._cache.transact():
            meta = self._meta()
            self._supersede(meta, job, now, cancel_older=spec_data.get("supersede") is not False)
            self._save(meta, job, None)
            self._cache.set(META, meta)
        return job

    def _supersede(self, meta: dict[str, Any], job: Job, now: float, cancel_older: bool) -> None:
        key = supersede_key(job)
        if key is None:
            return
        keep: list[str] = []
        for other_id in self._cache.get(key) or []:
            record = self._cache.get(JOB_PREFIX + other_id)
            if record is None or JobState(record["state"]).finished:
                continue
            if cancel_older:
                self._cancel_locked(meta, other_id, now, superseded_by=job.id)
            else:
                keep.append(other_id)
        self._cache.set(key, [*keep, job.id])

    def get(self, job_id: str) -> Job:
        return self._load(job_id)

    def list_jobs(
        self, states: Iterable[JobState] | None = None, project_id: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs, oldest first, optionally filtered. O(number of jobs): fine for tens of thousands."""
        wanted = {JobState(s) for s in states} if states else None
        jobs: list[Job] = []
        for key in self._cache.iterkeys():
            if not isinstance(key, str) or not key.startswith(JOB_PREFIX):
                if isinstance(key, str) and key > JOB_PREFIX:
                    break
                continue
            record = self._cache.get(key)
            if record is None:
                continue
            if wanted is not None and record["state"] not in {s.value for s in wanted}:
                continue
            if project_id is not None and record["project_id"] != project_id:
                continue
            jobs.append(Job.from_record(record))
        jobs.sort(key=lambda j: (j.created_at, j.id))
        return jobs[-limit:] if limit else jobs

    def counts(self) -> dict[str, int]:
        return dict(self._meta()["counts"])

    def is_paused(self) -> bool:
        return bool(self._meta()["paused"])

    def set_paused(self, paused: bool) -> None:
        with self._cache.transact():
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
        """Which jobs changed after revision `rev` (ids in order, once each); None when too far behind."""
        with self._cache.transact():
            current = int(self._meta()["rev"])
            if rev >= current:
                return Changes(current, ())
            if current - rev > LOG_KEEP - 1 or rev < 0:
                return Changes(current, None)
            ids = (self._cache.get(f"log:{r:012d}") for r in range(rev + 1, current + 1))
            return Changes(current, tuple(dict.fromkeys(i for i in ids if i)))

    # ------------------------------------------------------------------ running
    def lease(self, worker: str, lease_seconds: float, kinds: Iterable[str] | None = None) -> Lease | None:
        """Take the next runnable job (highest priority, then oldest) for `lease_seconds`, or None."""
        allowed = set(kinds) if kinds is not None else None
        now = self._clock()
        with self._cache.transact():
            meta = self._meta()
            if meta["delayed"]:
                self._promote_due(meta, now)
            if meta["paused"]:
                self._cache.set(META, meta)
                return None
            skipped: list[tuple[str, tuple[str, int]]] = []
            lease: Lease | None = None
            for prefix in sorted(p for p, n in meta["qlen"].items() if n > 0):
                while meta["qlen"][prefix] > 0:
                    key, entry = self._cache.pull(prefix=prefix)
                    if key is None:
                        meta["qlen"][prefix] = 0
                        break
                    meta["qlen"][prefix] -= 1
                    job_id, seq = entry
                    record = self._cache.get(JOB_PREFIX + job_id)
                    if record is None or record["state"] != JobState.QUEUED.value or record["queue_seq"] != seq:
                        continue  # stale entry: cancelled, re-prioritised or removed
                    job = Job.from_record(record)
                    if allowed is not None and job.kind not in allowed:
                        skipped.append((prefix, entry))
                        continue
                    job.transition(JobState.RUNNING, now)
                    job.attempts_made += 1
                    job.worker = worker
                    job.error = None
                    job.traceback = None
                    token = secrets.token_hex(8)
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
            self._cache.set(META, meta)
            return lease

    def heartbeat(
        self, tokens: Mapping[str, str], lease_seconds: float, progress: Mapping[str, Progress] | None = None
    ) -> HeartbeatReply:
        """Extend our leases, record progress, and learn which jobs were cancelled or lost."""
        now = self._clock()
        cancel: set[str] = set()
        lost: set[str] = set()
        with self._cache.transact():
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
        with self._cache.transact():
            meta = self._meta()
            job = self._check_token(meta, job_id, token)
            previous = job.state
            del meta["leases"][job_id]
            update(job, meta, now)
            self._save(meta, job, previous)
            self._cache.set(META, meta)
        return job

    def complete(self, job_id: str, token: str, result: dict[str, Any]) -> Job:
        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            job.transition(JobState.SUCCEEDED, now)
            job.result = result
            job.progress = Progress(1.0, job.progress.frames, job.progress.frames, job.progress.fps)

        return self._finish(job_id, token, update)

    def fail(self, job_id: str, token: str, error: str, tb: str | None, retryable: bool) -> Job:
        """Record a failed attempt: retry after an exponential backoff while attempts remain, else failed."""

        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            job.error = error
            job.traceback = tb
            if retryable and job.attempts_made < job.attempts_allowed and not job.cancel_requested:
                delay = min(RETRY_MAX_SECONDS, self.retry_base * 2 ** (job.attempts_made - 1))
                job.transition(JobState.RETRYING, now)
                job.not_before = now + delay
                meta["delayed"][job.id] = job.not_before
            else:
                job.transition(JobState.CANCELLED if job.cancel_requested else JobState.FAILED, now)

        return self._finish(job_id, token, update)

    def acknowledge_cancel(self, job_id: str, token: str) -> Job:
        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            job.transition(JobState.CANCELLED, now)

        return self._finish(job_id, token, update)

    def release(self, job_id: str, token: str) -> Job:
        """Give a running job back (shutdown): queued again, the attempt not counted."""

        def update(job: Job, meta: dict[str, Any], now: float) -> None:
            if job.cancel_requested:
                job.transition(JobState.CANCELLED, now)
                return
            job.transition(JobState.QUEUED, now)
            job.attempts_made = max(0, job.attempts_made - 1)
            job.worker = None
            self._enqueue(meta, job)

        return self._finish(job_id, token, update)

    # ------------------------------------------------------------------ user actions
    def _cancel_locked(self, meta: dict[str, Any], job_id: str, now: float, superseded_by: str | None) -> Job:
        job = self._load(job_id)
        previous = job.state
        if previous is JobState.RUNNING:
            if not job.cancel_requested or superseded_by:
                job.cancel_requested = True
                job.superseded_by = superseded_by or job.superseded_by
                job.updated_at = now
                self._save(meta, job, previous)
            return job
        job.transition(JobState.CANCELLED, now)
        job.superseded_by = superseded_by
        meta["delayed"].pop(job_id, None)
        self._save(meta, job, previous)
        return job

    def cancel(self, job_id: str, superseded_by: str | None = None) -> Job:
        """Cancel a waiting job now; ask a running one to stop (its worker sees the flag on its heartbeat)."""
        now = self._clock()
        with self._cache.transact():
            meta = self._meta()
            job = self._cancel_locked(meta, job_id, now, superseded_by)
            self._cache.set(META, meta)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again, with a fresh set of attempts."""
        now = self._clock()
        with self._cache.transact():
            meta = self._meta()
            job = self._load(job_id)
            if job.state in (JobState.FAILED, JobState.CANCELLED) and self._waiting(meta) >= self.queue_max:
                raise QueueFull(f"the queue is full ({self.queue_max} jobs waiting); {job_id} was not retried")
            previous = job.state
            job.transition(JobState.QUEUED, now)
            job.attempts_made = 0
            job.stalls = 0
            job.superseded_by = None
            job.progress = Progress()
            job.finished_at = None
            self._enqueue(meta, job)
            self._save(meta, job, previous)
            self._cache.set(META, meta)
        return job

    def set_priority(self, job_id: str, priority: int) -> Job:
        priority = max(0, min(10, priority))
        now = self._clock()
        with self._cache.transact():
            meta = self._meta()
            job = self._load(job_id)
            if job.state.finished:
                raise IllegalTransition(f"cannot change the priority of job {job_id}: it is {job.state.value}")
            job.priority = priority
            job.spec = {**job.spec, "priority": priority}
            job.updated_at = now
            if job.state is JobState.QUEUED:
                self._enqueue(meta, job)  # the old entry becomes stale
            self._save(meta, job, job.state)
            self._cache.set(META, meta)
        return job

    def remove(self, job_id: str) -> None:
        """Forget a finished job's record (its preview folder is left alone)."""
        with self._cache.transact():
            meta = self._meta()
            job = self._load(job_id)
            if not job.state.finished:
                raise IllegalTransition(f"cannot remove job {job_id}: it is {job.state.value}")
            self._cache.delete(JOB_PREFIX + job_id)
            meta["counts"][job.state.value] -= 1
            self._log(meta, job_id)
            self._cache.set(META, meta)

    # ------------------------------------------------------------------ housekeeping
    def reap(self) -> list[str]:
        """Requeue jobs whose lease expired, or whose worker on this host has died. Returns their ids."""
        now = self._clock()
        reaped: list[str] = []
        with self._cache.transact():
            meta = self._meta()
            for job_id, (deadline, _token, worker) in list(meta["leases"].items()):
                host, _, rest = worker.partition(":")
                pid_text = rest.partition(":")[0]
                dead = host == HOSTNAME and pid_text.isdigit() and not pid_alive(int(pid_text))
                if deadline > now and not dead:
                    continue
                del meta["leases"][job_id]
                try:
                    job = self._load(job_id)
                except JobNotFound:
                    continue
                previous = job.state
                job.stalls += 1
                job.worker = None
                if job.cancel_requested:
                    job.transition(JobState.CANCELLED, now)
                elif job.stalls > self.max_stalls:
                    job.transition(JobState.FAILED, now)
                    job.error = f"its worker stopped responding {job.stalls} times; giving up"
                else:
                    job.transition(JobState.QUEUED, now)
                    job.attempts_made = max(0, job.attempts_made - 1)
                    job.progress = Progress()
                    self._enqueue(meta, job)
                self._save(meta, job, previous)
                reaped.append(job_id)
            due = any(when <= now for when in meta["delayed"].values())
            if due:
                self._promote_due(meta, now)
            if reaped or due:
                self._cache.set(META, meta)
        return reaped

    def purge_finished(self, older_than_seconds: float) -> int:
        """Delete finished job records older than the retention period (their previews stay on disk)."""
        cutoff = self._clock() - older_than_seconds
        old = [
            j.id
            for j in self.list_jobs(states=FINISHED_STATES)
            if j.finished_at is not None and j.finished_at < cutoff
        ]
        for job_id in old:
            with contextlib.suppress(JobNotFound, IllegalTransition):
                self.remove(job_id)
        return len(old)

    def lease_of(self, job_id: str) -> tuple[float, str, str] | None:
        lease = self._meta()["leases"].get(job_id)
        return (float(lease[0]), str(lease[1]), str(lease[2])) if lease else None

    def close(self) -> None:
        self._cache.close()

    @property
    def db_path(self) -> Path:
        return self.directory / diskcache.core.DBNAME


class StoreWatcher:
    """Calls `on_change` (from its own thread) when any process commits to the store.

    SQLite's `PRAGMA data_version` changes when another connection commits; reading it costs no I/O beyond the
    WAL index, so polling every 10 ms is nearly free and gives other processes' submits ~10 ms latency.
    """

    def __init__(self, store: LocalStore, on_change: Callable[[], None], interval: float = 0.01) -> None:
        self._path = store.db_path
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def _run(self) -> None:
        con = sqlite3.connect(str(self._path), timeout=5, isolation_level=None, check_same_thread=False)
        try:
            last = con.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self._interval):
                try:
                    version = con.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue
                if version != last:
                    last = version
                    self._on_change()
        finally:
            con.close()
