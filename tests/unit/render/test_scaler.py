"""render/scaler.py: the preview's small picture as the ffmpeg CLI scales it, on real decoded frames."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import cv2
import numpy as np

from preview_desktop.render.scaler import Scaler
from tests.support.media import make_clip


def _frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _ffmpeg_i420(path: Path, size: tuple[int, int], count: int) -> np.ndarray:
    """The ffmpeg CLI's `scale=W:H:flags=area` of the first `count` frames, as I420 rows."""
    width, height = size
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", str(count),
         "-vf", f"scale={width}:{height}:flags=area", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
        check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(count, height * 3 // 2, width)


def _testsrc2(path: Path) -> Path:
    """ffmpeg's testsrc2: saturated colour with hard edges, where VideoFrame.reformat's chroma differed."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25",
                    "-t", "0.4", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_i420_matches_the_ffmpeg_cli_scale_filter(tmp_path: Path) -> None:
    clip = _testsrc2(tmp_path / "big.mp4")
    frames = _frames(clip)
    scaler = Scaler((320, 180), "i420")
    ours = [scaler.scale(frame) for frame in frames]
    theirs = _ffmpeg_i420(clip, (320, 180), len(frames))
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.shape == (270, 320)
        assert cv2.PSNR(mine, reference) >= 50.0  # bit-identical with the same FFmpeg; reformat's was ~43


def test_bgr_is_the_same_picture_as_i420(tmp_path: Path) -> None:
    frames = _frames(make_clip(tmp_path / "c.mp4", seconds=0.2, size=(640, 360), audio=False))
    i420, bgr = Scaler((320, 180), "i420"), Scaler((320, 180), "bgr")
    for frame in frames:
        picture = bgr.scale(frame)
        assert picture.shape == (180, 320, 3)
        assert cv2.PSNR(picture, cv2.cvtColor(i420.scale(frame), cv2.COLOR_YUV2BGR_I420)) >= 35.0


def test_frames_that_change_size_mid_stream_are_scaled_too(tmp_path: Path) -> None:
    """A buffer source cannot follow a size change: the scaler rebuilds its graph instead of failing."""
    small = _frames(make_clip(tmp_path / "s.mp4", seconds=0.2, size=(320, 180), audio=False))
    large = _frames(make_clip(tmp_path / "l.mp4", seconds=0.2, size=(960, 540), audio=False))
    scaler = Scaler((160, 90), "i420")
    shapes = {scaler.scale(frame).shape for frame in [*small, *large, *small]}
    assert shapes == {(135, 160)}
