"""The metrics' names and shapes, shared by /metrics (api/metrics.py) and the window's metrics dock.

Dashboards use exactly these names (DESIGN.md), and the dock's bars must match a dashboard's buckets: one
definition here keeps them the same without the window importing the API package.
"""

from __future__ import annotations

from .job import JobState

JOBS_TOTAL = "preview_worker_jobs_total"
JOB_DURATION = "preview_worker_job_duration_seconds"
QUEUE_SIZE = "preview_worker_queue_size"
ACTIVE_JOBS = "preview_worker_active_jobs"

# The gauges carry one label: where the jobs wait or run. queue="local": this computer's store (every process
# sharing DATA_DIR); queue="farm": the farm's Redis queue (waiting, prioritized and delayed; only on a farm node).
# origin="local": running local jobs (the store's count); origin="farm": farm jobs rendering on this node.
# A dashboard that summed the unlabelled gauge sums over the label and sees the farm's share as well.
QUEUE_LABEL, ORIGIN_LABEL = "queue", "origin"

OUTCOMES = ("success", "failure", "retry")
# Renders take seconds (a short cut) to an hour (a feature at 4 h maxSeconds is rare but possible).
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


def counts_to_gauges(counts: dict[str, int]) -> tuple[int, int]:
    """(queue size, active jobs) from the store's counts by state: waiting = queued + retrying; active = running."""
    waiting = counts.get(JobState.QUEUED.value, 0) + counts.get(JobState.RETRYING.value, 0)
    return int(waiting), int(counts.get(JobState.RUNNING.value, 0))


def farm_waiting(counts: dict[str, int]) -> int:
    """Farm jobs not yet running, from BullMQ's counts: waiting, prioritized and delayed (between retries)."""
    return counts.get("waiting", 0) + counts.get("prioritized", 0) + counts.get("delayed", 0)
