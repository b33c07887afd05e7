"""Watch folders, the pure parts: which names are exports, when a file has settled, the settings entries, what an
export becomes, and the store's record of an export that could not be queued."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preview_desktop.core.spec import parse_spec
from preview_desktop.errors import SettingsError
from preview_desktop.settings import WatchFolder, load_settings, write_settings_file
from preview_desktop.watch.names import is_export, is_ignored
from preview_desktop.watch.request import build_request
from preview_desktop.watch.settle import SettleTracker


@pytest.mark.parametrize("name", ["cut.otio", "Cut v3.OTIOZ", "reel.edl", "seq.xml", "promo.fcpxml"])
def test_exports(name: str) -> None:
    assert is_export(name)


@pytest.mark.parametrize("name", [
    ".cut.otio", "~$cut.xml", "cut.otio~", "cut.otio.tmp", "cut.otio.part", "cut.edl.crdownload", "#cut.edl#",
    "cut.tmp.otio", "cut_tmp1.xml", "tmp_cut.edl", "Promo autosave 3.otio", ".~lock.cut.xml#", "cut.mov", "x.json",
])
def test_temporary_hidden_and_other_files_are_not_exports(name: str) -> None:
    assert not is_export(name)
    assert is_ignored(name) or not name.lower().endswith((".otio", ".xml", ".edl"))


def test_a_file_is_due_only_after_its_signature_held_for_the_settle_time() -> None:
    t = SettleTracker(2.0)
    t.observe("a.otio", (10, 1, 7), now=0.0)
    assert t.due(1.9) == []
    t.observe("a.otio", (20, 2, 7), now=1.9)  # still being written
    assert t.due(3.0) == []
    assert t.due(3.9) == [("a.otio", (20, 2, 7))]
    t.done("a.otio", (20, 2, 7))
    t.observe("a.otio", (20, 2, 7), now=10.0)  # the same version again: nothing to do
    assert t.due(20.0) == []
    t.observe("a.otio", (30, 3, 8), now=20.0)  # re-exported (renamed into place: a new inode)
    assert t.due(22.0) == [("a.otio", (30, 3, 8))]


def test_empty_files_wait_and_deleted_files_are_forgotten() -> None:
    t = SettleTracker(0.5)
    t.observe("a.otio", (0, 1, 1), now=0.0)
    assert t.due(10.0) == []
    t.observe("a.otio", None, now=10.0)
    assert t.pending == []
    t.observe("b.otio", (5, 1, 2), now=0.0)
    t.later("b.otio", retry_at=30.0)
    assert t.due(29.0) == [] and t.due(30.0) == [("b.otio", (5, 1, 2))]


def test_watch_settings_from_file_and_environment(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"watch": [str(tmp_path / "a"), {"path": str(tmp_path / "b"), "project_id": "promo",
                                                              "priority": 8, "output": {"width": 320}, "poll": True}],
                                "watch_settle_seconds": 1.5}))
    s = load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=file)
    assert s.watch == (WatchFolder(str(tmp_path / "a")),
                       WatchFolder(str(tmp_path / "b"), "promo", 8, {"width": 320}, True))
    assert s.watch_settle_seconds == 1.5 and "watch" not in s.forced
    env = {"DATA_DIR": str(tmp_path), "PREVIEW_WATCH": f"{tmp_path / 'c'}:{tmp_path / 'd'}"}
    s = load_settings(env=env, settings_file=file)
    assert [w.path for w in s.watch] == [str(tmp_path / "c"), str(tmp_path / "d")] and "watch" in s.forced
    write_settings_file(file, {"watch": [WatchFolder(str(tmp_path / "e"), priority=2)]})
    assert json.loads(file.read_text())["watch"] == [{"path": str(tmp_path / "e"), "priority": 2}]


@pytest.mark.parametrize(("entry", "message"), [
    ({"path": "/x", "projectId": "p"}, "unknown watch folder key 'projectId'"),
    ({"path": "/x", "project_id": "../evil"}, "project_id of /x"),
    ({"path": "/x", "priority": 11}, "between 0 and 10"),
    ({"path": "/x", "poll": "yes"}, "poll of /x"),
    ({"project_id": "p"}, "needs a path"),
    (3, "must be a path or an object"),
])
def test_bad_watch_entries_are_refused_naming_them(tmp_path: Path, entry: object, message: str) -> None:
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"watch": [entry]}))
    with pytest.raises(SettingsError, match="watch") as info:
        load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=file)
    assert message in str(info.value)


def test_an_export_becomes_a_request_with_the_folder_settings_and_its_spec_file(tmp_path: Path) -> None:
    folder = WatchFolder(str(tmp_path), project_id="promo", priority=7, output={"width": 320})
    req = build_request(folder, tmp_path / "Cut 3.otio", {"height": 180, "width": 640})
    assert req.error is None and req.spec_file is None
    assert req.source.overrides == {"projectId": "promo", "watchFolder": str(tmp_path), "priority": 7,
                                    "output": {"height": 180, "width": 320}}
    (tmp_path / "preview-spec.json").write_text(json.dumps({"priority": 2, "output": {"fps": 12}}))
    req = build_request(WatchFolder(str(tmp_path)), tmp_path / "Cut 3.otio", {})
    assert req.source.overrides == {"projectId": "Cut_3", "watchFolder": str(tmp_path), "priority": 2,
                                    "output": {"fps": 12}}
    (tmp_path / "preview-spec.json").write_text("{nope")
    req = build_request(WatchFolder(str(tmp_path)), tmp_path / "Cut 3.otio", {})
    assert req.error is not None and "preview-spec.json: is not valid JSON" in req.error
    (tmp_path / "preview-spec.json").write_text(json.dumps({"timeline": "x.otio"}))
    assert "timeline: is set by the watch folder" in str(build_request(folder, tmp_path / "a.otio", {}).error)


def test_the_watch_folder_travels_in_the_spec_only_when_set() -> None:
    plain = parse_spec({"projectId": "p", "timeline": "/m/a.otio"})
    assert "watchFolder" not in plain.to_wire()
    watched = parse_spec({"projectId": "p", "timeline": "/m/a.otio", "watchFolder": "/m"})
    assert watched.to_wire()["watchFolder"] == "/m" and parse_spec(watched.to_wire()) == watched
