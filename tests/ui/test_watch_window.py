"""Watch folders in the window: the settings dialog's list (add, edit, remove, saved, applied at once), the job
table's column and the detail pane, and one coalesced notification when watched previews are ready."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from preview_desktop.core.job import JobState
from preview_desktop.node import Node
from preview_desktop.settings import Settings, WatchFolder, load_settings
from preview_desktop.ui.detail_pane import summary_html
from preview_desktop.ui.job_model import COL, JobTableModel
from preview_desktop.ui.settings_dialog import SettingsDialog
from preview_desktop.ui.watch_folders import WatchFolderDialog

from .conftest import state_of, submit, wait_until


def test_the_settings_dialog_adds_and_removes_watch_folders_and_saves_them(
        settings: Settings, tmp_path: Path, qtbot: Any) -> None:
    exports, share = tmp_path / "exports", tmp_path / "share"
    dialog = SettingsDialog(settings, watch_status={str(exports): "events"})
    qtbot.addWidget(dialog)
    box = dialog.watch
    assert box.folders() == [] and not box.remove_button.isEnabled()
    for folder in (exports, share, exports):  # the same folder twice is one entry
        box._choose = lambda parent, f=folder: str(f)
        box.add()
    assert [f.path for f in box.folders()] == [str(exports), str(share)]
    assert "events" in box.list.item(0).text()
    box.list.setCurrentRow(1)
    assert box.remove_button.isEnabled()
    box.remove_button.click()
    assert [f.path for f in box.folders()] == [str(exports)]
    dialog.accept()
    saved = json.loads(Path(str(settings.settings_file)).read_text())
    assert saved["watch"] == [{"path": str(exports)}]
    assert load_settings().watch == (WatchFolder(str(exports)),)
    assert dialog.updated_settings().watch == (WatchFolder(str(exports)),)


def test_a_folder_is_edited_with_its_project_priority_output_and_polling(settings: Settings, qtbot: Any) -> None:
    dialog = WatchFolderDialog(WatchFolder("/exports"), {})
    qtbot.addWidget(dialog)
    dialog.project.setText("../evil")
    dialog.accept()
    assert "Project id" in dialog.problem.text() and dialog.result() == 0
    dialog.project.setText("promo")
    dialog.priority.setValue(8)
    dialog.poll.setCurrentIndex(2)
    dialog.output.size.setCurrentIndex(dialog.output.size.findData("480x270"))
    assert dialog.value() == WatchFolder("/exports", "promo", 8, {"width": 480, "height": 270}, True)
    dialog.priority.setValue(-1)  # "default"
    assert dialog.value().priority is None


def test_the_dialog_shows_a_list_set_by_the_environment_read_only(settings: Settings, qtbot: Any) -> None:
    forced = settings.with_overrides(watch=(WatchFolder("/exports"),), forced=frozenset({"watch"}))
    dialog = SettingsDialog(forced)
    qtbot.addWidget(dialog)
    assert not dialog.watch.add_button.isEnabled() and "PREVIEW_WATCH" in dialog.watch.toolTip()
    assert "watch" not in dialog.values()


def test_folders_saved_in_the_window_apply_to_the_running_watcher(adapter: Any, node: Node, tmp_path: Path) -> None:
    assert node.watch is not None
    adapter.set_watch_folders((WatchFolder(str(tmp_path)),), {"width": 320, "height": 180})
    assert node.watch.folders() == [WatchFolder(str(tmp_path))]
    assert node.watch.output_defaults == {"width": 320, "height": 180}


def test_the_table_and_the_detail_pane_show_the_watch_folder(node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    node.engine.leasing = False
    watched = submit(node, qloop, "cut.otio", watchFolder="/studio/exports/Promo")
    plain = submit(node, qloop, "other.otio", project="other")
    model = JobTableModel()
    model.apply([watched, plain], [])
    col = COL["Watch folder"]
    texts = {model.data(model.index(r, COL["Timeline"])): model.data(model.index(r, col))
             for r in range(model.rowCount())}
    assert texts == {"cut.otio": "Promo", "other.otio": ""}
    assert "Watch folder" in summary_html(watched, None) and "/studio/exports/Promo" in summary_html(watched, None)
    assert "Watch folder" not in summary_html(plain, None)


def test_watched_previews_that_land_together_make_one_notification(
        window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    notes: list[tuple[str, str]] = []
    window.tray.notified.connect(lambda title, text: notes.append((title, text)))
    window.watch_notice._timer.setInterval(600)
    jobs = [submit(node, qloop, f"reel{i}.otio", watchFolder="/exports/Promo") for i in range(3)]
    submit(node, qloop, "by-hand.otio")  # not from a watch folder: no watch notification
    wait_until(qloop, lambda: all(state_of(node, j.id) is JobState.SUCCEEDED for j in jobs), what="renders")
    wait_until(qloop, lambda: any("ready" in t and "previews" in t for t, _ in notes), what="the notification")
    watched = [n for n in notes if n[0].startswith(("Preview ready", "3 previews ready"))]
    assert len(watched) == 1 and watched[0][0] == "3 previews ready"
    assert sorted(watched[0][1].split(", ")) == ["reel0.otio", "reel1.otio", "reel2.otio"]
    single = submit(node, qloop, "reel9.otio", watchFolder="/exports/Promo")
    wait_until(qloop, lambda: state_of(node, single.id) is JobState.SUCCEEDED, what="the render")
    wait_until(qloop, lambda: any(t == "Preview ready: reel9.otio" for t, _ in notes), what="one more notification")
    assert ("Preview ready: reel9.otio", "proj · from watch folder Promo") in notes


def test_an_export_that_could_not_be_queued_is_notified(
        window: Any, node: Node, qloop: asyncio.AbstractEventLoop) -> None:
    from tests.support.qtloop import run

    notes: list[tuple[str, str]] = []
    window.tray.notified.connect(lambda title, text: notes.append((title, text)))
    run(qloop, node.jobs.record_failure({"projectId": "promo", "timeline": "/exports/cut.otio",
                                         "watchFolder": "/exports"}, "watch spec file x: is not valid JSON"))
    wait_until(qloop, lambda: notes, what="the notification")
    assert notes == [("Export not queued: cut.otio", "watch spec file x: is not valid JSON")]
