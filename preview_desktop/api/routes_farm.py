"""Farm routes: the farm's status, and submit, read or cancel a farm job from any client, not only the window.

The node's FarmNode does the work (farm/client.py holds the cancel protocol: remove a waiting job, or ask the node
that runs it to stop); these routes translate its answers into HTTP. Two failures are not bugs and get their own
codes: a node that is not on a farm (409 `farm_disabled`: the user has to configure one) and a farm whose Redis
cannot be reached (503 `farm_unavailable`, one redacted line: no traceback, never the password).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from ..errors import FarmDisabled, FarmJobNotFound, FarmUnavailable, IllegalTransition
from ..farm.connection import describe_error, is_connection_error
from .http import json_response
from .routes_jobs import read_spec

log = logging.getLogger(__name__)
T = TypeVar("T")

# BullMQ ids are numbers unless a producer chooses a string; we accept the safe alphabet only.
FARM_JOB_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
FARM_JOB_ID_RE = re.compile(FARM_JOB_ID_PATTERN)
# Names BullMQ (and the registry's `pd` namespace) use for the queue's own keys beside `{prefix}:{queue}:{id}`:
# as an id, "meta" would read the queue's settings hash as a job and "wait" would hit a list (a Redis type error).
RESERVED_IDS = frozenset({
    "active", "wait", "waiting-children", "paused", "completed", "failed", "delayed", "repeat", "stalled",
    "limiter", "prioritized", "id", "stalled-check", "meta", "pc", "events", "marker", "de", "pd", ".", "..",
})
CANCEL_REASON = "cancelled through the API"
FARM_TIMEOUT_S = 10.0  # above the client's connect timeout plus its one retry; a hung Redis must not hang a request


def farm_job_id_from(request: web.Request) -> str:
    """The {farm_job_id} path part; an id that cannot name a farm job is a 404 like an unknown one."""
    job_id = request.match_info["farm_job_id"]
    if not FARM_JOB_ID_RE.match(job_id) or job_id in RESERVED_IDS:
        raise FarmJobNotFound(job_id[:128])
    return job_id


class FarmRoutes:
    def __init__(self, node: Any) -> None:
        self.node = node

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/farm", self.status, name="farm.status")
        app.router.add_post("/v1/farm/jobs", self.submit, name="farm.jobs.submit")
        app.router.add_get("/v1/farm/jobs/{farm_job_id}", self.get, name="farm.jobs.get")
        app.router.add_post("/v1/farm/jobs/{farm_job_id}/cancel", self.cancel, name="farm.jobs.cancel")

    def _farm(self) -> Any:
        farm = getattr(self.node, "farm", None)
        if farm is None:
            raise FarmDisabled()
        return farm

    async def _redis(self, farm: Any, what: str, call: Awaitable[T]) -> T:
        """Await a farm call; a lost Redis becomes a 503 with one redacted line instead of a 500 with a traceback."""
        try:
            return await asyncio.wait_for(call, FARM_TIMEOUT_S)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            reason = describe_error(exc)
        # While the node's own link already reports the outage (one line per outage), stay quiet here.
        level = logging.WARNING if farm.link.connected else logging.DEBUG
        log.log(level, "API: farm %s: Redis %s unreachable (%s)", what, farm.link.url, reason)
        raise FarmUnavailable(f"the farm's Redis {farm.link.url} is unreachable ({reason}); try again later")

    # ------------------------------------------------------------------ routes
    async def status(self, request: web.Request) -> web.Response:
        """Always 200, so a UI can show "not on a farm" or "farm unreachable" from one answer."""
        farm = getattr(self.node, "farm", None)
        if farm is None:
            return json_response({"enabled": False, "nodeId": None, "url": None, "queue": None, "connected": False,
                                  "error": None, "nodes": [], "counts": {}, "updated": None})
        # The snapshot the heartbeat keeps fresh (every few seconds); the link is the truth about "connected" now.
        wire = farm.status.to_wire()
        wire.update(connected=farm.link.connected, error=farm.link.error)
        return json_response({"enabled": True, "nodeId": farm.node_id, **wire})

    async def submit(self, request: web.Request) -> web.Response:
        """Validate like POST /v1/jobs, then queue on the farm: any node may run it, this one included."""
        farm = self._farm()
        spec = await read_spec(request, self.node.settings.effective_media_roots)
        job_id = await self._redis(farm, "submit", farm.submit(spec))
        log.info("API: farm job %s queued (%s)", job_id, spec.projectId)
        state: str | None
        try:  # the job is queued whatever happens now: a state we cannot read is null, not a 503
            state = await self._redis(farm, "submit", farm.client.queue.getJobState(job_id))
        except FarmUnavailable:
            state = None
        location = request.app.router["farm.jobs.get"].url_for(farm_job_id=job_id)
        return json_response({"id": job_id, "state": state}, status=201, headers={"Location": str(location)})

    async def get(self, request: web.Request) -> web.Response:
        farm = self._farm()
        job_id = farm_job_id_from(request)
        job = await self._redis(farm, "read", farm.client.get(job_id))
        if job is None:
            raise FarmJobNotFound(job_id)
        return json_response(job)

    async def cancel(self, request: web.Request) -> web.Response:
        """200 when it waited (removed: it never runs); 202 when it runs: its node stops it within about 1 s."""
        farm = self._farm()
        job_id = farm_job_id_from(request)
        result = await self._redis(farm, "cancel", farm.cancel(job_id, CANCEL_REASON))
        if result == "not-found":
            raise FarmJobNotFound(job_id)
        if result == "finished":
            raise IllegalTransition(f"farm job {job_id!r} already finished: nothing to cancel")
        log.info("API: farm job %s: cancel %s", job_id, result)
        return json_response({"id": job_id, "result": result}, status=200 if result == "removed" else 202)
