"""Checks of a real preview's files, by decoding them: the MP4 with PyAV, the JPEGs with OpenCV, the WebVTT by
parsing it against the sprite it names. Used wherever a test gets hold of a real render (API downloads, farm
results, the window)."""

from __future__ import annotations

import io
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np

_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")
_TARGET = re.compile(r"^([^#\s]+)#xywh=(\d+),(\d+),(\d+),(\d+)$")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    sprite: str
    box: tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class Mp4Facts:
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    frames: int  # decoded, not the header's claim


def mp4_facts(data: bytes) -> Mp4Facts:
    """Decode every video frame (so a damaged file fails here, not just a wrong header)."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video))
        return Mp4Facts(video.codec_context.name, audio, video.codec_context.width, video.codec_context.height,
                        frames)


def decode_jpeg(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the JPEG does not decode"
    return image


def _seconds(parts: tuple[str, ...]) -> float:
    h, m, s, ms = (int(p) for p in parts)
    return h * 3600 + m * 60 + s + ms / 1000


def parse_vtt(text: str) -> list[Cue]:
    """A strict little WebVTT reader for thumbnail tracks: header, then (timing line, sprite#xywh) blocks."""
    lines = text.splitlines()
    assert lines and lines[0].startswith("WEBVTT"), "no WEBVTT header"
    cues: list[Cue] = []
    blocks = [b for b in "\n".join(lines[1:]).split("\n\n") if b.strip()]
    for block in blocks:
        timing, target, *rest = block.strip().splitlines()
        assert not rest, f"unexpected lines in a cue: {rest}"
        when = _CUE.match(timing)
        where = _TARGET.match(target)
        assert when and where, f"not a thumbnail cue: {block!r}"
        x, y, w, h = (int(v) for v in where.groups()[1:])
        cues.append(Cue(_seconds(when.groups()[:4]), _seconds(when.groups()[4:]), where.group(1), (x, y, w, h)))
    return cues


def check_thumbnails(vtt: bytes, sprite: bytes, duration: float) -> list[Cue]:
    """The cues cover the video in order, name the sprite, and each box lies inside it and is not empty."""
    cues = parse_vtt(vtt.decode("utf-8"))
    image = decode_jpeg(sprite)
    height, width = image.shape[:2]
    assert cues, "no thumbnail cues"
    assert cues[0].start == 0 and abs(cues[-1].end - duration) < 0.05, (cues[0], cues[-1], duration)
    for before, after in itertools.pairwise(cues):
        assert before.end == after.start and before.start < before.end, (before, after)
    for cue in cues:
        x, y, w, h = cue.box
        assert cue.sprite == "thumbs.jpg", cue
        assert w > 0 and h > 0 and x + w <= width and y + h <= height, (cue, width, height)
        assert float(image[y: y + h, x: x + w].std()) > 2.0, f"thumbnail {cue} is blank"
    return cues


def check_preview(files: dict[str, bytes], frames: int, size: tuple[int, int]) -> dict[str, Any]:
    """All five files of a finished real preview, judged by decoding them; returns preview.json."""
    summary: dict[str, Any] = json.loads(files["preview.json"])
    facts = mp4_facts(files["preview.mp4"])
    assert (facts.video_codec, facts.audio_codec) == ("h264", "aac"), facts
    assert (facts.width, facts.height) == size and facts.frames == frames, facts
    video = summary["video"]
    assert video["frames"] == frames and video["bytes"] == len(files["preview.mp4"]), video
    poster = decode_jpeg(files["poster.jpg"])
    assert poster.shape[:2] == (size[1], size[0])
    cues = check_thumbnails(files["thumbs.vtt"], files["thumbs.jpg"], video["durationSeconds"])
    assert summary["thumbnails"] == {"sprite": "thumbs.jpg", "vtt": "thumbs.vtt", "count": len(cues)}
    assert summary["poster"] == "poster.jpg"
    return summary
