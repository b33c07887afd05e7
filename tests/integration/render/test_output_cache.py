"""The output cache: an identical job gets the finished job's artifacts as hard links, and nothing stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.handler import JobContext
from preview_desktop.core.job import Job, new_job_id
from preview_desktop.core.layout import Layout
from preview_desktop.render.renderer import RenderHandler
from preview_desktop.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.media import BLUE, make_clip

from .conftest import make_ctx, spec_for

ARTIFACTS = ("preview.mp4", "poster.jpg", "thumbs.jpg", "thumbs.vtt")


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    make_clip(folder / "a.mp4", seconds=0.6)
    make_clip(folder / "b.mp4", seconds=0.4, colour=BLUE)
    return folder


def inline(*sources: str) -> dict[str, Any]:
    return {"fps": 25, "clips": [{"source": s} for s in sources]}


class Runner:
    """Runs the engine's `render` handler the way a worker does: a job record, a context, DATA_DIR/previews."""

    def __init__(self, settings: Settings, media: Path) -> None:
        self.settings = settings
        self.layout = Layout(settings.data_dir)
        self.media = media

    def run(self, timeline: Any = None, project: str = "p", **changes: Any) -> tuple[dict[str, Any], Path, float]:
        changes.setdefault("mediaSearchPaths", [str(self.media)])
        spec = spec_for(timeline or inline("a.mp4", "b.mp4"), **changes).with_changes(projectId=project)
        job = Job(id=new_job_id(), project_id=project, spec=spec.to_wire())
        ctx: JobContext = make_ctx()
        ctx.job = job
        started = time.monotonic()
        document = RenderHandler(self.settings, self.layout)(job, spec, ctx)
        seconds = time.monotonic() - started
        folder = self.layout.preview_dir(project, job.id)
        assert json.loads((folder / "preview.json").read_text()) == document
        return document, folder, seconds


@pytest.fixture
def runner(settings: Settings, media: Path) -> Runner:
    return Runner(settings, media)


def same_files(a: Path, b: Path) -> bool:
    return all(os.stat(a / n).st_ino == os.stat(b / n).st_ino for n in ARTIFACTS)


def test_identical_job_gets_hard_links_and_its_own_preview_json(runner: Runner) -> None:
    first, folder1, first_seconds = runner.run()
    second, folder2, seconds = runner.run(project="other", priority=9, attempts=1)
    assert "reusedFrom" not in first
    assert second["reusedFrom"] == first["jobId"]
    assert second["jobId"] == folder2.name != first["jobId"] and second["projectId"] == "other"
    assert same_files(folder1, folder2)  # hard links: the same inodes
    assert os.stat(folder1 / "preview.json").st_ino != os.stat(folder2 / "preview.json").st_ino
    assert second["video"] == first["video"] and second["thumbnails"] == first["thumbnails"]
    assert second["startedAt"] >= first["finishedAt"]
    rendered = first["cache"]["segmentsRendered"] + first["cache"]["segmentsReused"]
    assert rendered > 0 and second["cache"]["segmentsRendered"] == 0 == second["cache"]["audioChunksRendered"]
    assert second["cache"]["segmentsReused"] == rendered  # counts say what this job did: nothing rendered
    assert seconds < first_seconds, f"a reused job took {seconds:.2f} s, its render {first_seconds:.2f} s"
    # the reuse is itself a copy: it survives the deletion of the first job's folder
    for name in ARTIFACTS:
        (folder1 / name).unlink()
    third, folder3, _ = runner.run()
    assert third["reusedFrom"] == first["jobId"] and same_files(folder2, folder3)


def test_different_output_settings_render_again(runner: Runner) -> None:
    _first, folder1, _ = runner.run()
    wider, folder2, _ = runner.run(output={"width": 256, "height": 144})
    assert "reusedFrom" not in wider and wider["video"]["width"] == 256
    burnt, folder3, _ = runner.run(output={"burnIn": {"timecode": True, "clipName": False, "label": None}})
    assert "reusedFrom" not in burnt
    assert not same_files(folder1, folder2) and not same_files(folder1, folder3)


