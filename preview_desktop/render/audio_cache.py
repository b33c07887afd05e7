"""Incremental audio: the AAC stream built from cached chunks, encoding only chunks whose mix inputs changed.

A full AAC encode costs about as much as the whole ultrafast video encode (STACK.md), so audio is cached too.
AAC is MDCT-coded with 50 % overlapping 2048-sample windows: the samples of frame n are reconstructed from packets
n−1 and n together, and FFmpeg's encoder emits one priming packet (pts −1024) first. Each chunk is therefore
encoded from a window that starts `AUDIO_PREROLL` samples early (the encoder warms up on real audio; those
packets, and the priming packet, are dropped) and ends `AUDIO_POSTROLL` samples late (the chunk's last packets
see the audio that follows). At a join, packet n−1 comes from one encoder and packet n from another; their
aliasing cancels only as far as both quantised the same signal alike, so a join carries a small error at the
level of the codec's own noise (measured in tests/integration/render/test_incremental.py).

Packets carry no position but their timestamps, and every clip's audio sits on the AAC frame grid
(audio.audio_anchor), so a chunk inside a clip is keyed by its source and source position
(segments.plan_audio_chunks) and its packets are reused wherever the clip moves: they are re-stamped here from the
chunk's first packet to the chunk's current start.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av

from ..core.spec import JobSpec
from ..errors import RenderError
from .audio import AAC_FRAME, Mixer
from .codec import AUDIO_BIT_RATE, AUDIO_RATE
from .pipeline import audio_problem_reporter
from .plan import Plan
from .segment_cache import AudioPacket, CachedAudio, Store
from .segments import AudioChunk, Identities, plan_audio_chunks, total_samples


def render_audio(
    plan: Plan,
    spec: JobSpec,
    store: Store,
    *,
    check: Callable[[], None],
    identities: Identities | None = None,
    select: Callable[[AudioChunk], bool] | None = None,
) -> tuple[list[AudioPacket], dict[str, int]]:
    """All AAC packets of the output, in order, and {"reused": n, "rendered": m} chunk counts.

    `select` limits the work to some chunks (a farm chunk encodes the audio under its own frames, so the
    parent only joins); the packets returned are then those of the selected chunks."""
    chunks = [c for c in plan_audio_chunks(plan, spec, identities) if select is None or select(c)]
    packets: list[AudioPacket] = []
    counts = {"reused": 0, "rendered": 0}
    run = _Run(plan, spec, store, total_samples(plan))
    try:
        for chunk in chunks:
            check()
            cached = store.get_audio(chunk.key)
            if cached is not None and cached.packets:
                packets.extend(run.finish())
                packets.extend(_restamp(cached.packets, chunk))
                for message in cached.warnings:
                    plan.warn(message)
                counts["reused"] += 1
                continue
            packets.extend(run.add(chunk))
            counts["rendered"] += 1
        packets.extend(run.finish())
    finally:
        run.close()
    return packets, counts


def _restamp(cached: list[AudioPacket], chunk: AudioChunk) -> list[AudioPacket]:
    """The cached packets moved to the chunk's place: the first chunk starts with the priming packet (pts −1024),
    every other chunk at its start."""
    shift = (-AAC_FRAME if chunk.start == 0 else chunk.start) - cached[0].pts
    if shift == 0:
        return cached
    return [AudioPacket(packet.pts + shift, packet.duration, packet.data) for packet in cached]


FEED = 16 * AAC_FRAME  # samples mixed and handed to the encoder at a time (per-call overhead vs. memory)


class _Run:
    """Consecutive chunks to encode, in one pass of one encoder (a full render: the whole stream at once).

    Starting an encoder per chunk cost ~1.7x the single-pass CPU time (10 chunks of 12 s: 0.74 s against
    0.42 s): every new encoder starts its rate control cold, and each chunk encodes its pre-roll, post-roll and a
    flushed last frame again. Inside a run every chunk's packets saw the real audio on both sides, as the
    pre-roll and post-roll give a lone chunk, so each is cached and reused on its own exactly as before."""

    def __init__(self, plan: Plan, spec: JobSpec, store: Store, total: int) -> None:
        self.plan, self.spec, self.store, self.total = plan, spec, store, total
        self.mixer: Mixer | None = None
        self.context: Any = None
        self.fed = 0  # the next output sample to feed the encoder
        self.seen = -AAC_FRAME  # the last packet's pts
        self.pending: list[tuple[AudioChunk, list[AudioPacket], list[str]]] = []

    def add(self, chunk: AudioChunk) -> list[AudioPacket]:
        """Encode `chunk` (its packets come out with the next chunk's audio or at `finish`); returns the packets
        of the chunks completed meanwhile."""
        done: list[AudioPacket] = []
        if self.pending and self.pending[-1][0].stop != chunk.start:
            done = self.finish()
        if self.context is None:
            self.context = new_encoder()
            self.fed = chunk.window_start
            self.seen = -AAC_FRAME
        sink: list[str] = []
        self.pending.append((chunk, [], sink))
        self._feed(chunk.stop, sink)
        return done + self._complete(final=False)

    def finish(self) -> list[AudioPacket]:
        """Feed the last chunk's post-roll, flush the encoder and return the packets still pending."""
        if self.context is None:
            return []
        last, _packets, sink = self.pending[-1]
        self._feed(last.window_stop, sink)
        try:
            self._take(self.context.encode(None))
        except av.FFmpegError as exc:
            raise RenderError(f"encoding audio at {last.start / AUDIO_RATE:.2f} s failed: {exc}") from exc
        self.context = None
        return self._complete(final=True)

    def close(self) -> None:
        if self.mixer is not None:
            self.mixer.close()
            self.mixer = None

    def _feed(self, until: int, sink: list[str]) -> None:
        if self.mixer is None:
            self.mixer = Mixer(self.plan.audio, self.plan.fps, audio_problem_reporter(self.plan, self.spec))
        self.plan.warning_sinks.append(sink)
        try:
            while self.fed < until:
                count = min(FEED, until - self.fed)
                samples = self.mixer.render(self.fed, count)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                frame.sample_rate = AUDIO_RATE
                frame.pts = self.fed
                frame.time_base = Fraction(1, AUDIO_RATE)
                self._take(self.context.encode(frame))
                self.fed += count
        except av.FFmpegError as exc:
            raise RenderError(f"encoding audio at {self.fed / AUDIO_RATE:.2f} s failed: {exc}") from exc
        finally:
            self.plan.warning_sinks.remove(sink)

    def _take(self, raw: list[Any]) -> None:
        """File each packet under the chunk it belongs to; pre-roll and post-roll packets are dropped."""
        for packet in raw:
            if packet.pts is None:
                continue
            pts = self.seen = int(packet.pts)
            for chunk, packets, _sink in self.pending:
                low = -AAC_FRAME if chunk.start == 0 else chunk.start  # the first chunk keeps the priming packet
                if low <= pts and (pts < chunk.stop or chunk.stop == self.total):
                    packets.append(AudioPacket(pts, int(packet.duration or AAC_FRAME), bytes(packet)))
                    break

    def _complete(self, *, final: bool) -> list[AudioPacket]:
        """Cache and hand over the chunks whose packets are all out (the encoder lags its input by a frame)."""
        out: list[AudioPacket] = []
        while self.pending:
            chunk, packets, sink = self.pending[0]
            if not final and self.seen < chunk.stop:
                break
            if not packets:
                raise RenderError(f"the audio encoder gave no packets for {chunk.start / AUDIO_RATE:.2f} s")
            self.store.put_audio(chunk.key, CachedAudio(packets, sink))
            out.extend(packets)
            self.pending.pop(0)
        return out


def new_encoder() -> Any:
    """An AAC-LC encoder configured exactly as codec.Encoder's audio stream (128 kb/s stereo 48 kHz)."""
    context = av.CodecContext.create("aac", "w")
    context.sample_rate = AUDIO_RATE
    context.layout = "stereo"
    context.format = "fltp"
    context.bit_rate = AUDIO_BIT_RATE
    context.time_base = Fraction(1, AUDIO_RATE)
    context.open()
    return context
