"""The job table's model: one row per job, keyed by job id, updated in place from adapter batches.

Why the model sorts itself: QSortFilterProxyModel sorts by calling `data()` (Python) per comparison, which takes
seconds for 10,000 jobs; a Python `sorted()` with a key takes milliseconds. The proxy below only filters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from ..core.job import Job, JobState
from .icons import STATE_COLORS, state_icon

JobRole = Qt.ItemDataRole.UserRole + 1  # the Job itself
ProgressRole = Qt.ItemDataRole.UserRole + 2  # (fraction 0..1 or None, text) for the progress delegate
StateRole = Qt.ItemDataRole.UserRole + 3  # the display state name ("superseded", "cancelling", ...)

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Live:
    """Live progress of a job running on this node (between the store's heartbeats)."""

    frame: int
    frames: int
    fraction: float
    fps: float


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_time(ts: float | None, now: float | None = None) -> str:
    """Today: 14:05. Earlier: 27 Nov 14:05. Local time: that is what an editor reads."""
    if ts is None:
        return ""
    now = time.time() if now is None else now
    lt = time.localtime(ts)
    if time.localtime(now)[:3] == lt[:3]:
        return time.strftime("%H:%M", lt)
    return time.strftime("%d %b %H:%M", lt)


def job_duration(job: Job, now: float | None = None) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else (now or time.time())
    if job.state is not JobState.RUNNING and job.finished_at is None:
        return None
    return max(0.0, end - job.started_at)


def progress_of(job: Job, live: Live | None, now: float | None = None) -> tuple[float | None, str]:
    """(fraction or None for no bar, text): '42% · 0:12 left', 'retry in 8s', 'queued'."""
    state = job.state
    if state is JobState.RUNNING:
        frame, frames, fraction, fps = (
            (live.frame, live.frames, live.fraction, live.fps) if live else
            (job.progress.frame, job.progress.frames, job.progress.fraction, job.progress.fps)
        )
        if not frames:
            return 0.0, "starting…"
        text = f"{fraction * 100:.0f}%"
        if job.farm_id is not None and frame >= frames:
            return fraction, text + " · fetching files"  # rendered on the farm; its files are on their way
        if fps > 0 and frame < frames:
            text += f" · {fmt_duration((frames - frame) / fps)} left"
        return fraction, text
    if state is JobState.RETRYING:
        wait = max(0.0, (job.not_before or 0) - (now or time.time()))
        return None, f"retry in {wait:.0f}s" if wait >= 1 else "retrying…"
    if state is JobState.SUCCEEDED:
        return 1.0, "done"
    if state is JobState.QUEUED:
        return None, "waiting"
    return None, ""


def short_node(worker: str | None, here: str) -> str:
    if not worker:
        return ""
    if worker == here:
        return "this computer"
    host, _, rest = worker.partition(":")
    return f"{host} (pid {rest.partition(':')[0]})" if rest else host


def watch_folder_name(job: Job) -> str:
    """The folder's name for a job queued by a watch folder (its full path is in the detail pane), else ''."""
    folder = job.spec.get("watchFolder")
    return PurePath(folder).name or str(folder) if isinstance(folder, str) else ""


def node_text(job: Job, here: str) -> str:
    """The Node column: where it runs; a farm record is marked "farm" (before a node takes it, "farm" alone)."""
    node = short_node(job.worker, here)
    if job.farm_id is None:
        return node
    return f"farm · {node}" if node else "farm"


@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[Job, Live | None, str], str]
    key: Callable[[Job, Live | None], Any]
    width: int
    align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft


def _opt(value: float | None) -> tuple[int, float]:
    return (0, 0.0) if value is None else (1, value)


STATE_ORDER = {"running": 0, "cancelling": 1, "retrying": 2, "queued": 3, "failed": 4, "succeeded": 5,
               "cancelled": 6, "superseded": 7}

