"""Artifact routes: list a job's preview files and serve them, with the token or a signed, expiring URL.

Only names in ARTIFACT_NAMES that exist in a succeeded job's preview folder are served; anything else is a 404,
whatever the path says. aiohttp's FileResponse does the serving: Range requests (scrubbing in a player),
conditional requests and sendfile, off the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from ..core.job import Job, JobState
from ..core.layout import ARTIFACT_NAMES, Layout, is_within
from ..errors import InvalidInput, JobNotFound, PreviewError
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
    return files_in(layout.preview_dir(job.project_id, job.id))


def farm_render_folder(layout: Layout, job_id: str) -> Path | None:
    """The published folder of a farm job this node rendered (its render id is not in the local store).

    Farm renders publish under DATA_DIR/previews/{projectId}/{renderId} like local jobs; the id is unguessable
    and checked by JOB_ID_RE before we get here. Only a complete, succeeded render counts."""
    for folder in layout.previews.glob(f"*/{job_id}"):
        try:
            document = json.loads((folder / "preview.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (folder.is_dir() and not folder.is_symlink() and is_within(folder, [layout.previews])
                and isinstance(document, dict) and document.get("status") == "succeeded"):
            return folder
    return None


def files_in(folder: Path) -> list[tuple[str, Path, int]]:
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

    async def _artifacts(self, job_id: str) -> tuple[str, list[tuple[str, Path, int]]]:
        """(state, files) of a local job, or of a farm job this node rendered (state "succeeded")."""
        loop = asyncio.get_running_loop()
        try:
            job = await self.jobs.get(job_id)
        except JobNotFound:
            folder = await loop.run_in_executor(None, farm_render_folder, self.layout, job_id)
            if folder is None:
                raise
            return JobState.SUCCEEDED.value, await loop.run_in_executor(None, files_in, folder)
        return job.state.value, await loop.run_in_executor(None, existing_artifacts, self.layout, job)

    async def list(self, request: web.Request) -> web.Response:
        seconds = parse_expires(request.query.get("expires"))
        job_id = job_id_from(request)
        state, files = await self._artifacts(job_id)
        origin = f"{request.scheme}://{request.host}"
        route = request.app.router[ARTIFACT_ROUTE]
        items = []
        for name, _path, size in files:
            path = str(route.url_for(job_id=job_id, name=name))
            signature = self.auth.signer.sign(job_id, name, seconds)
            items.append({
                "name": name,
                "size": size,
                "contentType": content_type(name),
                "url": origin + path,
                "signedUrl": origin + path + "?" + urlencode({"exp": signature.exp, "sig": signature.sig}),
                "expiresAt": signature.exp,
            })
        return json_response({"jobId": job_id, "state": state, "artifacts": items})

    async def download(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        job_id = job_id_from(request)
        if name not in ARTIFACT_NAMES:
            raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}")
        _state, files = await self._artifacts(job_id)
        for found, path, _size in files:
            if found == name:
                return web.FileResponse(path, headers={
                    "Content-Type": content_type(name),
                    "Cache-Control": "private, max-age=300",
                    "Content-Disposition": f'inline; filename="{name}"',
                })
        raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}")
