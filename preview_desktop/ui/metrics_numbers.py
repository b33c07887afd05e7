"""The metrics dock's numbers, kept without Qt: outcome counts, finished per minute, a duration histogram,
queue size, active jobs and render fps, in fixed-size ring buffers.

They are the same quantities the Prometheus endpoint exports (preview_worker_jobs_total by outcome,
preview_worker_job_duration_seconds, preview_worker_queue_size, preview_worker_active_jobs), fed from the same
engine events, so the dock and a dashboard agree.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from ..core.job import Job, JobState
from ..core.metrics import DURATION_BUCKETS, OUTCOMES, counts_to_gauges

HISTORY_SECONDS = 300
MINUTES_SHOWN = 15


class MetricsNumbers:
    def __init__(self, clock: Callable[[], float] = time.time, samples: int = 600) -> None:
        self.clock = clock
        self.totals = dict.fromkeys(OUTCOMES, 0)
        self.per_minute: deque[tuple[int, dict[str, int]]] = deque(maxlen=MINUTES_SHOWN)
        self.bucket_counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.queue_size = 0
        self.active = 0
        self._fps: dict[str, float] = {}
        self.series: deque[tuple[float, int, int, float]] = deque(maxlen=samples)  # (t, queue, active, fps)

    # ------------------------------------------------------------------ feeding
    def on_outcome(self, job_id: str, outcome: str, seconds: float, at: float | None = None) -> None:
        self._fps.pop(job_id, None)
        if outcome not in OUTCOMES:
            return
        self.totals[outcome] += 1
        minute = int((self.clock() if at is None else at) // 60)
        if not self.per_minute or self.per_minute[-1][0] != minute:
            self.per_minute.append((minute, dict.fromkeys(OUTCOMES, 0)))
        self.per_minute[-1][1][outcome] += 1
        if outcome == "success" or outcome == "failure":  # what the histogram observes: finished attempts
            self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
            self.duration_sum += seconds

    def seed(self, jobs: Iterable[Job]) -> None:
        """Start from what the store remembers (jobs finished recently, by any process), not from zero."""
        since = self.clock() - MINUTES_SHOWN * 60
        done = sorted((j for j in jobs if j.finished_at is not None and j.started_at is not None
                       and j.state in (JobState.SUCCEEDED, JobState.FAILED)), key=lambda j: j.finished_at or 0)
        for job in done:
            finished, started = job.finished_at or 0.0, job.started_at or 0.0
            outcome = "success" if job.state is JobState.SUCCEEDED else "failure"
            if finished >= since:
                self.on_outcome(job.id, outcome, finished - started, finished)
            else:  # too old for the per-minute bars, still part of the duration histogram
                self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, finished - started)] += 1
                self.duration_sum += finished - started

    def on_progress(self, job_id: str, fps: float) -> None:
        self._fps[job_id] = fps

    def on_counts(self, counts: Mapping[str, int]) -> None:
        """preview_worker_queue_size is read from the store's counts, exactly as /metrics reads it."""
        self.queue_size = counts_to_gauges(dict(counts))[0]

    def on_status(self, running: int) -> None:
        self.active = running
        if running == 0:
            self._fps.clear()

    @property
    def fps(self) -> float:
        return sum(self._fps.values())

    def sample(self) -> None:
        """Record one point of the time series (the dock calls this when it redraws, at most ~2 Hz)."""
        now = self.clock()
        self.series.append((now, self.queue_size, self.active, self.fps))

    # ------------------------------------------------------------------ reading
    def recent_series(self) -> tuple[list[float], list[int], list[int], list[float]]:
        """x = seconds relative to now (negative), then queue, active, fps."""
        now = self.clock()
        points = [p for p in self.series if now - p[0] <= HISTORY_SECONDS]
        if len(points) == 1:  # a line needs two points (and a lone point upsets pyqtgraph's path code)
            points.insert(0, (points[0][0] - 1.0, *points[0][1:]))
        return ([p[0] - now for p in points], [p[1] for p in points], [p[2] for p in points],
                [p[3] for p in points])

    def minutes(self) -> tuple[list[int], dict[str, list[int]]]:
        """x = minutes relative to now (0 = this minute, -1 = the one before ...), counts per outcome."""
        now_minute = int(self.clock() // 60)
        by_minute = dict(self.per_minute)
        xs = list(range(-MINUTES_SHOWN + 1, 1))
        return xs, {o: [by_minute.get(now_minute + x, {}).get(o, 0) for x in xs] for o in OUTCOMES}

    @property
    def duration_count(self) -> int:
        return sum(self.bucket_counts)

    def histogram(self) -> tuple[list[str], list[int]]:
        labels = [f"≤{_short(b)}" for b in DURATION_BUCKETS] + [f">{_short(DURATION_BUCKETS[-1])}"]
        return labels, list(self.bucket_counts)


def _short(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"
