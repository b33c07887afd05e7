"""The farm-wide segment store: encoded segments, AAC chunks and poster frames as plain files under
PREVIEW_FARM_STORAGE/cache, so every node reuses what any node rendered.

Why plain files: the local store is diskcache, i.e. SQLite, and SQLite's locking is not safe on network file
systems (STACK.md). Here every entry is one file named by its content-addressed key (segments.py: the key holds
everything the bytes depend on, and nothing of a node's own paths), written atomically — a temporary name in
the same folder, fsync, rename — so a reader sees a whole entry or none, and two nodes writing the same key
write the same bytes. A video segment is two files, `{key}.mp4` and `{key}.meta`, the meta written last: a
lookup needs both. Metadata and audio are a small JSON header plus binary blobs, never pickle: whoever can
write to a share must not be able to run code on every node that reads it.

Size: `max_bytes` bounds the folder with least-recently-used eviction. A hit touches the entry's files (mtime
is "last used"); a sweep deletes the oldest first until the folder fits. One node at a time sweeps, holding
`.sweep.lock` (created with O_EXCL, holding host, pid and time); a lock older than `lock_stale` seconds is
taken to belong to a dead node and broken. Ages are measured against the file server's clock (a probe file's
mtime), not the node's, so clock skew between nodes does not break locks. Sweeps run at most every
`sweep_interval` seconds farm-wide (the walk stats every file over the network), so the folder may exceed its
limit by what is written in between.

Like the local store, this one only ever saves work: a read error is a miss, a write error is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..core.layout import FarmLayout
from .segment_cache import AudioPacket, CachedAudio, SegmentMeta

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

MAGIC = b"PDS1"
KINDS = ("video", "audio", "frames")
LOCK_NAME = ".sweep.lock"
SWEPT_NAME = ".swept"
TEMP_MAX_AGE = 3600.0  # seconds: a temporary file this old belongs to a killed writer
_SAFE_RE = re.compile(r"^[A-Za-z0-9_-]{1,120}$")
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, struct.error)


# entry format: MAGIC, u32 header length, JSON header, blobs (lengths in the header) ---------------------------
def pack(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    head = json.dumps({**header, "blobs": [len(blob) for blob in blobs]}, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack(">I", len(head)), head, *blobs])


def unpack(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Raises ValueError (or struct.error/KeyError) for anything that is not a whole entry."""
    if data[:4] != MAGIC:
        raise ValueError("not a store entry")
    (length,) = struct.unpack(">I", data[4:8])
    header = json.loads(data[8: 8 + length])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    blobs, offset = [], 8 + length
    for size in header["blobs"]:
        blobs.append(data[offset: offset + int(size)])
        offset += int(size)
    if offset != len(data):
        raise ValueError("truncated or padded entry")
    return header, blobs


def _meta_bytes(meta: SegmentMeta) -> bytes:
    return pack({"kind": "meta", "frames": meta.frames, "warnings": list(meta.warnings)},
                [meta.picture, meta.good, *meta.thumbs])


def _meta_from(data: bytes) -> SegmentMeta:
    header, blobs = unpack(data)
    frames = int(header["frames"])
    picture, good, thumbs = blobs[0], blobs[1], blobs[2:]
    if header["kind"] != "meta" or not len(picture) == len(good) == len(thumbs) == frames:
        raise ValueError("inconsistent segment meta")
    return SegmentMeta(frames, thumbs, picture, good, [str(w) for w in header["warnings"]])


def _audio_bytes(value: CachedAudio) -> bytes:
    return pack({"kind": "audio", "warnings": list(value.warnings),
                 "packets": [[p.pts, p.duration] for p in value.packets]}, [p.data for p in value.packets])


