"""Demo media so a new user can render at once: three short synthetic clips with a tone, a still, and an OTIO
timeline (relative paths) with a dissolve. Generated, not shipped: nothing binary lives in the repository.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

DEMO_TIMELINE = "demo.otio"
_FPS = 25
_SIZE = (640, 360)
_CLIPS = (
    ("demo_ocean.mp4", (150, 90, 20), 330.0, "OCEAN"),
    ("demo_sunset.mp4", (40, 110, 220), 440.0, "SUNSET"),
    ("demo_forest.mp4", (50, 140, 40), 550.0, "FOREST"),
)
_STILL = "demo_title.png"
_SECONDS = 4


def _write_clip(path: Path, colour: tuple[int, int, int], tone: float, title: str) -> None:
    import av
    import cv2

    width, height = _SIZE
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
    video = container.add_stream("libx264", rate=_FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.thread_count = 1
    video.options = {"preset": "ultrafast"}
    audio = container.add_stream("aac", rate=48000, layout="stereo")
    frames = _FPS * _SECONDS
    base = np.zeros((height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :, None]
    base[:] = (np.array(colour, dtype=np.float32)[None, None, :] * ramp).astype(np.uint8)
    samples_per_frame = 48000 // _FPS
    for index in range(frames):
        image = base.copy()
        x = int((index / frames) * (width - 80)) + 40
        cv2.circle(image, (x, height // 2), 30, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.putText(image, title, (24, 56), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(image, f"frame {index:03d}", (24, height - 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (255, 255, 255), 2, cv2.LINE_AA)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index
        container.mux(video.encode(frame))
        t = (np.arange(samples_per_frame) + index * samples_per_frame) / 48000.0
        wave = (0.2 * np.sin(2 * math.pi * tone * t)).astype(np.float32)
        chunk = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        chunk.sample_rate = 48000
        chunk.pts = index * samples_per_frame
        chunk.time_base = Fraction(1, 48000)
        container.mux(audio.encode(chunk))
    container.mux(video.encode(None))
    container.mux(audio.encode(None))
    container.close()
    os.replace(tmp, path)


def _write_still(path: Path) -> None:
    import cv2

    width, height = _SIZE
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:] = (np.stack([80 + 100 * y, 40 + 40 * y, 120 + 60 * y], axis=-1)).astype(np.uint8)
    cv2.putText(image, "PREVIEW DESKTOP", (60, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3,
                cv2.LINE_AA)
    cv2.putText(image, "demo title card", (60, height // 2 + 48), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                (230, 230, 230), 2, cv2.LINE_AA)
    tmp = path.with_name(f".{path.name}.tmp.png")
    cv2.imwrite(str(tmp), image)
    os.replace(tmp, path)


def _write_timeline(path: Path) -> None:
    import opentimelineio as otio

    def seconds(value: float) -> otio.opentime.RationalTime:
        return otio.opentime.RationalTime(value * _FPS, _FPS)

    def clip(name: str, start: float, duration: float) -> otio.schema.Clip:
        return otio.schema.Clip(
            name=name,
            media_reference=otio.schema.ExternalReference(target_url=name),
            source_range=otio.opentime.TimeRange(seconds(start), seconds(duration)),
        )

    timeline = otio.schema.Timeline(name="Preview Desktop demo", global_start_time=seconds(3600))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip(_STILL, 0, 2))
    track.append(clip(_CLIPS[0][0], 0, 3))
    track.append(otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                        in_offset=seconds(0.5), out_offset=seconds(0.5)))
    track.append(clip(_CLIPS[1][0], 0.5, 3))
    fast = clip(_CLIPS[2][0], 0, 2)
    fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    track.append(fast)
    timeline.tracks.append(track)
    tmp = path.with_name(f".{path.name}.tmp")
    otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otio_json")
    os.replace(tmp, path)


def make_demo(media_dir: Path) -> Path:
    """Idempotent: files already there are kept; anything missing is (re)written. Returns the timeline path."""
    media_dir.mkdir(parents=True, exist_ok=True)
    for name, colour, tone, title in _CLIPS:
        if not (media_dir / name).is_file():
            _write_clip(media_dir / name, colour, tone, title)
    if not (media_dir / _STILL).is_file():
        _write_still(media_dir / _STILL)
    timeline = media_dir / DEMO_TIMELINE
    if not timeline.is_file():
        _write_timeline(timeline)
    return timeline
