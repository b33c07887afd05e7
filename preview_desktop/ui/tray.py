"""The tray icon (overall progress) and desktop notifications: one when a job fails, one when the whole queue
has finished — never one per job, which would bury the failure an editor must see."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from ..core.events import EngineStatus
from .adapter import EngineAdapter
from .icons import app_icon

ICON_INTERVAL = 1.0  # seconds between tray icon redraws


class Tray(QObject):
    notified = Signal(str, str)  # title, message: every notification, also when no tray can show it
    showWindow = Signal()
    quitRequested = Signal()

    def __init__(self, adapter: EngineAdapter, window: QWidget, pause: QAction) -> None:
        super().__init__(window)
        self.adapter = adapter
        self.window = window
        self.icon: QSystemTrayIcon | None = None
        self._busy = False
        self._session = {"success": 0, "failure": 0}
        self._fractions: dict[str, float] = {}
        self._batch_done = 0
        self._last_icon = 0.0
        self.fraction: float | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(app_icon(), self)
            menu = QMenu(window)
            show = menu.addAction("Show Preview Desktop")
            show.triggered.connect(self.showWindow.emit)
            menu.addAction(pause)
            menu.addSeparator()
            quit_action = menu.addAction("Quit")
            quit_action.triggered.connect(self.quitRequested.emit)
            self.icon.setContextMenu(menu)
            self.icon.activated.connect(self._activated)
            self.icon.setToolTip("Preview Desktop")
            self.icon.show()
        adapter.outcome.connect(self._outcome)
        adapter.jobProgress.connect(self._progress)
        adapter.countsChanged.connect(self._counts)
        adapter.statusChanged.connect(self._status)

    @property
    def available(self) -> bool:
        return self.icon is not None

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.showWindow.emit()

    def notify(self, title: str, message: str, critical: bool = False) -> None:
        self.notified.emit(title, message)
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            kind = QSystemTrayIcon.MessageIcon.Critical if critical else QSystemTrayIcon.MessageIcon.Information
            self.icon.showMessage(title, message, kind, 8000)

    def _outcome(self, job_id: str, outcome: str, seconds: float, frames: int) -> None:
        self._fractions.pop(job_id, None)
        if outcome in self._session:
            self._session[outcome] += 1
            self._batch_done += 1
        job = self.adapter.job(job_id)
        if outcome == "failure" and job is not None:  # not a farm job rendered here: the farm reports those
            error = (job.error or "").splitlines()[0] if job.error else "see the job's Error tab"
            self.notify(f"Preview failed: {job.project_id}", error, critical=True)
        self._update_icon()

    def _progress(self, job_id: str, frame: int, frames: int, fraction: float, fps: float) -> None:
        self._fractions[job_id] = fraction
        if time.monotonic() - self._last_icon >= ICON_INTERVAL:
            self._update_icon()

    def _status(self, status: EngineStatus) -> None:
        self._update_icon()

    def _counts(self, counts: dict[str, int]) -> None:
        active = counts.get("running", 0) + counts.get("queued", 0) + counts.get("retrying", 0)
        if active and not self._busy:
            self._busy = True
            self._batch_done = 0
        elif not active and self._busy:
            self._busy = False
            ok, bad = self._session["success"], self._session["failure"]
            if ok or bad:
                text = f"{ok} preview(s) ready" + (f", {bad} failed" if bad else "")
                self.notify("All previews finished", text, critical=bool(bad))
            self._session = {"success": 0, "failure": 0}
        self._waiting = counts.get("queued", 0) + counts.get("retrying", 0)
        self._update_icon()

    def _update_icon(self) -> None:
        """Overall progress of the current batch: finished + running fractions over everything in it."""
        self._last_icon = time.monotonic()
        waiting = getattr(self, "_waiting", 0)
        running = sum(self._fractions.values())
        total = self._batch_done + len(self._fractions) + waiting
        self.fraction = (self._batch_done + running) / total if self._busy and total else None
        if self.icon is None:
            return
        paused = self.adapter.status.paused
        self.icon.setIcon(app_icon(self.fraction, paused))
        if self.fraction is None:
            self.icon.setToolTip("Preview Desktop — idle" + (" (paused)" if paused else ""))
        else:
            self.icon.setToolTip(f"Preview Desktop — {self.fraction * 100:.0f}% · {len(self._fractions)} rendering, "
                                 f"{waiting} waiting" + (" (paused)" if paused else ""))