def _audio_from(data: bytes) -> CachedAudio:
    header, blobs = unpack(data)
    timing = header["packets"]
    if header["kind"] != "audio" or len(timing) != len(blobs):
        raise ValueError("inconsistent audio chunk")
    packets = [AudioPacket(int(pts), int(duration), blob) for (pts, duration), blob in zip(timing, blobs,
                                                                                             strict=True)]
    return CachedAudio(packets, [str(w) for w in header["warnings"]])


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` whole or not at all: a temporary name in the same folder, fsync, rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(temp, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _touch(*paths: Path) -> None:
    """Mark entries as used now (LRU); a failure only makes eviction less exact."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path)


@dataclass(frozen=True)
class Holder:
    """Who holds the sweep lock (written into it, shown in logs when a stale one is broken)."""

    host: str
    pid: int
    time: float
    token: str

    def to_bytes(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "time": self.time, "token": self.token}).encode()

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        try:
            data = json.loads(path.read_bytes())
            return cls(str(data["host"]), int(data["pid"]), float(data["time"]), str(data["token"]))
        except (*_READ_ERRORS, json.JSONDecodeError):
            return None


class SweepLock:
    """`.sweep.lock`: one sweeping node at a time, farm-wide. O_EXCL creation is atomic on local disks, SMB and
    NFSv3+. Breaking a stale lock renames it to a unique name first (only one breaker's rename succeeds) and
    checks it renamed the lock it judged stale; should two sweeps still overlap, they only delete more old
    entries than needed, never a whole one half."""

    def __init__(self, path: Path, stale_after: float, clock: Callable[[], float]) -> None:
        self.path = path
        self.stale_after = stale_after
        self.clock = clock
        self.holder: Holder | None = None

    def acquire(self) -> bool:
        for _attempt in range(2):
            if self._create():
                return True
            if not self._break_if_stale():
                return False
        return False

    def _create(self) -> bool:
        holder = Holder(socket.gethostname(), os.getpid(), time.time(), secrets.token_hex(8))
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, holder.to_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.holder = holder
        return True

    def _break_if_stale(self) -> bool:
        try:
            age = self.clock() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again
        if age <= self.stale_after:
            return False
        judged = Holder.read(self.path)
        broken = self.path.with_name(f"{self.path.name}.broken-{secrets.token_hex(6)}")
        try:
            os.rename(self.path, broken)
        except FileNotFoundError:
            return True  # another node broke it first
        taken = Holder.read(broken)
        if taken != judged:  # a fresh lock was created between our look and our rename: give it back
            with contextlib.suppress(OSError):
                os.link(broken, self.path)
            with contextlib.suppress(OSError):
                broken.unlink()
            return False
        with contextlib.suppress(OSError):
            broken.unlink()
        who = f"{judged.host} pid {judged.pid}" if judged else "an unknown node"
        log.warning("segment store: broke a stale sweep lock held by %s (%.0f s old)", who, age)
        return True

    def refresh(self) -> None:
        """Keep a long sweep's lock fresh, so no other node takes it for a dead one."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        if self.holder is not None and Holder.read(self.path) == self.holder:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.holder = None


class SharedSegmentStore:
    """The `segment_cache.Store` on a shared folder (see the module docstring); safe for many processes on
    many nodes at once."""

    def __init__(self, directory: Path, max_bytes: int, *, sweep_interval: float = 120.0,
                 lock_stale: float = 300.0) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.sweep_interval = sweep_interval
        self.lock_stale = lock_stale
        directory.mkdir(parents=True, exist_ok=True)
        self._probe = directory / ".clock" / socket.gethostname()  # one per host: they do not pile up

    def close(self) -> None:
        """Nothing is held open between calls."""

    def __enter__(self) -> SharedSegmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, kind: str, key: str, suffix: str) -> Path:
        """`cache/{kind}/{shard}/{name}{suffix}`: keys are hex digests with a letter in front; anything else
        (poster keys hold `:`, illegal on Windows shares) is named by its sha256."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        name = key if _SAFE_RE.match(key) else "h" + digest
        return self.directory / kind / digest[:2] / f"{name}{suffix}"

    # video ------------------------------------------------------------------------------------------------
    def get_video(self, key: str) -> tuple[BinaryIO, SegmentMeta] | None:
        mp4, meta_path = self.path_for("video", key, ".mp4"), self.path_for("video", key, ".meta")
        try:
            meta = _meta_from(meta_path.read_bytes())
            handle = mp4.open("rb")
        except FileNotFoundError:
            return None
        except _READ_ERRORS as exc:
            log.warning("farm segment store read failed (%s): treated as a miss", exc)
            return None
        _touch(mp4, meta_path)
        return handle, meta

    def put_video(self, key: str, mp4: Path, meta: SegmentMeta) -> None:
        target, meta_path = self.path_for("video", key, ".mp4"), self.path_for("video", key, ".meta")
        try:
            if target.is_file() and target.stat().st_size == mp4.stat().st_size:  # same key, same bytes
                _touch(target)
            else:
                with mp4.open("rb") as source:
                    write_atomic(target, lambda out: shutil.copyfileobj(source, out, 1 << 20))
            data = _meta_bytes(meta)
            write_atomic(meta_path, lambda out: out.write(data))
        except OSError as exc:
            log.warning("farm segment store write failed (%s): segment not cached", exc)

    # audio chunks and poster frames ------------------------------------------------------------------------
    def get_audio(self, key: str) -> CachedAudio | None:
        return self._get("audio", key, ".aac", _audio_from)

    def put_audio(self, key: str, value: CachedAudio) -> None:
        self._put("audio", key, ".aac", _audio_bytes(value), "audio chunk")

    def get_bytes(self, key: str) -> bytes | None:
        return self._get("frames", key, ".bin", lambda data: data)

    def put_bytes(self, key: str, value: bytes) -> None:
        self._put("frames", key, ".bin", value, "poster frame")

    def _get(self, kind: str, key: str, suffix: str, decode: Callable[[bytes], Any]) -> Any:
        path = self.path_for(kind, key, suffix)
        try:
            value = decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except _READ_ERRORS as exc:
            log.warning("farm segment store read failed (%s): treated as a miss", exc)
            return None
        _touch(path)
        return value

    def _put(self, kind: str, key: str, suffix: str, data: bytes, what: str) -> None:
        try:
            write_atomic(self.path_for(kind, key, suffix), lambda out: out.write(data))
        except OSError as exc:
            log.warning("farm segment store write failed (%s): %s not cached", exc, what)

    # upkeep -----------------------------------------------------------------------------------------------
    def server_now(self) -> float:
        """The file server's idea of now: the mtime of a file we just touched (ages of locks and entries are
        compared with mtimes the server set, so node clocks need not agree)."""
        try:
            self._probe.parent.mkdir(exist_ok=True)
            self._probe.touch()
            os.utime(self._probe)
            return self._probe.stat().st_mtime
        except OSError:
            return time.time()

    def cull(self) -> None:
        """Sweep when the last sweep (by any node) is older than `sweep_interval`; errors are logged."""
        try:
            self.sweep()
        except OSError as exc:
            log.warning("farm segment store sweep failed (%s)", exc)

    def sweep(self, *, force: bool = False) -> int | None:
        """Evict least-recently-used entries until the store fits `max_bytes`. Returns the bytes removed, or
        None when not due (unless `force`) or another node holds the sweep lock."""
        now = self.server_now()
        swept = self.directory / SWEPT_NAME
        if not force:
            with contextlib.suppress(FileNotFoundError):
                if now - swept.stat().st_mtime < self.sweep_interval:
                    return None
        lock = SweepLock(self.directory / LOCK_NAME, self.lock_stale, self.server_now)
        if not lock.acquire():
            return None
        try:
            removed = self._evict(lock, now)
            swept.touch()
            os.utime(swept)
        finally:
            lock.release()
        return removed

    def _evict(self, lock: SweepLock, now: float) -> int:
        entries: list[tuple[float, int, Path]] = []
        for count, (path, st) in enumerate(self._files()):
            if count % 500 == 499:
                lock.refresh()
            if path.name.startswith("."):  # a writer's temporary file: old ones belong to killed writers
                if now - st.st_mtime > TEMP_MAX_AGE:
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _mtime, size, _path in entries)
        removed = 0
        for _mtime, size, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # evicted by someone else: gone all the same
            except OSError as exc:
                log.warning("farm segment store: cannot evict %s (%s)", path.name, exc)
                continue
            total -= size
            removed += size
        return removed

    def _files(self) -> Iterator[tuple[Path, os.stat_result]]:
        for kind in KINDS:
            top = self.directory / kind
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for shard in top.iterdir():
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        for path in shard.iterdir():
                            with contextlib.suppress(FileNotFoundError):
                                yield path, path.stat()

    def volume(self) -> int:
        return sum(st.st_size for path, st in self._files() if not path.name.startswith("."))

    def __len__(self) -> int:
        return sum(1 for path, _st in self._files() if not path.name.startswith("."))


def open_shared_store(settings: Settings) -> SharedSegmentStore:
    """The store under PREVIEW_FARM_STORAGE/cache. Raises OSError when the folder cannot be made or reached."""
    if settings.farm_storage is None:
        raise OSError("PREVIEW_FARM_STORAGE is not set")
    return SharedSegmentStore(FarmLayout(settings.farm_storage).cache, settings.farm_cache_max_bytes)
