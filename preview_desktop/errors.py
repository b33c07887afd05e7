"""Typed errors. Each carries what the CLI (exit code) and the API (HTTP status, code) need to report it.

Only the job boundary (engine) and the program boundaries (CLI, API) catch these; everything in between lets
them travel.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

# Exit codes of the CLI (docs/cli.md); errors below carry theirs.
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_QUEUE_FULL, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


class PreviewError(Exception):
    """Base class. `retryable` tells the job boundary whether another attempt could succeed."""

    exit_code = 1
    http_status = 500
    code = "internal"
    retryable = True

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class InvalidInput(PreviewError):
    """Input the user must fix: never retried."""

    exit_code = 2
    http_status = 400
    code = "invalid"
    retryable = False


class InvalidSpec(InvalidInput):
    """A job spec field is wrong. `field` is the dotted wire name, e.g. `output.width`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message, field=field)
        self.field = field


class TimelineNotFound(InvalidSpec):
    """The timeline file does not exist here: bad input for a local job, but on a farm node the node may just lack
    it (its media roots or path map), which farm/runner.py turns into MissingOnNode."""

    def __init__(self, path: str) -> None:
        super().__init__("timeline", f"file not found: {path}")
        self.path = path


class UnsafePath(InvalidInput):
    """A path escapes where it must stay (DATA_DIR/previews, PREVIEW_MEDIA_ROOTS) or is malformed."""

    code = "unsafe_path"


class SettingsError(InvalidInput):
    """A configuration value is unusable. Names the variable or setting."""

    code = "settings"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}", name=name)
        self.name = name


class QueueFull(PreviewError):
    exit_code = 3
    http_status = 429
    code = "queue_full"
    retryable = False


class JobNotFound(PreviewError):
    exit_code = 4
    http_status = 404
    code = "not_found"
    retryable = False

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}", job_id=job_id)
        self.job_id = job_id


class IllegalTransition(PreviewError):
    """E.g. cancelling a succeeded job."""

    exit_code = 2
    http_status = 409
    code = "conflict"
    retryable = False


class JobCancelled(PreviewError):
    """Raised inside a handler when the job's cancel flag is seen; the boundary marks the job cancelled."""

    code = "cancelled"
    retryable = False


class JobTimeout(PreviewError):
    code = "timeout"
    retryable = False


class RenderError(PreviewError):
    """A render failed. The message names the clip, the file and what is wrong when known."""

    code = "render_failed"


class MediaError(RenderError):
    """Media that cannot be used (offline with `strict`, undecodable, ...). Retrying will not help."""

    code = "media"
    retryable = False


class MissingOnNode(RenderError):
    """A file a farm job needs is missing on this node though another node may have it: a node problem, so the
    job is retried on another node (docs/farm.md, "Keeping failing nodes off")."""

    code = "missing_on_node"


class MediaNotFound(MediaError):
    """Under `strict`, clips whose files do not exist here. Not retried locally; on a farm node it is this node's
    problem (another node may mount the media), so the farm retries it on another node (farm/runner.py)."""

    code = "media_not_found"


class StoreUnavailable(PreviewError):
    code = "store_unavailable"


class FarmDisabled(PreviewError):
    """A farm action on a node that is not on a farm: the user must configure one, so it is a conflict, not a 5xx."""

    exit_code = 2
    http_status = 409
    code = "farm_disabled"
    retryable = False

    def __init__(self) -> None:
        super().__init__("this node is not on a render farm: set REDIS_URL (or --redis) to use the farm")


class FarmUnavailable(PreviewError):
    """The farm's Redis cannot be reached. The message is one redacted line: it ends up in API responses."""

    http_status = 503
    code = "farm_unavailable"


class FarmJobNotFound(JobNotFound):
    """No job with this id in the farm queue (removed, expired from the kept history, or never added)."""

    def __init__(self, job_id: str) -> None:
        PreviewError.__init__(self, f"no farm job with id {job_id!r}", job_id=job_id)
        self.job_id = job_id


class FarmJobNotWaiting(IllegalTransition):
    """A change that only a waiting farm job can take (its priority) came after a node took it, after it ended, or
    after it left the farm; nothing was changed, here or there."""

    code = "farm_job_not_waiting"

    def __init__(self, job_id: str, farm_id: str, why: str) -> None:
        super().__init__(f"cannot change the priority of job {job_id}: farm job {farm_id} no longer waits ({why})",
                         job_id=job_id, farm_id=farm_id)
        self.job_id, self.farm_id, self.why = job_id, farm_id, why


class DiskFull(PreviewError):
    """No space left where we write (ENOSPC, EDQUOT, SQLite's "database or disk is full").

    Not the job's fault and not lasting: the job waits for space without using up its attempts
    (docs/queue.md, "Disk full"). Raised where the write fails (`disk_full_from`), caught at the job boundary."""

    http_status = 507
    code = "disk_full"
    retryable = True

    def __init__(self, place: str, free_bytes: int | None = None) -> None:
        free = "" if free_bytes is None else f" ({free_bytes / 1e6:.0f} MB free)"
        super().__init__(f"disk full: no space left in {place}{free}", place=place, free_bytes=free_bytes)
        self.place = place


_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
_SQLITE_FULL = 13


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or an exception it was raised from) is "no space left" from the OS or from SQLite."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "database or disk is full" in str(exc)
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding `path` (its nearest existing folder); None when unknown."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def disk_full_from(exc: BaseException, folder: Path, data_dir: Path | None = None, name: str | None = None
                   ) -> DiskFull:
    """The DiskFull for a failed write in `folder` (the failing file's folder when the error names one), named
    DATA_DIR/<part> when it lies under `data_dir`, else `name` (e.g. PREVIEW_FARM_STORAGE) or the path."""
    if isinstance(exc, DiskFull):
        return exc
    filename = exc.filename if isinstance(exc, OSError) and isinstance(exc.filename, str) else None
    where = Path(filename).parent if filename else folder
    place = name or str(where)
    if data_dir is not None:
        try:
            parts = where.resolve().relative_to(data_dir.resolve()).parts
            place = "DATA_DIR/" + parts[0] if parts else "DATA_DIR"
        except (OSError, ValueError):
            pass
    return DiskFull(place, free_bytes(where))


@contextlib.contextmanager
def disk_full_as_typed(folder: Path) -> Iterator[None]:
    """Writes in `folder` (e.g. the job store) that fail for space raise one DiskFull naming it."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        if is_disk_full(exc):
            raise disk_full_from(exc, folder, name=str(folder)) from exc
        raise


class FarmNodeNotFound(PreviewError):
    """No live node with this id on the farm (it never joined, or stopped heartbeating)."""

    exit_code = 4
    http_status = 404
    code = "not_found"
    retryable = False

    def __init__(self, node_id: str) -> None:
        super().__init__(f"no farm node with id {node_id!r}", node_id=node_id)
        self.node_id = node_id
