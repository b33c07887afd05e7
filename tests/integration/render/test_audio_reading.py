"""The audio path's shortcuts give exactly the samples of the straightforward way (so the AAC bytes, the chunk
cache and what users hear stay as they were): AudioReader's frame-by-frame buffer against a plain decode of the
file, its sound-only probe against a full probe, and the mixer's skipped unit gain against multiplying by it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from preview_desktop.render.audio import Mixer, _envelope
from preview_desktop.render.audio_cache import FEED
from preview_desktop.render.audio_reader import AudioReader
from preview_desktop.render.codec import AUDIO_RATE
from preview_desktop.render.plan import Layer, Source

SECONDS = 5


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.264 + AAC whose sound is a tone over white noise: FFmpeg's encoder codes the noise with PNS, whose
    decoded samples depend on the decoder's history (a reused or differently probed decoder would show)."""
    path = tmp_path_factory.mktemp("audio") / "noisy.mp4"
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        per = AUDIO_RATE // 25
        for index in range(SECONDS * 25):
            picture = rng.integers(0, 255, (180, 320, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = index
            container.mux(video.encode(frame))
            t = (np.arange(per) + index * per) / AUDIO_RATE
            wave = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal((2, per))
            sound = av.AudioFrame.from_ndarray(wave.astype(np.float32), format="fltp", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = AUDIO_RATE, index * per, Fraction(1, AUDIO_RATE)
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def plain_decode(path: Path) -> tuple[int, np.ndarray]:
    """(media sample of the first decoded sample, all samples) by the book: full probe, every frame's ndarray."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[0]))
    first = round(float(frames[0].time) * AUDIO_RATE)
    return first, np.concatenate([frame.to_ndarray() for frame in frames], axis=1)


def expected(decoded: tuple[int, np.ndarray], position: int, count: int) -> np.ndarray:
    first, samples = decoded
    out = np.zeros((2, count), np.float32)
    a, b = max(position, first), min(position + count, first + samples.shape[1])
    if b > a:
        out[:, a - position: b - position] = samples[:, a - first: b - first]
    return out


def test_reading_forward_gives_exactly_the_decoded_samples(noisy: Path) -> None:
    """Reads of every size the mixer makes (a video frame's 1920, the encoder feed, odd sizes, a jump ahead
    short of a seek, past the end) are bit-identical to slices of one plain decode of the file."""
    decoded = plain_decode(noisy)
    assert decoded[1].shape[1] > (SECONDS - 1) * AUDIO_RATE
    reader = AudioReader(noisy, 0.0)
    try:
        position = 0
        for count in [1920] * 5 + [FEED] * 3 + [777, 1, 5000, 1024]:
            assert np.array_equal(reader.read(position, count), expected(decoded, position, count)), position
            position += count
        position += AUDIO_RATE  # ahead, within the 2 s the reader decodes through rather than seeking
        for count in (FEED, 3000, FEED * 8):  # the last one runs past the end: zeros there
            assert np.array_equal(reader.read(position, count), expected(decoded, position, count)), position
            position += count
        assert reader._buf_start == position - FEED * 8  # what lay behind the last read was let go
    finally:
        reader.close()


class FullProbe(AudioReader):
    """The reader as it was opened before: every stream probed by decoding (a picture of the video too)."""

    _PROBE_SOUND_ONLY: dict[str, str] = {}


def stream_facts(reader: AudioReader) -> tuple[Any, ...]:
    stream, context = reader.stream, reader.stream.codec_context
    return (stream.index, stream.time_base, stream.start_time, stream.duration, context.name, context.sample_rate,
            context.format.name, context.layout.name, context.frame_size, context.bit_rate, bytes(context.extradata))


def test_sound_only_probe_changes_neither_stream_nor_samples(noisy: Path) -> None:
    """The same stream parameters and the same samples, bit for bit, through seeks forward and back (each seek
    restarts the decoder mid-stream, where PNS noise shows any difference in its state)."""
    fast, full = AudioReader(noisy, 0.0), FullProbe(noisy, 0.0)
    try:
        assert stream_facts(fast) == stream_facts(full)
        for position, count in [(0, FEED), (FEED, 1920), (3 * AUDIO_RATE + 333, FEED), (70_000, 4096),
                                (4 * AUDIO_RATE, FEED * 2), (1000, 1920)]:
            assert np.array_equal(fast.read(position, count), full.read(position, count)), position
    finally:
        fast.close()
        full.close()


def test_mixing_is_the_same_whatever_the_block_size(noisy: Path) -> None:
    """The single-pass renderer mixes a video frame at a time, the audio cache FEED samples at a time: both give
    the same stream, for cuts between clips of the same file, a dissolve and a speed change."""
    source = Source(kind="video", path=noisy, reason=None, has_audio=True)
    layers = [
        Layer(name="a", source=source, track=0, rec_in=0, rec_out=30, src_in=10),
        Layer(name="b", source=source, track=0, rec_in=30, rec_out=60, src_in=70, fade_in=(25, 35)),
        Layer(name="c", source=source, track=0, rec_in=25, rec_out=30, src_in=0),
        Layer(name="d", source=source, track=0, rec_in=60, rec_out=90, src_in=5, speed=1.5),
    ]
    total = round(90 * AUDIO_RATE / 25)

    def mix(blocks: list[int]) -> np.ndarray:
        mixer = Mixer(layers, 25.0, lambda layer, message: pytest.fail(message))
        try:
            parts, done = [], 0
            for size in blocks:
                parts.append(mixer.render(done, size))
                done += size
            return np.concatenate(parts, axis=1)
        finally:
            mixer.close()

    per_frame = mix([1920] * 90)
    assert np.array_equal(per_frame, mix([FEED] * (total // FEED) + [total % FEED]))
    assert float(np.abs(per_frame).max()) > 0.1


def test_a_clip_without_dissolves_is_mixed_at_its_samples_exactly(noisy: Path) -> None:
    """Skipping the gain of a clip without dissolves changes no bit: x * 1.0 is x for every float32 the
    decoder gives (zeros of either sign included)."""
    samples = plain_decode(noisy)[1].astype(np.float32)
    samples[:, :7] = [[0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 3.4e38]] * 2
    layer = Layer(name="a", source=Source(kind="video", path=noisy, reason=None, has_audio=True), track=0,
                  rec_in=0, rec_out=SECONDS * 25, src_in=0)
    frames = np.arange(samples.shape[1], dtype=np.float64) * (25 / AUDIO_RATE)
    gained = samples * _envelope(layer, frames)
    assert gained.dtype == np.float32
    assert np.array_equal(gained.view(np.uint32), samples.view(np.uint32))
