"""PyAV video decode and encode: a sequential reader that scales (render/scaler.py), and the H.264/AAC MP4
writer. Audio decoding is render/audio_reader.py.

Measured (docs/rendering.md): scaling straight from the decoder's frame in a libavfilter graph (render/scaler.py)
is the fast path; a full-size conversion then cv2.resize costs ~40 % of the throughput. Encoder thread counts
are pinned so the bytes do not depend on the machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from .media import ffmpeg_reason
from .scaler import Scaler
from .stages import END, Offload, Prefetch

AUDIO_RATE = 48000
# frame threads per open video. 2 beat 3 on 2 cores once scaling moved into a filter graph (docs/rendering.md):
# noisy 1080p source CPU -14 %, wall -9 %, peak RSS -8 MB (each frame thread holds pictures of its own)
DECODE_THREADS = 2
SKIP_DEBLOCK_AT = 2  # skip the H.264 loop filter when the picture shrinks at least this much in both directions
ENCODE_THREADS = 1  # pinned, never from PREVIEW_RENDER_THREADS: x264's bytes (and avcC) depend on it
VIDEO_CRF = "23"
AUDIO_BIT_RATE = 128000
_TOLERANCE = 1e-3  # seconds: float noise when a source frame falls exactly on an output frame
_SEEK_AHEAD = 3.0  # seconds: further than this ahead, seeking beats decoding through
_MAX_BAD_PACKETS = 25
_PREROLL_FRAMES = 8  # frames decoded normally before a seek's target: more than a decoder has in flight


def decode_threads(limit: int | None) -> int:
    """Decoder threads per open video under PREVIEW_RENDER_THREADS (None: no cap). Decoding is bit-exact
    whatever the thread count, so this changes speed, never pixels or segment keys."""
    return DECODE_THREADS if limit is None else max(1, min(DECODE_THREADS, limit))


def gop_frames(rate: Fraction | float) -> int:
    """A keyframe every 2 s: quick scrubbing (and the longest cached segment)."""
    return max(1, round(float(rate) * 2))


class Unreadable(Exception):
    """The media opened but gave no usable picture or sound: the caller turns this into a slate or error."""


ENCODE_QUEUE = 4  # pictures waiting for the encoder thread
AHEAD = 3  # decoded frames queued ahead of the composer per open video (each holds a decoder frame)


class _Decoded:
    """One decoded frame, with the pictures converted from it so far (on the decode-ahead thread, or later)."""

    __slots__ = ("bgr", "frame", "i420", "t")

    def __init__(self, frame: Any, t: float) -> None:
        self.frame = frame
        self.t = t
        self.bgr: np.ndarray | None = None
        self.i420: np.ndarray | None = None


class VideoReader:
    """Frames of one file at requested source times, scaled to `size`, read forward (seeking when needed).

    With `ahead`, demuxing, decoding and the swscale conversion to `convert` ("i420" or "bgr") run on a thread of
    their own (stages.Prefetch), up to AHEAD frames ahead of the caller; `convert=None` converts only the frames
    asked for (a speed-up or a higher source rate skips frames)."""

    def __init__(self, path: Path, start_time: float, size: tuple[int, int], threads: int | None = None, *,
                 ahead: bool = False, convert: str | None = None):
        self.path = path
        self.start_time = start_time
        self.size = size
        self.problem: str | None = None  # set when the file ended early or had undecodable packets
        try:
            self.container: Any = av.open(str(path), metadata_errors="ignore")
            self.stream = self.container.streams.video[0]
        except (av.FFmpegError, OSError, IndexError) as exc:
            raise Unreadable(f"cannot open video ({ffmpeg_reason(exc)})") from None
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads or DECODE_THREADS
        codec = self.stream.codec_context
        if codec.width >= SKIP_DEBLOCK_AT * size[0] and codec.height >= SKIP_DEBLOCK_AT * size[1]:
            # Deblocking smooths 4-16 px block edges that area-averaging down to a preview removes anyway;
            # skipping it saves ~10 % of decoding. Small shrinks keep it: the blocks would show.
            codec.options = {"skip_loop_filter": "all"}
        self.ahead = ahead
        self.convert = convert
        self._i420: Scaler | None = None  # made on first use: a speed-up converts only the frames it shows
        self._bgr: Scaler | None = None
        self._prefetch: Prefetch[_Decoded] | None = None
        self._frames: Iterator[_Decoded] | None = None
        self._cur: _Decoded | None = None
        self._cur_t = 0.0
        self._next: _Decoded | None = None
        self._eof = False
        self.decoded = 0
        rate = float(self.stream.average_rate or 25)
        self._margin = max(0.5, _PREROLL_FRAMES / rate)  # seconds of normal decoding before a seek's target
        self._preroll_until: float | None = None  # after a seek: frames before this are only decoded past
        self._skipping = False  # non-reference frames skipped (inside a pre-roll)
        container = self.container
        self._end = (container.start_time or 0) / 1e6 + container.duration / 1e6 if container.duration else None

    def close(self) -> None:
        self._stop_ahead()
        self.container.close()

    def _stop_ahead(self) -> None:
        if self._prefetch is not None:
            self._prefetch.stop()
            self._prefetch = None

    def _decode(self) -> Iterator[Any]:
        bad = 0
        first = True
        try:
            for packet in self.container.demux(self.stream):
                if first:
                    first = False
                    self._skip_nonref_from(packet)
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        self.problem = f"undecodable video data ({ffmpeg_reason(exc)})"
                        return
                    continue
                for frame in frames:
                    bad = 0
                    yield frame
        except av.FFmpegError as exc:  # demuxer: truncated or damaged container
            self.problem = f"damaged or truncated file ({ffmpeg_reason(exc)})"

    def _skip_nonref_from(self, packet: Any) -> None:
        """After a seek the decoder starts at a keyframe, often seconds before the wanted frame (the pre-roll).
        Frames nothing refers to need not be decoded there: skip them (~half of an x264 stream with B-frames),
        but only when that keyframe is well before the pre-roll's end, so every frame in flight when decoding
        returns to normal is still one the pre-roll throws away."""
        until = self._preroll_until
        if until is None or packet.pts is None or not packet.is_keyframe or packet.time_base is None:
            return
        keyframe = float(packet.pts * packet.time_base)
        if until - keyframe > self._margin and self._end is not None and until + self._margin < self._end:
            self.stream.codec_context.skip_frame = "NONREF"
            self._skipping = True

    def _items(self) -> Iterator[_Decoded]:
        """Decoded frames with their times (and, with `convert`, their converted picture). Pre-roll frames (before
        `_preroll_until`) are passed over unconverted; only the last of them is given, in case it is the one
        showing (a file that ends inside the pre-roll)."""
        last = 0.0
        step = 1.0 / float(self.stream.average_rate or 25)
        held: tuple[Any, float] | None = None
        for frame in self._decode():
            t = frame.time
            last = float(t) if t is not None else last + step
            until = self._preroll_until
            if until is not None:
                if last < until:
                    held = (frame, last)
                    continue
                self._end_preroll()
                if held is not None:
                    yield self._item(*held)
                    held = None
            yield self._item(frame, last)
        if held is not None:
            yield self._item(*held)

    def _end_preroll(self) -> None:
        self._preroll_until = None
        if self._skipping:
            self.stream.codec_context.skip_frame = "DEFAULT"
            self._skipping = False

    def _item(self, frame: Any, t: float) -> _Decoded:
        item = _Decoded(frame, t)
        if self.convert == "i420":
            item.i420 = self._to_i420(frame)
        elif self.convert == "bgr":
            item.bgr = self._to_bgr(frame)
        if self.convert is not None:
            item.frame = None  # back to the decoder's pool: queued frames cost a small picture each
        return item

    def _produce(self, emit: Any) -> None:
        for item in self._items():
            emit(item)

    def _pull(self) -> _Decoded | None:
        item: _Decoded | None
        if self.ahead:
            if self._prefetch is None:
                self._prefetch = Prefetch(self._produce, maxsize=AHEAD, name=f"decode {self.path.name}")
            got = self._prefetch.get()
            item = None if got is END else got
        else:
            if self._frames is None:
                self._frames = self._items()
            item = next(self._frames, None)
        if item is None:
            self._eof = True
            return None
        self.decoded += 1
        return item

    def _seek(self, target: float) -> None:
        self._stop_ahead()
        self._end_preroll()
        self._cur = self._next = None
        self._eof = False
        self._frames = None
        self._preroll_until = target - self._margin
        if target > self.start_time + 1.0:
            offset = int((target - 0.05) / float(self.stream.time_base or Fraction(1, 90000)))
            try:
                self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
            except av.FFmpegError:
                self.container.seek(0)
        else:
            self.container.seek(0)

    def _advance(self, t: float) -> _Decoded:
        """Make the frame showing at source time `t` current (seconds from the media's start)."""
        target = t + self.start_time
        fresh = self._cur is None and self._next is None and self._frames is None and self._prefetch is None
        jump = (
            self._cur is not None
            and (target < self._cur_t - _TOLERANCE or target > self._cur_t + _SEEK_AHEAD)
            and not (self._eof and target > self._cur_t)
        )
        if jump or (fresh and target > self.start_time + 1.0):
            self._seek(target)
        while not self._eof:
            if self._next is None:
                self._next = self._pull()
                if self._next is None:
                    break
            if self._cur is None or self._next.t <= target + _TOLERANCE:
                self._cur, self._cur_t = self._next, self._next.t
                self._next = None
                continue
            break
        if self._cur is None:
            raise Unreadable(self.problem or "no video frames could be decoded")
        return self._cur

    def _to_bgr(self, frame: Any) -> np.ndarray:
        if self._bgr is None:
            self._bgr = Scaler(self.size, "bgr")
        return self._bgr.scale(frame)

    def _to_i420(self, frame: Any) -> np.ndarray:
        if self._i420 is None:
            self._i420 = Scaler(self.size, "i420")
        return self._i420.scale(frame)

    def frame_at(self, t: float) -> np.ndarray:
        """The BGR picture showing at source time `t` (seconds from the media's start). Holds the last frame."""
        item = self._advance(t)
        if item.bgr is None:
            if item.frame is not None:
                item.bgr = self._to_bgr(item.frame)
            else:  # converted ahead to I420 (a dissolve wants this picture in BGR)
                assert item.i420 is not None
                item.bgr = cv2.cvtColor(item.i420, cv2.COLOR_YUV2BGR_I420)
        return item.bgr

    def i420_at(self, t: float) -> np.ndarray:
        """As `frame_at`, in I420 (planar YUV 4:2:0, the encoder's format: no colour conversion either way).

        A copy: the caller draws burn-ins on it, and a held picture is handed out again."""
        item = self._advance(t)
        if item.i420 is None:
            if item.frame is not None:
                item.i420 = self._to_i420(item.frame)
            else:
                assert item.bgr is not None
                item.i420 = cv2.cvtColor(item.bgr, cv2.COLOR_BGR2YUV_I420)
        return item.i420.copy()

    def holding(self, t: float) -> bool:
        """True when `t` lies past the last frame the file gave (we are holding that frame)."""
        rate = float(self.stream.average_rate or 25)
        return self._eof and t + self.start_time > self._cur_t + max(0.1, 2.5 / rate)


class Encoder:
    """H.264 yuv420p (+ AAC stereo 48 kHz) in MP4 with the moov atom first (plays while downloading)."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        rate: Fraction,
        *,
        preset: str = "ultrafast",
        audio: bool = True,
        threads: int | None = None,
        offload: bool = False,
    ) -> None:
        """`offload`: encode and mux on a thread of its own (stages.Offload), behind a queue of ENCODE_QUEUE."""
        self.container: Any = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        video = self.container.add_stream("libx264", rate=rate)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.time_base = 1 / rate
        video.codec_context.thread_count = threads or ENCODE_THREADS
        video.codec_context.gop_size = gop_frames(rate)
        video.options = {"preset": preset, "crf": VIDEO_CRF}
        self.video = video
        self.audio: Any = None
        if audio:
            stream = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            stream.bit_rate = AUDIO_BIT_RATE
            stream.time_base = Fraction(1, AUDIO_RATE)
            self.audio = stream
        self.frames = 0
        self.samples = 0
        self._stage: Offload[tuple[str, np.ndarray, int]] | None = None
        if offload:
            self._stage = Offload(self._handle, maxsize=ENCODE_QUEUE, name=f"encode {path.name}")

    def _handle(self, item: tuple[str, np.ndarray, int]) -> None:
        kind, data, pts = item
        if kind == "a":
            sound = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
            sound.sample_rate = AUDIO_RATE
            sound.pts = pts
            sound.time_base = Fraction(1, AUDIO_RATE)
            self.container.mux(self.audio.encode(sound))
            return
        # the picture's own memory, no copy (0.01 ms against from_ndarray's 0.38 ms per 640×360 frame): it was
        # handed over (write_i420/write_video) and x264 copies it into its own frames while encoding
        picture = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(data),
                                                  format="yuv420p" if kind == "i420" else "bgr24")
        picture.pts = pts
        self.container.mux(self.video.encode(picture))

    def _submit(self, item: tuple[str, np.ndarray, int]) -> None:
        if self._stage is not None:
            self._stage.put(item)
        else:
            self._handle(item)

    def write_video(self, image: np.ndarray) -> None:
        """A BGR picture (handed over: not to be changed afterwards)."""
        self._submit(("bgr", image, self.frames))
        self.frames += 1

    def write_i420(self, image: np.ndarray) -> None:
        """An I420 picture, (height * 3/2, width) (handed over: not to be changed afterwards)."""
        self._submit(("i420", image, self.frames))
        self.frames += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """Planar float32 stereo samples, (2, n); appended after what was written before."""
        if self.audio is None or samples.shape[1] == 0:
            return
        self._submit(("a", np.ascontiguousarray(samples, dtype=np.float32), self.samples))
        self.samples += samples.shape[1]

    def finish(self) -> None:
        if self._stage is not None:
            self._stage.close()
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        # closing a half-written file after another failure: the staging folder goes anyway
        if self._stage is not None:
            self._stage.abort()
        with contextlib.suppress(Exception):
            self.container.close()
