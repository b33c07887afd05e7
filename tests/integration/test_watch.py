"""Watch folders with real files: exports written in pieces, renamed into place, re-exported, deleted, broken,
hidden or temporary; folders that vanish and come back (a share going away); polling; restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from preview_desktop.core.job import JobState
from preview_desktop.settings import WatchFolder
from tests.support.watching import Watching

SETTLE = 0.6


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "exports"
    path.mkdir()
    return path


@pytest.fixture
def watching(folder: Path, data_dir: Path, tmp_path: Path) -> Iterator[Watching]:
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder), project_id="promo")], settle=SETTLE)
    yield w
    w.close()


def export(path: Path, text: str = '{"OTIO_SCHEMA": "Timeline.1"}') -> Path:
    """As editing software does it at best: a temporary name, then a rename into place."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def quiet(seconds: float = SETTLE * 2 + 0.6) -> None:
    """Long enough for anything that would be queued to have been queued (settle + a rescan)."""
    time.sleep(seconds)


def test_an_export_written_in_pieces_is_queued_once_complete(folder: Path, data_dir: Path, tmp_path: Path) -> None:
    watching = Watching(data_dir, tmp_path, [WatchFolder(str(folder), project_id="promo")], settle=1.2)
    try:
        _write_in_pieces(watching, folder)
    finally:
        watching.close()


def _write_in_pieces(watching: Watching, folder: Path) -> None:
    target = folder / "Promo v3.otio"
    with target.open("w") as out:
        for piece in range(8):  # 2 s of writing, each pause a quarter of the settle time
            out.write(f'{{"piece": {piece}}}\n' * 100)
            out.flush()
            time.sleep(0.25)
            assert watching.jobs() == [], "queued half-way"
    job = watching.wait_jobs(1)[0]
    assert job.state is JobState.QUEUED and job.project_id == "promo"
    assert job.spec["timeline"] == str(target) and job.spec["watchFolder"] == str(folder)
    quiet()
    assert len(watching.jobs()) == 1, "the same version was queued twice"


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_renamed_into_place_counts_and_temporary_and_hidden_files_do_not(
        folder: Path, data_dir: Path, tmp_path: Path, poll: bool) -> None:
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder), poll=poll)], settle=SETTLE)
    try:
        for name in (".hidden.otio", "~$Promo.xml", "Promo.otio~", "Promo.edl.tmp", "Promo.xml.crdownload",
                     "Promo autosave.otio", "notes.txt", "clip.mov"):
            (folder / name).write_text("x" * 10)
        partial = folder / "Cut.fcpxml.part"
        partial.write_text("<fcpxml/>")
        quiet()
        assert w.jobs() == []
        partial.rename(folder / "Cut.fcpxml")
        job = w.wait_jobs(1)[0]
        assert job.spec["timeline"] == str(folder / "Cut.fcpxml") and job.project_id == "Cut"
        assert w.status_of(folder) == ("polling" if poll else "events")
    finally:
        w.close()


def test_a_re_export_supersedes_the_previous_one(watching: Watching, folder: Path) -> None:
    target = export(folder / "cut.edl", "TITLE: one\n")
    first = watching.wait_jobs(1)[0]
    export(target, "TITLE: two, longer\n")
    second = watching.wait_jobs(2)[1]
    old = watching.store.get(first.id)
    assert old.state is JobState.CANCELLED and old.superseded_by == second.id and old.display_state == "superseded"
    assert second.state is JobState.QUEUED


def test_a_deleted_export_does_nothing_and_watching_goes_on(watching: Watching, folder: Path) -> None:
    doomed = folder / "gone.otio"
    doomed.write_text("{}")
    time.sleep(SETTLE / 3)
    doomed.unlink()  # deleted before it settled
    quiet()
    assert watching.jobs() == []
    kept = export(folder / "kept.otio")
    watching.wait_jobs(1)
    kept.unlink()  # deleted after it was queued: the job stays, nothing else happens
    quiet()
    assert len(watching.jobs()) == 1
    export(folder / "next.otio")
    assert watching.wait_jobs(2)[1].spec["timeline"].endswith("next.otio")


