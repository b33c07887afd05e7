"""FarmMember: this node's seat on the farm — its lifecycle, its status, and what the rest of the program uses.

The work is done by the parts it wires together:
  fetching.py       farm jobs into free render slots (shared with local jobs), one fetch loop per slot
  runner.py         a farm job on a slot, and its outcome in BullMQ's terms (completion, retry, no retry, release)
  loops.py          progress to Redis, cancel polling, the heartbeat (registry, farm snapshot, link probe)
  standing.py       draining, resting, and passing on jobs that failed here (a gate and a filter on fetching)
  orphans.py        removes this node's farm previews that another run of their job replaced (at join, then
                    every few minutes)
  bullmq_compat.py  the bullmq Worker whose fetching we drive: the only module that reaches into bullmq

Farm jobs are not copied into the local diskcache store: the farm's record is Redis. The window's Farm view
and `FarmMember.status` show them; their artifacts are written under DATA_DIR/previews like local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from .. import __version__
from ..core.farm_status import FarmStatus, NodeInfo, NodeState
from ..core.layout import Layout
from ..settings import Settings
from .bullmq_compat import FarmWorker
from .client import FarmClient
from .connection import FarmConfig, Link, describe_error, is_connection_error, make_client, register_url_secret
from .fetching import Fetcher, FetchGate, SlotSource
from .flows import FarmFlows
from .loops import NodeLoops
from .orphans import OrphanSweep, RedisJobLookup
from .registry import FarmKeys, unpublish
from .runner import FarmRun, FarmRunner, NodeApi, SlotRunner
from .standing import Standing, node_seat

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("preview_desktop.farm")


class FarmEngine(SlotSource, SlotRunner, Protocol):
    """What the farm needs of the engine: render slots shared with local jobs, and this node's metrics."""

    @property
    def worker_id(self) -> str: ...
    @property
    def local_running(self) -> int: ...


class Lending(FetchGate, Protocol):
    """Workstation mode (presence/lending.py): a gate that says why in the node's state, and whose closing takes
    this computer back: the farm renders running here return to the queue."""

    @property
    def state(self) -> str: ...  # NodeState
    @property
    def reason(self) -> str: ...


