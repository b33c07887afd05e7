"""Incremental audio: the AAC stream built from cached chunks, encoding only chunks whose mix inputs changed.

A full AAC encode costs about as much as the whole ultrafast video encode (STACK.md), so audio is cached too.
AAC is MDCT-coded with 50 % overlapping 2048-sample windows: the samples of frame n are reconstructed from packets
n−1 and n together, and FFmpeg's encoder emits one priming packet (pts −1024) first. Each chunk is therefore
encoded from a window that starts `AUDIO_PREROLL` samples early (the encoder warms up on real audio; those
packets, and the priming packet, are dropped) and ends `AUDIO_POSTROLL` samples late (the chunk's last packets
see the audio that follows). At a join, packet n−1 comes from one encoder and packet n from another; their
aliasing cancels only as far as both quantised the same signal alike, so a join carries a small error at the
level of the codec's own noise (measured in tests/integration/render/test_incremental.py).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np

from ..core.spec import JobSpec
from ..errors import RenderError
from .audio import Mixer
from .codec import AUDIO_BIT_RATE, AUDIO_RATE
from .pipeline import audio_problem_reporter
from .plan import Plan
from .segment_cache import AudioPacket, CachedAudio, Store
from .segments import AAC_FRAME, AudioChunk, Identities, plan_audio_chunks, total_samples


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
    total = total_samples(plan)
    packets: list[AudioPacket] = []
    counts = {"reused": 0, "rendered": 0}
    mixer: Mixer | None = None
    try:
        for chunk in chunks:
            check()
            cached = store.get_audio(chunk.key)
            if cached is not None:
                packets.extend(cached.packets)
                for message in cached.warnings:
                    plan.warn(message)
                counts["reused"] += 1
                continue
            if mixer is None:
                mixer = Mixer(plan.audio, plan.fps, audio_problem_reporter(plan, spec))
            sink: list[str] = []
            plan.warning_sinks.append(sink)
            try:
                samples = mixer.render(chunk.window_start, chunk.window_stop - chunk.window_start)
            finally:
                plan.warning_sinks.remove(sink)
            encoded = encode_chunk(samples, chunk, last=chunk.stop == total)
            store.put_audio(chunk.key, CachedAudio(encoded, sink))
            packets.extend(encoded)
            counts["rendered"] += 1
    finally:
        if mixer is not None:
            mixer.close()
    return packets, counts


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


def encode_chunk(samples: np.ndarray, chunk: AudioChunk, *, last: bool) -> list[AudioPacket]:
    """Encode the chunk's window and keep the packets that belong to the chunk (see the module docstring)."""
    try:
        context = new_encoder()
        raw: list[Any] = []
        step = AAC_FRAME * 16
        for offset in range(0, samples.shape[1], step):
            block = np.ascontiguousarray(samples[:, offset: offset + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            frame.pts = chunk.window_start + offset
            frame.time_base = Fraction(1, AUDIO_RATE)
            raw.extend(context.encode(frame))
        raw.extend(context.encode(None))
    except av.FFmpegError as exc:
        raise RenderError(f"encoding audio at {chunk.start / AUDIO_RATE:.2f} s failed: {exc}") from exc
    low = -AAC_FRAME if chunk.start == 0 else chunk.start  # the first chunk keeps the priming packet
    kept = []
    for packet in raw:
        if packet.pts is None or packet.pts < low or (not last and packet.pts >= chunk.stop):
            continue
        kept.append(AudioPacket(int(packet.pts), int(packet.duration or AAC_FRAME), bytes(packet)))
    return kept
