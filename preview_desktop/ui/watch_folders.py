"""The settings dialog's watch folders: a list with Add, Edit and Remove; each folder has its project id,
priority, output settings and polling choice (or a `preview-spec.json` in the folder, which wins)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.ids import PROJECT_ID_RE
from ..settings import WatchFolder
from .queue_dialog import OutputFields

POLL_CHOICES = (("Automatic (poll network shares)", None), ("File system events", False),
                ("Poll every 2 s (network share)", True))
FolderChooser = Callable[[QWidget], str]  # returns a folder path, or "" when the user cancelled


def choose_folder(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Watch folder")


def describe(folder: WatchFolder, mode: str | None = None) -> str:
    parts = [f"project {folder.project_id}" if folder.project_id else "project from the file name"]
    if folder.priority is not None:
        parts.append(f"priority {folder.priority}")
    if folder.output:
        parts.append(f"{folder.output.get('width', 640)}×{folder.output.get('height', 360)}")
    if folder.poll:
        parts.append("polling")
    state = f" — {mode}" if mode else ""
    return f"{folder.path}{state}\n    " + ", ".join(parts)


class WatchFolderDialog(QDialog):
    """One folder's settings. Empty project id = from each export's file name; priority 'default' = 5."""

    def __init__(self, folder: WatchFolder, defaults: Mapping[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Watch folder")
        self.folder = folder
        form = QFormLayout(self)
        form.addRow("Folder", QLabel(folder.path))
        self.project = QLineEdit(folder.project_id or "")
        self.project.setPlaceholderText("from each export's file name")
        form.addRow("Project id", self.project)
        self.priority = QSpinBox()
        self.priority.setRange(-1, 10)
        self.priority.setSpecialValueText("default (5)")
        self.priority.setValue(folder.priority if folder.priority is not None else -1)
        form.addRow("Priority", self.priority)
        self.poll = QComboBox()
        for text, value in POLL_CHOICES:
            self.poll.addItem(text, value)
        self.poll.setCurrentIndex([v for _, v in POLL_CHOICES].index(folder.poll))
        form.addRow("Changes seen by", self.poll)
        self.output = OutputFields(form, {**defaults, **folder.output}, self)
        note = QLabel("A <tt>preview-spec.json</tt> in the folder (spec fields, no timeline) overrides these.")
        note.setWordWrap(True)
        form.addRow(note)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b91c1c;")
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._defaults = dict(defaults)

    def value(self) -> WatchFolder:
        project = self.project.text().strip() or None
        output = self.output.value()
        changed = {k: v for k, v in output.items() if self._defaults.get(k, _DEFAULTS.get(k)) != v}
        return WatchFolder(self.folder.path, project, self.priority.value() if self.priority.value() >= 0 else None,
                           changed, self.poll.currentData())

    def accept(self) -> None:
        project = self.project.text().strip()
        if project and (not PROJECT_ID_RE.match(project) or project in (".", "..")):
            self.problem.setText("Project id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
            return
        super().accept()


_DEFAULTS: dict[str, Any] = {"width": 640, "height": 360, "videoCodec": "h264",
                             "burnIn": {"timecode": True, "clipName": False, "label": "DRAFT"}}


class WatchFoldersBox(QGroupBox):
    """The list as the settings dialog shows it; `folders()` is what Save writes to the settings file."""

    def __init__(self, folders: Sequence[WatchFolder], output_defaults: Mapping[str, Any], *, locked_by: str = "",
                 status: Mapping[str, str] | None = None, choose: FolderChooser = choose_folder,
                 parent: QWidget | None = None) -> None:
        super().__init__("Watch folders: exports saved here are queued without a click", parent)
        self._folders = list(folders)
        self._defaults = dict(output_defaults)
        self._status = dict(status or {})
        self._choose = choose
        self.list = QListWidget()
        self.list.setFixedHeight(96)
        self.list.itemDoubleClicked.connect(lambda item: self.edit())
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self.add)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove)
        buttons = QVBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        self.list.currentRowChanged.connect(self._selection)
        self._refill()
        if locked_by:
            for widget in (self.list, self.add_button, self.edit_button, self.remove_button):
                widget.setEnabled(False)
            self.setToolTip(f"set by {locked_by}")

    def folders(self) -> list[WatchFolder]:
        return list(self._folders)

    def _refill(self, select: int = -1) -> None:
        self.list.clear()
        for folder in self._folders:
            item = QListWidgetItem(describe(folder, self._status.get(folder.path)))
            item.setData(Qt.ItemDataRole.UserRole, folder.path)
            self.list.addItem(item)
        if not self._folders:
            self.list.addItem(QListWidgetItem("No watch folders. Add the folder your editing software exports to."))
            self.list.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
        self.list.setCurrentRow(select)
        self._selection(select)

    def _selection(self, row: int) -> None:
        chosen = 0 <= row < len(self._folders)
        self.edit_button.setEnabled(chosen and self.list.isEnabled())
        self.remove_button.setEnabled(chosen and self.list.isEnabled())

    def add(self) -> None:
        path = self._choose(self)
        if not path:
            return
        path = str(Path(path).expanduser().absolute())
        if any(f.path == path for f in self._folders):
            self._refill([f.path for f in self._folders].index(path))
            return
        self._folders.append(WatchFolder(path))
        self._refill(len(self._folders) - 1)

    def edit(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self._folders):
            return
        dialog = WatchFolderDialog(self._folders[row], self._defaults, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self._folders[row] = dialog.value()
            self._refill(row)

    def remove(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._folders):
            del self._folders[row]
            self._refill(min(row, len(self._folders) - 1))
