"""GET /openapi.json: the API described in OpenAPI 3.1.

The JobSpec schema is not written by hand: it comes from `spec_json_schema()`, the same pydantic model that
validates submissions, with its `$defs` lifted into `components/schemas`. OpenAPI 3.1 uses JSON Schema 2020-12,
so pydantic's output fits without translation.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from ..core.job import JobState
from ..core.layout import ARTIFACT_NAMES, JOB_ID_RE
from ..core.spec import PROJECT_ID_PATTERN, spec_json_schema

_REF = "#/components/schemas/"


def _lift_defs(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move `$defs` into components and point every `#/$defs/X` ref at `#/components/schemas/X`."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (v.replace("#/$defs/", _REF) if k == "$ref" and isinstance(v, str) else fix(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(schema), {name: fix(body) for name, body in defs.items()}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "projectId", "state", "priority", "createdAt", "spec"],
    "properties": {
        "id": {"type": "string", "pattern": JOB_ID_RE.pattern},
        "kind": {"type": "string"},
        "projectId": {"type": "string"},
        "state": {"$ref": _REF + "JobState"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 10},
        "attemptsMade": {"type": "integer"},
        "attempts": {"type": "integer"},
        "progress": {
            "type": "object",
            "properties": {"fraction": {"type": "number"}, "frame": {"type": "integer"},
                           "frames": {"type": "integer"}, "fps": {"type": "number"}},
        },
        "createdAt": {"type": "string"},
        "startedAt": _nullable("string"),
        "finishedAt": _nullable("string"),
        "updatedAt": {"type": "string"},
        "retryAt": _nullable("string"),
        "error": _nullable("string"),
        "traceback": _nullable("string"),
        "worker": _nullable("string"),
        "result": _nullable("object", description="the preview.json object once the job succeeded"),
        "cancelRequested": {"type": "boolean"},
        "supersededBy": _nullable("string"),
        "origin": {"type": "string"},
        "spec": {"type": "object", "description": "the validated spec, every field present"},
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_AUTH_ERRORS = {"401": _error("missing API token"), "403": _error("wrong API token")}
_JOB = {"$ref": _REF + "Job"}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def build_openapi() -> dict[str, Any]:
    spec_schema, spec_defs = _lift_defs(spec_json_schema())
    job_routes = {
        "/v1/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Queue a preview job",
                "description": "Relative paths in the spec resolve against the first of PREVIEW_MEDIA_ROOTS.",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": {"$ref": _REF + "JobSpec"}}}},
                "responses": {"201": _json("the queued job", _JOB), "400": _error("invalid spec (names the field)"),
                              **_AUTH_ERRORS, "413": _error("body too large"),
                              "429": _error("queue full (PREVIEW_QUEUE_MAX); nothing was queued")},
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, oldest first",
                "parameters": [
                    {"name": "state", "in": "query", "required": False,
                     "description": "one state or several, comma-separated", "schema": {"type": "string"}},
                    {"name": "projectId", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": PROJECT_ID_PATTERN}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                ],
                "responses": {
                    "200": _json("jobs", {"type": "object", "required": ["jobs", "count"], "properties": {
                        "jobs": {"type": "array", "items": _JOB}, "count": {"type": "integer"}}}),
                    "400": _error("bad filter"), **_AUTH_ERRORS,
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {"operationId": "getJob", "summary": "One job", "parameters": [_JOB_ID],
                    "responses": {"200": _json("the job", _JOB), **_AUTH_ERRORS, "404": _error("no such job")}},
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {"operationId": "cancelJob", "summary": "Cancel a waiting job, or ask a running one to stop",
                     "parameters": [_JOB_ID],
                     "responses": {"200": _json("cancelled", _JOB), "202": _json("cancel requested", _JOB),
                                   **_AUTH_ERRORS, "404": _error("no such job"),
                                   "409": _error("the job already finished")}},
        },
        "/v1/jobs/{job_id}/retry": {
            "post": {"operationId": "retryJob", "summary": "Queue a failed or cancelled job again",
                     "parameters": [_JOB_ID],
                     "responses": {"200": _json("queued again", _JOB), **_AUTH_ERRORS,
                                   "404": _error("no such job"), "409": _error("the job is not failed or cancelled"),
                                   "429": _error("queue full")}},
        },
    }
    artifact_routes = {
        "/v1/jobs/{job_id}/artifacts": {
            "get": {
                "operationId": "listArtifacts",
                "summary": "A succeeded job's files, with authenticated and signed URLs",
                "parameters": [_JOB_ID, {"name": "expires", "in": "query", "required": False,
                                         "description": "signed URL lifetime in seconds (default 3600)",
                                         "schema": {"type": "integer", "minimum": 60, "maximum": 604800}}],
                "responses": {"200": _json("artifacts", {"$ref": _REF + "ArtifactList"}), "400": _error("bad expires"),
                              **_AUTH_ERRORS, "404": _error("no such job")},
            }
        },
        "/v1/jobs/{job_id}/artifacts/{name}": {
            "get": {
                "operationId": "downloadArtifact",
                "summary": "Download one artifact (Range requests supported)",
                "description": "Authenticate with the bearer token, or with the `exp` and `sig` of a signed URL.",
                "parameters": [_JOB_ID,
                               {"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": list(ARTIFACT_NAMES)}},
                               {"name": "exp", "in": "query", "required": False, "schema": {"type": "integer"}},
                               {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}}],
                "security": [{"bearer": []}, {}],
                "responses": {"200": {"description": "the file"}, "206": {"description": "a byte range"},
                              **_AUTH_ERRORS, "404": _error("no such job or file"),
                              "416": {"description": "range not satisfiable"}},
            }
        },
    }
    other_routes = {
        "/v1/events": {
            "get": {
                "operationId": "events",
                "summary": "Server-sent events: job, removed, outcome, status, progress, resync",
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "an event stream",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_AUTH_ERRORS},
            }
        },
        "/healthz": {"get": {"operationId": "health", "summary": "Liveness; open on loopback",
                             "security": [{}, {"bearer": []}],
                             "responses": {"200": _json("ok", {"type": "object"}), **_AUTH_ERRORS}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics; open on loopback",
                             "security": [{}, {"bearer": []}],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_AUTH_ERRORS}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document; open on loopback",
                                  "security": [{}, {"bearer": []}],
                                  "responses": {"200": _json("OpenAPI 3.1", {"type": "object"}), **_AUTH_ERRORS}}},
    }
    schemas = {
        **spec_defs,
        "JobSpec": spec_schema,
        "JobState": {"type": "string", "enum": [s.value for s in JobState]},
        "Job": JOB_SCHEMA,
        "Error": ERROR_SCHEMA,
        "ArtifactList": {
            "type": "object", "required": ["jobId", "state", "artifacts"],
            "properties": {
                "jobId": {"type": "string"}, "state": {"$ref": _REF + "JobState"},
                "artifacts": {"type": "array", "items": {
                    "type": "object", "required": ["name", "size", "contentType", "url", "signedUrl", "expiresAt"],
                    "properties": {"name": {"type": "string"}, "size": {"type": "integer"},
                                   "contentType": {"type": "string"}, "url": {"type": "string"},
                                   "signedUrl": {"type": "string"},
                                   "expiresAt": {"type": "integer", "description": "Unix seconds"}}}},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Preview Desktop local API", "version": __version__,
                 "description": "Queue preview renders, follow them and fetch their files. See docs/api.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {**job_routes, **artifact_routes, **other_routes},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
