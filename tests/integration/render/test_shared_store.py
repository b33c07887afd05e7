"""The farm-wide store (plain files on a shared folder) keeps the local store's contract, writes atomically under
concurrent writers in other processes, and evicts least-recently-used entries under a sweep lock that one node
holds at a time (a dead node's lock is broken)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from preview_desktop.render import shared_store
from preview_desktop.render.segment_cache import AudioPacket, CachedAudio, SegmentMeta, SegmentStore, Store
from preview_desktop.render.shared_store import LOCK_NAME, SharedSegmentStore
from tests.support.media import make_clip

KEY = "v" + "ab" * 32


def _meta(frames: int = 3) -> SegmentMeta:
    return SegmentMeta(frames, [bytes([n]) * 50 for n in range(frames)], b"\x01" * frames, b"\x00" * frames,
                       ["clip 'a': held"])


@pytest.fixture(params=["local", "shared"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = (SegmentStore(tmp_path / "local", 10**9) if request.param == "local"
                   else SharedSegmentStore(tmp_path / "farm" / "cache", 10**9))
    with made:
        yield made


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "seg.mp4", seconds=0.12, audio=False)


def test_contract_round_trips(store: Store, mp4: Path) -> None:
    assert store.get_video(KEY) is None and store.get_audio("a1") is None and store.get_bytes("p:1") is None
    store.put_video(KEY, mp4, _meta())
    hit = store.get_video(KEY)
    assert hit is not None
    handle, meta = hit
    with handle:
        assert handle.read() == mp4.read_bytes()
    assert meta == _meta()
    audio = CachedAudio([AudioPacket(-1024, 1024, b"\x00\x01"), AudioPacket(0, 1024, b"xyz")], ["w"])
    store.put_audio("a" + "cd" * 32, audio)
    assert store.get_audio("a" + "cd" * 32) == audio
    poster_key = f"p{KEY}:12"  # ':' is not allowed in Windows file names: the shared store hashes such keys
    store.put_bytes(poster_key, b"\x89PNG...")
    assert store.get_bytes(poster_key) == b"\x89PNG..." and store.get_bytes(f"p{KEY}:13") is None
    store.cull()


def test_a_segment_needs_both_its_files(tmp_path: Path, mp4: Path) -> None:
    store = SharedSegmentStore(tmp_path / "cache", 10**9)
    store.put_video(KEY, mp4, _meta())
    store.path_for("video", KEY, ".meta").unlink()
    assert store.get_video(KEY) is None
    store.put_video(KEY, mp4, _meta())
    store.path_for("video", KEY, ".mp4").unlink()
    assert store.get_video(KEY) is None


def test_unreadable_entries_are_misses_and_write_errors_are_logged(tmp_path: Path, mp4: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = SharedSegmentStore(tmp_path / "cache", 10**9)
    store.put_video(KEY, mp4, _meta())
    meta_path = store.path_for("video", KEY, ".meta")
    meta_path.write_bytes(meta_path.read_bytes()[:-5])  # a damaged entry (not something we ever write)
    assert store.get_video(KEY) is None
    store.put_audio("a1", CachedAudio([], []))
    store.path_for("audio", "a1", ".aac").write_bytes(b"\x80\x04pickle?")
    assert store.get_audio("a1") is None

    def failing(_path: Path, _write: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shared_store, "write_atomic", failing)
    store.put_video("v" + "ef" * 32, mp4, _meta())
    store.put_bytes("p2", b"x")
    assert store.get_video("v" + "ef" * 32) is None and store.get_bytes("p2") is None
    assert "No space left on device" in caplog.text


_WRITER = """
import sys
from pathlib import Path
from preview_desktop.render.segment_cache import SegmentMeta
from preview_desktop.render.shared_store import SharedSegmentStore
store = SharedSegmentStore(Path(sys.argv[1]), 10**9)
mp4, frames = Path(sys.argv[2]), int(sys.argv[3])
meta = SegmentMeta(frames, [b"t"] * frames, b"\\1" * frames, b"\\0" * frames, [])
for _ in range(40):
    store.path_for("video", sys.argv[4], ".mp4").unlink(missing_ok=True)  # force a real write every time
    store.put_video(sys.argv[4], mp4, meta)
