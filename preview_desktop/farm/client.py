"""Talking to the farm from anywhere (the window, the API, scripts, tests): submit, cancel, look.

Cancel protocol (the same from the window, the API or a Node.js backend that writes the key itself):
  1. `Queue.remove(id)`: works while the job waits, is delayed (between retries) or prioritized. BullMQ refuses
     to remove a job whose lock is held, i.e. one that runs.
  2. If it runs: SET `{prefix}:{queue}:pd:cancel:{id}` = reason. The node running it polls that key every
     0.25 s, stops the render at its next frame and fails the job with "cancelled: <reason>" (no retry).
  3. A chunked preview waiting for its chunks (farm/flows.py): 2., then each pending chunk gets 1. or 2.; once
     they are gone the preview runs again and fails with "cancelled: <reason>".
Supersede (farm/supersede.py): a submitted job cancels older ones of the same project + timeline this way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..core.farm_status import FarmStatus
from ..core.spec import JobSpec
from ..logs import redact
from .bullmq_compat import WAITING_STATES, change_priority_if_waiting, pending_children
from .connection import FarmConfig, describe_error, make_client
from .registry import CANCEL_TTL_S, FarmKeys, snapshot
from .supersede import supersede

JOB_NAME = "render"
log = logging.getLogger("preview_desktop.farm")


def bullmq_priority(spec_priority: int) -> int:
    """Spec priority 0-10, higher first → BullMQ priority 1-11, lower first (0 would mean 'no priority')."""
    return 11 - max(0, min(10, spec_priority))


def job_options(spec: JobSpec, config: FarmConfig) -> dict[str, Any]:
    return {
        "attempts": spec.attempts,
        "backoff": {"type": "exponential", "delay": config.default_backoff_ms},
        "priority": bullmq_priority(spec.priority),
        "removeOnComplete": {"count": config.keep_completed},
        "removeOnFail": {"count": config.keep_failed},
    }


class FarmClient:
    def __init__(self, url: str, queue: str, config: FarmConfig | None = None, prefix: str = "bull") -> None:
        from bullmq import Queue

        self.config = config or FarmConfig()
        self.url = redact(url)
        self.keys = FarmKeys(prefix, queue)
        self.redis = make_client(url, self.config, name="preview-desktop:client")
        self.queue = Queue(queue, {"connection": self.redis, "prefix": prefix})

    async def submit(self, spec: JobSpec, name: str = JOB_NAME, opts: dict[str, Any] | None = None) -> str:
        """Add a job; returns its BullMQ id. The spec must be validated already (paths absolute).

        Older jobs of the same project + timeline still waiting or running are cancelled (superseded) unless the
        spec says `"supersede": false`. If that step fails the job stays queued, and the node that picks it up
        supersedes the older ones then.
        """
        job = await self.queue.add(name, spec.to_wire(), {**job_options(spec, self.config), **(opts or {})})
        try:
            superseded = await supersede(self, str(job.id), job.timestamp, spec.to_wire())
        except Exception as exc:  # the job is queued; its node settles supersede at pickup
            log.warning("farm: job %s queued, superseding older ones deferred to pickup (%s)", job.id,
                        describe_error(exc))
        else:
            if superseded.cancelled:
                log.info("farm: job %s supersedes %s", job.id, ", ".join(superseded.cancelled))
        return str(job.id)

    async def cancel(self, job_id: str, reason: str = "cancelled by user") -> str:
        """'removed' (it waited), 'requested' (it runs: its node stops it within ~1 s), 'finished', 'not-found'."""
        state = await self.queue.getJobState(job_id)
        if state in ("completed", "failed"):
            return "finished"
        if state == "unknown":
            return "not-found"
        if state != "active" and await self.queue.remove(job_id) == 1:
            return "removed"
        if state != "active":  # not removed: it started meanwhile (BullMQ keeps a locked job), or it ended
            state = await self.queue.getJobState(job_id)
            if state in ("completed", "failed"):
                return "finished"
            if state == "unknown":
                return "not-found"
        await self.redis.set(self.keys.cancel(job_id), reason, ex=CANCEL_TTL_S)
        if state == "waiting-children":  # a chunked preview (farm/flows.py): its cancel must reach its chunks
            await self.cancel_children(job_id, reason)
        return "requested"

    async def set_priority(self, job_id: str, spec_priority: int) -> str:
        """Spec priority 0-10 → the job's BullMQ priority, mapped as `submit` maps it, while the job waits (waiting,
        prioritized, delayed for a retry). 'changed', or why not: the BullMQ state that kept it ('active',
        'waiting-children', 'completed', 'failed'), 'not-found', or 'busy'. Atomic: a node cannot take the job
        between the check and the change (bullmq_compat.change_priority_if_waiting)."""
        state = await change_priority_if_waiting(self.queue, self.redis, job_id, bullmq_priority(spec_priority))
        if state in WAITING_STATES:
            return "changed"
        return "not-found" if state == "unknown" else state

    async def cancel_children(self, job_id: str, reason: str) -> None:
        """Cancel the chunks a preview still waits for (each removed if it waits, told to stop if it runs).
        The parent's own cancel key is set first, so the node that picks it up once they are gone fails it."""
        for child in await pending_children(self.redis, self.keys.prefix, self.keys.queue, job_id):
            try:
                await self.cancel(child, reason)
            except Exception as exc:  # the others still get theirs
                log.warning("farm: cancelling chunk %s of %s failed: %s", child, job_id, describe_error(exc))

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as Node's BullMQ would show it: state, progress, return value, failed reason.

        The state is read before the job: BullMQ stores the result and moves the job in one script, so a
        finished state read first guarantees the job read after it holds its result (the other order could show
        `completed` with no return value yet)."""
        state = await self.queue.getJobState(job_id)
        job = await self.queue.getJob(job_id)
        if job is None:
            return None
        # "pb": the worker name BullMQ's moveToActive records, our node id: who runs it now (or ran it last)
        processed_by = await self.redis.hget(f"{self.keys.prefix}:{self.keys.queue}:{job_id}", "pb")
        return {
            "id": str(job.id),
            "name": job.name,
            "state": state,
            "data": job.data,
            "progress": job.progress,
            "returnvalue": job.returnvalue,
            "failedReason": job.failedReason or None,
            "attemptsMade": job.attemptsMade,
            "processedBy": processed_by or None,
        }

    async def status(self) -> FarmStatus:
        try:
            return await snapshot(self.redis, self.keys, self.url)
        except Exception as exc:  # the farm view shows why, in one line
            return FarmStatus(url=self.url, queue=self.keys.queue, connected=False, error=describe_error(exc),
                              updated=time.time())

    async def close(self) -> None:
        await self.queue.close()
