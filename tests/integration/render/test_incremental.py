"""The segment cache: a preview assembled from cached segments matches a single-pass render of the same timeline.

Each case renders a base timeline (filling the cache), edits it, renders the edit through the cache and compares
the result with a single-pass render (PREVIEW_CACHE_MAX_BYTES=0) of the edited timeline: frame count, every
frame's picture (PSNR and the frame code each test clip carries), audio length, audio content and beep/flash sync.
It also checks that reuse really happened, using the counts the renderer puts into preview.json.
"""

from __future__ import annotations

import copy
import itertools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preview_desktop.core.handler import JobContext
from preview_desktop.errors import JobCancelled
from preview_desktop.render.renderer import render_to_folder
from preview_desktop.render.segment_cache import open_store
from preview_desktop.render.segments import plan_audio_chunks, plan_segments
from preview_desktop.render.timeline import build_plan
from preview_desktop.settings import Settings
from tests.integration.render.conftest import JOB_ID, make_ctx, spec_for
from tests.support.media import BLUE, GREEN, RED, Decoded, bright_frames, decode, make_clip, onset, read_code

MIN_PSNR = 40.0  # dB, every frame; measured 47–57 dB (two encodes of the same pixels, keyframes elsewhere)
FPS = 25


@pytest.fixture
def media(tmp_path: Path) -> Path:
    make_clip(tmp_path / "a.mp4", seconds=3.0, colour=RED, tone=440.0)
    make_clip(tmp_path / "b.mp4", seconds=3.0, colour=BLUE, flashes=[30], beeps=[1.2], tone=330.0)
    make_clip(tmp_path / "c.mp4", seconds=3.0, colour=GREEN, tone=550.0)
    make_clip(tmp_path / "d.mp4", seconds=3.0, colour=(120, 120, 0), tone=660.0)
    return tmp_path


BASE: dict[str, Any] = {"fps": FPS, "clips": [
    {"source": "a.mp4", "in": 0.0, "out": 2.5},
    {"source": "b.mp4", "in": 0.4, "out": 2.4},  # flash at 1.2 s of b, beep at 1.2 s
    {"source": "c.mp4", "in": 0.2, "out": 2.6},
    {"source": "d.mp4", "in": 0.0, "out": 2.0},
]}


class Renderer:
    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, timeline: Any, *, cache: bool = True, settings: Settings | None = None,
                 ctx: JobContext | None = None, **changes: Any) -> tuple[dict[str, Any], Path]:
        with self.lock:
            self.count += 1
            out = self.folder / f"render{self.count}"
        out.mkdir()
        chosen = settings or self.settings
        if not cache:
            chosen = chosen.with_overrides(cache_max_bytes=0)
        spec = spec_for(timeline, mediaSearchPaths=[str(self.folder)], **changes)
        doc = render_to_folder(spec, out, job_id=JOB_ID, settings=chosen, ctx=ctx or make_ctx())
        return doc, out


@pytest.fixture
def renderer(settings: Settings, media: Path) -> Renderer:
    return Renderer(settings, media)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def assert_same_preview(cached: Decoded, full: Decoded) -> None:
    """Same frames (count, pictures within codec tolerance, frame codes), same audio length, content and sync."""
    assert len(cached.frames) == len(full.frames)
    worst = min(psnr(a, b) for a, b in zip(cached.frames, full.frames, strict=True))
    assert worst >= MIN_PSNR, worst
    assert [read_code(f) for f in cached.frames] == [read_code(f) for f in full.frames]
    assert bright_frames(cached.frames) == bright_frames(full.frames)
    assert cached.audio is not None and full.audio is not None
    assert len(cached.audio) == len(full.audio)
    error = float(np.sqrt(np.mean((cached.audio - full.audio) ** 2)))
    level = float(np.sqrt(np.mean(full.audio**2)))
    assert error < 0.1 * level, (error, level)  # two AAC encodes of the same mix: ≥ 20 dB apart
    a, b = onset(cached.audio, 48000, 0.3), onset(full.audio, 48000, 0.3)
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert abs(a - b) < 0.002


