"""What happens to a job at each store operation, as pure functions both stores call (local.py, memory.py).

The stores differ only in where records, leases and the queue live; the rules (state changes, attempts, backoff,
stalls, supersede, change-log windows) are here once, so the two cannot drift apart.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable

from ..core.ids import supersede_group
from ..core.job import FARM_KIND, FINISHED_STATES, TRANSITIONS, Job, JobState, Progress, new_job_id
from ..core.process import worker_is_dead_here
from ..core.spec import JobSpec
from ..errors import IllegalTransition, JobNotFound, QueueFull
from .base import Changes, FarmUpdate, JobStore, JsonDict

LOG_KEEP = 4000  # change-log entries kept; a reader further behind reloads everything
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
MAX_STALLS = 5


# ------------------------------------------------------------------ submitting and reading
def new_job(spec: JobSpec, kind: str, origin: str, now: float) -> Job:
    return Job(
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


def failed_job(spec_data: JsonDict, error: str, kind: str, origin: str, now: float) -> Job:
    """A job failed from the start (what could not be queued: a watched export whose intake failed), keeping
    whatever of its spec was readable so a retry can run it once it is fixed."""
    project, priority = spec_data.get("projectId"), spec_data.get("priority")
    return Job(
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


def check_room(counts: dict[str, int], queue_max: int, job_id: str | None = None) -> None:
    """Refuse with QueueFull when `queue_max` jobs wait (queued + retrying); running ones do not count."""
    if counts[JobState.QUEUED.value] + counts[JobState.RETRYING.value] < queue_max:
        return
    if job_id is None:
        raise QueueFull(f"the queue is full ({queue_max} jobs waiting, PREVIEW_QUEUE_MAX); nothing was queued")
    raise QueueFull(f"the queue is full ({queue_max} jobs waiting); {job_id} was not retried")


def group_of(job: Job) -> str | None:
    """The job's supersede group (core/ids.py); None for inline timelines."""
    return supersede_group(job.project_id, job.spec.get("timeline"))


def supersede(
    group: Iterable[str], new_id: str, state_of: Callable[[str], JobState | None], cancel: Callable[[str], None] | None
) -> list[str]:
    """Cancel (or, with `cancel` None, keep) the unfinished jobs of a group; returns the group's new member list."""
    keep: list[str] = []
    for other_id in group:
        state = state_of(other_id)
        if state is None or state.finished:
            continue
        if cancel is not None:
            cancel(other_id)
        else:
            keep.append(other_id)
    return [*keep, new_id]


def matches(record: JsonDict, states: frozenset[str] | None, project_id: str | None) -> bool:
    """`list_jobs` filter on a stored record (no Job built for records that are left out)."""
    if states is not None and record["state"] not in states:
        return False
    return project_id is None or record["project_id"] == project_id


def state_values(states: Iterable[JobState] | None) -> frozenset[str] | None:
    return frozenset(JobState(s).value for s in states) if states else None


def oldest_first(jobs: list[Job], limit: int | None) -> list[Job]:
    jobs.sort(key=lambda j: (j.created_at, j.id))
    return jobs[-limit:] if limit else jobs


def changes(rev: int, current: int, logged: Callable[[int], str | None]) -> Changes:
    """The change-log window after `rev` up to `current`; `logged(r)` is the job id written at revision r."""
    if rev >= current:
        return Changes(current, ())
    if current - rev > LOG_KEEP - 1 or rev < 0:
        return Changes(current, None)
    ids = (logged(r) for r in range(rev + 1, current + 1))
    return Changes(current, tuple(dict.fromkeys(i for i in ids if i)))


def recount(counts: dict[str, int], previous: JobState | None, new: JobState | None) -> None:
    """Keep the per-state counts: a job written (`previous` None when it is new) or removed (`new` None)."""
    if previous is not None:
        counts[previous.value] -= 1
    if new is not None:
        counts[new.value] += 1


def new_counts() -> dict[str, int]:
    return {s.value: 0 for s in JobState}


# ------------------------------------------------------------------ running
def is_current(record: JsonDict | None, seq: int) -> bool:
    """A queue entry (job id, seq) is live only while its job is queued with that seq: others are skipped."""
    return record is not None and record["state"] == JobState.QUEUED.value and record["queue_seq"] == seq


