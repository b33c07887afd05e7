"""VideoReader after a seek: the frames between the keyframe and the wanted one (the pre-roll) are decoded without
their non-reference frames and without being scaled, and the picture is exactly the one a plain decode shows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from preview_desktop.render import codec
from preview_desktop.render.codec import VideoReader
from preview_desktop.render.scaler import Scaler
from tests.support.media import RED, frame_image

FPS, FRAMES, SIZE, OUT = 25, 200, (320, 180), (160, 90)


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s, one keyframe, B-frames (x264 medium): a long pre-roll with half of it non-reference frames."""
    path = tmp_path_factory.mktemp("preroll") / "long_gop.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.gop_size = 1000
        stream.options = {"preset": "medium", "crf": "18", "x264-params": "keyint=1000:scenecut=0:bframes=3:b-adapt=0"}
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(frame_image(index, SIZE, RED), format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def plain(path: Path) -> list[np.ndarray]:
    """Every frame decoded and scaled the straightforward way (no seek, every frame): the reference. The reader
    skips the loop filter at this shrink (codec.SKIP_DEBLOCK_AT), so the reference does too."""
    scaler = Scaler(OUT, "i420")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"skip_loop_filter": "all"}
        return [scaler.scale(frame) for frame in container.decode(stream)]


class Counting:
    """Counts what the reader's decoder gave and what its scaler converted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded = 0
        self.scaled = 0
        real_decode, real_scale = VideoReader._decode, Scaler.scale

        def decode(reader: VideoReader) -> Iterator[Any]:
            for frame in real_decode(reader):
                self.decoded += 1
                yield frame

        def scale(scaler: Scaler, frame: Any) -> np.ndarray:
            self.scaled += 1
            return real_scale(scaler, frame)

        monkeypatch.setattr(VideoReader, "_decode", decode)
        monkeypatch.setattr(Scaler, "scale", scale)


@pytest.mark.parametrize("ahead", [False, True])
def test_a_seek_skips_the_preroll_work_and_shows_the_same_frame(long_gop: Path, monkeypatch: pytest.MonkeyPatch,
                                                                ahead: bool) -> None:
    reference = plain(long_gop)
    counting = Counting(monkeypatch)
    reader = VideoReader(long_gop, 0.0, OUT, 2, ahead=ahead, convert="i420")
    try:
        for index in (150, 151, 152, 160):
            picture = reader.i420_at(index / FPS)
            assert np.array_equal(picture, reference[index])
    finally:
        reader.close()
    margin = math.ceil(max(0.5, codec._PREROLL_FRAMES / FPS) * FPS)  # decoded normally before the target
    assert counting.scaled <= margin + 1 + 11 + codec.AHEAD + 1  # margin, held frame, 150-160, read-ahead
    assert counting.decoded < 150 * 0.75  # the pre-roll's non-reference frames were not decoded at all


def test_a_file_that_ends_inside_the_preroll_holds_its_true_last_frame(long_gop: Path) -> None:
    reference = plain(long_gop)
    reader = VideoReader(long_gop, 0.0, OUT, 2, ahead=True, convert="i420")
    try:
        assert np.array_equal(reader.i420_at(FRAMES / FPS + 3.0), reference[-1])
        assert reader.holding(FRAMES / FPS + 3.0)
    finally:
        reader.close()


def test_reading_on_after_the_preroll_gives_every_frame(long_gop: Path) -> None:
    reference = plain(long_gop)
    reader = VideoReader(long_gop, 0.0, OUT, 2, ahead=True, convert="i420")
    try:
        for index in range(120, FRAMES):
            assert np.array_equal(reader.i420_at(index / FPS), reference[index]), index
    finally:
        reader.close()
