"""The small dialog between a dropped (or chosen) file and a queued job: projectId, size, codec, burn-ins,
priority, and "remember as default"."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.intake import TIMELINE_SUFFIXES, project_id_from_name
from ..core.spec import PROJECT_ID_PATTERN
from ..settings import Settings, write_settings_file
from .adapter import MEDIA_SUFFIXES, SubmitOptions
from .prefs import pref_int, window_prefs

SIZES = ((640, 360), (480, 270), (960, 540), (1280, 720), (1920, 1080))
ACCEPTED_SUFFIXES = (*TIMELINE_SUFFIXES, ".json", *MEDIA_SUFFIXES)
FILE_FILTER = ";;".join((
    "Timelines (" + " ".join(f"*{s}" for s in TIMELINE_SUFFIXES) + ")",
    "Media files (" + " ".join(f"*{s}" for s in MEDIA_SUFFIXES) + ")",
    "Job specs (*.json)",
    "All files (*)",
))


def size_key(width: int, height: int) -> str:
    """Combo box data as text: PySide stores a tuple as an opaque value that findData cannot match."""
    return f"{width}x{height}"


def accepted(path: Path) -> bool:
    return path.suffix.lower() in ACCEPTED_SUFFIXES


class OutputFields:
    """Size, codec and burn-in widgets, shared by this dialog and the settings dialog's output defaults."""

    def __init__(self, form: QFormLayout, defaults: dict[str, Any], parent: QWidget) -> None:
        self.size = QComboBox(parent)
        for w, h in SIZES:
            self.size.addItem(f"{w} × {h}", size_key(w, h))
        current = (int(defaults.get("width", 640)), int(defaults.get("height", 360)))
        if current not in SIZES:
            self.size.addItem(f"{current[0]} × {current[1]}", size_key(*current))
        self.size.setCurrentIndex(self.size.findData(size_key(*current)))
        self.codec = QComboBox(parent)
        self.codec.addItem("H.264 + AAC (plays in any browser)", "h264")
        burn = dict(defaults.get("burnIn") or {})
        self.timecode = QCheckBox("Timecode", parent)
        self.timecode.setChecked(bool(burn.get("timecode", True)))
        self.clip_name = QCheckBox("Clip name", parent)
        self.clip_name.setChecked(bool(burn.get("clipName", False)))
        self.label = QLineEdit(str(burn.get("label", "DRAFT") or ""), parent)
        self.label.setPlaceholderText("no label")
        self.label.setMaxLength(80)
        burn_row = QHBoxLayout()
        burn_row.addWidget(self.timecode)
        burn_row.addWidget(self.clip_name)
        burn_row.addWidget(QLabel("Label:", parent))
        burn_row.addWidget(self.label, 1)
        form.addRow("Output size", self.size)
        form.addRow("Codec", self.codec)
        form.addRow("Burn-ins", burn_row)

    def value(self) -> dict[str, Any]:
        w, h = (int(v) for v in str(self.size.currentData()).split("x"))
        return {"width": w, "height": h, "videoCodec": self.codec.currentData(),
                "burnIn": {"timecode": self.timecode.isChecked(), "clipName": self.clip_name.isChecked(),
                           "label": self.label.text().strip() or None}}


class QueueDialog(QDialog):
    def __init__(self, paths: Sequence[Path], settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = list(paths)
        self.settings = settings
        self.setWindowTitle("Queue preview" if len(paths) == 1 else f"Queue {len(paths)} previews")
        self.setMinimumWidth(460)
        names = ", ".join(p.name for p in self.paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        heading = QLabel(f"<b>{names}</b>")
        heading.setWordWrap(True)
        form = QFormLayout()
        self.project = QLineEdit(self)
        self.project.setValidator(QRegularExpressionValidator(QRegularExpression(PROJECT_ID_PATTERN), self))
        if len(self.paths) == 1:
            self.project.setText(project_id_from_name(self.paths[0].name))
        else:
            self.project.setPlaceholderText("from each file name")
        form.addRow("Project ID", self.project)
        self.output = OutputFields(form, dict(settings.output_defaults), self)
        self.priority = QSpinBox(self)
        self.priority.setRange(0, 10)
        self.priority.setValue(pref_int(window_prefs(settings), "queue/priority", 5))
        self.priority.setToolTip("0–10; higher runs first")
        form.addRow("Priority", self.priority)
        self.on_farm = QCheckBox("Render on the farm", self)  # only with a farm configured
        self.on_farm.setToolTip("Any node of the farm renders it; it stays in the job table and its preview comes "
                                "back to this computer")
        if settings.redis_url:
            form.addRow("", self.on_farm)
        else:
            self.on_farm.hide()
        self.remember = QCheckBox("Remember as default", self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Queue" if len(paths) == 1 else f"Queue {len(paths)}")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.remember)
        layout.addWidget(buttons)

    def options(self) -> SubmitOptions:
        return SubmitOptions(project_id=self.project.text().strip() or None, output=self.output.value(),
                             priority=self.priority.value(),
                             on_farm=bool(self.settings.redis_url) and self.on_farm.isChecked())

    def accept(self) -> None:
        if self.remember.isChecked():
            self.save_defaults()
        super().accept()

    def save_defaults(self) -> None:
        """Output defaults go to the settings file (the worker honours them too); priority to the window prefs."""
        if self.settings.settings_file is not None:
            write_settings_file(self.settings.settings_file, {"output_defaults": self.output.value()})
        prefs = window_prefs(self.settings)
        prefs.setValue("queue/priority", self.priority.value())
        prefs.sync()
