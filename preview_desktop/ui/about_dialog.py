"""Help → About: name, version, the licence summary and the full third-party notices, scrollable.

The notices must be reachable from inside the app (LGPL for Qt, GPL for x264/x265 in PyAV's FFmpeg); the text
itself comes from preview_desktop.about so the window and the packaging checks show the same file.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ..about import LICENCE_SUMMARY, notices_text, version_info


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, data_dir: Path | None = None) -> None:
        super().__init__(parent)
        info = version_info()
        self.setWindowTitle(f"About {info['name']}")
        self.resize(760, 560)
        title = QLabel(f"<h2>{info['name']} {info['version']}</h2>Licence: {info['licence']}")
        libraries = ", ".join(f"{name} {version}" for name, version in info["libraries"].items())
        how = "installed build" if info["frozen"] else "source checkout"
        details = QLabel(f"Low-resolution previews of edit timelines.<br>Python {info['python']} on "
                         f"{info['platform']} ({how}).<br>{libraries}"
                         + (f"<br>Data: {data_dir}" if data_dir else ""))
        details.setWordWrap(True)
        summary = QLabel(LICENCE_SUMMARY)
        summary.setWordWrap(True)
        self.notices = QPlainTextEdit(notices_text())
        self.notices.setReadOnly(True)
        self.notices.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.notices.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (title, details, summary):
            layout.addWidget(widget)
        layout.addWidget(self.notices, 1)
        layout.addWidget(buttons)


def show_about(parent: QWidget | None = None, data_dir: Path | None = None) -> None:
    """Open the dialog modally (Help → About)."""
    AboutDialog(parent, data_dir).exec()
