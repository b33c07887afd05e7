"""The farm as one machine: segments in PREVIEW_FARM_STORAGE are reused by every node whatever its DATA_DIR or
its mount of the media, Windows paths are mapped (and still contained), chunks rendered by other processes leave
the parent only the join (test_chunks.py), and PREVIEW_RENDER_THREADS caps decoding without changing a byte."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.intake import prepare_wire_spec
from preview_desktop.errors import UnsafePath
from preview_desktop.render import pipeline
from preview_desktop.render.codec import DECODE_THREADS
from preview_desktop.render.renderer import render_to_folder
from preview_desktop.render.segments import plan_segments
from preview_desktop.render.timeline import build_plan
from preview_desktop.settings import Settings, load_settings
from tests.integration.render.conftest import JOB_ID, make_ctx, spec_for
from tests.integration.render.test_incremental import BASE, assert_same_preview, edit
from tests.support.media import BLUE, GREEN, RED, decode, make_clip


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "mnt" / "media"
    folder.mkdir(parents=True)
    make_clip(folder / "a.mp4", seconds=3.0, colour=RED, tone=440.0)
    make_clip(folder / "b.mp4", seconds=3.0, colour=BLUE, flashes=[30], beeps=[1.2], tone=330.0)
    make_clip(folder / "c.mp4", seconds=3.0, colour=GREEN, tone=550.0)
    make_clip(folder / "d.mp4", seconds=3.0, colour=(120, 120, 0), tone=660.0)
    return folder


def node(tmp_path: Path, name: str, **env: str) -> Settings:
    """The settings a node named `name` would build: its own DATA_DIR, the shared storage, media under tmp."""
    values = {"DATA_DIR": str(tmp_path / name), "PREVIEW_MEDIA_ROOTS": str(tmp_path),
              "PREVIEW_FARM_STORAGE": str(tmp_path / "farm"), **env}
    return load_settings(env=values, settings_file=tmp_path / "none.json")


def render(settings: Settings, timeline: Any, out: Path, **changes: Any) -> dict[str, Any]:
    out.mkdir(parents=True)
    spec = spec_for(timeline, **changes)
    return render_to_folder(spec, out, job_id=JOB_ID, settings=settings, ctx=make_ctx())


def keys(settings: Settings, timeline: Any, media: Path) -> list[str]:
    spec = spec_for(timeline, mediaSearchPaths=[str(media)])
    plan, _ = build_plan(spec, settings)
    return [segment.key for segment in plan_segments(plan, spec)]


def test_node_b_reuses_node_a_segments_through_another_mount(tmp_path: Path, media: Path) -> None:
    """Node A renders; node B (another DATA_DIR, the media copied to another path with other mtimes, as
    another OS would mount it) renders an edit: only the changed segments are rendered."""
    other = tmp_path / "Volumes" / "media"
    shutil.copytree(media, other)
    for path in other.iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))
    a, b = node(tmp_path, "node-a"), node(tmp_path, "node-b")
    first = render(a, BASE, tmp_path / "out-a", mediaSearchPaths=[str(media)])
    assert first["cache"]["segmentsReused"] == 0
    edited = edit(lambda clips: clips[1].update({"in": 0.6, "out": 2.6}))
    before, after = keys(a, BASE, media), keys(b, edited, other)
    changed = [key for key in after if key not in before]
    assert 0 < len(changed) < len(after)
    doc = render(b, edited, tmp_path / "out-b", mediaSearchPaths=[str(other)])
    assert doc["cache"]["segmentsRendered"] == len(changed)
    assert doc["cache"]["segmentsReused"] == len(after) - len(changed)
    assert doc["cache"]["audioChunksReused"] > 0
    for data_dir in (tmp_path / "node-a", tmp_path / "node-b"):
        assert not (data_dir / "cache" / "segments").exists()  # nothing in the nodes' own stores
    single = render(b.with_overrides(cache_max_bytes=0), edited, tmp_path / "single", mediaSearchPaths=[str(other)])
    assert single["video"]["frames"] == doc["video"]["frames"]
    assert_same_preview(decode(tmp_path / "out-b" / "preview.mp4"), decode(tmp_path / "single" / "preview.mp4"))


EDL = """TITLE: mapped
FCM: NON-DROP FRAME

