"""Audio reuse after edits: AAC chunks keyed by source content and source position are reused when a ripple moves
their clip, and the preview assembled from them plays like a single-pass render — same content, same sync, no
clicks at the joins between reused and newly encoded chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from preview_desktop.render.audio import AAC_FRAME
from preview_desktop.render.segments import AudioChunk, plan_audio_chunks
from preview_desktop.render.timeline import build_plan
from preview_desktop.settings import Settings
from tests.integration.render import test_incremental
from tests.integration.render.conftest import spec_for
from tests.integration.render.test_incremental import BASE, Renderer, check_edit, edit
from tests.support.media import bright_frames, decode, onset

media = test_incremental.media  # the same fixtures: four clips with steady tones, b with a beep and a flash
renderer = test_incremental.renderer
RIPPLE = edit(lambda clips: clips[0].update(out=2.1))  # 10 frames: 19,200 samples, not a multiple of 1024


def audio_chunks(settings: Settings, timeline: Any) -> list[AudioChunk]:
    spec = spec_for(timeline, mediaSearchPaths=[str(settings.media_roots[0])])
    plan, _ = build_plan(spec, settings)
    return plan_audio_chunks(plan, spec)


def test_ripple_reuses_the_audio_of_the_clips_it_moves(renderer: Renderer, settings: Settings) -> None:
    before = {chunk.key for chunk in audio_chunks(settings, BASE)}
    after = audio_chunks(settings, RIPPLE)
    new = [chunk for chunk in after if chunk.key not in before]
    cache = check_edit(renderer, BASE, RIPPLE)  # same pictures, audio content and sync as a single pass
    assert cache["audioChunksRendered"] == len(new), (cache, len(new))
    assert cache["audioChunksReused"] == len(after) - len(new)
    # the trimmed clip's tail and its cut; per later cut (2) its bridge and, when the cut crossed a point of the
    # clip's edge grid, the piece next to it; the stream's last chunk. On the old record grid every chunk after
    # the edit was encoded again.
    assert len(new) <= 2 + 2 * 2 + 1, [(chunk.start, chunk.stop) for chunk in new]
    moved = [chunk for chunk in after if chunk.start > 2.5 * 48000]  # after the old cut: moved by 0.4 s
    assert sum(chunk.key in before for chunk in moved) >= len(moved) // 2  # short clips: half are bridges


def test_audio_joins_after_a_ripple_are_click_free_and_in_sync(renderer: Renderer, settings: Settings,
                                                               media: Path) -> None:
    """Every join of the rippled preview (reused chunk next to a new one, or two reused ones that were never
    neighbours before) against the single-pass render of the same timeline: the difference near the joins is
    at the codec's noise level, no sample jumps, and the beep still starts with its flash."""
    renderer(BASE)
    doc, out = renderer(RIPPLE)
    assert doc["cache"]["audioChunksReused"] > 0
    _full, full_out = renderer(RIPPLE, cache=False)
    cached, full = decode(out / "preview.mp4"), decode(full_out / "preview.mp4")
    assert cached.audio is not None and full.audio is not None and len(cached.audio) == len(full.audio)
    joins = [chunk.start for chunk in audio_chunks(settings, RIPPLE)][1:]
    signal = float(np.sqrt(np.mean(full.audio**2)))
    worst_snr, worst_jump = 99.0, 0.0
    for join in joins:
        near = slice(max(0, join - 2 * AAC_FRAME), join + 2 * AAC_FRAME)
        error = cached.audio[near] - full.audio[near]
        rms = float(np.sqrt(np.mean(error**2)))
        worst_snr = min(worst_snr, 20 * np.log10(signal / max(rms, 1e-9)))
        worst_jump = max(worst_jump, float(np.max(np.abs(np.diff(error)))))
    print(f"ripple joins: worst SNR near a join {worst_snr:.1f} dB, worst step in the error {worst_jump:.4f}")
    assert worst_snr > 35.0, worst_snr
    assert worst_jump < 0.02, worst_jump  # a click (a dropped or repeated packet) steps by ~0.1 on these tones
    # sync: the beep at 1.2 s of clip b starts with its flash (frame 30 of b), within the ±10.7 ms placement
    flash = bright_frames(cached.frames)[0] / 25
    beep = onset(cached.audio, 48000, 0.3)
    assert beep is not None and abs(beep - flash) <= 0.5 * AAC_FRAME / 48000 + 0.002, (beep, flash)
    assert abs(beep - (onset(full.audio, 48000, 0.3) or 0.0)) < 0.002
