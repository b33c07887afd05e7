"""The farm member's background loops: progress to Redis, cancel polling, and the heartbeat.

- progress: the frames of the jobs running here, at most every progress_interval_s per job (`job.updateProgress`).
- cancel: one MGET of the running jobs' cancel keys every cancel_poll_s (the cancel protocol, farm/client.py).
- heartbeat: publishes this node in the registry (farm/registry.py), reads the farm's nodes and counts, and is the
  link probe while nothing else talks to Redis.
Each loop rides out a Redis outage on its own; the link reports it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..core.farm_status import NodeInfo
from .bullmq_compat import record_processed_by
from .connection import FarmConfig, Link, backoff_delays, is_connection_error
from .registry import FarmKeys, publish, read_counts, read_nodes
from .runner import FarmRun

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("preview_desktop.farm")


class NodeLoops:
    def __init__(self, running: dict[str, FarmRun], link: Link, config: FarmConfig, keys: FarmKeys,
                 describe: Callable[[], NodeInfo],
                 on_heartbeat: Callable[[list[NodeInfo], dict[str, int]], None]) -> None:
        self._running = running  # the runner's: read here, never changed
        self._link = link
        self._config = config
        self._keys = keys
        self._describe = describe  # this node as the registry shows it
        self._on_heartbeat = on_heartbeat  # the farm's nodes and queue counts, read at each heartbeat
        self.tasks: list[asyncio.Task[None]] = []
        self._stopped = False  # checked each round: a cancel that a redis-py call swallowed still ends a loop
        self._beat = asyncio.Event()  # set: heartbeat now (this node's state changed)

    def start(self, redis: Redis) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(coro) for coro in
                      (self._heartbeat_loop(redis), self._cancel_loop(redis), self._progress_loop(redis))]

    def beat_now(self) -> None:
        """Publish this node at once rather than at the next heartbeat (its state changed)."""
        self._beat.set()

    def cancel(self) -> None:
        self._stopped = True
        for task in self.tasks:
            task.cancel()

    async def _progress_loop(self, redis: Redis) -> None:
        """Progress to BullMQ at most every progress_interval_s per job. With a job's first report this node also
        records itself as the job's `processedBy` (bullmq_compat.record_processed_by), so clients see which node
        runs it before the registry's next heartbeat."""
        while not self._stopped:
            await asyncio.sleep(self._config.progress_interval_s)
            if not self._link.connected:
                continue
            for run in list(self._running.values()):
                if not run.progress_dirty:
                    continue
                try:
                    async with run.progress_lock:  # never overtakes the runner's final report, nor is overtaken
                        if not run.progress_dirty:
                            continue
                        run.progress_dirty = False
                        if not run.announced:
                            await record_processed_by(redis, self._keys, str(run.job.id), self._describe().nodeId)
                            run.announced = True
                        await run.job.updateProgress(run.progress())
                except Exception as exc:
                    if is_connection_error(exc):
                        self._link.down(exc)
                    run.progress_dirty = True
                    break

    async def _cancel_loop(self, redis: Redis) -> None:
        """Poll the cancel keys of the jobs running here (one MGET): a request is seen within cancel_poll_s."""
        while not self._stopped:
            await asyncio.sleep(self._config.cancel_poll_s)
            if not self._running or not self._link.connected:
                continue
            ids = list(self._running)
            try:
                reasons = cast("list[str | None]", await redis.mget([self._keys.cancel(i) for i in ids]))  # decoded
            except Exception as exc:
                if is_connection_error(exc):
                    self._link.down(exc)
                continue
            for job_id, reason in zip(ids, reasons, strict=True):
                run = self._running.get(job_id)
                if reason is not None and run is not None and run.stop(reason or "cancelled"):
                    log.info("farm: job %s: cancel requested (%s); stopping it", job_id, run.cancel_reason)
                    with contextlib.suppress(Exception):
                        await redis.delete(self._keys.cancel(job_id))

    async def _heartbeat_loop(self, redis: Redis) -> None:
        """Publish this node and refresh the farm snapshot. Also the link probe while nothing else talks."""
        delays = backoff_delays(self._config)
        while not self._stopped:
            try:
                await publish(redis, self._keys, self._describe(), self._config.node_ttl_s)
                nodes = await read_nodes(redis, self._keys)
                counts = await read_counts(redis, self._keys)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._link.down(exc)
                await asyncio.sleep(next(delays))
                continue
            delays = backoff_delays(self._config)
            self._link.up()
            self._on_heartbeat(nodes, counts)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._beat.wait(), self._config.heartbeat_s)
            self._beat.clear()
