"""The render plan: what the frame loop draws and mixes, in output frames and seconds.

A plan is plain data (no OTIO, no av), built once by `timeline.build_plan`, so the dry-run can print it and the
loop can walk it without touching the timeline model again.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

SourceKind = Literal["video", "still", "sequence", "offline", "black"]


@dataclass
class Source:
    """Resolved media for one clip. `kind == "offline"` carries the reason shown in warnings."""

    kind: SourceKind
    path: Path | None = None
    reason: str | None = None
    # image sequences: printf pattern (absolute), first frame number and frame rate
    pattern: str | None = None
    start_frame: int = 0
    end_frame: int = 0
    rate: float = 25.0
    has_audio: bool = False
    duration: float | None = None  # seconds of media, when known
    start_time: float = 0.0  # the container's first timestamp (seconds)
    timecode: float | None = None  # the file's start timecode in seconds (tape time), when tagged
    width: int = 0
    height: int = 0


@dataclass
class Layer:
    """One clip on one track, placed on the output timeline.

    `rec_in`/`rec_out` are output frames [in, out). The source time at output frame f is
    `src_in + (f - rec_in) / fps * speed`; dissolve handles extend the layer with `fade_in`/`fade_out`
    frames before `rec_in` and after `rec_out` where it is blended with its neighbour.
    """

    name: str
    source: Source
    track: int  # higher = on top
    rec_in: int
    rec_out: int
    src_in: float  # seconds, relative to the media's own start
    speed: float = 1.0
    fade_in: tuple[int, int] | None = None  # [start, end) frames where opacity ramps 0 → 1 (dissolve in)
    fade_out: tuple[int, int] | None = None  # [start, end) frames where opacity ramps 1 → 0 (dissolve out)

    @property
    def first(self) -> int:
        return min(self.rec_in, self.fade_in[0]) if self.fade_in else self.rec_in

    @property
    def last(self) -> int:
        """Exclusive end including the dissolve handle."""
        return max(self.rec_out, self.fade_out[1]) if self.fade_out else self.rec_out

    def opacity(self, frame: float) -> float:
        """Cross-fade weight at an output frame (fractional for audio samples); 0 outside the layer."""
        if frame < self.first or frame >= self.last:
            return 0.0
        alpha = 1.0
        if self.fade_in and frame < self.fade_in[1]:
            start, end = self.fade_in
            alpha = min(alpha, (frame - start + 0.5) / max(1, end - start))
        if self.fade_out and frame >= self.fade_out[0]:
            start, end = self.fade_out
            alpha = min(alpha, 1.0 - (frame - start + 0.5) / max(1, end - start))
        return min(1.0, max(0.0, alpha))

    def source_time(self, frame: int, fps: float) -> float:
        return self.src_in + (frame - self.rec_in) / fps * self.speed

    def describe(self, fps: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": str(self.source.path) if self.source.path else None,
            "kind": self.source.kind,
            "track": self.track,
            "recordIn": round(self.rec_in / fps, 6),
            "recordOut": round(self.rec_out / fps, 6),
            "sourceIn": round(self.src_in, 6),
            "speed": self.speed,
            "offline": self.source.kind == "offline",
            **({"reason": self.source.reason} if self.source.reason else {}),
        }


@dataclass
class Plan:
    fps: float
    frames: int
    width: int
    height: int
    video: list[Layer] = field(default_factory=list)
    audio: list[Layer] = field(default_factory=list)  # tracks mixed; each layer's audio from its source
    warnings: list[str] = field(default_factory=list)
    clip_count: int = 0
    start_frame: int = 0  # timeline's global start (for the timecode burn-in), in output frames
    timeline_format: str = ""
    # per thread, lists that also receive every warning raised on that thread: the segment cache stores a
    # segment's (or audio chunk's) own warnings, and video and audio are rendered on threads of their own
    _sinks: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def rate(self) -> Fraction:
        """The output rate as an exact fraction (29.97 -> 30000/1001)."""
        return fps_fraction(self.fps)

    @property
    def warning_sinks(self) -> list[list[str]]:
        """The calling thread's sinks (append and remove a list around the work it should collect)."""
        sinks: list[list[str]] | None = getattr(self._sinks, "lists", None)
        if sinks is None:
            sinks = self._sinks.lists = []
        return sinks

    def warn(self, message: str) -> None:
        for sink in self.warning_sinks:
            if message not in sink:
                sink.append(message)
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def describe(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "frames": self.frames,
            "durationSeconds": round(self.duration, 6),
            "width": self.width,
            "height": self.height,
            "clips": [layer.describe(self.fps) for layer in self.video],
            "audioClips": [layer.describe(self.fps) for layer in self.audio],
        }


def fps_fraction(fps: float) -> Fraction:
    """The output rate as an exact fraction: whole rates stay whole, 29.97/23.976/59.94 become n*1000/1001."""
    if abs(fps - round(fps)) < 1e-6:
        return Fraction(round(fps))
    ntsc = round(fps * 1.001)
    if abs(fps - ntsc / 1.001) < 0.006:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def to_frames(seconds: float, fps: float) -> int:
    """Seconds to output frames, rounding half up with a tolerance for float noise."""
    return math.floor(seconds * fps + 0.5 + 1e-9)
