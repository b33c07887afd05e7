"""The frame loop: for each output frame pick the topmost track's picture (dissolving where planned), burn in,
encode, mix the matching audio, report progress and honour cancel — one frame at a time, bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..core.spec import JobSpec
from ..errors import MediaError, RenderError
from . import compose
from .artifacts import Collector
from .audio import Mixer
from .codec import AUDIO_RATE, Encoder, Unreadable, VideoReader, decode_threads
from .plan import Layer, Plan

CheckFn = Callable[[], None]
ProgressFn = Callable[[int, int], None]


@dataclass
class Frame:
    """One composed output frame: BGR (height, width, 3), or I420 (height * 3/2, width) when it is one video
    filling the whole picture (the encoder's own format: no colour conversion, as the ffmpeg CLI)."""

    image: np.ndarray
    i420: bool
    picture: bool  # real picture (not a gap or a slate)
    name: str | None  # the clip showing

    def bgr(self, width: int, height: int) -> np.ndarray:
        return compose.i420_to_bgr(self.image) if self.i420 else self.image


class Pictures:
    """Turns (layer, output frame) into a full-size BGR canvas (or I420 picture); owns the open readers.

    `pipelined`: each video decodes and scales on a thread of its own, ahead of the caller (codec.VideoReader)."""

    def __init__(self, plan: Plan, strict: bool, threads: int | None = None, pipelined: bool = False) -> None:
        self.plan = plan
        self.strict = strict
        self.threads = decode_threads(threads)
        self.pipelined = pipelined
        self.i420_ok = plan.width % 2 == 0 and plan.height % 2 == 0
        self.readers: dict[int, VideoReader] = {}
        self.failed: dict[int, str] = {}  # layer id → reason (slate from then on)
        self.stills: dict[str, np.ndarray] = {}
        self.sequence_frames: dict[int, tuple[int, np.ndarray]] = {}
        self.held: set[int] = set()

    def close(self, layer: Layer | None = None) -> None:
        keys = [id(layer)] if layer is not None else list(self.readers)
        for key in keys:
            reader = self.readers.pop(key, None)
            if reader is not None:
                reader.close()
            self.sequence_frames.pop(key, None)

    def _fail(self, layer: Layer, reason: str) -> None:
        path = layer.source.path
        if self.strict:
            raise MediaError(f"clip {layer.name!r}: {path}: {reason}", clip=layer.name, file=str(path))
        self.failed[id(layer)] = reason
        self.plan.warn(f"clip {layer.name!r}: media unreadable ({reason}), slate rendered")

    def picture(self, layer: Layer, frame: int) -> tuple[np.ndarray, bool]:
        """(canvas, is real picture) for the layer at an output frame."""
        width, height = self.plan.width, self.plan.height
        source = layer.source
        if id(layer) in self.failed or source.kind == "offline":
            return compose.slate(layer.name, width, height), False
        if source.kind == "black" or source.path is None:
            return compose.black(width, height), False
        t = layer.source_time(frame, self.plan.fps)
        try:
            if source.kind == "video":
                return self._video(layer, t), True
            if source.kind == "still":
                return self._still(source.path), True
            return self._sequence(layer, t), True
        except Unreadable as exc:
            self._fail(layer, str(exc))
        except (av.FFmpegError, cv2.error, OSError) as exc:
            raise RenderError(
                f"clip {layer.name!r}: {source.path}: {type(exc).__name__}: {exc}",
                clip=layer.name, file=str(source.path),
            ) from exc
        return compose.slate(layer.name, width, height), False

    def _fills(self, layer: Layer) -> bool:
        """The layer's video covers the whole output (no letter/pillar boxes): it can stay in I420."""
        source = layer.source
        w, h, _x, _y = compose.fit(source.width, source.height, self.plan.width, self.plan.height)
        return self.i420_ok and (w, h) == (self.plan.width, self.plan.height)

    def _reader(self, layer: Layer) -> VideoReader:
        key = id(layer)
        reader = self.readers.get(key)
        if reader is None:
            source = layer.source
            assert source.path is not None
            w, h, _x, _y = compose.fit(source.width, source.height, self.plan.width, self.plan.height)
            # convert every frame ahead only when every frame is shown (no speed-up, no higher source rate)
            every = abs(layer.speed) * (source.rate or self.plan.fps) <= self.plan.fps * 1.01
            convert = ("i420" if self._fills(layer) else "bgr") if every else None
            reader = VideoReader(source.path, source.start_time, (w, h), self.threads, ahead=self.pipelined,
                                 convert=convert)
            self.readers[key] = reader
        return reader

    def _held(self, layer: Layer, reader: VideoReader, t: float) -> None:
        key = id(layer)
        if key in self.held or not reader.holding(t):
            return
        source = layer.source
        self.held.add(key)
        why = reader.problem or "the file ends before the clip's out point"
        if not reader.problem and source.duration and t < source.duration - 0.5:
            why = f"the file's data ends before the {source.duration:.2f} s it declares (truncated?)"
        if self.strict:
            raise MediaError(f"clip {layer.name!r}: {source.path}: {why}", clip=layer.name, file=str(source.path))
        self.plan.warn(f"clip {layer.name!r}: {why}; last frame held from {t:.2f} s")

    def _video(self, layer: Layer, t: float) -> np.ndarray:
        reader = self._reader(layer)
        image = reader.frame_at(t)
        self._held(layer, reader, t)
        return compose.place(image, self.plan.width, self.plan.height)

    def i420(self, layer: Layer, frame: int) -> np.ndarray | None:
        """The layer's picture at `frame` as I420 when it is a readable video filling the output, else None
        (the caller composes in BGR; a failure met here has been reported as `picture` reports it)."""
        source = layer.source
        if source.kind != "video" or id(layer) in self.failed or source.path is None or not self._fills(layer):
            return None
        t = layer.source_time(frame, self.plan.fps)
        try:
            reader = self._reader(layer)
            image = reader.i420_at(t)
            self._held(layer, reader, t)
            return image
        except Unreadable as exc:
            self._fail(layer, str(exc))
        except (av.FFmpegError, OSError) as exc:
            raise RenderError(
                f"clip {layer.name!r}: {source.path}: {type(exc).__name__}: {exc}",
                clip=layer.name, file=str(source.path),
            ) from exc
        return None

    def _still(self, path: Path) -> np.ndarray:
        key = str(path)
        if key not in self.stills:
            image = cv2.imread(key, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise Unreadable("not a readable image")
            fitted = compose.resize_fit(image, self.plan.width, self.plan.height)
            fitted.setflags(write=False)
            self.stills[key] = fitted
        return self.stills[key].copy()

    def _sequence(self, layer: Layer, t: float) -> np.ndarray:
        source = layer.source
        assert source.pattern is not None
        number = source.start_frame + int(np.floor(t * source.rate + 1e-6))
        number = min(max(number, source.start_frame), source.end_frame)
        cached = self.sequence_frames.get(id(layer))
        if cached is not None and cached[0] == number:
            return cached[1].copy()
        image = cv2.imread(source.pattern % number, cv2.IMREAD_UNCHANGED)
        if image is None:
            if cached is not None:  # a missing frame in the middle: hold the previous one
                self.plan.warn(f"clip {layer.name!r}: frame {number} of the image sequence missing, held")
                return cached[1].copy()
            raise Unreadable(f"frame {number} of the image sequence is missing or unreadable")
        fitted = compose.resize_fit(image, self.plan.width, self.plan.height)
        self.sequence_frames[id(layer)] = (number, fitted)
        return fitted.copy()


class Composer:
    """Clean (burn-in free) output frames at increasing indexes: opens and closes readers as layers come and go.

    Shared by the single-pass loop and the segment renderer, so both compose pixels the same way. `threads`
    (PREVIEW_RENDER_THREADS) caps each reader's decoder threads.
    """

    def __init__(self, plan: Plan, strict: bool, threads: int | None = None, pipelined: bool = False) -> None:
        self.plan = plan
        self.pictures = Pictures(plan, strict, threads, pipelined)
        self.layers = sorted(plan.video, key=lambda layer: layer.first)
        self.pending = 0
        self.active: list[Layer] = []

    def _activate(self, index: int) -> None:
        while self.pending < len(self.layers) and self.layers[self.pending].first <= index:
            self.active.append(self.layers[self.pending])
            self.pending += 1
        for layer in [layer for layer in self.active if layer.last <= index]:
            self.active.remove(layer)
            self.pictures.close(layer)

    def frame(self, index: int) -> tuple[np.ndarray, bool, str | None]:
        """(BGR image, is real picture, name of the clip showing) at output frame `index` (never smaller than
        the last)."""
        self._activate(index)
        return _compose_frame(self.pictures, self.active, index, self.plan.width, self.plan.height)

    def output_frame(self, index: int) -> Frame:
        """As `frame`, but a single video filling the picture comes as I420 (the fast path: see Frame)."""
        self._activate(index)
        visible = _top_visible(self.active, index)
        if len(visible) == 1 and visible[0][1] >= 0.999:
            image = self.pictures.i420(visible[0][0], index)
            if image is not None:
                return Frame(image, True, True, visible[0][0].name)
        image, picture, name = _compose_frame(self.pictures, self.active, index, self.plan.width, self.plan.height)
        return Frame(image, False, picture, name)

    def close(self) -> None:
        self.pictures.close()


def burn(image: np.ndarray, plan: Plan, spec: JobSpec, index: int, name: str | None, *, i420: bool = False) -> None:
    """The output's burn-ins for frame `index`, drawn in place (on a BGR or, with `i420`, an I420 picture)."""
    burn_in = spec.output.burnIn
    texts = {
        "tc": compose.timecode(plan.start_frame + index, plan.fps) if burn_in.timecode else None,
        "clip": name if burn_in.clipName else None,
        "label": burn_in.label or None,
    }
    if i420:
        compose.burn_in_i420(image, plan.width, plan.height, **texts)
    else:
        compose.burn_in(image, **texts)


def encode_frame(encoder: Encoder, frame: Frame) -> None:
    if frame.i420:
        encoder.write_i420(frame.image)
    else:
        encoder.write_video(frame.image)


def audio_problem_reporter(plan: Plan, spec: JobSpec) -> Callable[[Layer, str], None]:
    """What the mixer calls when a layer's audio cannot be read: fail under strict, else warn (silence)."""

    def problem(layer: Layer, reason: str) -> None:
        if spec.output.strict:
            raise MediaError(f"clip {layer.name!r}: {layer.source.path}: {reason}", clip=layer.name)
        plan.warn(f"clip {layer.name!r}: audio unreadable ({reason}), silence rendered")

    return problem


def pipelined(threads: int | None) -> bool:
    """Stages on threads of their own (decode ahead, encode behind, audio beside) unless PREVIEW_RENDER_THREADS
    asks for a single thread: then one render keeps to about one core."""
    return threads is None or threads > 1


def render_video(
    plan: Plan,
    spec: JobSpec,
    out_dir: Path,
    *,
    check: CheckFn,
    progress: ProgressFn,
    threads: int | None = None,
) -> tuple[Collector, dict[str, Any]]:
    """Write preview.mp4 into out_dir in one pass; returns the thumbnail/poster collector and encode facts."""
    output = spec.output
    fps = plan.fps
    width, height = plan.width, plan.height
    has_audio = output.audio
    staged = pipelined(threads)
    encoder = Encoder(out_dir / "preview.mp4", width, height, plan.rate, preset=output.preset, audio=has_audio,
                      offload=staged)
    composer = Composer(plan, output.strict, threads, staged)
    mixer = Mixer(plan.audio, fps, audio_problem_reporter(plan, spec)) if has_audio else None
    collector = Collector(plan.frames, fps, width, height)
    samples_done = 0
    ok = False
    try:
        for index in range(plan.frames):
            check()
            frame = composer.output_frame(index)
            collector.offer(index, frame.image, frame.picture, i420=frame.i420)
            burn(frame.image, plan, spec, index, frame.name, i420=frame.i420)
            encode_frame(encoder, frame)
            if mixer is not None:
                target = round((index + 1) * AUDIO_RATE / fps)
                encoder.write_audio(mixer.render(samples_done, target - samples_done))
                samples_done = target
            progress(index + 1, plan.frames)
        encoder.finish()
        ok = True
    except (av.FFmpegError, OSError) as exc:
        raise RenderError(f"encoding preview.mp4 failed: {type(exc).__name__}: {exc}") from exc
    finally:
        composer.close()
        if mixer is not None:
            mixer.close()
        if not ok:
            encoder.abort()
    return collector, {"frames": encoder.frames, "samples": samples_done}


def _compose_frame(
    pictures: Pictures, active: list[Layer], index: int, width: int, height: int
) -> tuple[np.ndarray, bool, str | None]:
    """Topmost track with something at this frame wins; within it, dissolving layers are blended."""
    chosen = _top_visible(active, index)
    if not chosen:
        return compose.black(width, height), False, None
    parts: list[tuple[np.ndarray, float]] = []
    real = False
    for layer, alpha in chosen:
        image, is_picture = pictures.picture(layer, index)
        parts.append((image, alpha))
        real = real or is_picture
    image = compose.blend(parts, width, height)
    if not image.flags.writeable:
        image = image.copy()
    name = max(chosen, key=lambda item: item[1])[0].name
    return image, real, name


def _top_visible(active: list[Layer], index: int) -> list[tuple[Layer, float]]:
    """(layer, opacity) of the visible layers on the topmost track that has something at this frame."""
    visible = [(layer, layer.opacity(index)) for layer in active]
    visible = [(layer, alpha) for layer, alpha in visible if alpha > 0.0]
    if not visible:
        return []
    top = max(layer.track for layer, _ in visible)
    return [(layer, alpha) for layer, alpha in visible if layer.track == top]
