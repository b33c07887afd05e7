"""Segment keys name what a file holds, not where a node sees it: the same bytes at another path, with another
mtime, give the same identity; a change anywhere sampled gives another."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from preview_desktop.render import segments
from preview_desktop.render.plan import Source
from preview_desktop.render.segments import Identities, content_digest


def _file(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def test_same_content_elsewhere_same_identity(tmp_path: Path) -> None:
    a = _file(tmp_path / "win" / "a.mov", 5_000_000)
    b = tmp_path / "mnt" / "media" / "a.mov"
    b.parent.mkdir(parents=True)
    shutil.copyfile(a, b)
    os.utime(b, (1_000_000_000.5, 1_000_000_000.5))  # an SMB client's rounded, shifted mtime
    one = Identities().of(Source(kind="video", path=a, width=320, height=180))
    two = Identities().of(Source(kind="video", path=b, width=320, height=180))
    assert one == two
    assert str(a) not in repr(one)


def test_changes_are_seen_at_the_ends_and_between(tmp_path: Path) -> None:
    size = 8_000_000
    base = content_digest(_file(tmp_path / "a.mov", size))
    for offset in (10, size - 10, 1_048_576 + 7 * (size - 2 * 1_048_576) // 17):  # head, tail, a sample point
        changed = _file(tmp_path / f"b{offset}.mov", size)
        data = bytearray(changed.read_bytes())
        data[offset] ^= 0xFF
        changed.write_bytes(bytes(data))
        assert content_digest(changed) != base, offset
    assert content_digest(_file(tmp_path / "c.mov", size + 1)) != base
    assert content_digest(tmp_path / "missing.mov") is None


def test_small_files_are_hashed_whole_and_remembered(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = _file(tmp_path / "f.dpx", 300_000)
    first = content_digest(path, segments.FRAME_BLOCK, 1)
    reads: list[str] = []
    real_open = open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    assert content_digest(path, segments.FRAME_BLOCK, 1) == first
    assert reads == []  # same path, size, mtime and inode: not read again in this process


def test_image_sequences_by_content(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        for number in range(1, 4):
            _file(tmp_path / folder / f"f.{number:04d}.png", 1000, seed=number)
    def ident(folder: str) -> object:
        return Identities().of(Source(kind="sequence", pattern=str(tmp_path / folder / "f.%04d.png"),
                                      start_frame=1, end_frame=3, rate=25.0))
    assert ident("x") == ident("y")
    _file(tmp_path / "y" / "f.0002.png", 1000, seed=9)
    assert ident("x") != ident("y")
