"""A job running on one of this computer's render slots for another part of the program (the farm).

The engine owns the slots (local and farm renders share PREVIEW_MAX_CONCURRENCY); the farm asks for one through
`Engine.run_on_slot` and keeps this handle, so it never reaches into the pool, the registry or the loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..core.handler import JobContext
from ..core.job import Job
from ..core.spec import JobSpec, parse_spec
from .boundary import Outcome


@dataclass
class SlotRun:
    job: Job
    ctx: JobContext
    outcome: asyncio.Future[Outcome]  # resolved on the loop thread when the handler returns or raises

    def cancel(self) -> None:
        """Ask the handler to stop at its next check (cooperative, as for local jobs)."""
        self.ctx.cancel_event.set()


def stored_spec(job: Job) -> JobSpec:
    """A local job's spec: checked at submit and stored in wire form, so parsing it again cannot fail on input."""
    return parse_spec(job.spec)
