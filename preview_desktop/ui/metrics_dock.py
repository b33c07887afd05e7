"""The metrics dock: four small pyqtgraph plots of the numbers in MetricsNumbers.

Why the care: with renders on both cores, a plot repaint is what makes the window late (STACK.md: 45–63 ms p99
at 10 Hz). So the plots redraw at most twice a second, only when visible, from fixed-size buffers, with
antialiasing and mouse interaction off. New numbers arrive with the adapter's events; no polling timer.
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import QDockWidget, QWidget

from ..core.events import EngineStatus
from .adapter import EngineAdapter
from .icons import OUTCOME_COLORS, STATE_COLORS
from .metrics_numbers import OUTCOMES, MetricsNumbers

REDRAW_INTERVAL = 0.5  # seconds: at most 2 Hz


class MetricsView(pg.GraphicsLayoutWidget):
    """One graphics view for all four plots: one repaint instead of four."""

    def __init__(self, numbers: MetricsNumbers, parent: QWidget | None = None) -> None:
        pg.setConfigOptions(antialias=False, foreground="#4b5563")
        super().__init__(parent=parent)
        self.numbers = numbers
        self.setBackground(self.palette().color(self.backgroundRole()))
        self.ci.layout.setSpacing(12)
        self.ci.setContentsMargins(6, 4, 6, 4)

        def plot(title: str, col: int) -> pg.PlotItem:
            item: pg.PlotItem = self.addPlot(row=0, col=col, title=f"<span style='font-size:9pt'>{title}</span>")
            item.setMenuEnabled(False)
            item.setMouseEnabled(x=False, y=False)
            item.hideButtons()
            item.showGrid(x=False, y=True, alpha=0.15)
            for axis in ("left", "bottom"):
                item.getAxis(axis).setStyle(tickFont=self.font(), tickLength=-4)
            return item

        self.queue_plot = plot("Queue size · active jobs", 0)
        self.queue_line = self.queue_plot.plot(pen=pg.mkPen(STATE_COLORS["queued"], width=2), name="queue")
        self.active_line = self.queue_plot.plot(pen=pg.mkPen(STATE_COLORS["running"], width=2), name="active")
        self.queue_plot.setXRange(-300, 0, padding=0)
        self.queue_plot.setLimits(yMin=0)

        self.minute_plot = plot("Finished per minute", 1)
        self.minute_bars: dict[str, pg.BarGraphItem] = {}
        for outcome in OUTCOMES:
            bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=QColor(OUTCOME_COLORS[outcome]), pen=None)
            self.minute_plot.addItem(bars)
            self.minute_bars[outcome] = bars
        self.minute_plot.setXRange(-14.5, 0.5, padding=0)

        self.fps_plot = plot("Render fps", 2)
        self.fps_line = self.fps_plot.plot(pen=pg.mkPen("#0ea5e9", width=2), fillLevel=0,
                                           brush=QColor(14, 165, 233, 40))
        self.fps_plot.setXRange(-300, 0, padding=0)
        self.fps_plot.setLimits(yMin=0)

        self.hist_plot = plot("Job duration", 3)
        self.hist_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=QColor("#64748b"), pen=None)
        self.hist_plot.addItem(self.hist_bars)
        labels, _ = numbers.histogram()
        self.hist_plot.getAxis("bottom").setTicks([[(i, t) for i, t in enumerate(labels) if i % 3 == 0]])
        self.hist_plot.setXRange(-0.5, len(labels) - 0.5, padding=0)

    def redraw(self) -> None:
        n = self.numbers
        n.sample()
        xs, queue, active, fps = n.recent_series()
        self.queue_line.setData(xs, queue)
        self.active_line.setData(xs, active)
        self.fps_line.setData(xs, fps)
        self.queue_plot.setYRange(0, max([2, *queue, *active]) * 1.15, padding=0)
        self.fps_plot.setYRange(0, max([10.0, *fps]) * 1.15, padding=0)
        minutes, counts = n.minutes()
        base = [0] * len(minutes)
        for outcome in OUTCOMES:  # stacked: success at the bottom
            self.minute_bars[outcome].setOpts(x=minutes, height=counts[outcome], y0=list(base))
            base = [b + c for b, c in zip(base, counts[outcome], strict=False)]
        self.minute_plot.setYRange(0, max([3, *base]) * 1.15, padding=0)
        _, hist = n.histogram()
        self.hist_bars.setOpts(x=list(range(len(hist))), height=hist)
        self.hist_plot.setYRange(0, max([3, *hist]) * 1.15, padding=0)
        # The current values in the titles: a glance answers "how many are waiting?" without reading axes.
        self._title(self.queue_plot, "Queue", f"{n.queue_size} waiting · {n.active} active")
        self._title(self.minute_plot, "Finished per minute",
                    f"{n.totals['success']} ok · {n.totals['failure']} failed · {n.totals['retry']} retried")
        self._title(self.fps_plot, "Render fps", f"{n.fps:.0f} fps")
        mean = n.duration_sum / n.duration_count if n.duration_count else None
        self._title(self.hist_plot, "Job duration", f"mean {mean:.0f}s" if mean is not None else "no jobs yet")

    def _title(self, plot: pg.PlotItem, name: str, value: str) -> None:
        text = f"<span style='font-size:9pt'>{name} <b>{value}</b></span>"
        if getattr(plot, "_shown_title", None) != text:  # setTitle relayouts: only when the text changes
            plot._shown_title = text
            plot.setTitle(text)


class MetricsDock(QDockWidget):
    def __init__(self, adapter: EngineAdapter, parent: QWidget | None = None) -> None:
        super().__init__("Metrics", parent)
        self.setObjectName("metricsDock")
        self.numbers = MetricsNumbers()
        self.view = MetricsView(self.numbers, self)
        self.view.setMinimumHeight(150)
        self.setWidget(self.view)
        self.redraws = 0
        self._last = 0.0
        self._timer = QTimer(self)  # single-shot: the tail of a throttle window, not a poll
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._redraw_now)
        adapter.outcome.connect(self._on_outcome)
        adapter.jobProgress.connect(self._on_progress)
        adapter.countsChanged.connect(self._on_counts)
        adapter.statusChanged.connect(self._on_status)
        self._on_status(adapter.status)
        if adapter.counts:
            self.numbers.on_counts(adapter.counts)

    def _on_outcome(self, job_id: str, outcome: str, seconds: float, frames: int) -> None:
        self.numbers.on_outcome(job_id, outcome, seconds)
        self._fed()

    def _on_progress(self, job_id: str, frame: int, frames: int, fraction: float, fps: float) -> None:
        self.numbers.on_progress(job_id, fps)
        self._fed()

    def _on_counts(self, counts: dict[str, int]) -> None:
        self.numbers.on_counts(counts)
        self._fed()

    def _on_status(self, status: EngineStatus) -> None:
        self.numbers.on_status(status.running)
        self._fed()

    def _fed(self) -> None:
        """New numbers arrived: redraw now, or at the end of the current throttle window."""
        if not self.isVisible() or self._timer.isActive():
            return
        wait = REDRAW_INTERVAL - (time.monotonic() - self._last)
        if wait <= 0:
            self._redraw_now()
        else:
            self._timer.start(int(wait * 1000) + 1)

    def _redraw_now(self) -> None:
        if not self.isVisible():
            return
        self._last = time.monotonic()
        self.redraws += 1
        self.view.redraw()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._redraw_now()

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setHeight(190)
        return hint


