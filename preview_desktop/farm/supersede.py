"""Supersede on the farm: a newer job for the same projectId and timeline file cancels older ones still waiting
or running in the BullMQ queue, unless its spec says `"supersede": false` (the same rule as the local store).

Index: `{prefix}:{queue}:pd:sup:{key}` — a sorted set of job id -> the time BullMQ added the job (ms). A job is
registered when `FarmClient.submit` adds it and again (a no-op then) when a node picks it up, so jobs added by
any producer — a Node.js backend using plain BullMQ included — take part. Registering is one MULTI (add, read
the others), so of two submitters racing on one key exactly one job survives.

Older jobs are cancelled with the farm's cancel protocol (farm/client.py): removed while they wait, otherwise
their node is told to stop and fails them with `cancelled: superseded by job <id>` (not retried). A node that
picks up a job for which a newer live one exists (possible when a producer outside FarmClient added both) stops
it the same way. Finished and vanished ids are pruned as they are met; the key expires a week after its last
use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.ids import supersede_group

if TYPE_CHECKING:
    from .client import FarmClient

INDEX_TTL_S = 7 * 24 * 3600
FINISHED = ("completed", "failed", "unknown")


def supersede_group_of(data: object) -> str | None:
    """The job's supersede group (core/ids.py, the same rule as the local store), from its BullMQ data."""
    if not isinstance(data, Mapping):
        return None
    return supersede_group(data.get("projectId"), data.get("timeline"))


def wants_supersede(data: object) -> bool:
    return not (isinstance(data, Mapping) and data.get("supersede") is False)


def _order(job_id: str, added_ms: float) -> tuple[float, int, str]:
    """Older first: by the time BullMQ added the job, then by BullMQ's counter id (same millisecond)."""
    return (added_ms, int(job_id) if job_id.isdigit() else -1, job_id)


@dataclass
class SupersedeResult:
    cancelled: list[str] = field(default_factory=list)  # older jobs removed or told to stop
    superseded_by: str | None = None  # a newer live job that supersedes this one


async def supersede(client: FarmClient, job_id: str, added_ms: float, data: object) -> SupersedeResult:
    """Register `job_id` under its project + timeline and settle the older and newer jobs of that pair."""
    result = SupersedeResult()
    key = supersede_group_of(data)
    if key is None:
        return result
    index = client.keys.supersede(key)
    async with client.redis.pipeline(transaction=True) as pipe:
        pipe.zadd(index, {job_id: added_ms}, nx=True)
        pipe.zrange(index, 0, -1, withscores=True)
        pipe.expire(index, INDEX_TTL_S)
        _, members, _ = await pipe.execute()
    mine = _order(job_id, added_ms)
    for other, score in members:
        if other == job_id:
            continue
        if _order(other, score) < mine:
            if wants_supersede(data):
                answer = await client.cancel(other, f"superseded by job {job_id}")
                await client.redis.zrem(index, other)
                if answer in ("removed", "requested"):
                    result.cancelled.append(other)
            elif await client.queue.getJobState(other) in FINISHED:
                await client.redis.zrem(index, other)
            continue
        if await client.queue.getJobState(other) in FINISHED:
            await client.redis.zrem(index, other)
            continue
        newer = await client.queue.getJob(other)
        if newer is not None and wants_supersede(newer.data) and result.superseded_by is None:
            result.superseded_by = other
    return result
