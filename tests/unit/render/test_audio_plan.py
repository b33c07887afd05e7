"""The audio chunk plan: AAC-aligned chunks that partition the output, keyed by source content and source position,
so that a ripple or a slip leaves the chunks of every untouched stretch of audio with the keys they had."""

from __future__ import annotations

import copy
import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.spec import parse_spec
from preview_desktop.render.audio import AAC_FRAME, audio_anchor
from preview_desktop.render.codec import AUDIO_RATE
from preview_desktop.render.plan import Layer, Plan, Source
from preview_desktop.render.segments import AudioChunk, Identities, plan_audio_chunks, total_samples

SPEC = parse_spec({"projectId": "p", "timeline": {"fps": 30, "clips": [{"source": "a.mp4", "in": 0, "out": 1}]}})
SOURCE = Source(kind="black", path=None, reason="test", has_audio=True)  # identity without reading a file


def plan_of(clips: list[dict[str, Any]], fps: float = 30.0) -> Plan:
    """One track of back-to-back clips: {"in": seconds, "frames": n, "speed": s}."""
    plan = Plan(fps=fps, frames=0, width=64, height=36)
    record = 0
    for number, clip in enumerate(clips):
        layer = Layer(name=f"c{number}", source=SOURCE, track=0, rec_in=record, rec_out=record + clip["frames"],
                      src_in=clip["in"], speed=clip.get("speed", 1.0))
        plan.video.append(layer)
        plan.audio.append(layer)
        record += clip["frames"]
    plan.frames = record
    return plan


TEN = [{"in": round((k * 1.37) % 13, 2), "frames": 180} for k in range(10)]  # bench_incremental's timeline


def chunks(clips: list[dict[str, Any]], fps: float = 30.0) -> list[AudioChunk]:
    return plan_audio_chunks(plan_of(clips, fps), SPEC, Identities())


def new_keys(before: list[AudioChunk], after: list[AudioChunk]) -> list[AudioChunk]:
    known = {chunk.key for chunk in before}
    return [chunk for chunk in after if chunk.key not in known]


def test_chunks_partition_the_output_on_the_aac_grid() -> None:
    for fps in (25.0, 30.0, 29.97):
        plan = plan_of(TEN, fps)
        found = plan_audio_chunks(plan, SPEC)
        assert found[0].start == 0 and found[-1].stop == total_samples(plan)
        for one, two in itertools.pairwise(found):
            assert one.stop == two.start
            assert two.start % AAC_FRAME == 0
        assert all(chunk.window_start <= chunk.start < chunk.stop <= chunk.window_stop for chunk in found)
        assert max(chunk.stop - chunk.start for chunk in found) <= 60 * AAC_FRAME


def test_a_ripple_re_encodes_only_the_edit_and_one_bridge_per_later_cut() -> None:
    base = chunks(TEN)
    shortened = copy.deepcopy(TEN)
    shortened[5]["frames"] -= 30  # 1 s: every later clip moves by 48,000 samples, not a multiple of 1024
    after = chunks(shortened)
    changed = new_keys(base, after)
    # the trimmed clip's tail and its cut, the cuts 7/8, 8/9, 9/10 and the stream's end (the record grid: 29 of 47)
    assert len(changed) <= 7, [(c.start, c.stop - c.start) for c in changed]
    cut = 6 * 180 * 1600 - 30 * 1600
    assert all(chunk.stop > cut - 20 * AAC_FRAME for chunk in changed)  # nothing before the edit


def test_a_slip_re_encodes_only_the_slipped_clip_edges() -> None:
    slipped = copy.deepcopy(TEN)
    slipped[5]["in"] += 0.5
    changed = new_keys(chunks(TEN), chunks(slipped))
    assert 0 < len(changed) <= 4
    start, stop = 5 * 180 * 1600, 6 * 180 * 1600
    assert all(chunk.stop > start - 20 * AAC_FRAME and chunk.start < stop + 20 * AAC_FRAME for chunk in changed)


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 24.0])
def test_random_ripples_keep_most_keys(fps: float) -> None:
    rng = random.Random(int(fps * 100))
    for _ in range(20):
        clips = [{"in": round(rng.uniform(0, 20), 3), "frames": rng.randint(40, 200)} for _ in range(8)]
        edited = copy.deepcopy(clips)
        edited[rng.randrange(8)]["frames"] -= rng.randint(1, 30)
        changed = new_keys(chunks(clips, fps), chunks(edited, fps))
        assert len(changed) <= 2 * 8 + 2, len(changed)  # at most the edit, and a bridge (or two) per later cut


def test_anchor_places_audio_within_half_an_aac_frame() -> None:
    rng = random.Random(5)
    for _ in range(500):
        fps = rng.choice([23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0])
        speed = rng.choice([1.0, 0.5, 2.0, 1.5, 0.37])
        layer = Layer(name="x", source=SOURCE, track=0, rec_in=rng.randint(0, 100_000), rec_out=100_001,
                      src_in=rng.uniform(0, 3600), speed=speed)
        anchor = audio_anchor(layer, fps)
        assert anchor % AAC_FRAME == 0
        exact = layer.rec_in * AUDIO_RATE / fps - layer.src_in * AUDIO_RATE / speed  # output sample of source 0
        assert abs(anchor - exact) <= AAC_FRAME / 2 + 1e-6


def test_keys_follow_the_source_not_the_path(tmp_path: Path) -> None:
    other = copy.deepcopy(TEN)
    other[3]["in"] += 1.0  # different source range: other keys inside that clip
    assert new_keys(chunks(TEN), chunks(other))
    speed = copy.deepcopy(TEN)
    speed[3]["speed"] = 2.0
    assert new_keys(chunks(TEN), chunks(speed))