COLUMNS: tuple[Column, ...] = (
    Column("Project", lambda j, lv, h: j.project_id, lambda j, lv: j.project_id.casefold(), 124),
    Column("Timeline", lambda j, lv, h: PurePath(j.label).name if j.label != "inline timeline" else j.label,
           lambda j, lv: PurePath(j.label).name.casefold(), 170),
    Column("State", lambda j, lv, h: j.display_state, lambda j, lv: STATE_ORDER.get(j.display_state, 9), 104),
    Column("Progress", lambda j, lv, h: progress_of(j, lv)[1],
           lambda j, lv: (progress_of(j, lv)[0] or 0.0), 188),
    Column("Priority", lambda j, lv, h: str(j.priority), lambda j, lv: j.priority, 64,
           Qt.AlignmentFlag.AlignHCenter),
    Column("Attempts", lambda j, lv, h: f"{j.attempts_made}/{j.attempts_allowed}",
           lambda j, lv: j.attempts_made, 68, Qt.AlignmentFlag.AlignHCenter),
    Column("Created", lambda j, lv, h: fmt_time(j.created_at), lambda j, lv: j.created_at, 84),
    Column("Finished", lambda j, lv, h: fmt_time(j.finished_at), lambda j, lv: _opt(j.finished_at), 84),
    Column("Duration", lambda j, lv, h: fmt_duration(job_duration(j)), lambda j, lv: _opt(job_duration(j)), 68,
           Qt.AlignmentFlag.AlignRight),
    Column("Node", lambda j, lv, h: node_text(j, h), lambda j, lv: (j.farm_id is not None, j.worker or ""), 132),
    Column("Watch folder", lambda j, lv, h: watch_folder_name(j), lambda j, lv: watch_folder_name(j).casefold(), 120),
)
COL = {c.title: i for i, c in enumerate(COLUMNS)}
_ALIGN = tuple(int(c.align | Qt.AlignmentFlag.AlignVCenter) for c in COLUMNS)
_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.TextAlignmentRole,
                    Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.ToolTipRole, JobRole, ProgressRole, StateRole})


@lru_cache(maxsize=32)
def _brush(state: str) -> QBrush:
    return QBrush(QColor(STATE_COLORS.get(state, "#444")))
PROGRESS_COLUMN = COL["Progress"]
TIMELINE_COLUMN = COL["Timeline"]
STATE_COLUMN = COL["State"]
DURATION_COLUMN = COL["Duration"]


