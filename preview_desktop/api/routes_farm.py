"""Farm routes: the farm's status, and submit, read or cancel a farm job from any client, not only the window.

The job service does the work (farm/client.py holds the cancel protocol: remove a waiting job, or ask the node
that runs it to stop); these routes translate its answers into HTTP. Two failures are not bugs and get their own
codes: a node that is not on a farm (409 `farm_disabled`: the user has to configure one) and a farm whose Redis
cannot be reached (503 `farm_unavailable`, one redacted line: no traceback, never the password; farm/gateway.py).
"""

from __future__ import annotations

import re

from aiohttp import web

from ..core.submission import QueuedLocally
from ..errors import FarmDisabled, FarmJobNotFound, FarmNodeNotFound, IllegalTransition
from .http import json_response
from .ports import Jobs
from .routes_jobs import read_body

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
NODE_ID_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")  # worker ids are host-pid-random; anything else is unknown


def farm_job_id_from(request: web.Request) -> str:
    """The {farm_job_id} path part; an id that cannot name a farm job is a 404 like an unknown one."""
    job_id = request.match_info["farm_job_id"]
    if not FARM_JOB_ID_RE.match(job_id) or job_id in RESERVED_IDS:
        raise FarmJobNotFound(job_id[:128])
    return job_id


class FarmRoutes:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/farm", self.status, name="farm.status")
        app.router.add_post("/v1/farm/jobs", self.submit, name="farm.jobs.submit")
        app.router.add_get("/v1/farm/jobs/{farm_job_id}", self.get, name="farm.jobs.get")
        app.router.add_post("/v1/farm/jobs/{farm_job_id}/cancel", self.cancel, name="farm.jobs.cancel")
        app.router.add_post("/v1/farm/nodes/{node_id}/drain", self.drain, name="farm.nodes.drain")
        app.router.add_post("/v1/farm/nodes/{node_id}/resume", self.resume, name="farm.nodes.resume")

    # ------------------------------------------------------------------ routes
    async def status(self, request: web.Request) -> web.Response:
        """Always 200, so a UI can show "not on a farm" or "farm unreachable" from one answer."""
        status = self.jobs.farm_status()
        if status is None:
            return json_response({"enabled": False, "nodeId": None, "url": None, "queue": None, "connected": False,
                                  "error": None, "nodes": [], "counts": {}, "updated": None})
        return json_response({"enabled": True, **status.to_wire()})

    async def submit(self, request: web.Request) -> web.Response:
        """Validate like POST /v1/jobs, then queue on the farm: any node may run it, this one included."""
        if self.jobs.farm_status() is None:
            raise FarmDisabled()
        submitted = await self.jobs.submit_to_farm(await read_body(request))
        if isinstance(submitted, QueuedLocally):  # Redis unreachable: queued here instead, nothing lost
            job = submitted.job
            location = request.app.router["jobs.get"].url_for(job_id=job.id)
            return json_response({**job.to_wire(), "queuedLocally": True, "reason": submitted.reason}, status=201,
                                 headers={"Location": str(location)})
        location = request.app.router["farm.jobs.get"].url_for(farm_job_id=submitted.id)
        return json_response({"id": submitted.id, "state": submitted.state, "queuedLocally": False}, status=201,
                             headers={"Location": str(location)})

    async def get(self, request: web.Request) -> web.Response:
        job_id = farm_job_id_from(request)
        job = await self.jobs.farm_job(job_id)
        if job is None:
            raise FarmJobNotFound(job_id)
        return json_response(job)

    async def cancel(self, request: web.Request) -> web.Response:
        """200 when it waited (removed: it never runs); 202 when it runs: its node stops it within about 1 s."""
        job_id = farm_job_id_from(request)
        result = await self.jobs.cancel_farm_job(job_id, CANCEL_REASON)
        if result == "not-found":
            raise FarmJobNotFound(job_id)
        if result == "finished":
            raise IllegalTransition(f"farm job {job_id!r} already finished: nothing to cancel")
        return json_response({"id": job_id, "result": result}, status=200 if result == "removed" else 202)

    async def drain(self, request: web.Request) -> web.Response:
        """The node finishes what it runs and takes no more farm jobs (within about 1 s), until resumed."""
        return await self._set_draining(request, True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._set_draining(request, False)

    async def _set_draining(self, request: web.Request, draining: bool) -> web.Response:
        node_id = request.match_info["node_id"]
        if not NODE_ID_RE.match(node_id):
            raise FarmNodeNotFound(node_id[:200])
        await self.jobs.drain_farm_node(node_id, draining)
        return json_response({"nodeId": node_id, "draining": draining})
