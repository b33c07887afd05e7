"""The `render` handler, foreground render, dry-run, cancel, timeout and the demo."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from preview_desktop.core.job import Job, new_job_id
from preview_desktop.core.layout import Layout
from preview_desktop.core.spec import parse_spec
from preview_desktop.errors import InvalidInput, JobCancelled, JobTimeout, MediaError, MediaNotFound
from preview_desktop.render.renderer import RenderHandler, make_demo, render_foreground, render_to_folder
from tests.support.media import decode, make_clip

from .conftest import JOB_ID, make_ctx, spec_for


def _job(spec, job_id: str = JOB_ID) -> Job:
    return Job(id=job_id, project_id=spec.projectId, spec=spec.to_wire())


def _ctx(job: Job, settings):
    ctx = make_ctx()
    ctx.job = job
    return ctx


def render_job(job: Job, ctx, settings) -> dict:
    """The engine's `render` handler, called as a worker calls it: the job, its typed spec, the context."""
    return RenderHandler(settings, Layout(settings.data_dir))(job, parse_spec(job.spec), ctx)


def test_render_job_publishes_complete_folder(tmp_path: Path, settings) -> None:
    make_clip(tmp_path / "a.mp4", seconds=0.6)
    spec = spec_for({"fps": 25, "clips": [{"source": "a.mp4"}]}, mediaSearchPaths=[str(tmp_path)])
    job = _job(spec)
    ctx = _ctx(job, settings)
    layout = Layout(settings.data_dir)
    leftover = layout.staging_dir("p", JOB_ID)  # a killed attempt's debris
    (leftover / "preview.mp4").write_bytes(b"half")
    seen: list[tuple[int, int]] = []
    ctx.progress_fn = lambda frame, frames: seen.append((frame, frames))
    doc = render_job(job, ctx, settings)
    final = layout.preview_dir("p", JOB_ID)
    assert sorted(p.name for p in final.iterdir()) == sorted(
        ["poster.jpg", "preview.json", "preview.mp4", "thumbs.jpg", "thumbs.vtt"])
    assert json.loads((final / "preview.json").read_text()) == doc
    assert doc["jobId"] == JOB_ID and doc["projectId"] == "p"
    assert layout.stale_staging_dirs() == []
    # frame-granular, in order, ending on the last frame (reports closer than 20 ms apart are coalesced)
    assert seen[-1] == (15, 15) and [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_render_job_failure_cleans_staging(tmp_path: Path, settings) -> None:
    spec = spec_for({"fps": 25, "clips": [{"source": "gone.mp4", "out": 1.0}]}, mediaSearchPaths=[str(tmp_path)],
                    output={"strict": True})
    ctx = _ctx(_job(spec), settings)
    with pytest.raises(MediaError, match=r"gone\.mp4"):
        render_job(ctx.job, ctx, settings)
    layout = Layout(settings.data_dir)
    assert layout.stale_staging_dirs() == []
    assert not layout.preview_dir("p", JOB_ID).exists()


def test_strict_missing_clip_is_media_not_found_but_an_unreadable_one_is_not(tmp_path: Path, settings) -> None:
    """A farm node retries a missing clip elsewhere (MediaNotFound: maybe only this node lacks it); a file that is
    there but unreadable is the media's fault on every node (MediaError)."""
    missing = spec_for({"fps": 25, "clips": [{"source": "gone.mp4", "out": 1.0}]}, mediaSearchPaths=[str(tmp_path)],
                       output={"strict": True})
    ctx = _ctx(_job(missing), settings)
    with pytest.raises(MediaNotFound, match=r"gone\.mp4.*file not found"):
        render_job(ctx.job, ctx, settings)
    (tmp_path / "empty.mp4").write_bytes(b"")
    empty = spec_for({"fps": 25, "clips": [{"source": "empty.mp4", "out": 1.0}]}, mediaSearchPaths=[str(tmp_path)],
                     output={"strict": True})
    ctx = _ctx(_job(empty, new_job_id()), settings)
    with pytest.raises(MediaError, match=r"empty\.mp4") as raised:
        render_job(ctx.job, ctx, settings)
    assert not isinstance(raised.value, MediaNotFound)


def test_cancel_is_honoured_mid_render(tmp_path: Path, settings) -> None:
    """The figure (cancel latency against the render's own frame time) is in tests/bench/bench_latency.py."""
    make_clip(tmp_path / "long.mp4", seconds=8.0, size=(320, 180))
    spec = spec_for({"fps": 25, "clips": [{"source": "long.mp4"}]}, mediaSearchPaths=[str(tmp_path)])
    ctx = _ctx(_job(spec), settings)
    cancelled_at: list[float] = []

    def progress(frame: int, frames: int) -> None:
        if frame >= 20 and not cancelled_at:  # the first report from frame 20 on (reports are coalesced)
            threading.Timer(0.05, lambda: (cancelled_at.append(time.monotonic()), ctx.cancel_event.set())).start()

    ctx.progress_fn = progress
    with pytest.raises(JobCancelled):  # an 8 s clip: raised, so the render stopped before its end
        render_job(ctx.job, ctx, settings)
    seconds = time.monotonic() - cancelled_at[0]
    print(f"the render stopped {seconds:.3f}s after the cancel")
    assert seconds < 5.0
    assert Layout(settings.data_dir).stale_staging_dirs() == []


def test_timeout(tmp_path: Path, settings) -> None:
    make_clip(tmp_path / "long.mp4", seconds=8.0)
    spec = spec_for({"fps": 25, "clips": [{"source": "long.mp4"}]}, mediaSearchPaths=[str(tmp_path)])
    ctx = _ctx(_job(spec), settings)
    ctx.progress_fn = lambda frame, frames: time.sleep(0.05)  # a slow machine (reports come every 20 ms)
    ctx.deadline = time.monotonic() + 0.2
    with pytest.raises(JobTimeout):
        render_job(ctx.job, ctx, settings)
    short = settings.with_overrides(job_timeout=0.2)
    ctx = _ctx(_job(spec), short)
    ctx.progress_fn = lambda frame, frames: time.sleep(0.05)
    with pytest.raises(JobTimeout, match="time limit"):
        render_job(ctx.job, ctx, short)


def test_dry_run_writes_plan_only(tmp_path: Path, settings) -> None:
    """No frame is decoded or encoded; the figure (against a real render of the plan) is in bench_latency.py."""
    make_clip(tmp_path / "src.mp4", seconds=0.2, size=(64, 36))
    data = (tmp_path / "src.mp4").read_bytes()
    clips = []
    for i in range(100):
        (tmp_path / f"c{i:03d}.mp4").write_bytes(data)
        clips.append({"source": f"c{i:03d}.mp4", "in": 0.0, "out": 0.2, "name": f"shot {i}"})
    clips.append({"source": "missing.mp4", "out": 1.0, "name": "lost"})
    spec = spec_for({"fps": 25, "clips": clips}, mediaSearchPaths=[str(tmp_path)], dryRun=True)
    out = tmp_path / "dry"
    out.mkdir()
    started = time.perf_counter()
    doc = render_to_folder(spec, out, job_id=JOB_ID, settings=settings, ctx=make_ctx())
    elapsed = time.perf_counter() - started
    print(f"dry run of 101 clips: {elapsed:.2f}s")
    assert elapsed < 10.0, elapsed  # a render of the 21 s plan would write preview.mp4: checked below
    assert [p.name for p in out.iterdir()] == ["preview.json"]
    assert doc["dryRun"] is True and doc["video"] is None and doc["poster"] is None
    assert len(doc["plan"]["clips"]) == 101 and doc["plan"]["frames"] == 100 * 5 + 25
    assert doc["plan"]["durationSeconds"] == 21.0
    assert doc["warnings"] == ["clip 'lost': media offline (file not found), slate rendered"]


def test_foreground_render_out_dir_rules(tmp_path: Path, settings) -> None:
    make_clip(tmp_path / "a.mp4", seconds=0.4)
    spec = spec_for(str(tmp_path / "a.mp4"))
    out = tmp_path / "renders" / "first"
    doc = render_foreground(spec, out, settings=settings, ctx=make_ctx())
    assert (out / "preview.mp4").is_file() and len(decode(out / "preview.mp4").frames) == 10
    again = render_foreground(spec, out, settings=settings, ctx=make_ctx(job_id=new_job_id()))  # replaced
    assert again["jobId"] != doc["jobId"] == JOB_ID  # the command's job id is the one in preview.json
    assert json.loads((out / "preview.json").read_text())["jobId"] == again["jobId"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        render_foreground(spec, out, settings=settings, ctx=make_ctx())
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in out.parent.iterdir()] == ["first"]  # no staging debris


def test_demo_is_quick_idempotent_and_renders(settings) -> None:
    media_dir = settings.data_dir / "media"
    started = time.perf_counter()
    timeline = make_demo(media_dir)
    made = time.perf_counter() - started
    before = {p.name: p.stat().st_mtime_ns for p in media_dir.iterdir()}
    assert make_demo(media_dir) == timeline
    assert {p.name: p.stat().st_mtime_ns for p in media_dir.iterdir()} == before
    spec = spec_for(str(timeline), output={"width": 320, "height": 180})
    started = time.perf_counter()
    doc = render_foreground(spec, settings.data_dir / "demo-out", settings=settings, ctx=make_ctx())
    rendered = time.perf_counter() - started
    assert doc["warnings"] == [] and doc["video"]["frames"] == 250 and doc["timeline"]["clips"] == 4
    print(f"demo media made in {made:.2f}s; its 10 s preview rendered in {rendered:.2f}s ({made / rendered:.2f}x)")
    assert made < 4 * rendered  # quick: about what one render of it costs, measured now on the same machine