def start_attempt(job: Job, worker: str, now: float) -> str:
    """A queued job is leased to `worker`: running, one more attempt. Returns the new lease token."""
    job.transition(JobState.RUNNING, now)
    job.attempts_made += 1
    job.worker = worker
    job.error = None
    job.traceback = None
    return secrets.token_hex(8)


def check_token(held: str | None, job_id: str, token: str) -> None:
    """`held` is the token of the job's lease in the store (None: no lease): refuse a worker that lost it."""
    if held != token:
        raise IllegalTransition(f"job {job_id}: this worker no longer holds its lease", job_id=job_id)


def succeed(job: Job, result: JsonDict, now: float) -> None:
    job.transition(JobState.SUCCEEDED, now)
    job.result = result
    job.progress = Progress(1.0, job.progress.frames, job.progress.frames, job.progress.fps)


def retry_delay(retry_base: float, attempts_made: int) -> float:
    """Exponential backoff: base, 2 x base, 4 x base ... at most RETRY_MAX_SECONDS."""
    return min(RETRY_MAX_SECONDS, retry_base * 2 ** (attempts_made - 1))


def fail(job: Job, error: str, tb: str | None, retryable: bool, now: float, retry_base: float,
         wait: float | None = None) -> float | None:
    """A failed attempt. Returns when the job runs again (it is retrying), or None (failed, or cancelled).

    `wait`: the failure was not the job's (a full disk): the attempt is given back and the job runs again after
    `wait` seconds, however many attempts it has used, so it outlives the outage instead of burning through them."""
    job.error = error
    job.traceback = tb
    if wait is not None and not job.cancel_requested:
        job.attempts_made = max(0, job.attempts_made - 1)
        job.transition(JobState.RETRYING, now)
        job.not_before = now + wait
        return job.not_before
    if retryable and job.attempts_made < job.attempts_allowed and not job.cancel_requested:
        job.transition(JobState.RETRYING, now)
        job.not_before = now + retry_delay(retry_base, job.attempts_made)
        return job.not_before
    job.transition(JobState.CANCELLED if job.cancel_requested else JobState.FAILED, now)
    return None


def acknowledge_cancel(job: Job, now: float) -> None:
    job.transition(JobState.CANCELLED, now)


def release(job: Job, now: float) -> bool:
    """A running job given back: queued again, its attempt not counted (cancelled if that was asked). Requeue?"""
    if job.cancel_requested:
        job.transition(JobState.CANCELLED, now)
        return False
    job.transition(JobState.QUEUED, now)
    job.attempts_made = max(0, job.attempts_made - 1)
    job.worker = None
    return True


# ------------------------------------------------------------------ user actions
def cancel(job: Job, now: float, superseded_by: str | None) -> bool:
    """Cancel a waiting job, or flag a running one. False when nothing changed (a running job already flagged)."""
    if job.state is JobState.RUNNING:
        if job.cancel_requested and not superseded_by:
            return False
        job.cancel_requested = True
        job.superseded_by = superseded_by or job.superseded_by
        job.updated_at = now
        return True
    job.transition(JobState.CANCELLED, now)
    job.superseded_by = superseded_by
    return True


def retry(job: Job, now: float) -> None:
    """A user's retry: only a failed or cancelled job runs again. A running job's way back to the queue is its
    lease (released or expired), never a retry: queueing it while its lease lives would run it twice."""
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise IllegalTransition(f"cannot retry job {job.id}: it is {job.state.value}", job_id=job.id)
    job.transition(JobState.QUEUED, now)
    job.attempts_made = 0
    job.stalls = 0
    job.superseded_by = None
    job.progress = Progress()
    job.finished_at = None


def steps_to(current: JobState, target: JobState) -> list[JobState]:
    """The shortest walk the state machine allows from `current` to `target` through unfinished states (a farm
    poll can miss a state: a job seen queued may be succeeded by the next poll, which is queued → running →
    succeeded). IllegalTransition when there is none."""
    paths: dict[JobState, list[JobState]] = {current: []}
    frontier = [current]
    while frontier and target not in paths:
        nxt = []
        for state in frontier:
            if state.finished and state is not current:
                continue
            for step in sorted(TRANSITIONS[state], key=lambda s: s.value):
                if step not in paths:
                    paths[step] = [*paths[state], step]
                    nxt.append(step)
        frontier = nxt
    if target not in paths:
        raise IllegalTransition(f"cannot move a job from {current.value} to {target.value}")
    return paths[target]


