"""GET /openapi.json: the API described in OpenAPI 3.1.

The JobSpec schema is not written by hand: it comes from `spec_json_schema()`, the same pydantic model that
validates submissions, with its `$defs` lifted into `components/schemas`. OpenAPI 3.1 uses JSON Schema 2020-12,
so pydantic's output fits without translation.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from ..core.farm_status import NodeState
from ..core.job import JobState
from ..core.layout import ARTIFACT_NAMES, JOB_ID_RE
from ..core.spec import PROJECT_ID_PATTERN, spec_json_schema
from .routes_farm import FARM_JOB_ID_PATTERN

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
        "farmId": _nullable("string", description="a farm record: the BullMQ id of the farm job it follows"),
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
_FARM_JOB_ID = {"name": "farm_job_id", "in": "path", "required": True, "description": "a BullMQ job id",
                "schema": {"type": "string", "pattern": FARM_JOB_ID_PATTERN}}
_FARM_CANCEL = {"type": "object", "required": ["id", "result"],
                "properties": {"id": {"type": "string"},
                               "result": {"type": "string", "enum": ["removed", "requested"]}}}
_NODE_ID = {"name": "node_id", "in": "path", "required": True,
            "description": "a farm node's `nodeId` or `seat` (GET /v1/farm)",
            "schema": {"type": "string"}}
_FARM_DRAIN = {"type": "object", "required": ["nodeId", "draining"],
               "properties": {"nodeId": {"type": "string"}, "draining": {"type": "boolean"}}}
_FARM_ERRORS = {"409": _error("this node is not on a farm (code farm_disabled: start it with REDIS_URL or --redis)"),
                "503": _error("the farm's Redis is unreachable (code farm_unavailable)")}

FARM_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["enabled", "nodeId", "url", "queue", "connected", "error", "nodes", "counts", "updated"],
    "properties": {
        "enabled": {"type": "boolean", "description": "false when this node is not on a farm (no REDIS_URL)"},
        "nodeId": _nullable("string", description="this node's id on the farm"),
        "url": _nullable("string", description="the Redis URL, password masked"),
        "queue": _nullable("string"),
        "connected": {"type": "boolean"},
        "error": _nullable("string", description="why Redis is unreachable, one line"),
        "nodes": {"type": "array", "items": {"$ref": _REF + "FarmNode"}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "waiting, prioritized, active, delayed, paused, completed, failed"},
        "updated": _nullable("number", description="Unix seconds of the snapshot"),
        "state": _nullable("string", description="whether this node takes farm jobs now (see FarmNode.state)"),
        "stateReason": _nullable("string", description="why, in words"),
    },
}

FARM_NODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["nodeId", "host", "pid", "version", "capacity", "running", "localRunning", "api", "heartbeat"],
    "properties": {
        "nodeId": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"},
        "version": {"type": "string"}, "capacity": {"type": "integer"},
        "running": {"type": "array", "items": {
            "type": "object", "required": ["jobId", "name", "projectId", "startedAt"],
            "properties": {"jobId": {"type": "string"}, "name": {"type": "string"}, "projectId": _nullable("string"),
                           "startedAt": {"type": "number"}, "frame": {"type": "integer"},
                           "frames": {"type": "integer"}, "percent": {"type": "number"},
                           "attempt": {"type": "integer"}}}},
        "localRunning": {"type": "integer"},
        "api": _nullable("string"),
        "heartbeat": {"type": "number", "description": "Unix seconds"},
        "seat": {"type": "string", "description": "the node across restarts (host + DATA_DIR): drains are kept "
                                                  "for the seat"},
        "state": {"type": "string", "enum": list(NodeState.ALL),
                  "description": "lending: takes farm jobs; idle-only-active: workstation mode, its user is active; "
                                 "idle-only-unknown: workstation mode, the user's idle time cannot be read (takes "
                                 "none); never: takes no farm jobs; resting: failed 3 farm jobs in a row, takes "
                                 "none until `restingUntil`; draining: the operator's drain, finishes what it runs"},
        "stateReason": _nullable("string", description="why, in words"),
        "restingUntil": _nullable("number", description="Unix seconds, while resting"),
    },
}

FARM_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "state", "data", "progress", "returnvalue", "failedReason", "attemptsMade"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string", "description": "the handler kind, `render`"},
        "state": {"type": "string", "description": "BullMQ's: waiting, prioritized, delayed, active, completed, "
                                                   "failed, ..."},
        "data": {"description": "the spec as queued"},
        "progress": {"description": "`{frame, frames, percent}` once the render reports, else 0"},
        "returnvalue": {"description": "the render's result once completed (with `artifacts`: where the files are)"},
        "failedReason": _nullable("string", description="`cancelled: <reason>` for a cancelled job"),
        "attemptsMade": {"type": "integer"},
        "processedBy": _nullable("string", description="the node that runs it (or ran it last), once active"),
    },
}


def _download(operation: str, summary: str, id_param: dict[str, Any], not_found: str) -> dict[str, Any]:
    """One artifact download route: the token or a signed URL's `exp` and `sig`; Range requests."""
    return {"get": {
        "operationId": operation,
        "summary": f"{summary} (Range requests supported)",
        "description": "Authenticate with the bearer token, or with the `exp` and `sig` of a signed URL.",
        "parameters": [id_param,
                       {"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(ARTIFACT_NAMES)}},
                       {"name": "exp", "in": "query", "required": False, "schema": {"type": "integer"}},
                       {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}}],
        "security": [{"bearer": []}, {}],
        "responses": {"200": {"description": "the file"}, "206": {"description": "a byte range"},
                      **_AUTH_ERRORS, "404": _error(not_found), "416": {"description": "range not satisfiable"}},
    }}


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
        "/v1/jobs/{job_id}/artifacts/{name}": _download("downloadArtifact", "Download one artifact", _JOB_ID,
                                                         "no such job or file"),
    }
    farm_routes = {
        "/v1/farm": {
            "get": {"operationId": "farmStatus", "summary": "The farm: nodes, what they run, queue counts, the link",
                    "description": "200 also when this node is not on a farm (`enabled: false`) or Redis is down "
                                   "(`connected: false` and `error`).",
                    "responses": {"200": _json("the farm status", {"$ref": _REF + "FarmStatus"}), **_AUTH_ERRORS}},
        },
        "/v1/farm/jobs": {
            "post": {
                "operationId": "submitFarmJob",
                "summary": "Queue a preview job on the farm (any node may run it)",
                "description": "Validated as POST /v1/jobs. Older jobs of the same project and timeline are "
                               "superseded unless the spec says `\"supersede\": false`. While the farm's Redis is "
                               "unreachable the job is queued on this node instead: the answer is the local job "
                               "with `queuedLocally: true` and the `reason`, and Location is /v1/jobs/{id}.",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": {"$ref": _REF + "JobSpec"}}}},
                "responses": {
                    "201": _json("queued; Location is the job's URL", {
                        "type": "object", "required": ["id", "state"],
                        "properties": {"id": {"type": "string"},
                                       "state": _nullable("string", description="null if it could not be read"),
                                       "queuedLocally": {"type": "boolean"},
                                       "reason": {"type": "string", "description": "why, when queued locally"}}}),
                    "400": _error("invalid spec (names the field); nothing was queued"), **_AUTH_ERRORS,
                    **_FARM_ERRORS, "413": _error("body too large"),
                    "429": _error("the farm queue holds PREVIEW_QUEUE_MAX waiting jobs")},
            },
        },
        "/v1/farm/jobs/{farm_job_id}": {
            "get": {"operationId": "getFarmJob", "summary": "One farm job, as BullMQ keeps it",
                    "parameters": [_FARM_JOB_ID],
                    "responses": {"200": _json("the farm job", {"$ref": _REF + "FarmJob"}), **_AUTH_ERRORS,
                                  "404": _error("no such farm job"), **_FARM_ERRORS}},
        },
        "/v1/farm/jobs/{farm_job_id}/cancel": {
            "post": {
                "operationId": "cancelFarmJob",
                "summary": "Cancel a farm job wherever it is: removed if it waits, stopped if it runs",
                "parameters": [_FARM_JOB_ID],
                "responses": {
                    "200": _json("removed from the queue: it will not run", _FARM_CANCEL),
                    "202": _json("it runs on some node, which stops it within about 1 s and fails it with "
                                 "`cancelled: <reason>`", _FARM_CANCEL),
                    **_AUTH_ERRORS, "404": _error("no such farm job"),
                    "409": _error("the job already finished (code conflict), or this node is not on a farm "
                                  "(code farm_disabled)"),
                    "503": _FARM_ERRORS["503"]},
            },
        },
        "/v1/farm/nodes/{node_id}/drain": {
            "post": {
                "operationId": "drainFarmNode",
                "summary": "Drain a farm node: it finishes what it runs and takes no more farm jobs until resumed",
                "description": "Any node of the farm, not only this one: the request goes through Redis and the "
                               "node stops taking jobs within about 1 s. The drain outlives the node's restart.",
                "parameters": [_NODE_ID],
                "responses": {"200": _json("drain requested", _FARM_DRAIN), **_AUTH_ERRORS,
                              "404": _error("no live farm node with this id"), **_FARM_ERRORS},
            },
        },
        "/v1/farm/nodes/{node_id}/resume": {
            "post": {
                "operationId": "resumeFarmNode",
                "summary": "Resume a drained farm node: it takes farm jobs again",
                "parameters": [_NODE_ID],
                "responses": {"200": _json("resume requested", _FARM_DRAIN), **_AUTH_ERRORS,
                              "404": _error("no farm node with this id (not live and not drained)"),
                              **_FARM_ERRORS},
            },
        },
    }
    farm_artifact_routes = {
        "/v1/farm/jobs/{farm_job_id}/artifacts": {
            "get": {
                "operationId": "listFarmArtifacts",
                "summary": "A farm preview's files in the farm storage (any node that mounts it), with signed URLs",
                "parameters": [_FARM_JOB_ID, {"name": "expires", "in": "query", "required": False,
                                              "schema": {"type": "integer", "minimum": 60, "maximum": 604800}}],
                "responses": {"200": _json("artifacts", {"type": "object", "required": ["farmJobId", "artifacts"]}),
                              "400": _error("bad expires"), **_AUTH_ERRORS,
                              "404": _error("no published preview, or no farm storage on this node")},
            }
        },
        "/v1/farm/jobs/{farm_job_id}/artifacts/{name}": _download(
            "downloadFarmArtifact", "Download one file of a farm preview", _FARM_JOB_ID, "no such preview or file"),
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
        "FarmStatus": FARM_STATUS_SCHEMA,
        "FarmNode": FARM_NODE_SCHEMA,
        "FarmJob": FARM_JOB_SCHEMA,
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
                 "description": "Queue preview renders, follow them and fetch their files; submit, follow and "
                                "cancel render farm jobs. See docs/api.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {**job_routes, **artifact_routes, **farm_routes, **farm_artifact_routes, **other_routes},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
