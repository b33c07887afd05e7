"""The output cache: a job whose whole input equals a finished job's gets that job's artifacts, not a render.

Why: editors resubmit unchanged timelines all the time (a second click, a retry from a script, a farm resend).
Identical input makes identical pixels, so the artifacts of the earlier job are hard-linked (copied across file
systems) into the new job's folder, with a fresh preview.json saying `"reusedFrom": "<jobId>"`.

The key (`output_key`) is the sha256 of everything that decides the artifacts' bytes:
  - the spec minus the fields that do not: projectId, priority, attempts, supersede, dryRun (dry runs are
    never cached); an inline timeline is part of the spec;
  - the timeline file's sha256;
  - the media roots, symlinks resolved (they decide what may be read);
  - the renderer fingerprint: version, size and mtime of the render package's modules, and of the installed
    av, cv2 and opentimelineio packages (found without importing them).
An entry holds the finished job's id and preview.json, the folders holding its artifacts (`copies`, each file
with its device, inode, size and mtime) and the inputs the render read: the timeline file and every media file
(size, mtime, inode, mode; a missing file is recorded as missing, so offline media coming online is a miss).
A lookup re-stats all of them; any difference is a miss and drops what went stale.

The CLI's cache-hit path never imports pydantic, av, cv2, numpy or OTIO: `request_key` hashes the raw request
(the spec file's bytes or the timeline path, the flags, the folders relative paths resolve in) and a request
that validated and rendered before is remembered as `req:{request key}` -> the output key.

Safe with several processes on one DATA_DIR: every read-modify-write is one diskcache transaction, artifacts
are linked into a staging folder that the caller renames into place, and a file replaced while we link it is
caught by comparing the link's inode with the recorded one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sqlite3
import stat as stat_module
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.job import iso
from ..core.layout import ARTIFACT_NAMES, is_within
from .files import file_digest, json_digest

log = logging.getLogger("preview_desktop.render")

FORMAT = 2  # bump when an entry's layout changes: old entries then never match
NON_PIXEL_FIELDS = frozenset({"projectId", "priority", "attempts", "supersede", "dryRun", "watchFolder"})
MAX_COPIES = 4
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # larger spec files take the normal path (which refuses them)
SIZE_LIMIT = 256 * 1024**2  # entries are small (a preview.json and some stat lists): this is ~100k entries
CACHE_ERRORS = (OSError, sqlite3.Error, ValueError, LookupError, TypeError)
Input = list[Any]  # ["file", path, sig] | ["timeline", path, sig, digest] | ["seq", pattern, a, b, sig] | [...]


# ---------------------------------------------------------------------------------------------- identities
def file_sig(path: str | Path) -> list[int] | None:
    """What we compare to tell a media file changed: size, mtime, inode, mode. None = missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode]


