"""Job routes: submit, list, read, cancel, retry, through the job service."""

from __future__ import annotations

import json

from aiohttp import web

from ..core.job import JobState
from ..core.layout import JOB_ID_RE
from ..core.spec import PROJECT_ID_RE
from ..core.submission import WireSource
from ..errors import InvalidInput, InvalidSpec, JobNotFound
from .http import json_response
from .ports import Jobs

MAX_LIST_LIMIT = 10000


def job_id_from(request: web.Request) -> str:
    """The {job_id} path part; a malformed id cannot name a job, so it is a 404 like an unknown one."""
    job_id = request.match_info["job_id"]
    if not JOB_ID_RE.match(job_id):
        raise JobNotFound(job_id)
    return job_id


def parse_states(text: str | None) -> list[JobState] | None:
    """`state=queued,running` -> [QUEUED, RUNNING]; 400 naming the parameter for anything else."""
    if not text:
        return None
    states: list[JobState] = []
    for part in text.split(","):
        try:
            states.append(JobState(part.strip()))
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            raise InvalidInput(f"state: {part.strip()!r} is not one of {allowed}") from None
    return states


def parse_limit(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit: must be a whole number from 1 to {MAX_LIST_LIMIT}")
    return int(text)


async def read_body(request: web.Request) -> WireSource:
    """The request body as a spec source (POST /v1/jobs and /v1/farm/jobs): 400 when it is not JSON."""
    body = await request.read()  # aiohttp refuses bodies above client_max_size with 413
    try:
        return WireSource(json.loads(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSpec("spec", f"the request body is not valid JSON ({exc})") from None


class JobRoutes:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/jobs", self.submit, name="jobs.submit")
        app.router.add_get("/v1/jobs", self.list, name="jobs.list")
        app.router.add_get("/v1/jobs/{job_id}", self.get, name="jobs.get")
        app.router.add_post("/v1/jobs/{job_id}/cancel", self.cancel, name="jobs.cancel")
        app.router.add_post("/v1/jobs/{job_id}/retry", self.retry, name="jobs.retry")

    async def submit(self, request: web.Request) -> web.Response:
        job = await self.jobs.submit(await read_body(request))
        location = request.app.router["jobs.get"].url_for(job_id=job.id)
        return json_response(job.to_wire(), status=201, headers={"Location": str(location)})

    async def list(self, request: web.Request) -> web.Response:
        states = parse_states(request.query.get("state"))
        project_id = request.query.get("projectId") or None
        if project_id is not None and not PROJECT_ID_RE.match(project_id):
            raise InvalidInput("projectId: must be 1-64 characters of letters, digits, '.', '_' or '-'")
        limit = parse_limit(request.query.get("limit"))
        jobs = await self.jobs.list_jobs(states, project_id, limit)
        return json_response({"jobs": [job.to_wire() for job in jobs], "count": len(jobs)})

    async def get(self, request: web.Request) -> web.Response:
        job = await self.jobs.get(job_id_from(request))
        return json_response(job.to_wire())

    async def cancel(self, request: web.Request) -> web.Response:
        """A waiting job is cancelled now; a running one is asked to stop (202 with cancelRequested)."""
        job = await self.jobs.cancel(job_id_from(request))
        return json_response(job.to_wire(), status=202 if job.state is JobState.RUNNING else 200)

    async def retry(self, request: web.Request) -> web.Response:
        job = await self.jobs.retry(job_id_from(request))
        return json_response(job.to_wire())
