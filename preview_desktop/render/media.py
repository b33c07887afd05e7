"""Media references → safe paths → probed Sources (video file, still, image sequence or offline).

Resolution rules (DESIGN.md): relative paths against the timeline's folder, then `mediaSearchPaths`; every
resolved path, symlinks resolved, must lie inside PREVIEW_MEDIA_ROOTS. A path that escapes the roots is an
error (UnsafePath); a path that is merely missing or unreadable becomes an offline Source so the editor still
gets a preview with a slate, as editing applications do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..core.layout import check_path_text, contain
from ..errors import UnsafePath
from .plan import Source

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
_PRINTF_RE = re.compile(r"%0?(\d*)d")


def relink(names: Sequence[str], search_dirs: Sequence[Path], roots: Sequence[Path]) -> Path | None:
    """Find media for a reference-less clip (EDL) by clip name or reel name in the search folders.

    A name matches a file with exactly that name, or that name as its stem (`A001` → `A001.mov`).
    """
    wanted = [n.strip() for n in names if n and n.strip()]
    for name in wanted:
        try:
            check_path_text(name, "clip name")
        except UnsafePath:
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            continue
        for folder in search_dirs:
            exact = folder / name
            if exact.is_file():
                return contain(exact, roots, f"clip {name!r} relinked media")
            try:
                entries = sorted(os.listdir(folder))
            except OSError:
                continue
            for entry in entries:
                if Path(entry).stem == name and (folder / entry).is_file():
                    return contain(folder / entry, roots, f"clip {name!r} relinked media")
    return None


MISSING = "file not found"  # the offline reason of a file that does not exist (renderer: MediaNotFound)


def offline(path: Path | None, reason: str) -> Source:
    return Source(kind="offline", path=path, reason=reason)


_PROBE_CACHE: dict[tuple[str, int, int], Source] = {}


def probe(path: Path) -> Source:
    """Open a file just enough to know what it is. Never raises for bad media: returns an offline Source."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return offline(path, MISSING)
    except OSError as exc:
        return offline(path, f"cannot be read ({exc.strerror or exc})")
    if not path.is_file():
        return offline(path, "not a regular file")
    if st.st_size == 0:
        return offline(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        return offline(path, "permission denied")
    key = (str(path), st.st_size, st.st_mtime_ns)
    cached = _PROBE_CACHE.get(key)
    if cached is not None:
        return cached
    source = _probe_still(path) if path.suffix.lower() in IMAGE_EXTS else _probe_av(path)
    if len(_PROBE_CACHE) > 4096:
        _PROBE_CACHE.clear()
    _PROBE_CACHE[key] = source
    return source


def _probe_still(path: Path) -> Source:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return offline(path, "not a readable image")
    height, width = image.shape[:2]
    return Source(kind="still", path=path, width=width, height=height)


def _probe_av(path: Path) -> Source:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        return offline(path, f"not a readable media file ({ffmpeg_reason(exc)})")
    try:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            return offline(path, "no video or audio stream")
        duration = float(container.duration) / 1e6 if container.duration else None
        main = video or audio
        assert main is not None
        if main.duration and main.time_base:
            duration = float(main.duration * main.time_base)
        start = float(main.start_time * main.time_base) if main.start_time and main.time_base else 0.0
        if video is not None:
            if video.codec_context is None or not video.codec_context.codec.is_decoder:
                return offline(path, f"video codec {video.codec_context.name!r} cannot be decoded")
            rate = video.average_rate or video.guessed_rate or 25
            frames = video.frames
            if video.codec_context.width <= 0 or video.codec_context.height <= 0:
                return offline(path, "video stream has no picture size (damaged header?)")
            return Source(
                timecode=_timecode(video.metadata.get("timecode") or container.metadata.get("timecode"), rate),
                kind="video",
                path=path,
                has_audio=audio is not None,
                duration=duration if duration else (frames / float(rate) if frames else None),
                start_time=start,
                rate=float(rate),
                width=video.codec_context.width,
                height=video.codec_context.height,
            )
        return Source(kind="black", path=path, has_audio=True, duration=duration, start_time=start)
    except av.FFmpegError as exc:
        return offline(path, f"not a readable media file ({ffmpeg_reason(exc)})")
    finally:
        container.close()


def printf_to_glob(pattern: str) -> tuple[str, int]:
    """`shot.%04d.png` → (`shot.*.png`, padding 4); raises ValueError when there is no `%d` field."""
    match = _PRINTF_RE.search(pattern)
    if not match:
        raise ValueError("no %d frame-number field")
    return pattern[: match.start()] + "*" + pattern[match.end():], int(match.group(1) or 0)


def probe_sequence(pattern: Path, rate: float, start: int | None = None) -> Source:
    """An image sequence given a printf pattern; finds its frame range on disk when `start` is unknown."""
    text = str(pattern)
    try:
        glob_pattern, _pad = printf_to_glob(pattern.name)
    except ValueError:
        return offline(pattern, "image sequence pattern has no %d field")
    match = _PRINTF_RE.search(pattern.name)
    assert match is not None
    prefix, suffix = pattern.name[: match.start()], pattern.name[match.end():]
    numbers: list[int] = []
    try:
        for entry in pattern.parent.glob(glob_pattern):
            middle = entry.name[len(prefix): len(entry.name) - len(suffix) if suffix else None]
            if middle.isdigit():
                numbers.append(int(middle))
    except OSError:
        pass
    if not numbers:
        return offline(pattern, "no frames of the image sequence found")
    numbers.sort()
    first = numbers[0] if start is None else start
    last = numbers[-1]
    first_file = Path(text % first) if "%" in text else pattern
    still = _probe_still(first_file) if first_file.is_file() else offline(first_file, "first frame missing")
    if still.kind == "offline":
        return offline(pattern, f"first frame {first_file.name}: {still.reason}")
    return Source(
        kind="sequence",
        path=pattern,
        pattern=text,
        start_frame=first,
        end_frame=last,
        rate=rate,
        duration=(last - first + 1) / rate,
        width=still.width,
        height=still.height,
    )


def _timecode(text: object, rate: object) -> float | None:
    """`01:00:00:00` (or `;` drop-frame) → seconds at the nominal rate; None when absent or malformed."""
    if not isinstance(text, str):
        return None
    match = re.match(r"^(\d\d):(\d\d):(\d\d)[:;.](\d\d)$", text.strip())
    if not match:
        return None
    hours, minutes, seconds, frames = (int(g) for g in match.groups())
    nominal = max(1, round(float(rate)))  # type: ignore[arg-type]
    return hours * 3600 + minutes * 60 + seconds + frames / nominal


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words without errno noise ("Invalid data found when processing input")."""
    text = str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
