"""PyAV audio decoding: stereo float32 48 kHz samples of one file at requested media times, read forward."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .codec import AUDIO_RATE, Unreadable
from .media import ffmpeg_reason


class AudioReader:
    """Stereo float32 48 kHz samples of one file at requested media times, read forward.

    Decoded frames are kept as they come (views on each frame's two planes, no copy) and copied once, into the
    array `read` returns: concatenating a growing buffer per packet, and `to_ndarray`'s vstack, cost more than
    the AAC decode itself (docs/incremental.md, "Reading and mixing").

    Opening probes every stream; a 1080p H.264 stream's probe decodes a picture (20-30 ms of CPU per clip).
    `skip_frame` stops that: it reaches only the probe's own decoders (the audio decoder used here is set up
    afterwards from the stream's parameters, which come out the same: MP4/AAC, MOV/PCM, MKV/MP3, MKV/Opus,
    MPEG-TS/MP2, ADTS, WAV and Ogg checked; tests/integration/render/test_audio_reading.py pins it). One open
    reader is not reused for the next clip of the same file: a seek flushes the AAC decoder but not its PNS noise
    generator, so noise-coded bands would decode differently from a fresh open."""

    _PROBE_SOUND_ONLY = {"skip_frame": "all"}

    def __init__(self, path: Path, start_time: float):
        self.path = path
        self.start_time = start_time
        self.problem: str | None = None
        try:
            self.container: Any = av.open(str(path), metadata_errors="ignore", options=self._PROBE_SOUND_ONLY)
            self.stream = self.container.streams.audio[0]
        except (av.FFmpegError, OSError, IndexError) as exc:
            raise Unreadable(f"cannot open audio ({ffmpeg_reason(exc)})") from None
        self._restart(0)

    def close(self) -> None:
        self.container.close()

    def _restart(self, position: int) -> None:
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._blocks: list[tuple[np.ndarray, np.ndarray]] = []  # (left, right) planes, in order
        self._buf_len = 0  # samples held in _blocks
        self._buf_start: int | None = None
        self._eof = False
        if position > AUDIO_RATE:
            seconds = position / AUDIO_RATE + self.start_time - 0.2
            try:
                base = float(self.stream.time_base or Fraction(1, 90000))
                self.container.seek(int(seconds / base), stream=self.stream, backward=True)
            except av.FFmpegError:
                self.container.seek(0)
        else:
            self.container.seek(0)
        self._packets = self.container.demux(self.stream)

    def _fill(self) -> bool:
        """Decode one packet's worth into the buffer; False at the end of the stream."""
        try:
            packet = next(self._packets, None)
        except av.FFmpegError as exc:
            self.problem = f"damaged or truncated audio ({ffmpeg_reason(exc)})"
            packet = None
        if packet is None:
            self._eof = True
            frames = self._resampler.resample(None)
        else:
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                return True  # one bad packet: skip it, keep the timeline's sync by the next pts
            frames = [out for frame in decoded for out in self._resampler.resample(frame)]  # as is, when fltp
        for frame in frames:
            count = frame.samples
            if frame.format.name == "fltp" and frame.layout.nb_channels == 2:
                left, right = frame.planes
                block = (np.frombuffer(memoryview(left), np.float32, count),
                         np.frombuffer(memoryview(right), np.float32, count))
            else:  # not what the resampler was asked for: convert as to_ndarray would
                data = frame.to_ndarray().astype(np.float32, copy=False).reshape(2, -1)
                block, count = (data[0], data[1]), data.shape[1]
            if self._buf_start is None:
                t = frame.time if frame.time is not None else self.start_time
                self._buf_start = round((float(t) - self.start_time) * AUDIO_RATE)
            if count:
                self._blocks.append(block)
                self._buf_len += count
        return not self._eof

    def read(self, position: int, count: int) -> np.ndarray:
        """`count` samples from media sample `position` (48 kHz, 0 = the media's start); zeros past the end."""
        out = np.zeros((2, count), dtype=np.float32)
        if count <= 0:
            return out
        start = self._buf_start
        behind = start is not None and position < start
        far = position > (start + self._buf_len if start is not None else 0) + 2 * AUDIO_RATE
        if behind or far:
            self._restart(position)
        while not self._eof and (self._buf_start is None or self._buf_start + self._buf_len < position + count):
            self._fill()
        if self._buf_start is None:
            return out
        offset = position - self._buf_start
        at = 0  # buffer index of the current block's first sample
        for left, right in self._blocks:
            size = left.shape[0]
            a, b = max(at, offset), min(at + size, offset + count)
            if b > a:
                out[0, a - offset: b - offset] = left[a - at: b - at]
                out[1, a - offset: b - offset] = right[a - at: b - at]
            at += size
            if at >= offset + count:
                break
        if offset > 0:  # drop what is behind us: memory stays bounded on long clips
            self._drop(min(offset, self._buf_len))
        return out

    def _drop(self, keep: int) -> None:
        """Forget the buffer's first `keep` samples."""
        self._buf_start = (self._buf_start or 0) + keep
        self._buf_len -= keep
        blocks = self._blocks
        gone = 0
        while gone < len(blocks) and blocks[gone][0].shape[0] <= keep:
            keep -= blocks[gone][0].shape[0]
            gone += 1
        del blocks[:gone]
        if keep:
            left, right = blocks[0]
            blocks[0] = (left[keep:], right[keep:])