def mirror(job: Job, update: FarmUpdate, now: float) -> bool:
    """Write the farm's view of a farm record. True when the job just started following a farm job (it leaves
    the local queue, its retry timer and its supersede group: a farm job and a local one do not supersede each
    other). A finished record stays as it is unless a new farm id resubmits it."""
    adopted = update.farm_id is not None and update.farm_id != job.farm_id
    if adopted:
        if job.farm_id is None:  # a waiting local job (or a fresh farm record) goes to the farm
            if not job.state.waiting:
                raise IllegalTransition(f"cannot send job {job.id} to the farm: it is {job.state.value}",
                                        job_id=job.id)
            if job.state is JobState.RETRYING:
                job.transition(JobState.QUEUED, now)
        elif job.state in (JobState.FAILED, JobState.CANCELLED):  # resubmitted (retry)
            retry(job, now)
        else:
            raise IllegalTransition(f"job {job.id} already follows farm job {job.farm_id} ({job.state.value})",
                                    job_id=job.id)
        job.kind, job.origin, job.farm_id = FARM_KIND, "farm", update.farm_id
        job.queue_seq = 0  # no local queue entry is current (they start at 1): the engine never sees it again
        job.attempts_made, job.worker, job.error, job.traceback, job.not_before = 0, None, None, None, None
    elif job.kind != FARM_KIND or job.farm_id is None:
        raise IllegalTransition(f"job {job.id} is not on the farm", job_id=job.id)
    if job.state.finished and update.state is not job.state:
        raise IllegalTransition(f"job {job.id} is {job.state.value}; the farm's {update.state.value} comes too late",
                                job_id=job.id)
    if update.state is not job.state:
        for step in steps_to(job.state, update.state):
            job.transition(step, now)
    if update.progress is not None:
        job.progress = update.progress
    if update.worker is not None:
        job.worker = update.worker
    if update.result is not None:
        job.result = update.result
    if update.error is not None:
        job.error = update.error
    if update.attempts_made is not None:
        job.attempts_made = update.attempts_made
    if update.superseded_by is not None:
        job.superseded_by = update.superseded_by
    job.updated_at = now
    return adopted


def set_priority(job: Job, priority: int, now: float) -> bool:
    """True when the job must move in the local queue: a queued local job. A farm record has no entry there (the
    farm orders it: JobService.set_priority changes the farm job first), and must not get one."""
    if job.state.finished:
        raise IllegalTransition(f"cannot change the priority of job {job.id}: it is {job.state.value}")
    priority = max(0, min(10, priority))
    job.priority = priority
    job.spec = {**job.spec, "priority": priority}
    job.updated_at = now
    return job.state is JobState.QUEUED and job.kind != FARM_KIND


def check_removable(job: Job) -> None:
    if not job.state.finished:
        raise IllegalTransition(f"cannot remove job {job.id}: it is {job.state.value}")


# ------------------------------------------------------------------ housekeeping
def lease_expired(deadline: float, worker: str, now: float) -> bool:
    """Past its deadline, or held by a process of this host that is gone (no need to wait then)."""
    return deadline <= now or worker_is_dead_here(worker)


def stalled(job: Job, now: float, max_stalls: int) -> bool:
    """A running job whose lease expired: queued again (True), or failed after too many stalls, or cancelled."""
    job.stalls += 1
    job.worker = None
    if job.cancel_requested:
        job.transition(JobState.CANCELLED, now)
    elif job.stalls > max_stalls:
        job.transition(JobState.FAILED, now)
        job.error = f"its worker stopped responding {job.stalls} times; giving up"
    else:
        job.transition(JobState.QUEUED, now)
        job.attempts_made = max(0, job.attempts_made - 1)
        job.progress = Progress()
        return True
    return False


def purge_finished(store: JobStore, cutoff: float) -> int:
    """Remove finished jobs that finished before `cutoff`, one operation each (never one long lock)."""
    finished = store.list_jobs(states=FINISHED_STATES)
    old = [j.id for j in finished if j.finished_at is not None and j.finished_at < cutoff]
    for job_id in old:
        with contextlib.suppress(JobNotFound, IllegalTransition):
            store.remove(job_id)
    return len(old)