def artifact_sig(path: str | Path) -> list[int] | None:
    """An artifact is the same file while device, inode, size and mtime are (hard links share all four)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat_module.S_ISREG(st.st_mode):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


@functools.cache
def renderer_fingerprint() -> str:
    """Changes whenever the code that makes the pixels may have: our version and modules, av, cv2, OTIO."""
    parts = [__version__]
    for module in sorted(Path(__file__).parent.glob("*.py")):
        sig = file_sig(module)
        parts.append(f"{module.name}:{sig[:2] if sig else None}")
    for name in ("av", "cv2", "opentimelineio"):
        try:
            found = find_spec(name)
        except (ImportError, ValueError):
            found = None
        origin = found.origin if found is not None else None
        sig = file_sig(origin) if origin else None
        parts.append(f"{name}:{origin}:{sig[:2] if sig else None}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _real_roots(roots: Iterable[Path]) -> list[str]:
    return [os.path.realpath(r) for r in roots]


def output_key(spec_wire: Mapping[str, Any], roots: Sequence[Path]) -> tuple[str, str | None] | None:
    """(key, timeline digest) for a validated spec's wire form, or None when the timeline file is unreadable
    (the render then reports it)."""
    timeline = spec_wire.get("timeline")
    digest: str | None = None
    if isinstance(timeline, str):
        real = os.path.realpath(timeline)  # hash nothing outside the roots, nor a device or a FIFO
        if not is_within(Path(real), roots) or not os.path.isfile(real):
            return None
        try:
            digest = file_digest(real)
        except OSError:
            return None
    payload = {
        "format": FORMAT,
        "renderer": renderer_fingerprint(),
        "spec": {k: v for k, v in spec_wire.items() if k not in NON_PIXEL_FIELDS},
        "timelineDigest": digest,
        "roots": _real_roots(roots),
    }
    return json_digest(payload), digest


def request_key(
    argument: str, cwd: Path, overrides: Mapping[str, Any], roots: Sequence[Path], max_spec_bytes: int
) -> str | None:
    """A key for the raw CLI request, computed without validating it (no pydantic).

    Equal keys mean equal inputs to validation (the spec file's bytes, or the timeline path; the flags; the
    folder relative paths resolve in; the home folder `~` expands to; the media roots), so a request whose key
    maps to an output key validated before. None when the request cannot be keyed cheaply.
    """
    if "\x00" in argument or not argument.strip():
        return None
    path = Path(os.path.expanduser(argument))
    path = path if path.is_absolute() else cwd / path
    content: str | None = None
    if path.suffix.lower() == ".json":
        try:
            if path.stat().st_size > max_spec_bytes:
                return None
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
    payload = {
        "format": FORMAT,
        "renderer": renderer_fingerprint(),
        "argument": str(path),
        "content": content,
        "overrides": dict(overrides),
        "home": os.path.expanduser("~"),
        "roots": _real_roots(roots),
    }
    return json_digest(payload)


# ---------------------------------------------------------------------------------------------- inputs
def plan_inputs(plan: Any, loaded: Any) -> list[Input]:
    """What a render of `plan` reads, stat'ed now (before the frames are read, so a change during the render
    is a miss next time). `["uncacheable", reason]` marks a plan whose result could change without any of
    these files changing (an offline clip without a path could be relinked to a file that appears later)."""
    inputs: list[Input] = []
    if loaded.format != "inline":
        real = os.path.realpath(loaded.source_text)
        inputs.append(["timeline", real, file_sig(real), loaded.digest, loaded.source_text])
    seen: set[str] = set()
    for layer in [*plan.video, *plan.audio]:
        source = layer.source
        if source.kind == "black":
            continue
        if source.path is None:
            inputs.append(["uncacheable", f"clip {layer.name!r} has no media path"])
            continue
        if source.kind == "sequence" and source.pattern:
            mark = f"seq:{source.pattern}"
            if mark not in seen:
                seen.add(mark)
                start, end = int(source.start_frame), int(source.end_frame)
                inputs.append(["seq", source.pattern, start, end, _sequence_sig(source.pattern, start, end)])
            continue
        path = str(source.path)
        if path not in seen:
            seen.add(path)
            inputs.append(["file", path, file_sig(path)])
    return inputs


def _sequence_sig(pattern: str, start: int, end: int) -> str:
    """One digest for an image sequence: its folder (frames added or removed) and every frame in its range."""
    folder = os.path.dirname(pattern)
    parts = [str(file_sig(folder))]
    parts.extend(str(file_sig(pattern % n)) for n in range(start, end + 1))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _input_fresh(item: Input) -> bool:
    kind = item[0]
    if kind == "file":
        return bool(file_sig(item[1]) == item[2])
    if kind == "timeline":
        if os.path.realpath(item[4]) != item[1]:  # the path now leads elsewhere (a symlink retargeted)
            return False
        if file_sig(item[1]) == item[2]:
            return True
        try:  # touched but maybe the same bytes (an editor's save)
            return file_digest(item[1]) == item[3]
        except OSError:
            return False
    if kind == "seq":
        return bool(_sequence_sig(item[1], item[2], item[3]) == item[4])
    return False


def copy_of(folder: Path) -> dict[str, Any] | None:
    """The artifacts of a finished render in `folder` (preview.json excluded: every job gets its own).

    Take it in the staging folder, before the rename that publishes it (a rename keeps device, inode, size and
    mtime), then `moved(copy, published)`: stat'ing the published folder instead could record another
    process's files if it replaced that folder in between."""
    files: dict[str, list[int]] = {}
    for name in ARTIFACT_NAMES:
        if name == "preview.json":
            continue
        sig = artifact_sig(folder / name)
        if sig is not None:
            files[name] = sig
    return {"dir": str(folder), "files": files} if files.get("preview.mp4") else None


def moved(copy: Mapping[str, Any] | None, folder: Path) -> dict[str, Any] | None:
    """The same copy after its folder was renamed to `folder`."""
    return None if copy is None else {**copy, "dir": str(folder)}


def _copy_fresh(copy: Mapping[str, Any]) -> bool:
    folder = Path(copy["dir"])
    return all(artifact_sig(folder / name) == sig for name, sig in copy["files"].items())