def test_a_bad_spec_file_gives_a_clear_failed_job(watching: Watching, folder: Path) -> None:
    (folder / "preview-spec.json").write_text(json.dumps({"output": {"width": 641}}))
    export(folder / "cut.otio")
    job = watching.wait_jobs(1)[0]
    assert job.state is JobState.FAILED
    assert job.error is not None and "output.width: must be even" in job.error and "preview-spec.json" in job.error
    assert job.spec["watchFolder"] == str(folder) and job.project_id == "promo"
    (folder / "preview-spec.json").write_text("{not json")
    export(folder / "other.otio")
    job = watching.wait_jobs(2)[1]
    assert job.state is JobState.FAILED and "is not valid JSON" in (job.error or "")
    (folder / "preview-spec.json").write_text(json.dumps({"priority": 9}))
    export(folder / "cut.otio", "{} ")  # fixed and exported again: queued, with the spec file's priority
    job = watching.wait_jobs(3)[2]
    assert job.state is JobState.QUEUED and job.priority == 9


def test_a_folder_that_goes_away_and_comes_back_is_watched_again(watching: Watching, folder: Path) -> None:
    export(folder / "before.otio")
    watching.wait_jobs(1)
    away = folder.with_name("exports.unmounted")
    folder.rename(away)  # the share goes away
    watching.wait(lambda: any(r.outcome == "unavailable" for r in watching.reports), "the folder reported gone")
    export(away / "while-away.otio")  # written to the server while this machine could not see it
    quiet()
    assert len(watching.jobs()) == 1
    away.rename(folder)  # the share is back
    jobs = watching.wait_jobs(2)
    assert jobs[1].spec["timeline"] == str(folder / "while-away.otio")
    export(folder / "after.otio")
    assert watching.wait_jobs(3)[2].spec["timeline"] == str(folder / "after.otio")
    shutil.rmtree(folder)  # deleted and made again: a different folder at the same path
    watching.wait(lambda: sum(r.outcome == "unavailable" for r in watching.reports) >= 2, "the folder gone again")
    folder.mkdir()
    watching.wait(lambda: sum(r.outcome == "watching" for r in watching.reports) >= 3, "the new folder watched")
    export(folder / "again.otio")
    assert watching.wait_jobs(4)[3].spec["timeline"] == str(folder / "again.otio")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_an_unmounted_and_remounted_file_system_is_watched_again(
        folder: Path, data_dir: Path, tmp_path: Path) -> None:
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("this container may not mount")
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder))], settle=SETTLE)
    try:
        export(folder / "one.otio")
        w.wait_jobs(1)
        subprocess.run(["umount", str(folder)], check=True)
        export(folder / "under.otio")  # the mount point itself: a different folder (device) at the same path
        w.wait_jobs(2)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
        time.sleep(0.1)
        export(folder / "remounted.otio")
        assert w.wait_jobs(3)[2].spec["timeline"] == str(folder / "remounted.otio")
    finally:
        w.close()
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_restart_neither_requeues_nor_misses(folder: Path, data_dir: Path, tmp_path: Path) -> None:
    export(folder / "old.otio")  # there before the folder was ever watched: not an export of ours
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder))], settle=SETTLE)
    export(folder / "one.otio")
    w.wait_jobs(1)
    w.close()
    export(folder / "while-stopped.otio")
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder))], settle=SETTLE)
    try:
        jobs = w.wait_jobs(2)
        quiet()
        assert [Path(j.spec["timeline"]).name for j in w.jobs()] == ["one.otio", "while-stopped.otio"]
        assert jobs
    finally:
        w.close()


def test_folders_change_while_running(folder: Path, data_dir: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    w = Watching(data_dir, tmp_path, [WatchFolder(str(folder))], settle=SETTLE)
    try:
        w.watcher.set_folders([WatchFolder(str(second), priority=9)])
        w.wait(lambda: any(r.folder == str(second) for r in w.reports), "the new folder watched")
        export(folder / "ignored-now.otio")
        export(second / "cut.otio")
        job = w.wait_jobs(1)[0]
        assert job.spec["watchFolder"] == str(second) and job.priority == 9
        quiet()
        assert len(w.jobs()) == 1
    finally:
        w.close()
