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
from ..core.layout import ARTIFACT_NAMES, FarmLayout, Layout, PreviewFolders, is_within
from ..errors import InvalidInput, JobNotFound, PreviewError
from .auth import SIGNED_URL_MAX_SECONDS, SIGNED_URL_SECONDS, UrlSigner
from .http import ARTIFACT_ROUTE, FARM_ARTIFACT_ROUTE, FARM_SUBJECT, ApiAuth, json_response
from .ports import Jobs
from .routes_farm import farm_job_id_from
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


def farm_render_folder(layout: PreviewFolders, job_id: str) -> Path | None:
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


Files = list[tuple[str, Path, int]]  # (name, path, size) of a preview's published files
Items = list[dict[str, object]]


class ArtifactRoutes:
    """Local jobs' files by job id; farm previews by their BullMQ id, from the farm storage every node mounts."""

    def __init__(self, jobs: Jobs, layout: Layout, auth: ApiAuth, farm_layout: FarmLayout | None = None) -> None:
        self.jobs = jobs
        self.auth = auth
        self.layout = layout
        self.farm_layout = farm_layout

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/jobs/{job_id}/artifacts", self.list, name="artifacts.list")
        app.router.add_get("/v1/jobs/{job_id}/artifacts/{name}", self.download, name=ARTIFACT_ROUTE)
        app.router.add_get("/v1/farm/jobs/{farm_job_id}/artifacts", self.farm_list, name="farm.artifacts.list")
        app.router.add_get("/v1/farm/jobs/{farm_job_id}/artifacts/{name}", self.farm_download,
                           name=FARM_ARTIFACT_ROUTE)

    async def _artifacts(self, job_id: str) -> tuple[str, Files]:
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

    async def _farm_artifacts(self, job_id: str) -> Files:
        """A farm preview published into the farm storage (a chunked one): any node that mounts it serves it."""
        if self.farm_layout is None:
            raise ArtifactNotFound(f"farm job {job_id}: this node has no farm storage (PREVIEW_FARM_STORAGE)")
        loop = asyncio.get_running_loop()
        folder = await loop.run_in_executor(None, farm_render_folder, self.farm_layout, job_id)
        if folder is None:
            raise ArtifactNotFound(f"farm job {job_id} has no published preview in the farm storage")
        return await loop.run_in_executor(None, files_in, folder)

    async def list(self, request: web.Request) -> web.Response:
        job_id = job_id_from(request)
        state, files = await self._artifacts(job_id)
        items = self._items(request, files, ARTIFACT_ROUTE, {"job_id": job_id}, job_id, self.auth.signer)
        return json_response({"jobId": job_id, "state": state, "artifacts": items})

    async def farm_list(self, request: web.Request) -> web.Response:
        job_id = farm_job_id_from(request)
        files = await self._farm_artifacts(job_id)
        items = self._items(request, files, FARM_ARTIFACT_ROUTE, {"farm_job_id": job_id}, FARM_SUBJECT + job_id,
                            self.auth.url_signer())
        return json_response({"farmJobId": job_id, "artifacts": items})

    def _items(self, request: web.Request, files: Files, route_name: str,
               parts: dict[str, str], subject: str, signer: UrlSigner) -> Items:
        seconds = parse_expires(request.query.get("expires"))
        origin = f"{request.scheme}://{request.host}"
        route = request.app.router[route_name]
        items: Items = []
        for name, _path, size in files:
            path = str(route.url_for(**parts, name=name))
            signature = signer.sign(subject, name, seconds)
            items.append({
                "name": name,
                "size": size,
                "contentType": content_type(name),
                "url": origin + path,
                "signedUrl": origin + path + "?" + urlencode({"exp": signature.exp, "sig": signature.sig}),
                "expiresAt": signature.exp,
            })
        return items

    async def download(self, request: web.Request) -> web.StreamResponse:
        job_id = job_id_from(request)
        _state, files = await self._artifacts(job_id) if request.match_info["name"] in ARTIFACT_NAMES else ("", [])
        return serve(files, request.match_info["name"], f"job {job_id}")

    async def farm_download(self, request: web.Request) -> web.StreamResponse:
        job_id = farm_job_id_from(request)
        files = await self._farm_artifacts(job_id) if request.match_info["name"] in ARTIFACT_NAMES else []
        return serve(files, request.match_info["name"], f"farm job {job_id}")


def serve(files: Files, name: str, what: str) -> web.StreamResponse:
    """Range requests (scrubbing), conditional requests and sendfile, off the loop (aiohttp's FileResponse)."""
    for found, path, _size in files:
        if found == name:
            return web.FileResponse(path, headers={
                "Content-Type": content_type(name),
                "Cache-Control": "private, max-age=300",
                "Content-Disposition": f'inline; filename="{name}"',
            })
    raise ArtifactNotFound(f"{what} has no artifact {name!r}")