# ---------------------------------------------------------------------------------------------- the store
class OutputCache:
    """The index under DATA_DIR/cache/outputs (diskcache: SQLite, safe across processes)."""

    def __init__(self, data_dir: Path) -> None:
        import diskcache

        self.directory = data_dir / "cache" / "outputs"
        self._cache = diskcache.Cache(str(self.directory), size_limit=SIZE_LIMIT,
                                      eviction_policy="least-recently-stored", timeout=30)

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> OutputCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def resolve_request(self, request: str) -> tuple[str, str] | None:
        """(output key, projectId) of a request that validated and rendered before."""
        value = self._cache.get(f"req:{request}")
        if not isinstance(value, dict):
            return None
        return str(value["key"]), str(value["projectId"])

    def find(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(entry, a fresh copy) when the finished job's inputs and at least one copy of its artifacts are
        unchanged; a stale entry is dropped, stale copies are forgotten."""
        entry = self._cache.get(f"out:{key}")
        if not isinstance(entry, dict):
            return None
        if not all(_input_fresh(item) for item in entry["inputs"]):
            self._drop(key, entry)
            return None
        fresh = [c for c in entry["copies"] if _copy_fresh(c)]
        if len(fresh) != len(entry["copies"]):
            self._forget_copies(key, {c["dir"] for c in entry["copies"]} - {c["dir"] for c in fresh})
        if not fresh:
            return None
        return entry, fresh[-1]

    # ------------------------------------------------------------------ writing
    def remember(
        self,
        key: str,
        *,
        job_id: str,
        document: Mapping[str, Any],
        copy: Mapping[str, Any] | None,
        inputs: list[Input],
        digest: str | None,
        request: str | None = None,
    ) -> bool:
        """Record a finished, published render (`copy`: see copy_of). Returns False (nothing stored) when it
        must not be reused: a dry run, an unkeyable input, or a timeline that changed between keying and
        reading."""
        if document.get("dryRun") or document.get("status") != "succeeded":
            return False
        if any(item[0] == "uncacheable" for item in inputs):
            return False
        timelines = [item for item in inputs if item[0] == "timeline"]
        if digest is not None and (len(timelines) != 1 or timelines[0][3] != digest):
            return False
        if copy is None:
            return False
        clean = {k: v for k, v in document.items() if k != "reusedFrom"}
        entry = {"jobId": job_id, "document": clean, "inputs": inputs, "copies": [copy], "stored": time.time()}
        with self._cache.transact():
            self._cache.set(f"out:{key}", entry)
            if request is not None:
                self._cache.set(f"req:{request}", {"key": key, "projectId": document["projectId"]})
        return True

    def add_copy(self, key: str, copy: Mapping[str, Any] | None, *, request: str | None = None,
                 project_id: str | None = None) -> None:
        """A reuse published another copy: remember it, so the cache outlives the deletion of the first one."""
        with self._cache.transact():
            entry = self._cache.get(f"out:{key}")
            if isinstance(entry, dict) and copy is not None:
                copies = [c for c in entry["copies"] if c["dir"] != copy["dir"]]
                entry["copies"] = [*copies, copy][-MAX_COPIES:]
                self._cache.set(f"out:{key}", entry)
            if request is not None and project_id is not None:
                self._cache.set(f"req:{request}", {"key": key, "projectId": project_id})

    def _drop(self, key: str, seen: Mapping[str, Any]) -> None:
        with self._cache.transact():
            current = self._cache.get(f"out:{key}")
            if isinstance(current, dict) and current.get("stored") == seen.get("stored"):
                self._cache.delete(f"out:{key}")

    def _forget_copies(self, key: str, dirs: set[str]) -> None:
        with self._cache.transact():
            entry = self._cache.get(f"out:{key}")
            if isinstance(entry, dict):
                entry["copies"] = [c for c in entry["copies"] if c["dir"] not in dirs or _copy_fresh(c)]
                self._cache.set(f"out:{key}", entry)


# ---------------------------------------------------------------------------------------------- reuse
def link_artifacts(copy: Mapping[str, Any], dest: Path) -> bool:
    """Hard-link (or copy, across file systems) the artifacts of `copy` into `dest`. False if one changed
    while we linked it (then `dest` holds leftovers the caller removes)."""
    source = Path(copy["dir"])
    for name, sig in copy["files"].items():
        src, dst = source / name, dest / name
        try:
            os.link(src, dst)
            linked = True
        except OSError:
            try:
                shutil.copy2(src, dst)
            except OSError:
                return False
            linked = False
        # a link is the recorded file if it has the recorded inode; a copy, if its source did not change
        if artifact_sig(dst if linked else src) != sig:
            return False
    return True


def reused_document(
    entry: Mapping[str, Any], *, job_id: str, project_id: str, created_at: float | None, started_at: float
) -> dict[str, Any]:
    """The new job's own preview.json: the finished job's, with this job's ids and times and `reusedFrom`."""
    finished = time.time()
    document = dict(entry["document"])
    document.update(
        jobId=job_id,
        projectId=project_id,
        createdAt=iso(created_at if created_at is not None else started_at),
        startedAt=iso(started_at),
        finishedAt=iso(finished),
        renderSeconds=round(finished - started_at, 3),
        reusedFrom=entry["jobId"],
    )
    counts = document.get("cache")
    if isinstance(counts, dict):  # this job rendered nothing: every segment and audio chunk was reused
        document["cache"] = {
            "segmentsReused": counts.get("segmentsReused", 0) + counts.get("segmentsRendered", 0),
            "segmentsRendered": 0,
            "audioChunksReused": counts.get("audioChunksReused", 0) + counts.get("audioChunksRendered", 0),
            "audioChunksRendered": 0,
        }
    return document


def open_cache(data_dir: Path) -> OutputCache | None:
    """The cache, or None (logged) when it cannot be opened: a broken cache costs a render, never a job."""
    try:
        return OutputCache(data_dir)
    except CACHE_ERRORS as exc:
        log.warning("output cache unavailable (%s: %s); rendering without it", type(exc).__name__, exc)
        return None
