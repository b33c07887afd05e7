"""The engine's periodic upkeep beside the dispatching: the leases of the jobs running here are kept alive, and the
store is kept tidy (expired leases of stopped workers reaped, finished records past retention purged).

Two loops, spawned by the engine as its own tasks: it cancels them at stop and logs one that fails. Store calls go
through the engine (`call`: its store thread) and through `SpaceWatch.patiently`, so a full disk makes a loop wait
and try again instead of ending it; anything else ends the loop's task, as it ends the dispatcher's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any, ParamSpec, Protocol, TypeVar

from ..core.handler import JobContext
from ..core.job import Progress
from ..queue.base import JobStore, Lease
from ..settings import Settings
from .space import SpaceWatch

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

PURGE_EVERY_SECONDS = 3600.0  # finished records past retention are looked for once an hour


class HeldJob(Protocol):
    """A job running here, as the upkeep sees it (the engine's RunningJob)."""

    @property
    def lease(self) -> Lease: ...
    @property
    def progress(self) -> Progress: ...
    @property
    def ctx(self) -> JobContext: ...


class UpkeepHost(Protocol):
    """What the upkeep needs of the engine: the jobs running here and its store thread."""

    @property
    def running(self) -> Mapping[str, HeldJob]: ...
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def remove_orphan_staging(self) -> None: ...


class Upkeep:
    def __init__(self, host: UpkeepHost, store: JobStore, settings: Settings, space: SpaceWatch) -> None:
        self._host = host
        self._store = store
        self._settings = settings
        self._space = space
        self._stopped = False

    def start(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """Start both loops as tasks of `spawn` (the engine's: it logs a task that fails, cancels them at stop)."""
        spawn(self.heartbeat_loop())
        spawn(self.housekeeping_loop())

    def stop(self) -> None:
        """No loop goes round again (the engine cancels their tasks beside this)."""
        self._stopped = True

    async def heartbeat_loop(self) -> None:
        """Extend the leases of the jobs running here (with their progress) every ≤1 s; stop those whose cancel
        was asked or whose lease another worker took."""
        lease_seconds = self._settings.lease_seconds
        interval = max(0.2, min(1.0, lease_seconds / 3))
        while not self._stopped:
            await asyncio.sleep(interval)
            running = self._host.running
            if not running:
                continue
            tokens = {job_id: run.lease.token for job_id, run in running.items()}
            progress = {job_id: run.progress for job_id, run in running.items()}
            reply = await self._space.patiently(
                partial(self._host.call, self._store.heartbeat, tokens, lease_seconds, progress))
            for job_id in reply.cancel_requested | reply.lost:
                run = self._host.running.get(job_id)
                if run is not None:
                    if job_id in reply.lost:
                        log.warning("job %s: lease lost (another worker took it); stopping it here", job_id)
                    run.ctx.cancel_event.set()

    async def housekeeping_loop(self) -> None:
        """Requeue jobs of workers that stopped responding (and clear their staging folders); once an hour, purge
        finished records older than PREVIEW_RETENTION_DAYS."""
        interval = max(0.25, min(5.0, self._settings.lease_seconds / 4))
        last_purge = 0.0
        while not self._stopped:
            await asyncio.sleep(interval)
            reaped = await self._space.patiently(lambda: self._host.call(self._store.reap))
            if reaped:
                log.info("requeued %d job(s) whose worker stopped responding", len(reaped))
                await self._host.remove_orphan_staging()
            retention_days = self._settings.retention_days
            if retention_days > 0 and time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                last_purge = time.monotonic()
                await self._space.patiently(
                    partial(self._host.call, self._store.purge_finished, retention_days * 86400))
