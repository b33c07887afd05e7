"""Response helpers and the two middlewares every request passes: errors first, then auth.

Errors are `{"error": {"code", "message"}}` (DESIGN.md). PreviewError subclasses carry their own HTTP status and
code, so routes just let them travel; aiohttp's own HTTP exceptions (404 route, 405, 413) get the same shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import PreviewError
from .auth import UrlSigner, bearer_token, is_loopback, tokens_match

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "queue_full",
}
OPEN_ON_LOOPBACK = frozenset({"/healthz", "/metrics", "/openapi.json"})
ARTIFACT_ROUTE = "artifact"  # name of the download route: the one that also accepts signed URLs
FARM_ARTIFACT_ROUTE = "farm.artifact"  # a farm preview's file from the farm storage; signed URLs too
FARM_SUBJECT = "farm:"  # what a farm file's signature covers: "farm:" + BullMQ id, never a local job id


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


class ApiAuth:
    """The token check, shared by the middleware and the artifact listing (which signs URLs)."""

    def __init__(self, token: str) -> None:
        self.farm_signer: UrlSigner | None = None
        self.set_token(token)

    def set_token(self, token: str) -> None:
        self.token = token
        self.signer = UrlSigner(token)

    def set_farm_secret(self, secret: str) -> None:
        """The farm-wide signing secret (kept in the farm's Redis): URLs it signs are accepted by every node."""
        self.farm_signer = UrlSigner(secret)

    def url_signer(self) -> UrlSigner:
        """What new signed URLs use: the farm's secret when known (any node can check it), else this token."""
        return self.farm_signer or self.signer

    def check(self, request: web.Request) -> web.Response | None:
        """None when the request may proceed, else the 401/403 response."""
        path = request.path
        if path in OPEN_ON_LOOPBACK and is_loopback(request.remote):
            return None
        route = request.match_info.route
        if (route.name in (ARTIFACT_ROUTE, FARM_ARTIFACT_ROUTE) and "sig" in request.query
                and "Authorization" not in request.headers):
            return self._check_signature(request)
        given = bearer_token(request.headers.get("Authorization"))
        if given is None:
            return error_response(
                401, "unauthorized", "missing API token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="preview-desktop"'},
            )
        if not tokens_match(given, self.token):
            return error_response(403, "forbidden", "wrong API token")
        return None

    def _check_signature(self, request: web.Request) -> web.Response | None:
        info = request.match_info
        job_id = info.get("job_id", "") if "job_id" in info else FARM_SUBJECT + info.get("farm_job_id", "")
        name = info.get("name", "")
        exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
        problem = self.signer.verify(job_id, name, exp, sig)
        if problem == "bad signature" and self.farm_signer is not None:
            problem = self.farm_signer.verify(job_id, name, exp, sig)
        if problem is None:
            return None
        return error_response(403, "forbidden", f"signed URL refused: {problem}")


def make_error_middleware() -> Any:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """The API's program boundary: typed errors become JSON; unexpected ones are logged and become 500."""
        try:
            return await handler(request)
        except PreviewError as exc:
            return error_response(exc.http_status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _STATUS_CODES.get(exc.status, "http_error")
            message = exc.reason if exc.status != 413 else f"request body too large ({exc.text or exc.reason})"
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(exc.status, code, message, headers=headers)
        except (ConnectionResetError, TimeoutError):
            raise
        except Exception:
            log.exception("API %s %s failed", request.method, request.path)
            return error_response(500, "internal", "internal error (see the node's log)")

    return errors


def make_auth_middleware(auth: ApiAuth) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = auth.check(request)
        if refused is not None:
            return refused
        return await handler(request)

    return authenticate
