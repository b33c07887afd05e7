"""Drag-and-drop and File→Add: each file becomes a job (projectId from its name) through the queue dialog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDialog

from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from preview_desktop.ui.queue_dialog import QueueDialog
from tests.ui.conftest import wait_until


def mime(*paths: Path) -> QMimeData:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return data


def drop(window: Any, data: QMimeData) -> tuple[bool, bool]:
    pos = QPoint(200, 200)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)  # synthesized drops are not routed by QApplication outside a real drag
    event = QDropEvent(pos.toPointF(), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    event.setAccepted(False)
    window.dropEvent(event)
    return enter.isAccepted(), event.isAccepted()


@pytest.fixture
def accept_dialog(monkeypatch: pytest.MonkeyPatch) -> list[QueueDialog]:
    """The dialog is modal; tests accept it as a user pressing Queue would, after looking at it."""
    seen: list[QueueDialog] = []

    def exec_(self: QueueDialog) -> int:
        seen.append(self)
        self.accept()
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(QueueDialog, "exec", exec_)
    return seen


def test_dropping_files_creates_one_job_each(window: Any, node: Node, qloop: asyncio.AbstractEventLoop,
                                             tmp_path: Path, accept_dialog: list[QueueDialog]) -> None:
    files = [tmp_path / "Promo v3 (final).otio", tmp_path / "trailer.edl"]
    for f in files:
        f.write_text("{}")
    assert drop(window, mime(*files)) == (True, True)
    assert len(accept_dialog) == 1 and accept_dialog[0].project.placeholderText() == "from each file name"
    jobs = wait_until(qloop, lambda: len(node.engine.jobs) == 2 and list(node.engine.jobs.values()),
                      what="two jobs")
    assert sorted(j.project_id for j in jobs) == ["Promo_v3_final", "trailer"]
    assert all(j.spec["output"]["width"] == 640 for j in jobs)


def test_the_dialog_sets_project_size_burnins_and_priority(window: Any, node: Node,
                                                            qloop: asyncio.AbstractEventLoop, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cut = tmp_path / "cut.fcpxml"
    cut.write_text("<fcpxml/>")

    def exec_(self: QueueDialog) -> int:
        assert self.project.text() == "cut"
        self.project.setText("brand_film")
        self.output.size.setCurrentIndex(self.output.size.findData("960x540"))
        self.output.clip_name.setChecked(True)
        self.output.label.setText("REVIEW")
        self.priority.setValue(8)
        self.remember.setChecked(True)
        self.accept()
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(QueueDialog, "exec", exec_)
    window.add_files([cut])
    job = wait_until(qloop, lambda: next(iter(node.engine.jobs.values()), None), what="the job")
    assert job.project_id == "brand_film" and job.priority == 8
    out = job.spec["output"]
    assert (out["width"], out["height"]) == (960, 540)
    assert out["burnIn"] == {"timecode": True, "clipName": True, "label": "REVIEW"}
    remembered = load_settings()  # "remember as default" went to the settings file
    assert remembered.output_defaults["width"] == 960 and remembered.output_defaults["burnIn"]["label"] == "REVIEW"
    again = QueueDialog([cut], remembered)
    assert again.priority.value() == 8 and again.output.size.currentData() == "960x540"


def test_unsupported_files_are_refused(window: Any, tmp_path: Path, accept_dialog: list[QueueDialog]) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert drop(window, mime(other)) == (False, False)
    assert not accept_dialog


def test_a_bad_file_reports_an_error_and_queues_the_rest(window: Any, node: Node, qloop: asyncio.AbstractEventLoop,
                                                          tmp_path: Path, accept_dialog: list[QueueDialog]) -> None:
    errors: list[str] = []
    window.adapter.error.connect(lambda title, text: errors.append(text))
    good = tmp_path / "good.otio"
    good.write_text("{}")
    missing = tmp_path / "missing.otio"
    window.add_files([good, missing])
    wait_until(qloop, lambda: errors, what="an error")
    assert "file not found" in errors[0]
    wait_until(qloop, lambda: len(node.engine.jobs) == 1, what="the good job")