def check_edit(renderer: Renderer, base: Any, edited: Any, **changes: Any) -> dict[str, Any]:
    """Render base (fills the cache), then the edit through the cache, then the edit in one pass; compare."""
    renderer(base, **changes)
    doc, out = renderer(edited, **changes)
    _full_doc, full_out = renderer(edited, cache=False, **changes)
    assert_same_preview(decode(out / "preview.mp4"), decode(full_out / "preview.mp4"))
    assert doc["video"]["frames"] == _full_doc["video"]["frames"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in full_out.iterdir())
    cache: dict[str, Any] = doc["cache"]
    assert cache["segmentsReused"] > 0, cache
    return cache


def edit(change: Any) -> dict[str, Any]:
    timeline = copy.deepcopy(BASE)
    change(timeline["clips"])
    return timeline


def test_identical_timeline_reuses_everything(renderer: Renderer) -> None:
    first, _ = renderer(BASE)
    assert first["cache"]["segmentsReused"] == 0 and first["cache"]["segmentsRendered"] > 4
    doc, out = renderer(BASE)
    cache = doc["cache"]
    assert cache["segmentsRendered"] == 0 and cache["audioChunksRendered"] == 0
    assert cache["segmentsReused"] == first["cache"]["segmentsRendered"]
    _full, full_out = renderer(BASE, cache=False)
    assert_same_preview(decode(out / "preview.mp4"), decode(full_out / "preview.mp4"))
    assert (out / "poster.jpg").read_bytes() == (full_out / "poster.jpg").read_bytes()  # same frame, no burn-in


def test_progress_covers_reused_segments(renderer: Renderer) -> None:
    renderer(BASE)
    seen: list[tuple[int, int]] = []
    ctx = JobContext(job=make_ctx().job, progress_fn=lambda frame, frames: seen.append((frame, frames)))
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    doc, _ = renderer(edited, ctx=ctx)
    frames = doc["video"]["frames"]
    assert seen[0] == (0, frames) and seen[-1] == (frames, frames)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))
    assert len(seen) < frames  # reused segments advance in one step


def test_replaced_clip(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips[2].update(source="a.mp4"))
    cache = check_edit(renderer, BASE, edited)
    assert cache["segmentsRendered"] <= 2  # only the replaced clip's 2.4 s (two pieces)


