"""Every job action once, as a QAction with its shortcut: the toolbar, the menus and the context menu share them.

Each action applies to every selected job (jobs it does not apply to are skipped, e.g. retry on a running job).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QWidget

from ..core.job import Job, JobState
from .adapter import EngineAdapter
from .icons import state_icon


class JobActions(QObject):
    def __init__(self, adapter: EngineAdapter, selected: Callable[[], list[Job]], parent: QWidget) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.selected = selected
        self.window = parent
        style = parent.style()

        def make(text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None, slot: Callable[[], object],
                 icon: QIcon | None = None, tip: str = "") -> QAction:
            action = QAction(text, parent)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if icon is not None:
                action.setIcon(icon)
            shown = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip or text.rstrip('…')} ({shown})" if shown else (tip or text))
            action.triggered.connect(lambda checked=False: slot())
            parent.addAction(action)
            return action

        sp = QStyle.StandardPixmap
        self.add = make("Add timeline…", QKeySequence.StandardKey.Open, self._noop,
                        style.standardIcon(sp.SP_FileDialogNewFolder), "Queue previews of timeline files")
        self.cancel = make("Cancel", "Ctrl+.", self.do_cancel, state_icon("cancelled"), "Cancel the selected jobs")
        self.retry = make("Retry", "Ctrl+R", self.do_retry, state_icon("retrying"), "Queue the selected jobs again")
        self.raise_priority = make("Raise priority", "Ctrl+Up", lambda: self.do_priority(+1),
                                   style.standardIcon(sp.SP_ArrowUp))
        self.lower_priority = make("Lower priority", "Ctrl+Down", lambda: self.do_priority(-1),
                                   style.standardIcon(sp.SP_ArrowDown))
        self.pause = make("Pause queue", "Ctrl+P", self.do_pause, style.standardIcon(sp.SP_MediaPause),
                          "Pause the local queue: running jobs finish, no new ones start")
        self.pause.setCheckable(True)
        self.remove = make("Remove finished", QKeySequence.StandardKey.Delete, self.do_remove,
                           style.standardIcon(sp.SP_DialogDiscardButton),
                           "Remove the selected finished jobs from the list (all finished ones if none is selected)")
        self.open_preview = make("Open preview", "Ctrl+Return", self.do_open, style.standardIcon(sp.SP_MediaPlay),
                                 "Open preview.mp4 in the system player")
        self.reveal = make("Reveal in file manager", "Ctrl+Shift+R", self.do_reveal,
                           style.standardIcon(sp.SP_DirOpenIcon))
        self.copy_id = make("Copy job id", QKeySequence.StandardKey.Copy, self.do_copy)
        self.job_actions = [self.cancel, self.retry, self.raise_priority, self.lower_priority, self.remove,
                            self.open_preview, self.reveal, self.copy_id]
        adapter.statusChanged.connect(lambda status: self._show_paused(status.paused))
        self._show_paused(adapter.status.paused)
        self.update_enabled()

    def _noop(self) -> None:  # `add` is connected by the main window, which owns the dialogs
        pass

    def _show_paused(self, paused: bool) -> None:
        self.pause.blockSignals(True)
        self.pause.setChecked(paused)
        self.pause.blockSignals(False)
        self.pause.setText("Resume queue" if paused else "Pause queue")
        sp = QStyle.StandardPixmap
        self.pause.setIcon(self.window.style().standardIcon(sp.SP_MediaPlay if paused else sp.SP_MediaPause))

    def update_enabled(self) -> None:
        """Grey out what cannot apply to anything selected, so a click never does nothing silently."""
        jobs = self.selected()
        states = {j.state for j in jobs}
        active = any(not s.finished for s in states)
        self.cancel.setEnabled(active)
        self.retry.setEnabled(bool(states & {JobState.FAILED, JobState.CANCELLED}))
        self.raise_priority.setEnabled(any(j.priority_can_change and j.priority < 10 for j in jobs))
        self.lower_priority.setEnabled(any(j.priority_can_change and j.priority > 0 for j in jobs))
        self.remove.setEnabled(not jobs or any(s.finished for s in states))
        has_preview = any(j.state is JobState.SUCCEEDED for j in jobs)
        self.open_preview.setEnabled(has_preview)
        self.reveal.setEnabled(bool(jobs))
        self.copy_id.setEnabled(bool(jobs))

    # ------------------------------------------------------------------ slots
    def _ids(self) -> list[str]:
        return [j.id for j in self.selected()]

    def do_cancel(self) -> None:
        self.adapter.cancel(self._ids())

    def do_retry(self) -> None:
        self.adapter.retry(self._ids())

    def do_priority(self, delta: int) -> None:
        self.adapter.change_priority(self._ids(), delta)

    def do_pause(self) -> None:
        self.adapter.set_paused(not self.adapter.status.paused)

    def do_remove(self) -> None:
        jobs = self.selected()
        if not jobs:
            jobs = [j for j in self.adapter.jobs().values() if j.state.finished]
        self.adapter.remove([j.id for j in jobs])

    def _preview_files(self, name: str) -> list[Path]:
        out = []
        for job in self.selected():
            folder = self.adapter.preview_dir(job)
            if folder is not None:
                out.append(folder / name if name else folder)
        return out

    def do_open(self) -> None:
        for job in self.selected():
            folder = self.adapter.preview_dir(job)
            if job.state is JobState.SUCCEEDED and folder is not None:
                QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder / "preview.mp4")))

    def do_reveal(self) -> None:
        for folder in self._preview_files("")[:5]:  # more than a few windows helps nobody
            reveal(folder)

    def do_copy(self) -> None:
        ids = self._ids()
        if ids:
            QGuiApplication.clipboard().setText("\n".join(ids))
            self.adapter.info.emit(f"Copied {len(ids)} job id(s)")

    def context_menu(self, parent: QWidget) -> QMenu:
        menu = QMenu(parent)
        for action in (self.open_preview, self.reveal, self.copy_id, None, self.cancel, self.retry,
                       self.raise_priority, self.lower_priority, None, self.remove):
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        return menu


def reveal(folder: Path) -> None:
    """Show the job's folder in the platform's file manager (selecting the video where the platform can)."""
    target = folder if folder.exists() else folder.parent
    video = folder / "preview.mp4"
    if sys.platform == "darwin" and video.exists():
        subprocess.Popen(["open", "-R", str(video)])
    elif os.name == "nt" and video.exists():
        subprocess.Popen(["explorer", "/select,", str(video)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))