class JobTableModel(QAbstractTableModel):
    """Rows are job ids in display order; `_row` maps id → row so an update touches exactly one row."""

    def __init__(self, worker_id: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker_id = worker_id
        self._jobs: dict[str, Job] = {}
        self._live: dict[str, Live] = {}
        self._haystack: dict[str, str] = {}
        self._texts: dict[str, tuple[str, ...]] = {}  # display texts per job, dropped when the job changes
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._sort_column = COL["Created"]
        self._sort_order = Qt.SortOrder.DescendingOrder

    # ------------------------------------------------------------------ Qt model interface
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.TextAlignmentRole:
            return int(COLUMNS[section].align | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # A view asks ~10 roles per cell per paint; most are ones we do not answer: leave fast.
        if role not in _ROLES or not index.isValid():
            return None
        job_id = self._ids[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            texts = self._texts.get(job_id)
            if texts is None:  # computed once per change of the job, not once per paint
                job, live = self._jobs[job_id], self._live.get(job_id)
                texts = self._texts[job_id] = tuple(c.text(job, live, self.worker_id) for c in COLUMNS)
            return texts[column]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN[column]
        job = self._jobs[job_id]
        if role == Qt.ItemDataRole.DecorationRole and column == STATE_COLUMN:
            return state_icon(job.display_state)
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE_COLUMN:
            return _brush(job.display_state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(job)
        if role == JobRole:
            return job
        if role == ProgressRole:
            return progress_of(job, self._live.get(job_id))
        if role == StateRole:
            return job.display_state
        return None

    def _tooltip(self, job: Job) -> str:
        lines = [f"{job.project_id} — {job.label}", f"Job {job.id}", f"State: {job.display_state}"]
        if job.superseded_by:
            lines.append(f"Superseded by {job.superseded_by}")
        if job.farm_id is not None:
            lines.append(f"Rendered on the farm: farm job {job.farm_id}" + (f" on {job.worker}" if job.worker else ""))
        if job.error:
            lines.append(f"Error: {job.error}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ lookups
    def job_at(self, row: int) -> Job:
        return self._jobs[self._ids[row]]

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def row_of(self, job_id: str) -> int | None:
        return self._row.get(job_id)

    def haystack(self, row: int) -> str:
        return self._haystack[self._ids[row]]

    def jobs(self) -> list[Job]:
        return [self._jobs[i] for i in self._ids]

    # ------------------------------------------------------------------ updates (from the adapter)
    def apply(self, updated: Sequence[Job], removed: Iterable[str] = ()) -> None:
        """One adapter batch: removals, in-place updates (dataChanged per row) and one insert for new jobs."""
        self._remove(list(removed))
        new: list[Job] = []
        touched: list[int] = []
        resort = False
        key = COLUMNS[self._sort_column].key if self._sort_column >= 0 else None
        for job in updated:
            row = self._row.get(job.id)
            if row is None:
                new.append(job)
                continue
            old = self._jobs[job.id]
            if key is not None and not resort and key(old, self._live.get(job.id)) != key(job, self._live.get(job.id)):
                resort = True
            self._store(job)
            touched.append(row)
        if touched:
            last = len(COLUMNS) - 1
            if len(touched) > 64:  # a big batch: one signal over the span beats thousands of signals
                self.dataChanged.emit(self.index(min(touched), 0), self.index(max(touched), last))
            else:
                for row in touched:
                    self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        if new:
            first = len(self._ids)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for job in new:
                self._store(job)
                self._row[job.id] = len(self._ids)
                self._ids.append(job.id)
            self.endInsertRows()
            resort = True
        if resort:
            self._resort()

    def _store(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._texts.pop(job.id, None)
        if job.state is not JobState.RUNNING:
            self._live.pop(job.id, None)
        self._haystack[job.id] = " ".join(
            filter(None, (job.project_id, job.label, job.id, job.worker, job.error, job.display_state,
                          "farm" if job.farm_id is not None else None))
        ).casefold()

    def _remove(self, job_ids: list[str]) -> None:
        rows = sorted((self._row[i] for i in job_ids if i in self._row), reverse=True)
        if not rows:
            return
        if len(rows) > 200:  # "remove finished" on thousands of jobs: one reset, not thousands of removals
            self.beginResetModel()
            gone = set(job_ids)
            self._ids = [i for i in self._ids if i not in gone]
            self._forget(gone)
            self._reindex()
            self.endResetModel()
            return
        for row in rows:
            self.beginRemoveRows(QModelIndex(), row, row)
            job_id = self._ids.pop(row)
            self._forget({job_id})
            self.endRemoveRows()
        self._reindex()

    def _forget(self, job_ids: set[str]) -> None:
        for job_id in job_ids:
            self._jobs.pop(job_id, None)
            self._live.pop(job_id, None)
            self._haystack.pop(job_id, None)
            self._texts.pop(job_id, None)
            self._row.pop(job_id, None)

    def _reindex(self) -> None:
        self._row = {job_id: row for row, job_id in enumerate(self._ids)}

    def set_progress(self, job_id: str, frame: int, frames: int, fraction: float, fps: float) -> None:
        row = self._row.get(job_id)
        if row is None or self._jobs[job_id].state is not JobState.RUNNING:
            return
        self._live[job_id] = Live(frame, frames, fraction, fps)
        self._texts.pop(job_id, None)
        self.dataChanged.emit(self.index(row, PROGRESS_COLUMN), self.index(row, DURATION_COLUMN),
                              [Qt.ItemDataRole.DisplayRole, ProgressRole])

    def live(self, job_id: str) -> Live | None:
        return self._live.get(job_id)

    # ------------------------------------------------------------------ sorting
    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column, self._sort_order = column, order
        self._resort()

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    def _resort(self) -> None:
        if self._sort_column < 0 or len(self._ids) < 2:
            return
        key = COLUMNS[self._sort_column].key
        jobs, live = self._jobs, self._live
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        order = sorted(self._ids, key=lambda i: (key(jobs[i], live.get(i)), jobs[i].created_at, i),
                       reverse=descending)
        if order == self._ids:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        remembered = [(self._ids[p.row()], p.column()) for p in persistent]
        self._ids = order
        self._reindex()
        self.changePersistentIndexList(persistent, [self.index(self._row[i], c) for i, c in remembered])
        self.layoutChanged.emit()


STATE_FILTERS: dict[str, frozenset[str] | None] = {
    "All jobs": None,
    "Active": frozenset({"queued", "running", "cancelling", "retrying"}),
    "Running": frozenset({"running", "cancelling"}),
    "Queued": frozenset({"queued", "retrying"}),
    "Succeeded": frozenset({"succeeded"}),
    "Failed": frozenset({"failed"}),
    "Cancelled": frozenset({"cancelled", "superseded"}),
}


class JobFilterProxy(QSortFilterProxyModel):
    """Filters by state and free text. Sorting is passed to the source model (see the module docstring)."""

    def __init__(self, source: JobTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._states: frozenset[str] | None = None
        self._needle = ""
        self.setSourceModel(source)

    def set_states(self, states: frozenset[str] | None) -> None:
        self._change_filter(lambda: setattr(self, "_states", states))

    def set_text(self, text: str) -> None:
        self._change_filter(lambda: setattr(self, "_needle", text.strip().casefold()))

    def _change_filter(self, change: Callable[[], None]) -> None:
        """Qt 6.10+ wants begin/endFilterChange around the change (invalidateFilter is deprecated)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._states is not None and self._source.job_at(source_row).display_state not in self._states:
            return False
        return not self._needle or all(w in self._source.haystack(source_row) for w in self._needle.split())

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._source.sort(column, order)

    def job_at(self, row: int) -> Job:
        return self._source.job_at(self.mapToSource(self.index(row, 0)).row())
