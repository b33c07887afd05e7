"""What a job handler sees: the job, its typed spec, a progress reporter and a cancel flag. No Qt here.

The engine builds a JobContext per run and calls `handler(job, spec, ctx)` on a pool thread. A handler returns a
JSON-able result summary (the renderer returns the preview.json object) or raises; it never catches broadly.
What a handler needs beyond that (settings, layout) it is given when it is built, as typed arguments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import JobCancelled, JobTimeout
from .job import Job

if TYPE_CHECKING:  # pydantic costs ~200 ms of start-up: only the type is needed here
    from .spec import JobSpec

ProgressFn = Callable[[int, int], None]
# How a job's stored wire spec becomes typed on the render thread: a local job's spec was checked at submit;
# a farm job's arrives from any producer and goes through the whole intake there (bad input fails the job).
SpecIntake = Callable[[Job], "JobSpec"]
PROGRESS_MIN_INTERVAL = 0.02  # seconds: at most ~50 reports a second leave the render thread


@dataclass
class JobContext:
    job: Job
    progress_fn: ProgressFn = lambda frame, frames: None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() after which the job times out
    _last_report: float = field(default=float("-inf"), repr=False)

    def progress(self, frame: int, frames: int) -> None:
        """Report progress; reports closer together than PROGRESS_MIN_INTERVAL are dropped (the last frame never).

        Each report crosses to the event loop's thread. A handler reporting in a tight loop (a fast render
        reuses cached segments at thousands of frames a second) would otherwise flood that loop with callbacks
        and starve its timers — among them the farm's lock renewal, so the job was lost to another node."""
        now = time.monotonic()
        if frame < frames and now - self._last_report < PROGRESS_MIN_INTERVAL:
            return
        self._last_report = now
        self.progress_fn(frame, frames)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Call between units of work: raises JobCancelled or JobTimeout so the job stops promptly."""
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.job.id} was cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobTimeout(f"job {self.job.id} ran past its time limit")


class Handler(Protocol):
    def __call__(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]: ...


class HandlerRegistry:
    """Job kind -> handler. The renderer registers `render`; tests may register their own kinds."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)
