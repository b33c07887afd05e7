"""From what a user hands us to a safe JobSpec: paths made absolute, contained, checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from preview_desktop.core.intake import prepare_spec, prepare_wire_spec, project_id_from_name
from preview_desktop.core.layout import Layout, check_path_text, contain, resolve_media
from preview_desktop.errors import InvalidInput, InvalidSpec, UnsafePath


def test_project_id_from_name() -> None:
    assert project_id_from_name("Promo v3 (final).otio") == "Promo_v3_final"
    assert project_id_from_name("...otio") == "untitled"
    assert len(project_id_from_name("x" * 200 + ".edl")) == 64


def test_timeline_path_is_made_absolute_and_checked(tmp_path: Path) -> None:
    (tmp_path / "cuts").mkdir()
    timeline = tmp_path / "cuts" / "a.otio"
    timeline.write_text("{}")
    spec = prepare_spec("cuts/a.otio", tmp_path, [tmp_path], {"priority": 7})
    assert spec.timeline == str(timeline) and spec.priority == 7 and spec.projectId == "a"
    with pytest.raises(InvalidSpec, match="timeline: file not found"):
        prepare_spec("cuts/missing.otio", tmp_path, [tmp_path])
    with pytest.raises(UnsafePath, match="outside PREVIEW_MEDIA_ROOTS"):
        prepare_spec(str(timeline), tmp_path, [tmp_path / "elsewhere"])


def test_spec_file_paths_resolve_against_its_folder(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cut.edl").write_text("TITLE: x\n")
    spec_file = tmp_path / "job" / "spec.json"
    spec_file.write_text(json.dumps({"projectId": "p1", "timeline": "cut.edl", "mediaSearchPaths": ["footage"]}))
    spec = prepare_spec(str(spec_file), Path("/"), [tmp_path])
    assert spec.timeline == str(tmp_path / "job" / "cut.edl")
    assert spec.mediaSearchPaths == [str(tmp_path / "job" / "footage")]


def test_inline_timeline_searches_the_spec_folder_first(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"projectId": "p", "timeline": {"clips": [{"source": "a.mp4"}]}}))
    assert prepare_spec(str(spec_file), Path("/"), [tmp_path]).mediaSearchPaths == [str(tmp_path)]


def test_bad_spec_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="spec file not found"):
        prepare_spec("nope.json", tmp_path, [tmp_path])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        prepare_spec("bad.json", tmp_path, [tmp_path])


def test_wire_spec_resolves_against_the_first_root(tmp_path: Path) -> None:
    (tmp_path / "a.otio").write_text("{}")
    spec = prepare_wire_spec({"projectId": "p", "timeline": "a.otio"}, [tmp_path])
    assert spec.timeline == str(tmp_path / "a.otio")


UNSAFE = [
    "\x00etc/passwd",
    "C:\\Windows\\system32",
    "c:/media/clip.mov",
    "\\\\server\\share\\clip.mov",
    "//server/share/clip.mov",
    "   ",
]


@pytest.mark.parametrize("text", UNSAFE)
def test_malformed_path_text_is_refused(text: str) -> None:
    if os.name == "nt" and ":" in text:
        pytest.skip("drive paths are valid on Windows")
    with pytest.raises(UnsafePath):
        check_path_text(text)


def test_containment_resolves_dotdot_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mov").write_text("x")
    (root / "link.mov").symlink_to(outside / "secret.mov")
    (root / "linkdir").symlink_to(outside)
    (root / "ok.mov").write_text("x")
    assert contain(root / "ok.mov", [root]) == (root / "ok.mov").resolve()
    for bad in (root / ".." / "outside" / "secret.mov", root / "link.mov", root / "linkdir" / "secret.mov"):
        with pytest.raises(UnsafePath, match="outside PREVIEW_MEDIA_ROOTS"):
            contain(bad, [root])
    with pytest.raises(UnsafePath):
        resolve_media("../outside/secret.mov", [root], [root])
    assert resolve_media("ok.mov", [tmp_path / "nothere", root], [root]) == (root / "ok.mov").resolve()


def test_preview_dir_never_escapes(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    good = layout.preview_dir("promo", "20261128-121530-9f3a1b2c")
    assert good == tmp_path / "previews" / "promo" / "20261128-121530-9f3a1b2c"
    for project, job in (("..", "20261128-121530-9f3a1b2c"), ("a/../..", "20261128-121530-9f3a1b2c"),
                         ("p", "../../etc"), ("p", "20261128-121530-9f3a1b2c/../x")):
        with pytest.raises(UnsafePath):
            layout.preview_dir(project, job)


def test_staging_then_publish_is_atomic(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    job_id = "20261128-121530-9f3a1b2c"
    staging = layout.staging_dir("p", job_id)
    (staging / "preview.json").write_text("{}")
    assert not layout.preview_dir("p", job_id).exists()
    assert layout.stale_staging_dirs() == [staging]
    final = layout.publish(staging, "p", job_id)
    assert (final / "preview.json").exists() and layout.stale_staging_dirs() == []