print("done")
"""


def test_concurrent_writers_in_two_processes_never_show_a_partial_entry(tmp_path: Path) -> None:
    big_a = tmp_path / "a.mp4"
    big_b = tmp_path / "b.mp4"
    big_a.write_bytes(os.urandom(3_000_000))
    big_b.write_bytes(os.urandom(2_000_000))
    cache = tmp_path / "farm" / "cache"
    root = Path(__file__).resolve().parents[3]
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(cache), str(big), str(frames), KEY], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for big, frames in ((big_a, 1), (big_b, 2))]
    store = SharedSegmentStore(cache, 10**9)
    whole = {big_a.read_bytes(), big_b.read_bytes()}
    seen = 0
    while any(w.poll() is None for w in writers):
        hit = store.get_video(KEY)
        if hit is None:
            continue
        handle, meta = hit
        with handle:
            assert handle.read() in whole
        assert meta.frames in (1, 2) and len(meta.thumbs) == meta.frames
        seen += 1
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "done" in out, err
    assert seen > 0
    leftovers = [p.name for p in cache.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def _fill(store: SharedSegmentStore, count: int, size: int) -> list[str]:
    """`count` poster entries of `size` bytes, the first the oldest (last used 1000 s ago, then 999 s...)."""
    keys = []
    now = time.time()
    for number in range(count):
        key = f"p{number:04d}"
        store.put_bytes(key, bytes([number]) * size)
        used = now - 1000 + number
        os.utime(store.path_for("frames", key, ".bin"), (used, used))
        keys.append(key)
    return keys


def test_sweep_evicts_least_recently_used_first(tmp_path: Path) -> None:
    store = SharedSegmentStore(tmp_path / "cache", 10_000)
    keys = _fill(store, 10, 2_000)
    assert store.get_bytes(keys[0]) is not None  # a hit makes the oldest entry the newest
    removed = store.sweep(force=True)
    assert removed == 10_000 and store.volume() == 10_000
    kept = [key for key in keys if store.get_bytes(key) is not None]
    assert kept == [keys[0], *keys[6:]]
    assert not (tmp_path / "cache" / LOCK_NAME).exists()  # released
    assert store.sweep() is None  # swept a moment ago: not due (any node) within sweep_interval


def test_one_sweeper_at_a_time_and_a_stale_lock_is_broken(tmp_path: Path) -> None:
    store = SharedSegmentStore(tmp_path / "cache", 10_000, sweep_interval=0.0, lock_stale=300.0)
    _fill(store, 10, 2_000)
    lock = tmp_path / "cache" / LOCK_NAME
    holder = {"host": "render-7", "pid": 4242, "time": time.time(), "token": "x"}
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, json.dumps(holder).encode())
    os.close(fd)
    assert store.sweep() is None and store.volume() == 20_000  # another node is sweeping
    old = time.time() - 600
    os.utime(lock, (old, old))  # ... and died ten minutes ago
    assert store.sweep() == 10_000 and store.volume() == 10_000
    assert not lock.exists()


def test_old_temporary_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    store = SharedSegmentStore(tmp_path / "cache", 10**9)
    store.put_bytes("p1", b"x")
    folder = store.path_for("frames", "p1", ".bin").parent
    dead, live = folder / ".p2.bin.dead.tmp", folder / ".p3.bin.live.tmp"
    dead.write_bytes(b"half")
    live.write_bytes(b"being written")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    store.sweep(force=True)
    assert not dead.exists() and live.exists() and store.get_bytes("p1") == b"x"
