"""Opening the local job store with a check: a damaged store is set aside and the finished jobs come back.

A damaged store (truncated, bytes overwritten) must not stop the window or a worker, and must not cost the
editor the previews already made. At opening, SQLite's own check (`PRAGMA quick_check`) runs; a store that
fails it, or that SQLite refuses to read ("file is not a database", "malformed"), is renamed aside with the time
(`queue.damaged-20261130-172233`), a fresh store is made, and every finished preview under DATA_DIR/previews is
put back as a succeeded job from its preview.json (the job's result *is* its preview.json). Nothing under
previews/ is touched. One log line says all of it; the node shows the same text in the window.

A store left locked by a dead process is not damaged: SQLite's locks die with their process, and a hot WAL is
rolled back or replayed on open, so such a store opens normally with every job.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from calendar import timegm
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.farm_mark import MARK_NAME
from ..core.job import Job, JobState
from ..core.layout import STAGING_PREFIX, check_job_id, check_project_id
from ..errors import InvalidInput, StoreUnavailable, is_disk_full
from .local import LocalStore

log = logging.getLogger(__name__)

DB_NAME = "cache.db"  # diskcache's file in the store's folder
_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


@dataclass(frozen=True)
class Recovery:
    """What start-up did about a damaged store."""

    directory: Path
    aside: Path
    reason: str
    restored: int

    @property
    def message(self) -> str:
        return (f"the job store {self.directory} was damaged ({self.reason}): moved aside to {self.aside.name}, "
                f"started a fresh store and put back {self.restored} finished job(s) from their previews")


def damage(directory: Path) -> str | None:
    """Why the store in `directory` cannot be trusted, or None when SQLite finds it sound (or it does not exist).

    A busy store (another live process writes) or a full disk is not damage: those are left to the opening."""
    db = directory / DB_NAME
    if not db.is_file():
        return None
    wal = db.with_name(DB_NAME + "-wal")
    if db.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0):
        return "the store file is empty"  # SQLite would take it as a new, empty store and every job would vanish
    try:
        connection = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return _damage_reason(exc)
    problems = [" ".join(str(row[0]).split()) for row in rows if row and row[0] != "ok"]  # one line each
    return "; ".join(problems[:3]) or None


def _damage_reason(exc: sqlite3.DatabaseError) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if is_disk_full(exc):
        return None
    if (code is not None and code & 0xFF in _DAMAGE_CODES) or not isinstance(exc, sqlite3.OperationalError):
        return " ".join(str(exc).split()) or type(exc).__name__
    return None  # locked, busy, cannot open: not damage, the opening reports it


def open_checked(directory: Path, previews: Path, queue_max: int = 1000) -> tuple[LocalStore, Recovery | None]:
    """The store in `directory`, checked; a damaged one is set aside and a fresh one filled from `previews`."""
    reason = damage(directory)
    if reason is None:
        try:
            return LocalStore(directory, queue_max=queue_max), None
        except StoreUnavailable as exc:
            cause = exc.__cause__
            reason = _damage_reason(cause) if isinstance(cause, sqlite3.DatabaseError) else None
            if reason is None:
                raise
    aside = _move_aside(directory)
    store = LocalStore(directory, queue_max=queue_max)
    restored = 0
    for job in finished_jobs(previews):
        store.restore(job)
        restored += 1
    recovery = Recovery(directory, aside, reason, restored)
    log.warning(recovery.message)
    return store, recovery


def _move_aside(directory: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = directory.with_name(f"{directory.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = directory.with_name(f"{directory.name}.damaged-{stamp}-{n}")
    try:
        directory.rename(aside)
    except FileNotFoundError:  # another process starting at the same time moved it first
        pass
    except OSError as exc:
        raise StoreUnavailable(f"the job store {directory} is damaged and cannot be moved aside: {exc}") from exc
    return aside


def finished_jobs(previews: Path) -> Iterator[Job]:
    """A succeeded job for each published preview (previews/{projectId}/{jobId}/preview.json), oldest first.
    Folders and files that do not look like ours, and farm renders (their `.farm-job.json` mark: the farm's
    results, never local jobs), are skipped, never changed."""
    jobs: list[Job] = []
    for document_path in sorted(previews.glob("*/*/preview.json")):
        folder = document_path.parent
        if folder.name.startswith(STAGING_PREFIX) or folder.name.startswith("."):
            continue
        if (folder / MARK_NAME).exists():  # a farm job rendered here: the farm keeps it, the local store never had it
            continue
        try:
            document = json.loads(document_path.read_text(encoding="utf-8"))
            jobs.append(job_from_preview(folder.parent.name, folder.name, document))
        except (OSError, ValueError, InvalidInput, KeyError, TypeError) as exc:
            log.info("not recovered: %s (%s)", folder, exc)
    yield from sorted(jobs, key=lambda job: job.created_at)


def job_from_preview(project_id: str, job_id: str, document: Any) -> Job:
    """The succeeded job a preview folder stands for. The folder names are the truth (the API and the window
    find artifacts by them); preview.json gives the times, the timeline and the result."""
    if not isinstance(document, dict) or document.get("status") != "succeeded":
        raise ValueError("preview.json is not a finished preview")
    check_project_id(project_id)
    check_job_id(job_id)
    timeline = document.get("timeline") or {}
    video = document.get("video") or {}
    output: dict[str, Any] = {k: video[k] for k in ("width", "height") if isinstance(video.get(k), int)}
    spec: dict[str, Any] = {"projectId": project_id, "timeline": timeline.get("source") or "unknown timeline",
                            "dryRun": bool(document.get("dryRun"))}
    if output:
        spec["output"] = output
    finished = _time(document.get("finishedAt")) or time.time()
    created = _time(document.get("createdAt")) or finished
    return Job(id=job_id, project_id=project_id, spec=spec, state=JobState.SUCCEEDED, attempts_made=1,
               created_at=created, started_at=_time(document.get("startedAt")), finished_at=finished,
               updated_at=finished, result=document)


def _time(text: object) -> float | None:
    """ISO-8601 as written by core.job.iso ("2026-11-30T17:22:33.123Z") to Unix seconds."""
    if not isinstance(text, str) or not text.endswith("Z"):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        seconds = timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction.isdigit() else 0.0)
