"""FarmTracker: keeps this node's farm records (local jobs that run on the farm) in step with the farm.

Why a record at all: the farm's own record is Redis, which the window's job table does not read. A job the editor
sends to the farm stays in the local store as a farm record (kind "farm", so no engine leases it), and this
tracker writes what the farm says into it through the store's one `mirror` operation: state, progress (frames),
the node that runs it, and at the end the result or the error. When the farm job completes, its files are
brought into DATA_DIR/previews/{projectId}/{recordId}/ (farm_files.py) before the record says succeeded, so the
detail pane shows and plays it like a local job's.

One poll a second, for every unfinished record at once (the reads go out together). The records come from the
engine's mirror of the store (no store scan per poll); the store is the truth, so a restarted window resumes where
it stopped. While Redis is away the records stay as they were and catch up when it returns (one log line per
outage). A node component: started and stopped with the node, built only when the node is on a farm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..core.farm_status import FarmStatus
from ..core.job import Job, JobState, Progress
from ..core.layout import Layout
from ..errors import FarmUnavailable, PreviewError
from ..queue.base import FarmUpdate
from .farm_files import FetchFailed, fetch_preview

log = logging.getLogger("preview_desktop.farm")
POLL_SECONDS = 1.0

# BullMQ's states → the record's (failed is cancelled or failed by its reason; completed waits for the files)
QUEUED_STATES = frozenset({"waiting", "prioritized", "waiting-children", "paused", "wait"})
SUPERSEDED_RE = re.compile(r"^cancelled: superseded by job (\S+)$")  # farm/supersede.py's reason


class TrackerJobs(Protocol):
    """What the tracker needs of the job service (service/jobs.py)."""

    async def farm_job(self, job_id: str) -> dict[str, Any] | None: ...
    def farm_status(self) -> FarmStatus | None: ...
    async def mirror(self, job_id: str, update: FarmUpdate) -> Job: ...


def farm_progress(raw: object) -> Progress | None:
    """BullMQ progress as our nodes report it: {"frame", "frames", "percent"} (a plain number from others)."""
    if isinstance(raw, dict):
        frame, frames = int(raw.get("frame") or 0), int(raw.get("frames") or 0)
        percent = float(raw.get("percent") or (100.0 * frame / frames if frames else 0.0))
        return Progress(min(1.0, percent / 100.0), frame, frames)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Progress(min(1.0, float(raw) / 100.0))
    return None


def running_nodes(status: FarmStatus | None) -> dict[str, str]:
    """Farm job id → the node running it, from the registry snapshot (refreshed every farm heartbeat)."""
    if status is None:
        return {}
    return {job.jobId: node.nodeId for node in status.nodes for job in node.running}


def update_for(record: Job, farm: dict[str, Any] | None, nodes: dict[str, str],
               records_by_farm_id: dict[str, str] | None = None) -> FarmUpdate | None:
    """What the record should become, or None when nothing changed (no store write, no event). A completed job
    is not succeeded here: its files come first (FarmTracker._deliver). A farm job superseded by a newer one that
    a record here follows names that record (the row says "superseded", as for local jobs)."""
    farm_id = str(record.farm_id)
    if farm is None:
        if record.cancel_requested:
            return FarmUpdate(JobState.CANCELLED, error="cancelled by user")
        return FarmUpdate(JobState.FAILED, error=f"farm job {farm_id} is no longer on the farm (removed, or kept "
                                                 "past the farm's completed/failed history)")
    state, attempts = str(farm.get("state")), int(farm.get("attemptsMade") or 0)
    progress = farm_progress(farm.get("progress"))
    if state == "failed":
        reason = str(farm.get("failedReason") or "failed on the farm")
        cancelled = reason.startswith("cancelled") or record.cancel_requested
        newer = SUPERSEDED_RE.match(reason)
        by = (records_by_farm_id or {}).get(newer.group(1), f"farm job {newer.group(1)}") if newer else None
        return FarmUpdate(JobState.CANCELLED if cancelled else JobState.FAILED, error=reason,
                          attempts_made=attempts, superseded_by=by)
    if state == "active":
        by = farm.get("processedBy")  # recorded when it went active; the registry may be a heartbeat behind
        update = FarmUpdate(JobState.RUNNING, progress=progress, worker=nodes.get(farm_id) or (by and str(by)),
                            attempts_made=attempts + 1)
    elif state == "delayed":  # between retries (or handed back by a stopping node, no attempt used)
        update = FarmUpdate(JobState.RETRYING if attempts else JobState.QUEUED, attempts_made=attempts)
    elif state in QUEUED_STATES:
        update = FarmUpdate(JobState.QUEUED, attempts_made=attempts)
    else:
        return None  # completed (handled by the caller) or a state we do not know: leave the record alone
    changed = (update.state is not record.state or update.attempts_made != record.attempts_made
               or (update.worker is not None and update.worker != record.worker)
               or (update.progress is not None and update.progress != record.progress))
    return update if changed else None


class FarmTracker:
    def __init__(self, jobs: TrackerJobs, layout: Layout, records: Callable[[], Iterable[Job]],
                 interval: float = POLL_SECONDS) -> None:
        self._jobs = jobs
        self._layout = layout
        self._records = records  # the node's view of the store (the engine's mirror), read on the loop thread
        self.interval = interval
        self.use_paths = True  # False: always download over the signed links (tests: no shared storage)
        self._task: asyncio.Task[None] | None = None
        self._delivering: dict[str, asyncio.Task[None]] = {}
        self._delivered: set[tuple[str, str]] = set()  # (record, farm job) whose success is written: the
        # engine's view may lag the store by a moment, and a second delivery would fetch the files again
        self._away = False  # Redis unreachable: said once per outage

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._delivering.values()) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._delivering.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the tracker's boundary: one bad round must not stop the next
                log.exception("farm tracker: a poll failed")
            await asyncio.sleep(self.interval)

    async def poll(self) -> None:
        """One round: read every unfinished record's farm job at once, write what changed."""
        tracked = [r for r in self._records() if r.farm_id is not None]
        records = [r for r in tracked if not r.state.finished
                   and r.id not in self._delivering and (r.id, r.farm_id) not in self._delivered]
        if not records:
            return
        answers = await asyncio.gather(*(self._jobs.farm_job(str(r.farm_id)) for r in records),
                                       return_exceptions=True)
        nodes = running_nodes(self._jobs.farm_status())
        by_farm_id = {str(r.farm_id): r.id for r in tracked}
        reachable = False
        for record, answer in zip(records, answers, strict=True):
            if isinstance(answer, FarmUnavailable):
                self._note_away(answer)
                continue
            if isinstance(answer, BaseException):
                log.warning("farm tracker: farm job %s of %s could not be read: %s", record.farm_id, record.id,
                            answer)
                continue
            reachable = True
            await self._follow(record, answer, nodes, by_farm_id)
        if reachable and self._away:
            self._away = False
            log.info("farm tracker: the farm is back; farm records catch up")

    def _note_away(self, exc: Exception) -> None:
        if not self._away:
            self._away = True
            log.warning("farm tracker: %s; farm records keep their last state until it is back", exc)

    async def _follow(self, record: Job, farm: dict[str, Any] | None, nodes: dict[str, str],
                      by_farm_id: dict[str, str]) -> None:
        if farm is not None and farm.get("state") == "completed":
            self._delivering[record.id] = asyncio.get_running_loop().create_task(self._deliver(record, farm))
            return
        update = update_for(record, farm, nodes, by_farm_id)
        if update is not None:
            await self._mirror(record.id, update)

    async def _deliver(self, record: Job, farm: dict[str, Any]) -> None:
        """The farm job completed: bring its files here, then the record succeeds (or fails saying why)."""
        try:
            result = farm.get("returnvalue")
            result = dict(result) if isinstance(result, dict) else {}
            found = result.get("artifacts")
            artifacts: dict[str, Any] = found if isinstance(found, dict) else {}
            worker = str(artifacts.get("nodeId")) if artifacts.get("nodeId") else None
            frames = record.progress.frames or int((result.get("video") or {}).get("frames") or 0)
            done = Progress(1.0, frames, frames)
            if record.state is not JobState.RUNNING:  # the poll missed it running: the files arrive while it is
                await self._mirror(record.id, FarmUpdate(JobState.RUNNING, progress=done, worker=worker))
            loop = asyncio.get_running_loop()
            try:
                fetched = await loop.run_in_executor(None, fetch_preview, self._layout, record.project_id,
                                                     record.id, result, self.use_paths)
            except (FetchFailed, PreviewError, OSError) as exc:
                message = f"rendered on the farm (job {record.farm_id}), but its files could not be fetched: {exc}"
                log.warning("farm record %s: %s", record.id, message, extra={"job_id": record.id})
                await self._mirror(record.id, FarmUpdate(JobState.FAILED, error=message))
                return
            log.info("farm record %s: farm job %s's files are here (%s, %s)", record.id, record.farm_id,
                     fetched.how, ", ".join(fetched.files), extra={"job_id": record.id})
            result["fetched"] = fetched.to_wire()
            attempts = int(farm.get("attemptsMade") or 0) or None
            await self._mirror(record.id, FarmUpdate(JobState.SUCCEEDED, progress=done, worker=worker,
                                                     result=result, attempts_made=attempts))
            self._delivered.add((record.id, str(record.farm_id)))
        finally:
            self._delivering.pop(record.id, None)

    async def _mirror(self, job_id: str, update: FarmUpdate) -> None:
        try:
            await self._jobs.mirror(job_id, update)
        except PreviewError as exc:  # cancelled or removed here meanwhile: the record's own state wins
            log.debug("farm record %s: %s", job_id, exc)
