"""The job table and what shows over it while it has no rows (first run, or a filter that matches nothing)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QPushButton, QTableView, QVBoxLayout, QWidget

from .job_model import PROGRESS_COLUMN
from .progress_delegate import ProgressDelegate


class EmptyState(QWidget):
    """Shown over the table when it has no rows: how to add a timeline, and the demo project."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.heading = QLabel()
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        self.heading.setFont(font)
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setStyleSheet("color: palette(placeholder-text);")
        self.add_button = QPushButton("Add timeline…")
        self.demo_button = QPushButton("Render the demo project")
        self.clear_button = QPushButton("Clear the filter")
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.heading)
        layout.addSpacing(4)
        layout.addWidget(self.text)
        layout.addSpacing(12)
        for button in (self.add_button, self.demo_button, self.clear_button):
            button.setMinimumWidth(220)
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)

    def show_first_run(self) -> None:
        self.heading.setText("No previews yet")
        self.text.setText("Drop an edit here — OpenTimelineIO (.otio, .otioz), CMX3600 EDL, FCP XML, FCPXML or a "
                          "media file — or choose File → Add timeline… (Ctrl+O). Each file becomes a job; the "
                          "preview plays in any browser.")
        self.add_button.show()
        self.demo_button.show()
        self.clear_button.hide()

    def show_filtered(self) -> None:
        self.heading.setText("No jobs match")
        self.text.setText("Nothing in this list matches the state and text filter.")
        self.add_button.hide()
        self.demo_button.hide()
        self.clear_button.show()


class JobTable(QTableView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSortingEnabled(True)
        self.setShowGrid(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        vh = self.verticalHeader()
        vh.hide()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # never measure 10,000 rows
        vh.setDefaultSectionSize(max(26, self.fontMetrics().height() + 10))
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setSectionsMovable(True)
        hh.setStretchLastSection(False)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self))
