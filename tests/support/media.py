"""Test media made on the fly with PyAV (nothing binary is committed) and helpers to inspect renders.

Clips encode their own frame number as 8 black/white blocks across the middle band, so a test can tell which
source frame an output frame shows (speed changes, handles), and carry a solid background colour (dissolves).
Optional white flash frames and beeps let sync be checked to the frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RED = (0, 0, 200)  # BGR
BLUE = (200, 0, 0)
GREEN = (0, 180, 0)
BITS = 8


def frame_image(index: int, size: tuple[int, int], colour: Sequence[int], flash: bool = False) -> np.ndarray:
    width, height = size
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (255, 255, 255) if flash else colour
    top, bottom = int(height * 0.4), int(height * 0.6)
    block = width // BITS
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        image[top:bottom, bit * block: (bit + 1) * block] = 255 if on else 0
    return image


def read_code(image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> int:
    """The frame number in a (possibly scaled, letterboxed) picture; box = (x, y, w, h) of the picture."""
    height, width = image.shape[:2]
    x0, y0, w, h = box or (0, 0, width, height)
    row = image[y0 + int(h * 0.45): y0 + int(h * 0.55), x0: x0 + w]
    block = w / BITS
    value = 0
    for bit in range(BITS):
        cell = row[:, int(bit * block + block * 0.25): int((bit + 1) * block - block * 0.25)]
        value = (value << 1) | int(cell.mean() > 128)
    return value


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 180),
    colour: Sequence[int] = RED,
    flashes: Iterable[int] = (),
    beeps: Iterable[float] = (),
    beep_seconds: float = 0.1,
    tone: float | None = None,
    audio: bool = True,
    codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """An H.264 (+AAC) MP4. `flashes`: white frame indexes; `beeps`: start seconds of 1 kHz beeps."""
    flash_set = set(flashes)
    beep_list = list(beeps)
    options = {"movflags": "+faststart"} if faststart else {}
    container = av.open(str(path), "w", format="mp4" if path.suffix == ".mp4" else None, options=options)
    video = container.add_stream(codec, rate=fps)
    video.width, video.height = size
    video.pix_fmt = "yuv420p"
    video.codec_context.thread_count = 1
    if codec == "libx264":
        video.options = {"preset": "ultrafast", "crf": "18"}
    astream = container.add_stream("aac", rate=48000, layout="stereo") if audio else None
    frames = round(seconds * fps)
    per_frame = 48000 // fps
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(frame_image(index, size, colour, index in flash_set), format="bgr24")
        frame.pts = index
        container.mux(video.encode(frame))
        if astream is not None:
            t = (np.arange(per_frame) + index * per_frame) / 48000.0
            wave = np.zeros(per_frame, dtype=np.float32)
            if tone:
                wave += 0.1 * np.sin(2 * math.pi * tone * t)
            for start in beep_list:
                inside = (t >= start) & (t < start + beep_seconds)
                wave[inside] += 0.5 * np.sin(2 * math.pi * 1000.0 * t[inside])
            chunk = av.AudioFrame.from_ndarray(np.stack([wave, wave]).astype(np.float32), format="fltp",
                                               layout="stereo")
            chunk.sample_rate = 48000
            chunk.pts = index * per_frame
            chunk.time_base = Fraction(1, 48000)
            container.mux(astream.encode(chunk))
    container.mux(video.encode(None))
    if astream is not None:
        container.mux(astream.encode(None))
    container.close()
    return path


def make_still(path: Path, size: tuple[int, int] = (320, 240), colour: Sequence[int] = GREEN) -> Path:
    import cv2

    image = np.empty((size[1], size[0], 3), dtype=np.uint8)
    image[:] = colour
    cv2.imwrite(str(path), image)
    return path


def make_sequence(folder: Path, count: int, *, start: int = 1, size: tuple[int, int] = (160, 90),
                  colour: Sequence[int] = BLUE) -> str:
    """PNG frames name.%04d.png carrying their index code; returns the printf pattern path."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for number in range(start, start + count):
        cv2.imwrite(str(folder / f"shot.{number:04d}.png"), frame_image(number - start, size, colour))
    return str(folder / "shot.%04d.png")


@dataclass
class Decoded:
    codec: str
    width: int
    height: int
    fps: float
    frames: list[np.ndarray]  # BGR
    duration: float
    audio_codec: str | None
    audio: np.ndarray | None  # mono mix float32 at 48 kHz
    audio_rate: int | None
    faststart: bool


def decode(path: Path) -> Decoded:
    """Everything a test needs to judge a render, by decoding it."""
    data = path.read_bytes()
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(vstream)]
        codec = vstream.codec_context.name
        width, height = vstream.codec_context.width, vstream.codec_context.height
        fps = float(vstream.average_rate or 0)
        duration = float(container.duration or 0) / 1e6
    audio = None
    audio_codec = None
    rate = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            astream = container.streams.audio[0]
            audio_codec = astream.codec_context.name
            rate = astream.codec_context.sample_rate
            chunks = [np.atleast_2d(f.to_ndarray()) for f in container.decode(astream)]
            if chunks:
                audio = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32)
    return Decoded(codec, width, height, fps, frames, duration, audio_codec, audio, rate, 0 <= moov < mdat)


def onset(audio: np.ndarray, rate: int, threshold: float = 0.1) -> float | None:
    """Seconds of the first sample louder than `threshold`."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return float(loud[0]) / rate if loud.size else None


def bright_frames(frames: list[np.ndarray], threshold: float = 200.0) -> list[int]:
    """Indexes of near-white frames (the flashes), judged on the picture's top band (no burn-ins there)."""
    return [i for i, f in enumerate(frames) if float(f[: f.shape[0] // 3].mean()) > threshold]
