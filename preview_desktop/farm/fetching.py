"""Fetching farm jobs into this node's render slots, which local jobs share.

One fetch loop per slot asks for a job only while the engine has a free slot, and starts the render in the same
loop step the job arrives, so local and farm work together never exceed PREVIEW_MAX_CONCURRENCY (why not bullmq's
own `Worker.run()`: farm/bullmq_compat.py). Each fetch in flight holds a claim on a free slot (`_fetching`), so
the loops, whose round trips overlap, never fetch more jobs than there are slots. If a local job took the slot
meanwhile, the job goes straight back to the queue, no attempt used. A completion that finds its slot still free
takes the node's next job in the same Redis script (`claim_next` / `take_next`, called by the worker).
Gates (`FetchGate`) close fetching for the whole node (workstation mode while the user is at this computer,
draining, resting); a job filter (`JobFilter`) passes a fetched job on to other nodes (it failed here), and the
node then holds off fetching for HOLD_S so that another node, not this one, gets it from the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .bullmq_compat import BullJob, FarmWorker, move_back
from .connection import FarmConfig, Link, backoff_delays, describe_error

log = logging.getLogger("preview_desktop.farm")
HOLD_S = 1.0  # after passing a job on: long enough for an idle node (woken by BullMQ's marker) to take it


class SlotSource(Protocol):
    """What fetching needs of the engine: its render slots and when they change."""

    @property
    def free_slots(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def stopping(self) -> bool: ...
    def on_slots_changed(self, callback: Callable[[], None]) -> Callable[[], None]: ...


class FetchGate(Protocol):
    """One condition for taking farm jobs (workstation mode's lending, presence/lending.py; draining and resting,
    farm/standing.py): the fetch loops fetch only while every gate is open, and a gate that changes wakes them.
    What runs is not the gate's business: a gate that wants running farm renders back says so to the farm member."""

    def open(self) -> bool: ...
    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]: ...  # returns: unsubscribe


class JobFilter(Protocol):
    """Whether a job this node fetched should go to another node instead (farm/standing.py: it failed here)."""

    async def pass_on(self, job: BullJob) -> bool: ...


class Fetcher:
    def __init__(self, engine: SlotSource, worker: FarmWorker, link: Link, config: FarmConfig,
                 start_job: Callable[[BullJob, str], None], gates: Sequence[FetchGate] = (),
                 job_filter: JobFilter | None = None) -> None:
        self._engine = engine
        self._worker = worker
        self._link = link
        self._config = config
        self._start_job = start_job  # starts the render on a slot now (farm/runner.py)
        self._gates = tuple(gates)
        self._filter = job_filter
        self._hold_until = 0.0  # monotonic: no fetch before this (a job was just passed on)
        self._stopping = False
        self._slot = asyncio.Event()
        self._fetching = 0  # fetches in flight: each one holds a claim on a free slot
        self._subscriptions: list[Callable[[], None]] = []  # each one unsubscribes
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._subscriptions = [self._engine.on_slots_changed(self._on_slots_changed),  # freed, resumed, capacity up
                               *(gate.on_change(self._on_slots_changed) for gate in self._gates)]  # a gate opened
        loop = asyncio.get_running_loop()
        # one fetcher per slot: fetch round trips overlap (throughput) while each still needs a free slot
        self.tasks = [loop.create_task(self._fetch_loop()) for _ in range(max(1, self._engine.capacity))]

    def stop(self) -> None:
        """Fetch no more (running jobs are not touched)."""
        self._stopping = True
        for unsubscribe in self._subscriptions:
            unsubscribe()
        self._slot.set()
        for task in self.tasks:
            task.cancel()

    def _on_slots_changed(self) -> None:
        """A slot freed, the queue resumed, capacity rose or a gate changed: wake the fetch loops, but only if one
        may fetch now."""
        if self._may_fetch():
            self._slot.set()

    def _may_fetch(self) -> bool:
        return (not self._stopping and self._engine.free_slots - self._fetching > 0
                and all(gate.open() for gate in self._gates))

    async def _fetch_loop(self) -> None:
        delays = backoff_delays(self._config)
        while not self._stopping:
            if not self._may_fetch():
                self._slot.clear()
                if self._engine.stopping:
                    await asyncio.sleep(0.2)
                else:
                    await self._slot.wait()
                continue
            hold = self._hold_until - time.monotonic()
            if hold > 0:
                await asyncio.sleep(hold)
                continue
            blocked = self._worker.blocked_fetch()
            if blocked is not None:  # the queue is drained and another fetcher blocks on it: wait for that one
                await asyncio.wait([blocked])
                continue
            token = self._worker.new_token()
            self._fetching += 1
            try:
                job = await self._worker.fetch(token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis trouble: reported once by the link, retried with backoff
                self._link.down(exc)
                await self._link.wait_up(next(delays))  # or less, if another loop sees Redis come back
                continue
            finally:
                self._fetching -= 1
            self._link.up()
            delays = backoff_delays(self._config)
            if job is None:
                continue
            if not await self._keep(job):
                await self._give_back(job, token)
                continue
            self._start_job(job, token)

    async def _keep(self, job: BullJob) -> bool:
        """May this node start `job` now? Not without a free slot (a local job may have taken it) or with a gate
        closed, nor when the filter passes it on: then hold off fetching for HOLD_S, so another node gets it."""
        if not self._may_fetch():
            return False
        if self._filter is not None and await self._filter.pass_on(job):
            self._hold_until = time.monotonic() + HOLD_S
            return False
        return self._may_fetch()  # again: the filter may have waited for Redis

    async def _give_back(self, job: BullJob, token: str) -> None:
        """Return a job we cannot start now to the queue at once, without using one of its attempts."""
        try:
            await move_back(job, token)
        except Exception as exc:  # its lock expires and the stalled check requeues it instead
            log.warning("farm: could not hand job %s back (%s); it returns when its lock expires",
                        job.id, describe_error(exc))

    # ------------------------------------------------------------------ a completion taking the next job
    def claim_next(self) -> bool:
        claim = self._may_fetch()
        self._fetching += int(claim)
        return claim

    def release_claim(self) -> None:
        self._fetching -= 1

    async def take_next(self, finished: str, token: str,
                        following: Callable[[], Awaitable[BullJob | None]]) -> None:
        """Start the job the completion of `finished` took, if the slot is still free; else give it back."""
        started = False
        try:
            job = await following()
            if job is not None:
                if await self._keep(job):
                    self._start_job(job, token)
                    started = True
                else:
                    await self._give_back(job, token)
        except Exception as exc:  # never fail the job that did complete; a lost next job's lock expires
            log.warning("farm: job %s completed; taking the next job failed: %s", finished, describe_error(exc))
        if not started:  # the slot we held back from the fetch loops is theirs again
            self._slot.set()