def test_slipped_clip(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    cache = check_edit(renderer, BASE, edited)
    assert cache["segmentsRendered"] == 1  # the 2 s clip is one piece
    assert cache["audioChunksReused"] > 0


def test_inserted_clip(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips.insert(2, {"source": "d.mp4", "in": 1.0, "out": 2.0}))
    cache = check_edit(renderer, BASE, edited)
    assert cache["segmentsRendered"] == 1


def test_ripple_trim(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips[0].update(out=2.1))  # 10 frames shorter: everything after moves
    cache = check_edit(renderer, BASE, edited)
    assert cache["segmentsRendered"] == 1  # the trimmed clip's last piece


def test_ripple_keeps_the_sprite_and_holds_only_its_thumbnails(renderer: Renderer, settings: Settings,
                                                                media: Path) -> None:
    """After a ripple every reused segment sits elsewhere, so other frames of it land on the sprite's whole
    seconds: the sprite still equals a single pass's, and the render held one thumbnail per sprite cell, not one
    per frame (a long preview would otherwise hold a JPEG for every frame until the join)."""
    import cv2

    from preview_desktop.render.incremental import IncrementalRender
    from preview_desktop.render.segment_cache import store_for

    edited = edit(lambda clips: clips[0].update(out=2.14))  # 9 frames shorter: not a multiple of the interval
    renderer(BASE)
    _doc, out = renderer(edited)
    _full, full_out = renderer(edited, cache=False)
    ours, theirs = (cv2.imread(str(folder / "thumbs.jpg")) for folder in (out, full_out))
    assert ours.shape == theirs.shape
    assert cv2.PSNR(ours, theirs) >= 35.0  # two JPEG generations of the same thumbnails

    spec = spec_for(edited, mediaSearchPaths=[str(media)])
    plan = build_plan(spec, settings)[0]
    work = media / "held"
    work.mkdir()
    with store_for(settings) as store:
        render = IncrementalRender(plan, spec, media / "unused", store, check=lambda: None,
                                   progress=lambda done, total: None)
        _parts, metas = render._video(plan_segments(plan, spec, render.identities), work)
        render._close_composer()
    held = sum(1 for meta in metas for thumb in meta.thumbs if thumb)
    assert held == render.collector.count
    assert sum(meta.frames for meta in metas) == plan.frames


def test_a_rippled_poster_is_composed_beside_the_join(renderer: Renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a ripple the frame one third in lies elsewhere in a reused segment, so its clean picture is composed
    again from the sources (a seek). That runs on a thread of its own once the video's decoders are closed
    (overlapping the join, adding no memory at the peak), and the poster still equals a single pass's."""
    from preview_desktop.render import incremental

    seen: list[tuple[str, bool, bool]] = []
    clean_frame = incremental.IncrementalRender._clean_frame

    def spy(self: incremental.IncrementalRender, segment: Any, offset: int, rendered: Any) -> Any:
        seen.append((threading.current_thread().name, self.composer is None, rendered is None))
        return clean_frame(self, segment, offset, rendered)

    monkeypatch.setattr(incremental.IncrementalRender, "_clean_frame", spy)
    edited = edit(lambda clips: clips[0].update(out=1.5))  # a second shorter: the third-in frame moves
    renderer(BASE)
    doc, out = renderer(edited)
    _full, full_out = renderer(edited, cache=False)
    assert doc["cache"]["segmentsReused"] > 0
    assert seen[-1] == ("poster", True, True)  # on its thread, decoders closed, composed (not this render's)
    assert (out / "poster.jpg").read_bytes() == (full_out / "poster.jpg").read_bytes()


def test_a_failed_join_leaves_no_poster_thread(renderer: Renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The render ends with its poster thread joined, even when the join fails while the poster is composed."""
    import time

    from preview_desktop.errors import RenderError
    from preview_desktop.render import incremental

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RenderError("the join failed")

    clean_frame = incremental.IncrementalRender._clean_frame

    def slow(self: incremental.IncrementalRender, *args: Any) -> Any:
        time.sleep(1.0)  # still composing when the join fails
        return clean_frame(self, *args)

    renderer(BASE)
    monkeypatch.setattr(incremental, "assemble", broken)
    monkeypatch.setattr(incremental.IncrementalRender, "_clean_frame", slow)
    with pytest.raises(RenderError, match="the join failed"):
        renderer(edit(lambda clips: clips[0].update(out=1.5)))
    assert not [thread for thread in threading.enumerate() if thread.name == "poster"]


def _otio_with_dissolve(folder: Path, name: str, at: int) -> str:
    """Four 2.8 s clips (a, b, c, d) with a 0.4 s dissolve at cut `at` (1, 2 or 3)."""
    import opentimelineio as otio

    rate = FPS
    timeline = otio.schema.Timeline(name=name)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for number, source in enumerate(["a.mp4", "b.mp4", "c.mp4", "d.mp4"]):
        if number == at:
            track.append(otio.schema.Transition(
                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=otio.opentime.RationalTime(5, rate), out_offset=otio.opentime.RationalTime(5, rate)))
        track.append(otio.schema.Clip(
            name=source, media_reference=otio.schema.ExternalReference(target_url=str(folder / source)),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(5, rate),
                                                 otio.opentime.RationalTime(70, rate))))
    timeline.tracks.append(track)
    path = folder / f"{name}.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return str(path)


def test_moved_dissolve(renderer: Renderer, media: Path) -> None:
    base = _otio_with_dissolve(media, "base", at=1)
    moved = _otio_with_dissolve(media, "moved", at=3)
    cache = check_edit(renderer, base, moved)
    # the pieces around both cuts change; each clip's pieces away from them are reused
    assert cache["segmentsReused"] >= 4, cache


def test_after_eviction(renderer: Renderer, settings: Settings) -> None:
    tiny = settings.with_overrides(cache_max_bytes=1)
    renderer(BASE, settings=tiny)
    with open_store(settings.data_dir, 1) as store:
        assert store.volume() < 200_000  # the render's own segments were culled again
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    doc, out = renderer(edited, settings=tiny)
    _full, full_out = renderer(edited, cache=False)
    assert_same_preview(decode(out / "preview.mp4"), decode(full_out / "preview.mp4"))
    assert doc["cache"]["segmentsRendered"] + doc["cache"]["segmentsReused"] > 4


def test_ripple_with_timecode_burn_in_off_reuses_every_untouched_segment(renderer: Renderer,
                                                                        settings: Settings) -> None:
    edited = edit(lambda clips: clips[1].update(out=1.9))
    keys_before = _keys(settings, BASE)
    keys_after = _keys(settings, edited)
    renderer(BASE)
    doc, _ = renderer(edited)
    new = [key for key in keys_after if key not in keys_before]
    assert len(new) == 1  # only the shortened clip's last piece is new
    assert doc["cache"]["segmentsRendered"] == 1
    assert doc["cache"]["segmentsReused"] == len(keys_after) - 1
    # with the record timecode burnt in, every segment after the edit moves in time: rendered again (documented)
    on = {"burnIn": {"timecode": True, "clipName": False, "label": None}}
    renderer(BASE, output=on)
    doc, _ = renderer(edited, output=on)
    first_moved = 1  # segments from the shortened clip on
    assert doc["cache"]["segmentsRendered"] == len(keys_after) - _count_before(settings, edited, first_moved)


def _keys(settings: Settings, timeline: Any, **changes: Any) -> list[str]:
    plan, _ = build_plan(spec_for(timeline, mediaSearchPaths=[str(settings.media_roots[0])], **changes), settings)
    return [segment.key for segment in plan_segments(plan, spec_for(timeline, **changes))]


def _count_before(settings: Settings, timeline: Any, clip: int) -> int:
    """Segments that lie before clip number `clip` of the timeline's single track."""
    plan, _ = build_plan(spec_for(timeline, mediaSearchPaths=[str(settings.media_roots[0])]), settings)
    start = sorted(layer.rec_in for layer in plan.video)[clip]
    return sum(1 for segment in plan_segments(plan, spec_for(timeline)) if segment.stop <= start)


def test_timecode_burn_in_segments_match(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips[3].update(out=1.5))
    on = {"burnIn": {"timecode": True, "clipName": True, "label": "DRAFT"}}
    cache = check_edit(renderer, BASE, edited, output=on)
    assert cache["segmentsRendered"] == 1


def test_ntsc_rate(renderer: Renderer) -> None:
    """29.97 fps: frame durations of 1001 ticks; the join must still give exact frames and sync."""
    fps = {"fps": 29.97}
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    cache = check_edit(renderer, BASE, edited, output=fps)
    assert cache["segmentsRendered"] <= 2


def test_b_frames_and_one_frame_segments_join(renderer: Renderer) -> None:
    """veryfast uses B-frames: 1- and 2-frame segments have a smaller decode delay (the dts trap)."""
    timeline = {"fps": FPS, "clips": [
        {"source": "a.mp4", "in": 0.0, "out": 1.0},
        {"source": "b.mp4", "in": 0.0, "out": 0.04},
        {"source": "c.mp4", "in": 0.0, "out": 0.08},
        {"source": "d.mp4", "in": 0.0, "out": 1.0},
    ]}
    preset = {"preset": "veryfast"}
    _doc, out = renderer(timeline, output=preset)
    _full, full_out = renderer(timeline, cache=False, output=preset)
    assert_same_preview(decode(out / "preview.mp4"), decode(full_out / "preview.mp4"))
    again, out2 = renderer(timeline, output=preset)
    assert again["cache"]["segmentsRendered"] == 0
    assert (out2 / "preview.mp4").read_bytes() == (out / "preview.mp4").read_bytes()


def test_audio_error_at_chunk_joins_is_at_codec_noise_level(renderer: Renderer, settings: Settings) -> None:
    """A steady tone across several chunk joins: the chunked encode against the single-pass one, near the joins
    and away from them. Both are compared with the single-pass decode (the codec's own error is in both).
    Every other chunk is dropped from the store after a first render, so the second one encodes those alone,
    between reused neighbours: every join is between two encoders (consecutive chunks share one encoder)."""
    timeline = {"fps": FPS, "clips": [{"source": "a.mp4", "in": 0.0, "out": 3.0}]}
    spec = spec_for(timeline, mediaSearchPaths=[str(settings.media_roots[0])])
    chunks = plan_audio_chunks(build_plan(spec, settings)[0], spec)
    renderer(timeline)
    with open_store(settings.data_dir, settings.cache_max_bytes) as store:
        for chunk in chunks[1::2]:
            assert store.cache.delete(chunk.key)
    doc, out = renderer(timeline)
    assert doc["cache"]["audioChunksRendered"] == len(chunks[1::2])
    _full, full_out = renderer(timeline, cache=False)
    cached, full = decode(out / "preview.mp4").audio, decode(full_out / "preview.mp4").audio
    assert cached is not None and full is not None and len(cached) == len(full)
    joins = [chunk.start for chunk in chunks[1:] if 2048 <= chunk.start < len(full) - 2048]
    assert len(joins) >= 2
    near = np.zeros(len(full), dtype=bool)
    for join in joins:
        near[join - 2048: join + 2048] = True
    signal = float(np.sqrt(np.mean(full[4096:-4096] ** 2)))
    err_near = float(np.sqrt(np.mean((cached[near] - full[near]) ** 2)))
    far = ~near
    far[:4096] = far[-4096:] = False
    err_far = float(np.sqrt(np.mean((cached[far] - full[far]) ** 2)))
    snr_near = 20 * np.log10(signal / max(err_near, 1e-9))
    snr_far = 20 * np.log10(signal / max(err_far, 1e-9))
    print(f"audio joins: SNR near joins {snr_near:.1f} dB, away from joins {snr_far:.1f} dB")
    assert snr_near > 40.0, (snr_near, snr_far)  # measured: 57.7 dB near joins, 72.1 dB away


def test_cancel_leaves_no_partial_segment(renderer: Renderer, settings: Settings) -> None:
    calls = {"n": 0}

    class Cancelling(JobContext):
        def check(self) -> None:
            calls["n"] += 1
            if calls["n"] > 70:  # inside the second clip
                raise JobCancelled("cancelled")

    ctx = Cancelling(job=make_ctx().job)
    with pytest.raises(JobCancelled):
        renderer(BASE, ctx=ctx)
    with open_store(settings.data_dir, settings.cache_max_bytes) as store:
        video = [key for key in store.cache.iterkeys() if isinstance(key, str) and key.startswith("v")]
        metas = [key for key in store.cache.iterkeys() if isinstance(key, str) and key.startswith("m")]
        assert len(video) == len(metas) >= 1
        for key in video:
            hit = store.get_video(key)
            assert hit is not None
            handle, meta = hit
            handle.close()
            assert meta.frames == len(meta.thumbs)
    doc, out = renderer(BASE)
    assert doc["cache"]["segmentsReused"] == len(video)
    _full, full_out = renderer(BASE, cache=False)
    assert_same_preview(decode(out / "preview.mp4"), decode(full_out / "preview.mp4"))


def test_two_threads_share_the_store(renderer: Renderer) -> None:
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(number: int, timeline: Any) -> None:
        try:
            results[number] = renderer(timeline)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, t)) for n, t in enumerate([BASE, edited, BASE])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    _full, full_out = renderer(BASE, cache=False)
    reference = decode(full_out / "preview.mp4")
    assert_same_preview(decode(results[0][1] / "preview.mp4"), reference)
    assert_same_preview(decode(results[2][1] / "preview.mp4"), reference)


_PROCESS_RENDER = """
import json, sys
from pathlib import Path
from preview_desktop.render.renderer import render_to_folder
from preview_desktop.settings import load_settings
from tests.integration.render.conftest import JOB_ID, make_ctx, spec_for
timeline, out, media = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
out.mkdir()
spec = spec_for(timeline, mediaSearchPaths=[media])
print(json.dumps(render_to_folder(spec, out, job_id=JOB_ID, settings=load_settings(), ctx=make_ctx())["cache"]))
"""


def test_two_processes_share_data_dir(renderer: Renderer, media: Path) -> None:
    """Two processes render into one store at once (same timeline and an edit); then all is reused."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    edited = edit(lambda clips: clips[2].update({"in": 0.0, "out": 2.4}))
    outs = [media / "proc-a", media / "proc-b"]
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_RENDER, json.dumps(t), str(o), str(media)],
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for t, o in zip([BASE, edited], outs, strict=True)]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        counts = json.loads(stdout.strip().splitlines()[-1])
        assert counts["segmentsRendered"] + counts["segmentsReused"] >= 5
    doc, out = renderer(BASE)
    assert doc["cache"]["segmentsRendered"] == 0 and doc["cache"]["audioChunksRendered"] == 0
    _full, full_out = renderer(BASE, cache=False)
    reference = decode(full_out / "preview.mp4")
    assert_same_preview(decode(outs[0] / "preview.mp4"), reference)
    assert_same_preview(decode(out / "preview.mp4"), reference)
