"""ApiServer: the node's HTTP API on the running event loop (qasync in the window and in `--worker`).

Built by Node's wiring, started by `await start()`: nothing listens at import. It binds PREVIEW_API_HOST
(127.0.0.1 by default), writes DATA_DIR/api.json so local tools find it, and removes that file on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from .. import __version__
from ..api_token import load_or_create_token, regenerate_token
from ..core.layout import FarmLayout, Layout
from ..core.process import pid_alive
from ..core.spec import MAX_SPEC_BYTES
from ..errors import FarmUnavailable, SettingsError
from ..settings import Settings
from .auth import is_loopback
from .http import ApiAuth, json_response, make_auth_middleware, make_error_middleware
from .metrics import NodeMetrics
from .openapi import build_openapi
from .ports import EngineView, Jobs
from .routes_artifacts import ArtifactRoutes
from .routes_farm import FarmRoutes
from .routes_jobs import JobRoutes
from .sse import EventBroker

log = logging.getLogger(__name__)


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access lines without the query string: a signed artifact URL's `sig` opens the file until it expires."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %s %.1f ms', request.remote, request.method, request.path,
                         response.status, response.body_length, time * 1000)
SHUTDOWN_TIMEOUT = 2.0  # seconds open requests get at stop; SSE streams are ended explicitly before that


def url_host(host: str) -> str:
    """The host to put in a URL clients can use: a wildcard bind is reached through loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class ApiServer:
    def __init__(self, settings: Settings, layout: Layout, jobs: Jobs, engine: EngineView) -> None:
        self.settings = settings
        self.layout = layout
        self.jobs = jobs
        self.engine = engine
        self.auth = ApiAuth(load_or_create_token(settings, layout))
        self.events = EventBroker()
        self.metrics = NodeMetrics(jobs.counts, engine.status, jobs.farm_status)
        # Subscribed now, not at start: outcomes and state changes from the first moment are counted.
        self._unsubscribe = [engine.subscribe(self.events.observe), engine.subscribe(self.metrics.observe)]
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._wrote_api_json = False
        self._openapi: dict[str, Any] | None = None
        self._farm_secret: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ public
    @property
    def url(self) -> str | None:
        """`http://host:port` once started, else None."""
        return self._url

    @property
    def token(self) -> str:
        return self.auth.token

    def regenerate_token(self) -> str:
        """New token in DATA_DIR/api-token, effective at once; refused when PREVIEW_API_TOKEN pins the token."""
        if self.settings.api_token:
            raise SettingsError("PREVIEW_API_TOKEN", "the token is set by the environment; change it there")
        token = regenerate_token(self.layout)
        self.auth.set_token(token)
        return token

    def signed_artifact_url(self, job_id: str, name: str) -> str | None:
        """A signed, expiring URL of one of a job's files on this API (None before the API listens)."""
        if self._url is None:
            return None
        signature = self.auth.url_signer().sign(job_id, name)
        query = urlencode({"exp": signature.exp, "sig": signature.sig})
        return f"{self._url}/v1/jobs/{job_id}/artifacts/{name}?{query}"

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[make_error_middleware(), make_auth_middleware(self.auth)],
            client_max_size=MAX_SPEC_BYTES,
        )
        JobRoutes(self.jobs).add_to(app)
        storage = self.settings.farm_storage
        ArtifactRoutes(self.jobs, self.layout, self.auth, FarmLayout(storage) if storage else None).add_to(app)
        FarmRoutes(self.jobs).add_to(app)
        app.router.add_get("/v1/events", self.events.handle, name="events")
        app.router.add_get("/healthz", self.healthz, name="healthz")
        app.router.add_get("/metrics", self.metrics_route, name="metrics")
        app.router.add_get("/openapi.json", self.openapi_route, name="openapi")
        return app

    async def start(self) -> None:
        host, port = self.settings.api_host, self.settings.api_port
        if not is_loopback(host) and host != "localhost":
            log.warning("the API listens on %s, not a loopback address: other machines can reach it "
                        "(every /v1 route still needs the token; /healthz and /metrics need it too)", host)
        self._runner = web.AppRunner(self.make_app(), shutdown_timeout=SHUTDOWN_TIMEOUT,
                                     access_log_class=PathOnlyAccessLogger)
        await self._runner.setup()
        try:
            await self._bind(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0 or "api_port" in self.settings.forced:
                await self._runner.cleanup()
                self._runner = None
                raise SettingsError("PREVIEW_API_PORT", f"cannot listen on {host}:{port} ({exc.strerror})") from None
            log.warning("API port %d is in use (another Preview Desktop?): using a free port instead; "
                        "DATA_DIR/api.json has the address", port)
            await self._bind(host, 0)
        bound_port = self._bound_port()
        self._url = f"http://{url_host(host)}:{bound_port}"
        self._write_api_json()
        if self.jobs.farm_status() is not None:
            self._farm_secret = asyncio.get_running_loop().create_task(self._learn_farm_secret())
        log.info("API listening on %s", self._url)

    async def _learn_farm_secret(self) -> None:
        """Fetch (or create) the farm's signing secret, retrying while Redis is away."""
        delay = 0.5
        while True:
            try:
                self.auth.set_farm_secret(await self.jobs.farm_signing_secret())
                return
            except FarmUnavailable:
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    async def stop(self) -> None:
        if self._farm_secret is not None:
            self._farm_secret.cancel()
            self._farm_secret = None
        self.events.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._remove_api_json()
        self._url = None

    # ------------------------------------------------------------------ routes
    async def healthz(self, request: web.Request) -> web.Response:
        status = self.engine.status()
        return json_response({
            "status": "stopping" if status.stopping else "ok",
            "version": __version__,
            "pid": os.getpid(),
            "running": status.running,
            "capacity": status.capacity,
            "paused": status.paused,
        })

    async def metrics_route(self, request: web.Request) -> web.Response:
        body = await self.metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = self.metrics.content_type
        return response

    async def openapi_route(self, request: web.Request) -> web.Response:
        if self._openapi is None:
            self._openapi = build_openapi()
        return json_response(self._openapi)

    # ------------------------------------------------------------------ internals
    async def _bind(self, host: str, port: int) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()

    def _bound_port(self) -> int:
        assert self._runner is not None
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        raise RuntimeError("the API socket has no address")

    def _write_api_json(self) -> None:
        """Tell local tools where the API is; leave another live process's file alone."""
        path = self.layout.api_json
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
            other_pid = int(current.get("pid", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            other_pid = 0
        if other_pid and other_pid != os.getpid() and pid_alive(other_pid):
            log.info("DATA_DIR/api.json belongs to process %d; not replacing it", other_pid)
            return
        tmp = path.with_name(f".api.json.{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"url": self._url, "pid": os.getpid()}) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # e.g. a full disk: the API serves anyway, local tools just cannot find it
            log.warning("could not write %s (%s): local tools will not find the API", path, exc)
            tmp.unlink(missing_ok=True)
            return
        self._wrote_api_json = True

    def _remove_api_json(self) -> None:
        if not self._wrote_api_json:
            return
        self._wrote_api_json = False
        path = self.layout.api_json
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            if int(json.loads(path.read_text(encoding="utf-8")).get("pid", 0)) == os.getpid():
                path.unlink()
