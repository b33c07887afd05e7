"""The node registry and the farm snapshot: who is on the farm, what each node runs, what waits.

Keys (beside BullMQ's own `{prefix}:{queue}:*` keys, under a `pd:` namespace so they never collide with job ids,
which BullMQ keeps at `{prefix}:{queue}:{id}` and which are numbers unless a producer chooses otherwise):

  {prefix}:{queue}:pd:nodes            sorted set: node id -> last heartbeat (unix ms); pruned on read
  {prefix}:{queue}:pd:node:{nodeId}    JSON of NodeInfo, expires node_ttl after the last heartbeat
  {prefix}:{queue}:pd:cancel:{jobId}   a cancel request for a running job (expires after a day)
  {prefix}:{queue}:pd:sup:{key}        sorted set: jobs of one project + timeline (farm/supersede.py)
  {prefix}:{queue}:pd:signing-secret   the farm-wide secret that signs artifact URLs (created once, SET NX)
  {prefix}:{queue}:pd:failed-on:{jobId} set: nodes a job failed on (not for bad input); expires after a day
  {prefix}:{queue}:pd:drain:{seat}     the operator drains this node (JSON {since}); no expiry: until resumed

A node that dies stops refreshing its key, so it drops out of the snapshot within node_ttl even though nothing
removes it; the sorted set only tells readers which keys to look at.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ..core.farm_status import FarmStatus, NodeInfo

if TYPE_CHECKING:
    from redis.asyncio import Redis

COUNT_TYPES = ("waiting", "prioritized", "active", "delayed", "paused", "completed", "failed")
CANCEL_TTL_S = 24 * 3600
FAILED_ON_TTL_S = 24 * 3600


@dataclass(frozen=True)
class FarmKeys:
    prefix: str
    queue: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.queue}:pd"

    @property
    def nodes(self) -> str:
        return f"{self.base}:nodes"

    def node(self, node_id: str) -> str:
        return f"{self.base}:node:{node_id}"

    @property
    def signing_secret(self) -> str:
        return f"{self.base}:signing-secret"

    def cancel(self, job_id: str) -> str:
        return f"{self.base}:cancel:{job_id}"

    def supersede(self, key: str) -> str:
        return f"{self.base}:sup:{key}"

    def failed_on(self, job_id: str) -> str:
        return f"{self.base}:failed-on:{job_id}"

    def drain(self, seat: str) -> str:
        return f"{self.base}:drain:{seat}"


async def publish(client: Redis, keys: FarmKeys, info: NodeInfo, ttl_s: float) -> None:
    info.heartbeat = time.time()
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.node(info.nodeId), info.to_json(), px=int(ttl_s * 1000))
        pipe.zadd(keys.nodes, {info.nodeId: int(info.heartbeat * 1000)})
        await pipe.execute()


async def unpublish(client: Redis, keys: FarmKeys, node_id: str) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.node(node_id))
        pipe.zrem(keys.nodes, node_id)
        await pipe.execute()


async def record_failed_on(client: Redis, keys: FarmKeys, job_id: str, node_id: str) -> None:
    """Remember that `job_id` failed on `node_id` (not for bad input), so the fetching nodes pass it on."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(keys.failed_on(job_id), node_id)
        pipe.expire(keys.failed_on(job_id), FAILED_ON_TTL_S)
        await pipe.execute()


async def failed_on(client: Redis, keys: FarmKeys, job_id: str) -> set[str]:
    return cast("set[str]", await client.smembers(keys.failed_on(job_id)))


async def set_draining(client: Redis, keys: FarmKeys, seat: str, draining: bool) -> None:
    """The operator's word for a node's seat, kept until resumed (it survives the node's restart); the node polls
    it (farm/standing.py)."""
    if draining:
        await client.set(keys.drain(seat), json.dumps({"since": time.time()}), nx=True)
    else:
        await client.delete(keys.drain(seat))


async def is_draining(client: Redis, keys: FarmKeys, seat: str) -> bool:
    return bool(await client.exists(keys.drain(seat)))


async def read_nodes(client: Redis, keys: FarmKeys) -> list[NodeInfo]:
    # the farm's clients decode replies (connection.make_client): strings, which redis-py's types cannot tell
    ids = cast("list[str]", await client.zrange(keys.nodes, 0, -1))
    if not ids:
        return []
    values = cast("list[str | None]", await client.mget([keys.node(i) for i in ids]))
    nodes: list[NodeInfo] = []
    gone: list[str] = []
    for node_id, value in zip(ids, values, strict=True):
        if value is None:
            gone.append(node_id)
            continue
        try:
            nodes.append(NodeInfo.from_json(value))
        except (ValueError, TypeError):
            gone.append(node_id)
    if gone:
        await client.zrem(keys.nodes, *gone)
    return sorted(nodes, key=lambda n: (n.host, n.nodeId))


async def read_counts(client: Redis, keys: FarmKeys) -> dict[str, int]:
    """Queue counts read directly (the same keys BullMQ's getJobCounts reads)."""
    base = f"{keys.prefix}:{keys.queue}"
    async with client.pipeline(transaction=False) as pipe:
        pipe.llen(f"{base}:wait")
        pipe.zcard(f"{base}:prioritized")
        pipe.llen(f"{base}:active")
        pipe.zcard(f"{base}:delayed")
        pipe.llen(f"{base}:paused")
        pipe.zcard(f"{base}:completed")
        pipe.zcard(f"{base}:failed")
        values = await pipe.execute()
    return dict(zip(COUNT_TYPES, (int(v or 0) for v in values), strict=True))


async def snapshot(client: Redis, keys: FarmKeys, url: str) -> FarmStatus:
    nodes = await read_nodes(client, keys)
    counts = await read_counts(client, keys)
    return FarmStatus(url=url, queue=keys.queue, connected=True, nodes=nodes, counts=counts)
