"""The segment store: encoded video segments, AAC chunks and poster frames under DATA_DIR/cache/segments.

One diskcache `Cache` holds everything, so one size limit (PREVIEW_CACHE_MAX_BYTES) and one least-recently-used
eviction cover video, audio and posters. diskcache makes every entry appear whole: a value is written to its
own file first and indexed in the same SQLite transaction that makes it visible, so a render killed mid-write
never leaves a half segment in the index; its per-connection transactions make it safe for the renderer's
threads and for several processes sharing DATA_DIR.

A video segment is two entries: the MP4 file (key `v…`) and its metadata (`m` + key: frame count, per-frame
thumbnails and poster flags, warnings). A lookup needs both; if eviction took one, the segment is rendered again.
The cache only ever saves work: any error reading it counts as a miss, any error writing it is logged and the
render goes on.

`Store` is what the renderer needs of a store; with PREVIEW_FARM_STORAGE set, `store_for` returns the farm-wide
`shared_store.SharedSegmentStore` (plain files on the shared folder) instead of this one.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

# unreadable or stale entries (a renamed class in an old pickle) are misses, not failures
_ERRORS = (OSError, sqlite3.Error, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError)
_V = TypeVar("_V")


@dataclass
class SegmentMeta:
    """What a cached segment carries besides its pictures: enough to make thumbnails and pick a poster."""

    frames: int
    thumbs: list[bytes]  # one JPEG per frame, thumbnail size, before burn-ins
    picture: bytes  # per frame: 1 when the frame shows real picture (not a gap or slate)
    good: bytes  # per frame: 1 when it would make a good poster (not near-black, not flat)
    warnings: list[str] = field(default_factory=list)


@dataclass
class AudioPacket:
    pts: int  # in samples (1/48000 s)
    duration: int
    data: bytes


@dataclass
class CachedAudio:
    packets: list[AudioPacket]
    warnings: list[str]


class Store(Protocol):
    """What incremental.py, audio_cache.py and chunks.py need of a segment store (local or farm-wide).

    Lookups never raise (an unreadable entry is a miss) and writes never raise (a failed write is logged)."""

    def get_video(self, key: str) -> tuple[BinaryIO, SegmentMeta] | None: ...
    def put_video(self, key: str, mp4: Path, meta: SegmentMeta) -> None: ...
    def get_audio(self, key: str) -> CachedAudio | None: ...
    def put_audio(self, key: str, value: CachedAudio) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def put_bytes(self, key: str, value: bytes) -> None: ...
    def cull(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> None: ...


class SegmentStore:
    """Get/put for segments, AAC chunks and poster frames; `max_bytes` bounds the whole store."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        import diskcache

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.cache = diskcache.Cache(
            directory=str(directory),
            size_limit=max_bytes,
            eviction_policy="least-recently-used",
            cull_limit=20,
        )

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> SegmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # video ------------------------------------------------------------------------------------------------
    def get_video(self, key: str) -> tuple[BinaryIO, SegmentMeta] | None:
        """An open handle on the segment's MP4 (valid even if another process evicts it meanwhile) + its meta."""
        try:
            meta = self.cache.get("m" + key)
            if not isinstance(meta, SegmentMeta):
                return None
            handle = self.cache.get(key, read=True)
        except _ERRORS as exc:
            log.warning("segment cache read failed (%s): treated as a miss", exc)
            return None
        if handle is None:
            return None
        return handle, meta

    def put_video(self, key: str, mp4: Path, meta: SegmentMeta) -> None:
        """Index a finished segment file (copied into the store; the caller keeps `mp4`)."""
        try:
            with mp4.open("rb") as handle:
                self.cache.set(key, handle, read=True)
            self.cache.set("m" + key, meta)
        except _ERRORS as exc:
            log.warning("segment cache write failed (%s): segment not cached", exc)

    # audio chunks and poster frames: small values stored inline ----------------------------------------------
    def get_audio(self, key: str) -> CachedAudio | None:
        return self._get(key, CachedAudio)

    def put_audio(self, key: str, value: CachedAudio) -> None:
        self._put(key, value, "audio chunk")

    def get_bytes(self, key: str) -> bytes | None:
        return self._get(key, bytes)

    def put_bytes(self, key: str, value: bytes) -> None:
        self._put(key, value, "poster frame")

    def _get(self, key: str, kind: type[_V]) -> _V | None:
        try:
            value = self.cache.get(key)
        except _ERRORS as exc:
            log.warning("segment cache read failed (%s): treated as a miss", exc)
            return None
        return value if isinstance(value, kind) else None

    def _put(self, key: str, value: object, what: str) -> None:
        try:
            self.cache.set(key, value)
        except _ERRORS as exc:
            log.warning("segment cache write failed (%s): %s not cached", exc, what)

    # upkeep -----------------------------------------------------------------------------------------------
    def cull(self) -> None:
        """Evict least-recently-used entries until the store fits its limit (sets only cull a few at a time)."""
        try:
            self.cache.cull()
        except _ERRORS as exc:
            log.warning("segment cache cull failed (%s)", exc)

    def volume(self) -> int:
        return int(self.cache.volume())

    def __len__(self) -> int:
        return len(self.cache)


def store_dir(data_dir: Path) -> Path:
    return data_dir / "cache" / "segments"


def open_store(data_dir: Path, max_bytes: int) -> SegmentStore:
    """The node's own store under DATA_DIR/cache/segments."""
    return SegmentStore(store_dir(data_dir), max_bytes)


def store_for(settings: Settings) -> Store:
    """The store a render uses: the farm-wide one under PREVIEW_FARM_STORAGE/cache when that is set (and
    usable), else this node's own. An unreachable farm storage must not stop a local render: it falls back
    with a warning (chunk renders, which are useless without it, use `shared_store.open_shared_store`)."""
    if settings.farm_storage is not None:
        from .shared_store import open_shared_store

        try:
            return open_shared_store(settings)
        except OSError as exc:
            log.warning("farm storage %s unusable (%s): this render uses the local cache", settings.farm_storage,
                        exc)
    return open_store(settings.data_dir, settings.cache_max_bytes)

