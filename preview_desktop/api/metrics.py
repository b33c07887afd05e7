"""Prometheus metrics of one node, and a plain reader the window's metrics dock shares with /metrics.

Exactly the four metrics of DESIGN.md (dashboards use these names). Each node has its own CollectorRegistry, not
prometheus_client's global one, so two nodes in one process (tests) never mix their numbers.

Why a custom collector for the gauges: queue size and active jobs are *read* from the store when scraped, never
counted from events, so they agree with the store at every moment (an event-fed gauge drifts when another process
changes the queue or an event is missed). The store read is a blocking SQLite call, so `refresh()` runs it on the
engine's store thread before the exposition is generated; the collector only returns that fresh snapshot.
The outcome counter and the duration histogram are fed from JobOutcome events: they count attempts that ended on
this node since it started, local and farm jobs alike, which is what a Prometheus counter means.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ..core.events import EngineStatus, Event, JobOutcome
from ..core.farm_status import FarmStatus
from ..core.metrics import (
    ACTIVE_JOBS,
    DURATION_BUCKETS,
    JOB_DURATION,
    JOBS_TOTAL,
    ORIGIN_LABEL,
    OUTCOMES,
    QUEUE_LABEL,
    QUEUE_SIZE,
    counts_to_gauges,
    farm_waiting,
)


@dataclass(frozen=True)
class MetricsSnapshot:
    """The numbers /metrics serves, as plain values (the window plots these; no Qt, no prometheus types)."""

    queue_size: int  # local
    active_jobs: int  # local
    jobs_total: dict[str, int]
    duration_count: int
    duration_sum: float
    farm_queue_size: int | None = None  # None: not on a farm
    farm_active_jobs: int = 0
    taken_at: float = field(default_factory=time.time)



QUEUE_HELP = "Jobs waiting: queue=local in this computer's store (queued or retrying), queue=farm on the farm."
ACTIVE_HELP = "Jobs running now: origin=local (the store's running jobs), origin=farm (farm renders on this node)."


class _StoreGauges(Collector):
    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        queue_size, active = m.gauges
        queue = GaugeMetricFamily(QUEUE_SIZE, QUEUE_HELP, labels=[QUEUE_LABEL])
        queue.add_metric(["local"], queue_size)
        if m.farm_queue_size is not None:
            queue.add_metric(["farm"], m.farm_queue_size)
        yield queue
        running = GaugeMetricFamily(ACTIVE_JOBS, ACTIVE_HELP, labels=[ORIGIN_LABEL])
        running.add_metric(["local"], active)
        running.add_metric(["farm"], m.farm_active)
        yield running

    def describe(self) -> Iterator[Metric]:
        # Describing lets the registry check names at registration without calling collect().
        yield GaugeMetricFamily(QUEUE_SIZE, QUEUE_HELP, labels=[QUEUE_LABEL])
        yield GaugeMetricFamily(ACTIVE_JOBS, ACTIVE_HELP, labels=[ORIGIN_LABEL])


class _WithoutCreated:
    """The registry minus the `*_created` series prometheus_client adds to counters and histograms: dashboards
    use exactly the four metrics of DESIGN.md, and the scrape shows exactly those (a local filter, not the
    process-wide `disable_created_metrics()`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class NodeMetrics:
    """The node's registry. `observe` takes engine events; `refresh` reads the store; `exposition` renders."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, read_counts: Callable[[], Awaitable[dict[str, int]]], engine_status: Callable[[], EngineStatus],
                 farm_status: Callable[[], FarmStatus | None]) -> None:
        """`read_counts` is an async callable returning the store's counts by state (via the store thread); the
        farm's numbers come from the engine (renders here) and the farm's last heartbeat snapshot (waiting)."""
        self._read_counts = read_counts
        self._engine_status = engine_status
        self._farm_status = farm_status
        self.farm_queue_size: int | None = None
        self.farm_active = 0
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_total = Counter(
            JOBS_TOTAL, "Job attempts that ended on this node, by outcome.", ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.jobs_total.labels(outcome=outcome)  # present at 0 from the start
        self.duration = Histogram(
            JOB_DURATION, "Wall time of job attempts on this node.",
            buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.gauges: tuple[int, int] = (0, 0)
        self.registry.register(_StoreGauges(self))
        self._exposed = _WithoutCreated(self.registry)

    def observe(self, event: Event) -> None:
        """EventHub subscriber (loop thread)."""
        if isinstance(event, JobOutcome) and event.outcome in OUTCOMES:
            self.jobs_total.labels(outcome=event.outcome).inc()
            self.duration.observe(max(0.0, event.seconds))

    async def refresh(self) -> tuple[int, int]:
        counts = await self._read_counts()
        self.gauges = counts_to_gauges(counts)
        self.farm_active = self._engine_status().farm
        farm = self._farm_status()
        self.farm_queue_size = farm_waiting(farm.counts) if farm is not None else None
        return self.gauges

    async def exposition(self) -> bytes:
        """Fresh gauges, then the text format: what /metrics returns."""
        await self.refresh()
        return generate_latest(self._exposed)

    async def snapshot(self) -> MetricsSnapshot:
        """The same numbers as /metrics, for the window's metrics dock."""
        await self.refresh()
        return self.current()

    def current(self) -> MetricsSnapshot:
        """The last refreshed gauges and the live counters, without touching the store (safe anywhere)."""
        totals = dict.fromkeys(OUTCOMES, 0)
        for metric in self.jobs_total.collect():
            for sample in metric.samples:
                if sample.name == JOBS_TOTAL and sample.labels.get("outcome") in totals:
                    totals[sample.labels["outcome"]] = int(sample.value)
        count, total_seconds = 0.0, 0.0
        for metric in self.duration.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count"):
                    count = sample.value
                elif sample.name.endswith("_sum"):
                    total_seconds = sample.value
        queue_size, active = self.gauges
        return MetricsSnapshot(queue_size, active, totals, int(count), float(total_seconds),
                               farm_queue_size=self.farm_queue_size, farm_active_jobs=self.farm_active)
