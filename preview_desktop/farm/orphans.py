"""The orphan sweep: farm previews on this node's disk whose BullMQ job was finished by another run.

A farm run publishes into DATA_DIR/previews/{projectId}/{localId} and then completes its BullMQ job. A node killed
between the two leaves a whole preview that no job names, while BullMQ re-runs the job elsewhere (the soak found
4 in 1,000 jobs). Each such folder carries a mark (core/farm_mark.py: queue, BullMQ job, node, local id). When the
node joins the farm, and every `farm_orphan_sweep_minutes` after, the sweep reads the jobs of every marked folder
in one pipelined round trip per batch and removes this node's folder (renamed aside, then deleted) when

  - the job completed and its result's `artifacts` name another node or another local id (another run won), or
  - the job failed for good (in BullMQ's failed set).

It keeps the folder while the job waits, runs or is delayed (the re-run may still fail: this copy may be the one a
retry finds), when the job is gone from Redis (a backend's removeOnComplete: the backend may hold a link to it),
and when the result names nobody. Local previews (no mark) and the farm storage (PREVIEW_FARM_STORAGE, where a
re-run replaces the same folder, named by the BullMQ id) are never touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..core.farm_mark import FarmMark, read_mark
from ..core.layout import STAGING_PREFIX
from .connection import describe_error, is_connection_error

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("preview_desktop.farm")
BATCH = 500  # jobs per pipelined round trip
RETRY_S = 10.0  # a round that could not reach Redis is tried again this soon (not a whole interval later)
ORPHAN_TAG = "-orphan-"


@dataclass(frozen=True)
class Seen:
    """A BullMQ job as the sweep needs it: `state` is completed, failed, pending (any other state) or gone;
    `winner` the (nodeId, local jobId) a completed job's result names, if any."""

    state: str
    winner: tuple[str, str] | None = None


class JobLookup(Protocol):
    """What the sweep needs of the farm: many jobs' states in few round trips."""

    async def look_up(self, job_ids: Sequence[str]) -> dict[str, Seen]: ...


class RedisJobLookup:
    """BullMQ's own keys, read in pipelines of BATCH jobs: the job hash, and the completed and failed sets."""

    def __init__(self, redis: Redis, prefix: str, queue: str) -> None:
        self._redis = redis
        self._base = f"{prefix}:{queue}"

    async def look_up(self, job_ids: Sequence[str]) -> dict[str, Seen]:
        seen: dict[str, Seen] = {}
        for start in range(0, len(job_ids), BATCH):
            batch = list(job_ids[start : start + BATCH])
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in batch:
                    pipe.exists(f"{self._base}:{job_id}")
                    pipe.zscore(f"{self._base}:completed", job_id)
                    pipe.zscore(f"{self._base}:failed", job_id)
                    pipe.hget(f"{self._base}:{job_id}", "returnvalue")
                replies = await pipe.execute()
            for i, job_id in enumerate(batch):
                exists, completed, failed, value = replies[4 * i : 4 * i + 4]
                seen[job_id] = _seen(bool(exists), completed is not None, failed is not None, value)
        return seen


def _seen(exists: bool, completed: bool, failed: bool, value: Any) -> Seen:
    if not exists:
        return Seen("gone")
    if failed:
        return Seen("failed")
    if not completed:
        return Seen("pending")
    try:
        result = json.loads(value) if value is not None else None
    except ValueError:
        result = None
    artifacts = result.get("artifacts") if isinstance(result, dict) else None
    if isinstance(artifacts, dict) and artifacts.get("nodeId") and artifacts.get("jobId"):
        return Seen("completed", (str(artifacts["nodeId"]), str(artifacts["jobId"])))
    return Seen("completed")


@dataclass
class SweepRound:
    checked: int = 0
    removed: list[Path] = field(default_factory=list)
    kept: int = 0


def marked_folders(previews: Path, queue: str, skip: frozenset[str] = frozenset()) -> list[tuple[Path, FarmMark]]:
    """Published folders under previews/{project}/ that carry a farm mark of this queue, but for the folder names
    in `skip` (blocking: a thread)."""
    found: list[tuple[Path, FarmMark]] = []
    if not previews.is_dir():
        return found
    for project in previews.iterdir():
        if not project.is_dir() or project.name.startswith("."):
            continue
        for folder in project.iterdir():
            if folder.name.startswith(".") or folder.name in skip or not folder.is_dir():
                continue
            mark = read_mark(folder)
            if mark is not None and mark.queue == queue and mark.localId == folder.name:
                found.append((folder, mark))
    return found


def remove_folder(folder: Path) -> None:
    """Rename aside (readers see the whole preview or none), then delete. A kill in between leaves a staging
    leftover that the next round (and the worker's start-up staging cleanup) removes."""
    aside = folder.parent / f"{STAGING_PREFIX}{folder.name}{ORPHAN_TAG}{secrets.token_hex(3)}"
    folder.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)


def remove_leftovers(previews: Path) -> None:
    if previews.is_dir():
        for path in previews.glob(f"*/{STAGING_PREFIX}*{ORPHAN_TAG}*"):
            shutil.rmtree(path, ignore_errors=True)


class OrphanSweep:
    """Runs `sweep_once` when started (the node joins the farm) and every `interval_s` after."""

    def __init__(self, previews: Path, queue: str, interval_s: float) -> None:
        self.previews = previews
        self.queue = queue
        self.interval_s = interval_s
        self.rounds = 0  # finished rounds: for tests and the soak
        self.task: asyncio.Task[None] | None = None
        self._settled: set[str] = set()  # local ids judged for good (the winner here, or the job gone)

    def start(self, lookup: JobLookup) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(lookup))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _loop(self, lookup: JobLookup) -> None:
        while True:
            try:
                await self.sweep_once(lookup)
                delay = self.interval_s
            except Exception as exc:  # Redis away or a file-system error: try again soon, never crash the node
                level = logging.DEBUG if is_connection_error(exc) else logging.WARNING
                log.log(level, "farm: orphan sweep failed (%s); trying again", describe_error(exc))
                delay = min(self.interval_s, RETRY_S)
            await asyncio.sleep(delay)

    async def sweep_once(self, lookup: JobLookup) -> SweepRound:
        found = await asyncio.to_thread(marked_folders, self.previews, self.queue, frozenset(self._settled))
        seen = await lookup.look_up(sorted({mark.jobId for _folder, mark in found})) if found else {}
        round_ = SweepRound(checked=len(found))
        doomed: list[tuple[Path, FarmMark, str]] = []
        for folder, mark in found:
            job = seen.get(mark.jobId, Seen("pending"))
            if job.state == "failed":
                doomed.append((folder, mark, "failed for good"))
            elif job.state == "completed" and job.winner is not None and job.winner != (mark.nodeId, mark.localId):
                doomed.append((folder, mark, f"completed by {job.winner[0]} as {job.winner[1]}"))
            else:
                round_.kept += 1
                if job.state == "gone" or job.state == "completed":
                    self._settled.add(mark.localId)
        for folder, mark, why in doomed:
            try:
                await asyncio.to_thread(remove_folder, folder)
            except FileNotFoundError:
                continue
            round_.removed.append(folder)
            log.info("farm: removed orphan preview %s/%s of job %s (%s)", folder.parent.name, folder.name,
                     mark.jobId, why)
        await asyncio.to_thread(remove_leftovers, self.previews)
        level = logging.INFO if round_.removed or self.rounds == 0 else logging.DEBUG  # the first: at join
        log.log(level, "farm: orphan sweep: %d farm preview(s) checked, %d removed", round_.checked,
                len(round_.removed))
        self.rounds += 1
        return round_
