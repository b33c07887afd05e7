"""Joins separately encoded H.264 segments (one MP4 each) and cached AAC packets into preview.mp4, no re-encode.

The timestamp trap (STACK.md, "Joining cached H.264 segments"): each segment's pts and dts are rebased to the
segment's place in the output, and every dts is shifted back by D, the largest (first pts − first dts) of all
segments. Shifting each segment by its own decode delay instead gives non-monotonic dts where a short segment
(smaller B-frame delay) follows a long one. Segments must share their avcC (SPS/PPS) byte for byte: one decoder
configuration serves the whole file, so a mismatch is refused rather than written as a file that decodes wrong.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av

from ..errors import RenderError
from .codec import AUDIO_BIT_RATE, AUDIO_RATE
from .segment_cache import AudioPacket

Part = Path | BinaryIO


@dataclass
class _Info:
    frames: int
    first_pts: int
    first_dts: int
    time_base: Fraction


def _open(part: Part) -> Any:
    if not isinstance(part, Path):
        part.seek(0)
        return av.open(part, "r", format="mp4")
    return av.open(str(part), "r")


def _probe(part: Part, extradata: bytes | None) -> tuple[_Info, bytes]:
    with _open(part) as container:
        stream = container.streams.video[0]
        data = bytes(stream.codec_context.extradata or b"")
        if extradata is not None and data != extradata:
            raise RenderError("cached segments disagree on the H.264 configuration (avcC); cannot be joined")
        for packet in container.demux(stream):
            if packet.pts is None or packet.dts is None:
                continue
            assert stream.time_base is not None
            return _Info(int(stream.frames), packet.pts, packet.dts, stream.time_base), data
    raise RenderError("a cached segment holds no video packets")


def assemble(
    out: Path,
    parts: Sequence[Part],
    audio: Sequence[AudioPacket] | None,
    *,
    rate: Fraction,
    check: Callable[[], None],
) -> int:
    """Write `out` (MP4, +faststart) from the segment files in order plus the AAC packets; returns frames."""
    if not parts:
        raise RenderError("nothing to join")
    infos: list[_Info] = []
    extradata: bytes | None = None
    for part in parts:
        info, extradata = _probe(part, extradata)
        infos.append(info)
    time_base = infos[0].time_base
    if any(info.time_base != time_base for info in infos):
        raise RenderError("cached segments disagree on the time base; cannot be joined")
    ticks = Fraction(1, 1) / (rate * time_base)  # time-base ticks per frame
    if ticks.denominator != 1:
        raise RenderError(f"frame duration is not a whole number of ticks ({rate} fps, {time_base})")
    shift = max(info.first_pts - info.first_dts for info in infos)
    output = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
    frames = 0
    try:
        with _open(parts[0]) as first:
            video_out = output.add_stream_from_template(first.streams.video[0])
        audio_out = None
        if audio:
            audio_out = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            audio_out.bit_rate = AUDIO_BIT_RATE
            audio_out.time_base = Fraction(1, AUDIO_RATE)
        video = _video_packets(parts, infos, int(ticks), shift, video_out, check)
        streams: list[Iterator[tuple[float, int, Any]]] = [video]
        if audio and audio_out is not None:
            streams.append(_audio_packets(audio, audio_out))
        for _, kind, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            output.mux(packet)
            frames += kind == 0
        output.close()
    except av.FFmpegError as exc:
        _abandon(output)
        raise RenderError(f"joining segments into {out.name} failed: {exc}") from exc
    except BaseException:
        _abandon(output)
        raise
    return frames


def _video_packets(parts: Sequence[Part], infos: list[_Info], ticks: int, shift: int, stream: Any,
                   check: Callable[[], None]) -> Iterator[tuple[float, int, Any]]:
    """(dts seconds, 0, packet) of every segment in order, rebased; opens one segment at a time."""
    offset = 0
    for part, info in zip(parts, infos, strict=True):
        check()
        count = 0
        with _open(part) as container:
            source = container.streams.video[0]
            base_pts, base_dts = None, None
            for packet in container.demux(source):
                if packet.pts is None or packet.dts is None:
                    continue
                if base_pts is None:
                    base_pts, base_dts = info.first_pts, info.first_dts
                assert base_dts is not None
                packet.pts = packet.pts - base_pts + offset
                packet.dts = packet.dts - base_dts + offset - shift
                packet.stream = stream
                count += 1
                yield float(packet.dts * info.time_base), 0, packet
        if count != info.frames:
            raise RenderError(f"a cached segment gave {count} frames, its header says {info.frames}")
        offset += info.frames * ticks


def _audio_packets(packets: Sequence[AudioPacket], stream: Any) -> Iterator[tuple[float, int, Any]]:
    base = Fraction(1, AUDIO_RATE)
    for item in packets:
        packet = av.Packet(item.data)
        packet.pts = packet.dts = item.pts
        packet.duration = item.duration
        packet.time_base = base
        packet.stream = stream
        yield item.pts / AUDIO_RATE, 1, packet


def _abandon(output: Any) -> None:
    # the file is discarded with its folder; the first error is the one to report
    with contextlib.suppress(Exception):
        output.close()
