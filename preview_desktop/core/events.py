"""Engine events and the per-engine hub that delivers them. Subscribers are called on the loop thread.

Not a global bus: each Engine owns one EventHub; the window's adapter, the API and the metrics subscribe to
the engine they were given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from .job import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobUpdated:
    """A job's record changed in the store (any process): state, priority, stored progress, ..."""

    job: Job


@dataclass(frozen=True)
class JobRemoved:
    job_id: str


PROGRESS_EVENT_INTERVAL = 0.1  # seconds between live progress events per job


@dataclass(frozen=True)
class JobProgress:
    """Live progress of a job running on this node (throttled).

    origin "farm": a farm job rendering here; its id names its render (the artifact folder), not a local job."""

    job_id: str
    frame: int
    frames: int
    fraction: float
    fps: float
    origin: str = "local"


@dataclass(frozen=True)
class JobOutcome:
    """An attempt on this node ended: outcome is success, failure, retry, cancelled, released or lost."""

    job_id: str
    outcome: str
    seconds: float
    frames: int
    origin: str = "local"


@dataclass(frozen=True)
class EngineStatus:
    running: int  # renders on this computer's slots, local and farm
    capacity: int
    paused: bool
    stopping: bool
    farm: int = 0  # of `running`, the renders this node runs for the farm


@dataclass(frozen=True)
class NodeNotice:
    """Something about this node the user must know now; the window shows it in its status bar.

    kind: "disk_full" (text: "Disk full: ..."), "disk_ok" (space is back: clears it), "store_recovered"."""

    kind: str
    text: str


Event = Union[JobUpdated, JobRemoved, JobProgress, JobOutcome, EngineStatus, NodeNotice]
Subscriber = Callable[[Event], None]


class EventHub:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                # A broken subscriber must not stop the others or the engine; this is the hub's boundary.
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