def test_touched_or_changed_media_renders_again(runner: Runner, media: Path) -> None:
    _first, _, _ = runner.run()
    stat = os.stat(media / "b.mp4")
    os.utime(media / "b.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched, _, _ = runner.run()
    assert "reusedFrom" not in touched
    make_clip(media / "b.mp4", seconds=0.8, colour=BLUE)  # new content, new length
    changed, _, _ = runner.run()
    assert "reusedFrom" not in changed and changed["video"]["frames"] == 35
    again, _, _ = runner.run()
    assert again["reusedFrom"] == changed["jobId"]


def test_deleted_or_edited_artifact_is_a_miss(runner: Runner) -> None:
    _first, folder1, _ = runner.run()
    (folder1 / "thumbs.vtt").unlink()
    second, folder2, _ = runner.run()
    assert "reusedFrom" not in second and not same_files(folder1, folder2)
    with (folder2 / "preview.mp4").open("ab") as handle:  # edited in place: same inode, new size
        handle.write(b"\0")
    third, _, _ = runner.run()
    assert "reusedFrom" not in third


def test_offline_media_is_reused_only_while_it_stays_offline(runner: Runner, media: Path) -> None:
    first, _, _ = runner.run(inline("a.mp4", "late.mp4"))
    assert any("media offline" in w for w in first["warnings"])
    second, _, _ = runner.run(inline("a.mp4", "late.mp4"))
    assert second["reusedFrom"] == first["jobId"] and second["warnings"] == first["warnings"]
    make_clip(media / "late.mp4", seconds=0.4)
    online, _, _ = runner.run(inline("a.mp4", "late.mp4"))
    assert "reusedFrom" not in online and not online["warnings"]


def test_timeline_file_edits_and_touches(runner: Runner, media: Path) -> None:
    timeline = media / "cut.json.otio"
    import opentimelineio as otio

    def write(out_point: float) -> None:
        track = otio.schema.Track()
        track.append(otio.schema.Clip(
            name="a", media_reference=otio.schema.ExternalReference(target_url="a.mp4"),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, 25),
                                                 otio.opentime.RationalTime(out_point * 25, 25))))
        otio.adapters.write_to_file(otio.schema.Timeline(tracks=[track]), str(timeline), adapter_name="otio_json")

    write(0.4)
    first, _, _ = runner.run(str(timeline))
    write(0.4)  # saved again, same bytes: still a hit
    second, _, _ = runner.run(str(timeline))
    assert second["reusedFrom"] == first["jobId"]
    write(0.2)
    edited, _, _ = runner.run(str(timeline))
    assert "reusedFrom" not in edited and edited["video"]["frames"] == 5


def test_dry_runs_are_never_reused(runner: Runner) -> None:
    runner.run()
    dry, folder, _ = runner.run(dryRun=True)
    assert "reusedFrom" not in dry and dry["dryRun"] and not (folder / "preview.mp4").exists()


def test_cache_off_with_cache_max_bytes_zero(settings: Settings, media: Path) -> None:
    runner = Runner(settings.with_overrides(cache_max_bytes=0), media)
    runner.run()
    second, _, _ = runner.run()
    assert "reusedFrom" not in second


# ---------------------------------------------------------------------------------------------- the command line
HEAVY = ("pydantic", "av", "cv2", "numpy", "opentimelineio", "PySide6")


@pytest.fixture
def spec_file(media: Path) -> Path:
    path = media / "cut.json"
    path.write_text(json.dumps({"projectId": "cli", "timeline": inline("a.mp4", "b.mp4"),
                                "output": {"width": 320, "height": 180}}))
    return path


