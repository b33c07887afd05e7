"""Artifact routes: list a job's preview files and serve them, with the token or a signed, expiring URL.

Only names in ARTIFACT_NAMES that exist in a succeeded job's preview folder are served; anything else is a 404,
whatever the path says. aiohttp's FileResponse does the serving: Range requests (scrubbing in a player),
conditional requests and sendfile, off the loop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from ..core.job import Job, JobState
from ..core.layout import ARTIFACT_NAMES, Layout, is_within
from ..errors import InvalidInput, PreviewError
from .auth import SIGNED_URL_MAX_SECONDS, SIGNED_URL_SECONDS
from .http import ARTIFACT_ROUTE, ApiAuth, json_response
from .ports import Jobs
from .routes_jobs import job_id_from

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
MIN_SIGNED_SECONDS = 60


class ArtifactNotFound(PreviewError):
    http_status = 404
    code = "not_found"
    retryable = False


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")


def existing_artifacts(layout: Layout, job: Job) -> list[tuple[str, Path, int]]:
    """(name, path, size) of the job's published files. Blocking file I/O: call off the loop."""
    if job.state is not JobState.SUCCEEDED:
        return []
    folder = layout.preview_dir(job.project_id, job.id)
    found: list[tuple[str, Path, int]] = []
    for name in ARTIFACT_NAMES:
        path = folder / name
        # A symlink planted in the folder must not lead out of it.
        if path.is_file() and is_within(path, [folder]):
            found.append((name, path, path.stat().st_size))
    return found


def parse_expires(text: str | None) -> int:
    if text is None or text == "":
        return SIGNED_URL_SECONDS
    if not text.isdigit() or not MIN_SIGNED_SECONDS <= int(text) <= SIGNED_URL_MAX_SECONDS:
        raise InvalidInput(f"expires: must be whole seconds from {MIN_SIGNED_SECONDS} to {SIGNED_URL_MAX_SECONDS}")
    return int(text)


class ArtifactRoutes:
    def __init__(self, jobs: Jobs, layout: Layout, auth: ApiAuth) -> None:
        self.jobs = jobs
        self.auth = auth
        self.layout = layout

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/jobs/{job_id}/artifacts", self.list, name="artifacts.list")
        app.router.add_get("/v1/jobs/{job_id}/artifacts/{name}", self.download, name=ARTIFACT_ROUTE)

    async def _artifacts(self, job_id: str) -> tuple[Job, list[tuple[str, Path, int]]]:
        job = await self.jobs.get(job_id)
        files = await asyncio.get_running_loop().run_in_executor(None, existing_artifacts, self.layout, job)
        return job, files

    async def list(self, request: web.Request) -> web.Response:
        seconds = parse_expires(request.query.get("expires"))
        job, files = await self._artifacts(job_id_from(request))
        origin = f"{request.scheme}://{request.host}"
        route = request.app.router[ARTIFACT_ROUTE]
        items = []
        for name, _path, size in files:
            path = str(route.url_for(job_id=job.id, name=name))
            signature = self.auth.signer.sign(job.id, name, seconds)
            items.append({
                "name": name,
                "size": size,
                "contentType": content_type(name),
                "url": origin + path,
                "signedUrl": origin + path + "?" + urlencode({"exp": signature.exp, "sig": signature.sig}),
                "expiresAt": signature.exp,
            })
        return json_response({"jobId": job.id, "state": job.state.value, "artifacts": items})

    async def download(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        job_id = job_id_from(request)
        if name not in ARTIFACT_NAMES:
            raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}")
        _job, files = await self._artifacts(job_id)
        for found, path, _size in files:
            if found == name:
                return web.FileResponse(path, headers={
                    "Content-Type": content_type(name),
                    "Cache-Control": "private, max-age=300",
                    "Content-Disposition": f'inline; filename="{name}"',
                })
        raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}")
