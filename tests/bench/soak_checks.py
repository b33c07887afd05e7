"""The soak's verdict on what is on disk: one whole, valid preview folder per job and nothing else.

A preview is whole when preview.json parses and names the job, preview.mp4 decodes with PyAV to the expected
number of frames, and every other artifact the render writes (poster.jpg, thumbs.jpg, thumbs.vtt) is there and
not empty. Anything else under a previews/ root is counted: a staging folder left behind (`.staging-…`) is a
"tmp" leftover, a published folder that no job's result names is "stray" (a preview published twice: an earlier
run of a job that was then run again elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import av

STAGING_PREFIX = ".staging-"
REQUIRED = ("preview.mp4", "preview.json", "poster.jpg", "thumbs.jpg", "thumbs.vtt")


@dataclass
class Verdict:
    checked: int = 0
    valid: int = 0
    half: list[str] = field(default_factory=list)  # "path: what is wrong"
    stray: list[str] = field(default_factory=list)
    tmp: list[str] = field(default_factory=list)
    cache_tmp: list[str] = field(default_factory=list)  # writers' temporary files in segment caches


def check_preview(folder: Path, frames: int) -> str | None:
    """None when the folder holds a whole, valid preview of `frames` frames; else what is wrong."""
    if not folder.is_dir():
        return "missing folder"
    for name in REQUIRED:
        path = folder / name
        if not path.is_file() or path.stat().st_size == 0:
            return f"{name} missing or empty"
    try:
        json.loads((folder / "preview.json").read_text())
    except (OSError, ValueError) as exc:
        return f"preview.json does not parse: {exc}"
    try:
        with av.open(str(folder / "preview.mp4")) as container:
            got = sum(1 for _ in container.decode(container.streams.video[0]))
    except (av.FFmpegError, IndexError, OSError) as exc:
        return f"preview.mp4 does not decode: {exc}"
    if got != frames:
        return f"preview.mp4 has {got} frames, expected {frames}"
    return None


def published_folders(roots: Iterable[Path]) -> tuple[set[Path], list[Path]]:
    """(published preview folders, staging leftovers) under previews/{project}/ of each root."""
    published: set[Path] = set()
    staging: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for project in root.iterdir():
            if not project.is_dir():
                continue
            for entry in project.iterdir():
                if entry.name.startswith(STAGING_PREFIX):
                    staging.append(entry)
                else:
                    published.add(entry)
    return published, staging


def verdict(expected: dict[Path, int], roots: Iterable[Path], caches: Iterable[Path] = ()) -> Verdict:
    """expected: the folder each finished job's result names → its frame count. caches: segment cache folders,
    where a killed writer's temporary file (`.name.xxxx.tmp`) stays until a sweep finds it an hour old."""
    result = Verdict()
    for folder, frames in sorted(expected.items()):
        result.checked += 1
        problem = check_preview(folder, frames)
        if problem is None:
            result.valid += 1
        else:
            result.half.append(f"{folder}: {problem}")
    published, staging = published_folders(roots)
    wanted = {folder.resolve() for folder in expected}
    result.stray = sorted(str(p) for p in published if p.resolve() not in wanted)
    result.tmp = sorted(str(p) for p in staging)
    result.cache_tmp = sorted(str(p) for cache in caches if cache.is_dir() for p in cache.rglob(".*.tmp"))
    return result