def render_cli(spec: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = run_cli("render", str(spec), "--out", str(out), *extra)
    return result, time.monotonic() - started


def test_cli_identical_render_is_reused_quickly(spec_file: Path, tmp_path: Path) -> None:
    first, first_seconds = render_cli(spec_file, tmp_path / "out1", "--json")
    assert first.returncode == 0, first.stderr
    original = json.loads(first.stdout)
    timings = []
    for n in range(3):
        result, seconds = render_cli(spec_file, tmp_path / f"again{n}")
        assert result.returncode == 0, result.stderr
        assert f"reused the artifacts of job {original['jobId']}" in result.stdout
        timings.append(seconds)
    # the whole command, Python start-up included: quicker than the render it reuses (the figure and its target,
    # 0.3 s, are in tests/bench/bench_output_cache.py)
    assert min(timings) < first_seconds, f"cache-hit renders took {timings}, the render {first_seconds:.2f} s"
    again = json.loads((tmp_path / "again0" / "preview.json").read_text())
    assert again["reusedFrom"] == original["jobId"] and again["projectId"] == "cli"
    assert same_files(tmp_path / "out1", tmp_path / "again0")
    # rendering into the same folder again replaces it as a whole, still with links
    result, _ = render_cli(spec_file, tmp_path / "out1")
    assert result.returncode == 0 and "reused" in result.stdout
    assert same_files(tmp_path / "out1", tmp_path / "again0")


def test_cli_hit_path_imports_no_heavy_module(spec_file: Path, tmp_path: Path) -> None:
    assert render_cli(spec_file, tmp_path / "out1")[0].returncode == 0
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "preview_desktop", "render", str(spec_file), "--out",
         str(tmp_path / "out2")], capture_output=True, text=True, env=cli_env(), timeout=60,
    )
    assert result.returncode == 0 and "reused" in result.stdout, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_cli_bad_input_is_still_refused_after_a_hit(spec_file: Path, tmp_path: Path) -> None:
    assert render_cli(spec_file, tmp_path / "out1")[0].returncode == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result, _ = render_cli(spec_file, foreign)
    assert result.returncode == 2 and "folder is not empty" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep me" and not (foreign / "preview.mp4").exists()
    data = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**data, "priority": 11}))
    result, _ = render_cli(spec_file, tmp_path / "out2")
    assert result.returncode == 2 and "priority:" in result.stderr
    spec_file.write_text(json.dumps(data))
    result = run_cli("render", str(spec_file), "--out", str(tmp_path / "out3"), "--project", "../x")
    assert result.returncode == 2 and "projectId" in result.stderr


def test_cli_touched_media_renders_again(spec_file: Path, media: Path, tmp_path: Path) -> None:
    assert render_cli(spec_file, tmp_path / "out1")[0].returncode == 0
    stat = os.stat(media / "a.mp4")
    os.utime(media / "a.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    result, _ = render_cli(spec_file, tmp_path / "out2")
    assert result.returncode == 0 and "reused" not in result.stdout, result.stdout
    assert not same_files(tmp_path / "out1", tmp_path / "out2")


def test_cli_parallel_hits_from_several_processes(spec_file: Path, tmp_path: Path) -> None:
    assert render_cli(spec_file, tmp_path / "out0")[0].returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "preview_desktop", "render", str(spec_file), "--out",
                               str(tmp_path / f"par{n}")], env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "reused" in out, err
    for n in range(4):
        assert same_files(tmp_path / "out0", tmp_path / f"par{n}")


def test_queued_resubmission_through_a_worker_is_reused(spec_file: Path, data_dir: Path) -> None:
    from tests.support.cli import start_worker, wait_ready

    worker = start_worker()
    try:
        wait_ready(worker)
        first = run_cli("submit", str(spec_file), "--wait", "--json")
        assert first.returncode == 0, first.stderr
        started = time.monotonic()
        second = run_cli("submit", str(spec_file), "--wait", "--json")
        seconds = time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(30)
    assert second.returncode == 0, second.stderr
    old, new = json.loads(first.stdout), json.loads(second.stdout)
    assert new["result"]["reusedFrom"] == old["id"]
    previews = data_dir / "previews" / "cli"
    assert same_files(previews / old["id"], previews / new["id"])
    print(f"an identical resubmission took {seconds:.2f} s through the queue")  # reuse: the links above
