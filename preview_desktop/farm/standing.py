"""This node's standing on the farm: whether it takes farm jobs now, and which jobs it should leave to others.

- Draining: the operator's word (`POST /v1/farm/nodes/{nodeId}/drain`, the Farm view), written by any node as
  `{prefix}:{queue}:pd:drain:{seat}` and polled here every `POLL_S`: running jobs finish, no new one starts.
  The seat (`node_seat`) is the node's stable identity — its node id changes with every process, its host and
  DATA_DIR do not — and the key has no expiry, so a drain outlives this node's restart until someone resumes it.
  Until the first read of the key after start the node takes nothing (a drained node must not grab a job then).
- Resting: after `REST_AFTER` different farm jobs in a row failed here (not for bad input), the node takes no farm
  job for PREVIEW_FARM_REST_MINUTES; then it is forgiven. A success resets the count.
- Keeping failing nodes off a job: a job that failed here is recorded in `{prefix}:{queue}:pd:failed-on:{jobId}`;
  when this node fetches it again while another live node that takes jobs has not failed it, the job is passed on.
Fetching (farm/fetching.py) asks `open` (the FetchGate) before each fetch and `pass_on` for each job it got.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.farm_status import NodeState
from .bullmq_compat import BullJob
from .connection import Link, is_connection_error
from .registry import FarmKeys, failed_on, is_draining, read_nodes, record_failed_on

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("preview_desktop.farm")
REST_AFTER = 3  # different jobs failed in a row
POLL_S = 0.5  # the drain key is read this often: a drain or resume takes effect within about this


def node_seat(host: str, data_dir: Path) -> str:
    """A node's identity across restarts: its host and DATA_DIR (two nodes sharing both share a seat)."""
    return f"{host}:{hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]}"


class Standing:
    def __init__(self, keys: FarmKeys, node_id: str, seat: str, rest_s: float, link: Link,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._node_id = node_id
        self._seat = seat
        self._rest_s = rest_s
        self._link = link
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._known = False  # the drain key was read once since start
        self.draining = False
        self.resting_until: float | None = None
        self._failed_in_row: list[str] = []  # distinct job ids, since the last success
        self._stopped = False
        self._redis: Redis | None = None
        self.task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ what fetching and the registry read
    def open(self) -> bool:
        return self._known and not self.draining and self.resting_until is None

    @property
    def state(self) -> str | None:
        """NodeState.DRAINING or RESTING while one holds the node back ("draining" wins), else None."""
        if self.draining:
            return NodeState.DRAINING
        return NodeState.RESTING if self.resting_until is not None else None

    @property
    def reason(self) -> str | None:
        if self.draining:
            return "drained by an operator: finishes what it runs, takes no new farm job"
        if self.resting_until is not None:
            until = time.strftime("%H:%M:%S", time.localtime(self.resting_until))
            return f"resting until {until}: {REST_AFTER} farm jobs failed here in a row"
        return None

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Called on the loop thread when the node starts or stops taking jobs. Returns: unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def pass_on(self, job: BullJob) -> bool:
        """True if this node should hand `job` back: it failed here and another live node that takes jobs has not
        failed it. A job that never failed (attemptsMade 0) costs no round trip."""
        if int(job.attemptsMade) == 0 or self._redis is None:
            return False
        try:
            failed = await failed_on(self._redis, self._keys, str(job.id))
            # the registry read fresh (not the last heartbeat's): a node that just resumed counts
            peers = await read_nodes(self._redis, self._keys) if self._node_id in failed else []
        except Exception as exc:  # cannot tell: run it here rather than lose time
            if is_connection_error(exc):
                self._link.down(exc)
            return False
        others = [n.nodeId for n in peers if n.nodeId != self._node_id and n.takes_jobs and n.nodeId not in failed]
        if others:
            log.info("farm: job %s failed here before; leaving it to %s", job.id, ", ".join(others))
        return bool(others)

    # ------------------------------------------------------------------ outcomes (the runner reports them)
    async def failed(self, job_id: str, reason: str) -> None:
        """A farm job failed here, not for bad input: record it for the job, and rest after REST_AFTER in a row."""
        if job_id not in self._failed_in_row:
            self._failed_in_row.append(job_id)
        if len(self._failed_in_row) >= REST_AFTER and self.resting_until is None:
            self.resting_until = self._clock() + self._rest_s
            until = time.strftime("%H:%M:%S", time.localtime(self.resting_until))
            log.warning("farm: resting until %s: %d farm jobs failed here in a row (%s; last: %s)", until,
                        len(self._failed_in_row), ", ".join(self._failed_in_row), reason)
            self._changed()
        if self._redis is None:
            return
        try:
            await record_failed_on(self._redis, self._keys, job_id, self._node_id)
        except Exception as exc:  # the job may come back here once: harmless
            if is_connection_error(exc):
                self._link.down(exc)

    def succeeded(self) -> None:
        self._failed_in_row.clear()

    # ------------------------------------------------------------------ the control loop
    def start(self, redis: Redis) -> None:
        self._redis = redis
        self.task = asyncio.get_running_loop().create_task(self._control_loop(redis))

    def stop(self) -> None:
        self._stopped = True
        if self.task is not None:
            self.task.cancel()

    async def _control_loop(self, redis: Redis) -> None:
        """Read the drain key every POLL_S; end a rest when its time is up."""
        while not self._stopped:
            self._forgive_if_due()
            try:
                draining = await is_draining(redis, self._keys, self._seat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_connection_error(exc):
                    self._link.down(exc)
                await asyncio.sleep(POLL_S)
                continue
            if draining != self.draining or not self._known:
                if draining != self.draining:
                    log.info("farm: %s", "draining: running jobs finish, no new farm job starts here"
                             if draining else "resumed: taking farm jobs again")
                self.draining, self._known = draining, True
                self._changed()
            await asyncio.sleep(POLL_S)

    def _forgive_if_due(self) -> None:
        if self.resting_until is not None and self._clock() >= self.resting_until:
            self.resting_until = None
            self._failed_in_row.clear()
            log.info("farm: rest over; taking farm jobs again")
            self._changed()

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()
