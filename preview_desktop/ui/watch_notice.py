"""One notification when watched exports' previews are ready: the point of a watch folder is not having to look.
An export that could not even be queued (a recorded failure, which no render outcome reports) is said at once.

Coalesced: previews that land within COALESCE_SECONDS of the first make one notification (an export of five
sequences is one event for the editor), and each export counts once however many updates its job gets.
"""

from __future__ import annotations

import time
from pathlib import PurePath

from PySide6.QtCore import QObject, QTimer

from ..core.job import Job, JobState
from .adapter import EngineAdapter
from .tray import Tray

COALESCE_SECONDS = 3.0


class WatchNotice(QObject):
    def __init__(self, adapter: EngineAdapter, tray: Tray, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        super().__init__(tray)
        self.tray = tray
        self._since = time.time()  # previews finished before the window opened are old news
        self._seen: set[str] = set()
        self._ready: dict[tuple[str, str], Job] = {}  # (watch folder, timeline) -> its newest finished job
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(coalesce_seconds * 1000))
        self._timer.timeout.connect(self.flush)
        adapter.jobsChanged.connect(self._jobs_changed)

    def _jobs_changed(self, updated: list[Job], removed: list[str]) -> None:
        for job in updated:
            folder = job.spec.get("watchFolder")
            if not isinstance(folder, str) or job.id in self._seen or (job.finished_at or 0.0) < self._since:
                continue
            if job.state is JobState.FAILED and job.attempts_made == 0:  # never queued: the tray saw no outcome
                self._seen.add(job.id)
                reason = (job.error or "").splitlines()[0] if job.error else "see the job's Error tab"
                self.tray.notify(f"Export not queued: {PurePath(job.label).name}", reason, critical=True)
                continue
            if job.state is not JobState.SUCCEEDED:
                continue
            self._seen.add(job.id)
            self._ready[(folder, job.label)] = job
            if not self._timer.isActive():
                self._timer.start()

    def flush(self) -> None:
        """Notify now what is waiting (the timer calls it; tests may too)."""
        self._timer.stop()
        ready, self._ready = list(self._ready.values()), {}
        if not ready:
            return
        names = [PurePath(j.label).name for j in ready]
        if len(ready) == 1:
            folder = PurePath(str(ready[0].spec["watchFolder"])).name
            self.tray.notify(f"Preview ready: {names[0]}", f"{ready[0].project_id} · from watch folder {folder}")
            return
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        self.tray.notify(f"{len(ready)} previews ready", ", ".join(names[:4]) + more)
