"""The job record and its state machine.

A job is what the queue stores: the validated spec plus everything that happens to it. States and legal
transitions live here so the local store, the farm and the UI agree on them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from ..errors import IllegalTransition


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"  # failed an attempt, waiting for its backoff to run again
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def waiting(self) -> bool:
        return self in (JobState.QUEUED, JobState.RETRYING)


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# from-state -> allowed to-states
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RETRYING: frozenset({JobState.RUNNING, JobState.QUEUED, JobState.CANCELLED}),
    # running -> queued: the lease was released (shutdown) or expired (worker died)
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.RETRYING, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.FAILED: frozenset({JobState.QUEUED}),  # retry
    JobState.CANCELLED: frozenset({JobState.QUEUED}),  # retry
    JobState.SUCCEEDED: frozenset(),
}

DEFAULT_KIND = "render"
# A local record of a job that runs on the farm: no handler has this kind, so no engine ever leases it; its state
# is the farm's, written by the farm tracker (service/farm_tracker.py) through JobStore.mirror.
FARM_KIND = "farm"


def check_transition(job_id: str, current: JobState, target: JobState) -> None:
    if target not in TRANSITIONS[current]:
        verb = {JobState.CANCELLED: "cancel", JobState.QUEUED: "retry"}.get(target, f"move to {target.value}")
        raise IllegalTransition(f"cannot {verb} job {job_id}: it is {current.value}", job_id=job_id)


def new_job_id(now: float | None = None) -> str:
    """Sortable by creation time, unguessable, safe as a folder name: 20261128-121530-9f3a1b2c."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time())) + "-" + (
        secrets.token_hex(4)
    )


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


@dataclass
class Progress:
    fraction: float = 0.0
    frame: int = 0
    frames: int = 0
    fps: float = 0.0


@dataclass
class Job:
    """One preview request and its history. Times are Unix seconds; `to_wire` renders ISO-8601."""

    id: str
    project_id: str
    spec: dict[str, Any]
    kind: str = DEFAULT_KIND
    state: JobState = JobState.QUEUED
    priority: int = 5
    attempts_made: int = 0
    attempts_allowed: int = 3
    progress: Progress = field(default_factory=Progress)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    not_before: float | None = None  # retrying: do not run before this time
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    stalls: int = 0  # leases that expired (worker died) while running
    superseded_by: str | None = None
    origin: str = "local"  # "local" or "farm"
    queue_seq: int = 0  # which queue entry is current (older entries are stale after re-prioritising)
    farm_id: str | None = None  # a farm record (kind FARM_KIND): the BullMQ id of the farm job it follows
    # (or, on a farm run here, origin "farm": the BullMQ job it runs)

    @property
    def display_state(self) -> str:
        """The state as people read it: a cancelled job replaced by a newer one is "superseded", a running job
        asked to stop is "cancelling" (the CLI, the window and the tray all say it this way)."""
        if self.state is JobState.CANCELLED and self.superseded_by:
            return "superseded"
        if self.state is JobState.RUNNING and self.cancel_requested:
            return "cancelling"
        return self.state.value

    @property
    def priority_can_change(self) -> bool:
        """Not finished, and not a farm record a farm node already runs: the farm refuses that (its order is
        decided), so the window offers it only while the record waits."""
        return not self.state.finished and not (self.kind == FARM_KIND and self.state is JobState.RUNNING)

    @property
    def label(self) -> str:
        timeline = self.spec.get("timeline")
        return timeline if isinstance(timeline, str) else "inline timeline"

    def transition(self, target: JobState, now: float | None = None) -> None:
        check_transition(self.id, self.state, target)
        now = time.time() if now is None else now
        self.state = target
        self.updated_at = now
        if target is JobState.RUNNING:
            self.started_at = now
            self.finished_at = None
            self.cancel_requested = False
        elif target.finished:
            self.finished_at = now
        elif target is JobState.QUEUED:
            self.not_before = None

    def to_record(self) -> dict[str, Any]:
        """Plain dict for the store (stable across versions: unknown keys are ignored on load).

        Shallow on purpose: `spec` and `result` are shared, not deep-copied (this runs on every store write).
        """
        record = {f.name: getattr(self, f.name) for f in _FIELDS}
        record["state"] = self.state.value
        record["progress"] = self.progress.__dict__.copy()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        data = {k: v for k, v in record.items() if k in _FIELD_NAMES}
        data["state"] = JobState(data["state"])
        data["progress"] = Progress(**data.get("progress") or {})
        return cls(**data)

    def to_wire(self) -> dict[str, Any]:
        """The camelCase JSON object of the API, `status --json` and events."""
        return {
            "id": self.id,
            "kind": self.kind,
            "projectId": self.project_id,
            "state": self.state.value,
            "priority": self.priority,
            "attemptsMade": self.attempts_made,
            "attempts": self.attempts_allowed,
            "progress": asdict(self.progress),
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "updatedAt": iso(self.updated_at),
            "retryAt": iso(self.not_before) if self.state is JobState.RETRYING else None,
            "error": self.error,
            "traceback": self.traceback,
            "worker": self.worker,
            "result": self.result,
            "cancelRequested": self.cancel_requested,
            "supersededBy": self.superseded_by,
            "origin": self.origin,
            "farmId": self.farm_id,
            "spec": self.spec,
        }


_FIELDS = fields(Job)
_FIELD_NAMES = frozenset(f.name for f in _FIELDS)
