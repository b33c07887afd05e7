"""PREVIEW_PATH_MAP: FROM=TO prefixes between platforms, applied at intake and in the one media resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from preview_desktop.core.intake import prepare_spec, prepare_wire_spec
from preview_desktop.core.layout import FarmLayout, resolve_media
from preview_desktop.core.pathmap import is_windows_path, parse_path_map
from preview_desktop.errors import UnsafePath

MAP = parse_path_map("Z:\\media=/mnt/media;/Volumes/media=/mnt/media;Z:\\media\\grade=/srv/grade;"
                     "\\\\nas\\proj=/mnt/proj")


@pytest.mark.parametrize(("given", "expected"), [
    ("Z:\\media\\a.mov", "/mnt/media/a.mov"),
    ("z:/MEDIA/sub\\a.mov", "/mnt/media/sub/a.mov"),  # drive paths: any case, either separator
    ("Z:\\media", "/mnt/media"),
    ("Z:\\media\\grade\\shot.dpx", "/srv/grade/shot.dpx"),  # the longest FROM wins, whatever the order
    ("Z:\\media2\\a.mov", "Z:\\media2\\a.mov"),  # whole components only
    ("/Volumes/media/day 1/a.mov", "/mnt/media/day 1/a.mov"),
    ("/volumes/media/a.mov", "/volumes/media/a.mov"),  # POSIX prefixes match exactly
    ("//NAS/proj/cuts/a.edl", "/mnt/proj/cuts/a.edl"),  # UNC with either separator
    ("\\\\nas\\proj\\cuts\\a.edl", "/mnt/proj/cuts/a.edl"),
    ("/Z:/media/a.mov", "/mnt/media/a.mov"),  # the path of file:///Z:/media/a.mov
    ("relative\\a.mov", "relative\\a.mov"),
])
def test_apply(given: str, expected: str) -> None:
    assert MAP.apply(given) == expected


def test_to_windows_and_round_trip_text() -> None:
    back = parse_path_map("/mnt/media=Z:\\media;/Volumes/x/=Y:")
    assert back.apply("/mnt/media/a/b.mov") == "Z:\\media\\a\\b.mov"
    assert back.apply("/Volumes/x/c.mov") == "Y:\\c.mov"
    assert parse_path_map(str(back)) == back
    assert parse_path_map({"Z:\\media": "/mnt/media"}) == parse_path_map(["Z:\\media=/mnt/media"])
    assert parse_path_map("Z:\\media=/mnt/media\n/Volumes/media=/mnt/media\n") == parse_path_map(
        "Z:\\media=/mnt/media;/Volumes/media=/mnt/media")
    assert not parse_path_map("") and not parse_path_map(None)
    assert is_windows_path("C:\\x") and is_windows_path("\\\\host\\share\\x") and not is_windows_path("/x")


@pytest.mark.parametrize(("text", "message"), [
    ("Z:\\media", "is not FROM=TO"),
    ("=/mnt/media", "FROM is empty"),
    ("Z:\\media=", "TO is empty"),
    ("media=/mnt/media", "FROM 'media' is not an absolute path"),
    ("/=/mnt/media", "would map every path"),
    ("Z:\\media=/a;z:/media/=/b", "given twice"),
])
def test_bad_maps(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_path_map(text)


def test_resolver_maps_then_checks_the_roots(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"x")
    path_map = parse_path_map(f"Z:\\media={media};Y:\\=/etc")
    expected = (media / "clip.mp4").resolve()
    assert resolve_media("Z:\\media\\clip.mp4", [], [tmp_path], path_map=path_map) == expected
    assert resolve_media("file:///Z:/media/clip.mp4", [], [tmp_path], path_map=path_map) == expected
    assert resolve_media("file://localhost/z:/Media/clip.mp4", [], [tmp_path], path_map=path_map) == expected
    with pytest.raises(UnsafePath, match="outside PREVIEW_MEDIA_ROOTS"):
        resolve_media("Y:\\passwd", [], [tmp_path], path_map=path_map)
    with pytest.raises(UnsafePath, match="Windows drive path"):  # no map: refused as before
        resolve_media("Z:\\media\\clip.mp4", [], [tmp_path])


def test_intake_maps_timeline_and_search_paths(tmp_path: Path) -> None:
    cuts = tmp_path / "cuts"
    cuts.mkdir()
    (cuts / "a.otio").write_text("{}")
    path_map = parse_path_map(f"Z:\\proj={tmp_path};Y:\\=/etc")
    wire = {"projectId": "p", "timeline": "Z:\\proj\\cuts\\a.otio", "mediaSearchPaths": ["Z:\\proj\\footage"]}
    spec = prepare_wire_spec(wire, [tmp_path], path_map=path_map)
    assert spec.timeline == str(cuts / "a.otio")
    assert spec.mediaSearchPaths == [str(tmp_path / "footage")]
    spec = prepare_spec("Z:\\proj\\cuts\\a.otio", Path("/"), [tmp_path], path_map=path_map)
    assert spec.timeline == str(cuts / "a.otio")
    with pytest.raises(UnsafePath, match="outside PREVIEW_MEDIA_ROOTS"):
        prepare_wire_spec({"projectId": "p", "timeline": "Y:\\hostname"}, [tmp_path], path_map=path_map)


def test_farm_layout_publishes_like_data_dir(tmp_path: Path) -> None:
    farm = FarmLayout(tmp_path / "farm")
    job_id = "20261128-121530-9f3a1b2c"
    staging = farm.staging_dir("p", job_id)
    (staging / "preview.json").write_text("{}")
    assert farm.stale_staging_dirs() == [staging] and not farm.preview_dir("p", job_id).exists()
    final = farm.publish(staging, "p", job_id)
    assert final == tmp_path / "farm" / "previews" / "p" / job_id and (final / "preview.json").exists()
    assert farm.cache == tmp_path / "farm" / "cache" and farm.stale_staging_dirs() == []
    with pytest.raises(UnsafePath, match="not a safe folder name"):
        farm.preview_dir("..", job_id)