class FarmMember:
    def __init__(self, settings: Settings, engine: FarmEngine, layout: Layout, config: FarmConfig | None = None,
                 prefix: str = "bull", lending: Lending | None = None) -> None:
        assert settings.redis_url, "FarmMember needs settings.redis_url"
        self.engine = engine
        self.settings = settings
        self.config = config or FarmConfig()
        self.url = settings.redis_url
        register_url_secret(self.url)
        self.link = Link(self.url)
        self.keys = FarmKeys(prefix, settings.farm_queue)
        self.node_id = engine.worker_id
        self.host = socket.gethostname()
        self.status = FarmStatus(url=self.link.url, queue=self.keys.queue, connected=False, nodeId=self.node_id)
        self._listeners: list[Callable[[FarmStatus], None]] = []
        self._prefix = prefix
        self._unlend: Callable[[], None] = lambda: None
        self._redis: Redis | None = None
        self._client: FarmClient | None = None
        self._worker = FarmWorker(self.keys.queue, prefix, self.node_id, self.config)
        self._runner = FarmRunner(settings, engine, layout, self._worker, self.link, self.config, self.node_id,
                                  self.host, lambda: self.client, self._notify_soon)
        self._runner.flows = FarmFlows(settings, self.config, self.keys, self.link, self.node_id, lambda: self.client,
                                       self._farm_slots)
        self.lending = lending
        self.seat = node_seat(self.host, settings.data_dir)
        self.standing = Standing(self.keys, self.node_id, self.seat, settings.farm_rest_minutes * 60, self.link)
        self._runner.outcomes = self.standing
        gates: list[FetchGate] = [self.standing, *([lending] if lending is not None else [])]
        self._fetcher = Fetcher(engine, self._worker, self.link, self.config, self._runner.start, gates,
                                job_filter=self.standing)
        self._loops = NodeLoops(self._runner.running, self.link, self.config, self.keys, self.node_info,
                                self._on_heartbeat)
        self.standing.on_change(self._on_standing)
        self.orphans = OrphanSweep(layout.previews, self.keys.queue, settings.farm_orphan_sweep_minutes * 60)

    @property
    def running(self) -> dict[str, FarmRun]:
        """The farm jobs rendering here, by BullMQ job id."""
        return self._runner.running

    @property
    def completed(self) -> int:
        """Attempts that ended on this node (any outcome): for tests and the bench."""
        return self._runner.completed

    @property
    def api(self) -> NodeApi | None:
        return self._runner.api

    @api.setter
    def api(self, api: NodeApi | None) -> None:
        """Attached by the node's wiring once the API exists: its address and signed links to artifacts."""
        self._runner.api = api

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Never blocks on Redis and never raises for an outage: the loops connect (and reconnect) on their own."""
        self._redis = make_client(self.url, self.config, name=f"preview-desktop:{self.node_id}")
        self._worker.open(self._redis, self._runner.process, self._on_worker_error, self._fetcher)
        self.link.on_change(self._notify)
        if self.lending is not None:
            self._unlend = self.lending.on_change(self._on_lending_changed)
        self._fetcher.start()
        self._loops.start(self._redis)
        self.standing.start(self._redis)
        self.orphans.start(RedisJobLookup(self._redis, prefix=self._prefix, queue=self.keys.queue))
        log.info("farm: node %s joins queue %r on %s", self.node_id, self.keys.queue, self.link.url)

    async def stop(self) -> None:
        """Stop fetching; let running farm jobs finish briefly, then hand them back to the queue."""
        self._unlend()
        self._fetcher.stop()
        self.standing.stop()
        deadline = time.monotonic() + min(2.0, self.settings.shutdown_grace)
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._runner.interrupt_all()
        deadline = time.monotonic() + 3.0
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.running:
            log.warning("farm: %d job(s) still running at exit; their locks expire and another node re-runs them",
                        len(self.running))
        self._loops.cancel()
        self.orphans.stop()
        standing = [t for t in (self.standing.task, self.orphans.task) if t is not None]
        await end_tasks([*self._fetcher.tasks, *self._loops.tasks, *standing])
        if self.link.connected and self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(unpublish(self._redis, self.keys, self.node_id), 2.0)
        await self._worker.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.close(), 2.0)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    # ------------------------------------------------------------------ what the job service and the window use
    @property
    def client(self) -> FarmClient:
        if self._client is None:
            self._client = FarmClient(self.url, self.keys.queue, self.config, prefix=self._prefix)
        return self._client

    def snapshot(self) -> FarmStatus:
        """The farm as the last heartbeat saw it, with the link's state as it is now."""
        state, reason = self._state()
        return replace(self.status, connected=self.link.connected, error=self.link.error, state=state,
                       stateReason=reason)

    def on_status(self, callback: Callable[[FarmStatus], None]) -> None:
        """Called on the loop thread whenever the farm snapshot or the link state changes."""
        self._listeners.append(callback)

    def node_info(self) -> NodeInfo:
        """This node as the registry shows it (published at each heartbeat)."""
        state, reason = self._state()
        return NodeInfo(
            nodeId=self.node_id, host=self.host, pid=os.getpid(), version=__version__,
            capacity=self.engine.capacity, running=[r.info() for r in self.running.values()],
            localRunning=self.engine.local_running, api=self.api.url if self.api is not None else None,
            seat=self.seat, state=state, stateReason=reason, restingUntil=self.standing.resting_until,
        )

    def _state(self) -> tuple[str, str | None]:
        """This node's NodeState and its reason (the registry, GET /v1/farm, the window's status bar): a drain or a
        rest wins over workstation mode's state."""
        if self.standing.state is not None:
            return self.standing.state, self.standing.reason
        if self.lending is None:
            return NodeState.LENDING, None
        return self.lending.state, self.lending.reason

    def _farm_slots(self) -> int:
        """Render slots of the live nodes (last heartbeat): how many chunks a preview is cut into, at most."""
        return sum(node.capacity for node in self.status.nodes) or self.engine.capacity

    def _on_lending_changed(self) -> None:
        """Workstation mode changed its mind. Closed: the user is back, the farm renders here go back to the queue
        (the fetch loops stop by themselves); either way the state shows at once here and in the registry at the
        next heartbeat."""
        assert self.lending is not None
        if not self.lending.open():
            self._runner.hand_back_all(self.lending.reason)
        mine = next((n for n in self.status.nodes if n.nodeId == self.node_id), None)
        if mine is not None:
            mine.state, mine.stateReason = self.lending.state, self.lending.reason
        self._notify()

    # ------------------------------------------------------------------ status
    def _notify(self) -> None:
        self.status.connected = self.link.connected
        self.status.error = self.link.error
        self.status.state, self.status.stateReason = self._state()
        for callback in list(self._listeners):
            callback(self.status)

    def _on_heartbeat(self, nodes: list[NodeInfo], counts: dict[str, int]) -> None:
        self.status = FarmStatus(url=self.link.url, queue=self.keys.queue, connected=True, nodes=nodes,
                                 counts=counts, nodeId=self.node_id)
        self._notify()

    def _on_standing(self) -> None:
        """Draining or resting began or ended (the fetch loops hear it as a gate): show it now, publish it at once."""
        mine = next((n for n in self.status.nodes if n.nodeId == self.node_id), None)
        if mine is not None:
            (mine.state, mine.stateReason), mine.restingUntil = self._state(), self.standing.resting_until
        self._loops.beat_now()
        self._notify()

    def _notify_soon(self) -> None:
        """Running jobs changed: show it now in this node's status (the registry catches up at the heartbeat)."""
        mine = next((n for n in self.status.nodes if n.nodeId == self.node_id), None)
        if mine is not None:
            mine.running = [r.info() for r in self.running.values()]
        self._notify()

    def _on_worker_error(self, err: BaseException, *args: object) -> None:
        if is_connection_error(err):
            self.link.down(err)
        elif "could not renew lock" in str(err):  # bullmq's words (3.4.4), ending with the job id
            job_id = str(err).rsplit(" ", 1)[-1]
            if job_id in self.running:
                log.warning("farm: %s (the job may be re-run elsewhere)", describe_error(err))
            else:  # its render had ended: the renewal crossed its completion, which removed the lock
                log.debug("farm: %s after the job ended here", describe_error(err))
        else:
            log.warning("farm: worker error: %s", describe_error(err))


async def end_tasks(tasks: list[asyncio.Task[None]], wait_s: float = 3.0) -> int:
    """Wait for cancelled loops, but never for ever; returns how many were left behind.

    A cancel swallowed inside a redis-py call (seen about once in a dozen stops) left a loop asleep and the
    node's stop hung. The loops also check a stop flag each round; what still runs after `wait_s` is cancelled
    once more, and what survives even that is left behind with a log line."""
    if not tasks:
        return 0
    _done, pending = await asyncio.wait(tasks, timeout=wait_s)
    if pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=1.0)
    if pending:
        log.warning("farm: %d background task(s) did not stop; leaving them behind", len(pending))
    return len(pending)
