"""FarmGateway: this node's farm actions for the job service, with Redis trouble turned into one clear error.

A lost Redis is not a bug: every action here either answers or raises FarmUnavailable with one redacted line
(no traceback, never the password), within FARM_TIMEOUT_S even when Redis hangs. While the node's own link
already reports the outage (one log line per outage), the gateway stays quiet about it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..core.farm_status import FarmStatus
from ..core.metrics import farm_waiting
from ..core.spec import JobSpec
from ..errors import FarmUnavailable
from ..logs import add_secret
from .client import FarmClient
from .connection import Link, describe_error, is_connection_error
from .registry import is_draining, read_counts, read_nodes, set_draining

log = logging.getLogger("preview_desktop.farm")
T = TypeVar("T")
FARM_TIMEOUT_S = 10.0  # above the client's connect timeout plus its one retry; a hung Redis must not hang a caller


class FarmSeat(Protocol):
    """What the gateway needs of the node's farm member (farm/member.py)."""

    @property
    def link(self) -> Link: ...
    @property
    def client(self) -> FarmClient: ...
    def snapshot(self) -> FarmStatus: ...
    def on_status(self, callback: Callable[[FarmStatus], None]) -> None: ...


class FarmGateway:
    def __init__(self, seat: FarmSeat) -> None:
        self._seat = seat
        self._secret: str | None = None

    async def submit(self, spec: JobSpec) -> str:
        job_id = await self._redis("submit", self._seat.client.submit(spec))
        log.info("farm job %s queued (%s)", job_id, spec.projectId)
        return job_id

    async def state(self, job_id: str) -> str | None:
        """BullMQ's state of the job; None when it cannot be read now (the job exists either way)."""
        try:
            state = await self._redis("read", self._seat.client.queue.getJobState(job_id))
        except FarmUnavailable:
            return None
        return str(state)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self._redis("read", self._seat.client.get(job_id))

    async def cancel(self, job_id: str, reason: str) -> str:
        result = await self._redis("cancel", self._seat.client.cancel(job_id, reason))
        log.info("farm job %s: cancel %s", job_id, result)
        return result

    async def set_priority(self, job_id: str, priority: int) -> str:
        """'changed' while the job waits on the farm, else why not (FarmClient.set_priority)."""
        result = await self._redis("priority", self._seat.client.set_priority(job_id, priority))
        log.info("farm job %s: priority %d %s", job_id, priority, "set" if result == "changed" else f"kept ({result})")
        return result

    async def waiting(self) -> int:
        """Jobs waiting on the farm now (waiting, prioritized and delayed for a retry): PREVIEW_QUEUE_MAX counts
        them."""
        return farm_waiting(await self._redis("read", read_counts(self._seat.client.redis, self._seat.client.keys)))

    async def signing_secret(self) -> str:
        """The farm's URL-signing secret: the first node to ask creates it (SET NX), every node reads the same."""
        if self._secret is None:
            client = self._seat.client
            key = client.keys.signing_secret
            await self._redis("read", client.redis.set(key, secrets.token_urlsafe(32), nx=True))
            value = await self._redis("read", client.redis.get(key))
            if not value:
                raise FarmUnavailable("the farm's signing secret could not be read")
            self._secret = str(value)
            add_secret(self._secret)
        return self._secret

    async def set_draining(self, node_id: str, draining: bool) -> bool:
        """Drain or resume a node, this one or another: the node reads its drain key within about 0.5 s
        (farm/standing.py). The key names the node's seat, so the drain outlives the node's restart (a new node id);
        `node_id` is a live node's id or a seat. False for an unknown node: not live, and (to resume) not drained."""
        client = self._seat.client
        nodes = await self._redis("read", read_nodes(client.redis, client.keys))
        node = next((n for n in nodes if node_id in (n.nodeId, n.seat)), None)
        seat = (node.seat or node.nodeId) if node is not None else node_id
        if node is None and (draining or not await self._redis("read", is_draining(client.redis, client.keys, seat))):
            return False
        await self._redis("drain", set_draining(client.redis, client.keys, seat, draining))
        log.info("farm node %s: %s", node_id, "drain requested" if draining else "resume requested")
        return True

    def status(self) -> FarmStatus:
        return self._seat.snapshot()

    def on_status(self, callback: Callable[[FarmStatus], None]) -> None:
        self._seat.on_status(callback)

    async def _redis(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, FARM_TIMEOUT_S)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            reason = describe_error(exc)
        link = self._seat.link
        log.log(logging.WARNING if link.connected else logging.DEBUG, "farm %s: Redis %s unreachable (%s)",
                what, link.url, reason)
        raise FarmUnavailable(f"the farm's Redis {link.url} is unreachable ({reason})")


class ClientSeat:
    """A seat for a process that only talks to the farm (the CLI's `submit --farm`): a client and a link."""

    def __init__(self, url: str, queue: str) -> None:
        self.client = FarmClient(url, queue)
        self.link = Link(url)

    def snapshot(self) -> FarmStatus:
        return FarmStatus(url=self.link.url, queue=self.client.keys.queue, connected=self.link.connected,
                          error=self.link.error)

    def on_status(self, callback: Callable[[FarmStatus], None]) -> None:
        """Nothing to report: the CLI lives for one call."""

    async def close(self) -> None:
        await self.client.close()
        await self.client.redis.aclose()
