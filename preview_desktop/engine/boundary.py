"""The job boundary: the one place that catches every exception a handler raises.

It turns whatever happened into an Outcome (with the traceback) that the engine records on the job. Nothing
else in the program swallows exceptions.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.handler import Handler, JobContext, SpecIntake
from ..core.job import Job
from ..errors import DiskFull, JobCancelled, PreviewError, disk_full_from, is_disk_full

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "success" | "failure" | "cancelled"
    seconds: float
    result: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    retryable: bool = True
    code: str | None = None  # the typed error's code (errors.py), for callers that judge a failure (the farm)

    @property
    def disk_full(self) -> bool:
        """No space left: the job waits for space, its attempt not counted (docs/queue.md)."""
        return self.code == DiskFull.code


def run_at_boundary(handler: Handler, job: Job, intake: SpecIntake, ctx: JobContext,
                    data_dir: Path | None = None) -> Outcome:
    """Turn the job's spec typed and run `handler` on the calling (pool) thread; never raise. A full disk,
    however it surfaced (DiskFull, ENOSPC, SQLITE_FULL), becomes one DiskFull naming the folder."""
    started = time.monotonic()
    try:
        ctx.check()
        result = handler(job, intake(job), ctx)
    except JobCancelled:
        return Outcome("cancelled", time.monotonic() - started)
    except BaseException as exc:  # the job boundary: record, never propagate
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            log.warning("job %s interrupted by %s", job.id, type(exc).__name__)
        if is_disk_full(exc) and not isinstance(exc, DiskFull):  # a write that no part named: say where
            exc = disk_full_from(exc, data_dir or Path("."), data_dir)
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, PreviewError):
            message = f"{type(exc).__name__}: {message}"
        retryable = exc.retryable if isinstance(exc, PreviewError) else True
        log.warning("job %s failed: %s", job.id, message, extra={"job_id": job.id})
        return Outcome(
            "failure",
            time.monotonic() - started,
            error=message,
            traceback=traceback.format_exc(),
            retryable=retryable,
            code=exc.code if isinstance(exc, PreviewError) else None,
        )
    if ctx.cancelled:
        # finished anyway; a result is better than nothing, so keep it
        log.info("job %s finished before its cancel took effect", job.id)
    return Outcome("success", time.monotonic() - started, result=result if isinstance(result, dict) else {})