001  AX       V     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00
* FROM CLIP NAME: red
* FROM CLIP: Z:\\Media\\a.mp4
002  AX       V     C        00:00:00:05 00:00:01:05 00:00:01:00 00:00:02:00
* FROM CLIP NAME: blue
* FROM CLIP: z:/media/b.mp4
"""


def test_windows_paths_in_an_edl_and_a_spec_are_mapped(tmp_path: Path, media: Path) -> None:
    (media / "cut.edl").write_text(EDL)
    settings = node(tmp_path, "node", PREVIEW_PATH_MAP=f"Z:\\media={media}")
    spec = prepare_wire_spec({"projectId": "p", "timeline": "Z:\\media\\cut.edl",
                              "output": {"width": 320, "height": 180, "fps": 25}},
                             settings.effective_media_roots, path_map=settings.path_map)
    out = tmp_path / "edl"
    out.mkdir()
    doc = render_to_folder(spec, out, job_id=JOB_ID, settings=settings, ctx=make_ctx())
    assert doc["warnings"] == [] and doc["video"]["frames"] == 50
    frames = decode(out / "preview.mp4").frames
    assert frames[10][20, 160, 2] > 150 and frames[40][20, 160, 0] > 150  # red, then blue (BGR)
    inline = {"fps": 25, "clips": [{"source": "Z:\\Media\\c.mp4", "in": 0.0, "out": 1.0}]}
    doc = render(settings, inline, tmp_path / "inline")
    assert doc["warnings"] == [] and doc["video"]["frames"] == 25
    plan, _ = build_plan(spec_for(inline), settings)
    assert plan.video[0].name == "c.mp4"  # as on Windows: the clip name is in the segment key (and burnt in)


def test_a_mapping_outside_the_media_roots_is_refused(tmp_path: Path, media: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    try:
        shutil.copy(media / "a.mp4", outside / "a.mp4")
        settings = node(tmp_path, "node", PREVIEW_PATH_MAP=f"Z:\\media={outside}",
                        PREVIEW_MEDIA_ROOTS=str(media))
        inline = {"fps": 25, "clips": [{"source": "Z:\\media\\a.mp4", "in": 0.0, "out": 1.0}]}
        with pytest.raises(UnsafePath, match="outside PREVIEW_MEDIA_ROOTS"):
            render(settings, inline, tmp_path / "refused")
    finally:
        shutil.rmtree(outside)


def test_render_threads_cap_the_decoders_and_change_no_byte(tmp_path: Path, media: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = pipeline.VideoReader

    def recording(path: Path, start: float, size: tuple[int, int], threads: int | None = None,
                  **options: Any) -> Any:
        reader = real(path, start, size, threads, **options)
        seen.append(reader.stream.codec_context.thread_count)
        return reader

    monkeypatch.setattr(pipeline, "VideoReader", recording)
    capped = node(tmp_path, "capped", PREVIEW_RENDER_THREADS="1", PREVIEW_FARM_STORAGE="")
    free = node(tmp_path, "free", PREVIEW_FARM_STORAGE="")
    render(capped, BASE, tmp_path / "one", mediaSearchPaths=[str(media)])
    assert seen and set(seen) == {1}
    seen.clear()
    render(free, BASE, tmp_path / "all", mediaSearchPaths=[str(media)])
    assert seen and set(seen) == {DECODE_THREADS} and DECODE_THREADS > 1
    assert (tmp_path / "one" / "preview.mp4").read_bytes() == (tmp_path / "all" / "preview.mp4").read_bytes()
