"""Fake job kinds for farm tests, put into worker subprocesses by tests/support/fake_node.py (conftest.start_node).

`render` here replaces the real renderer: it "renders" an inline timeline of gaps by sleeping one frame period
per frame (checking cancel and reporting progress like the real one), so tests run in seconds and need no
media. A timeline *file* (supersede tests need one) holds `{"seconds": s}`: the fake renders s seconds of
gap. A clip whose source is `fail.mp4` fails (retryable). Each run appends "projectId pid" to the file named by
FARM_TEST_RUN_LOG, so tests can count how often each job ran and where.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from preview_desktop.core.handler import HandlerRegistry, JobContext
from preview_desktop.core.job import Job
from preview_desktop.core.spec import JobSpec
from preview_desktop.errors import RenderError

RUN_LOG_ENV = "FARM_TEST_RUN_LOG"


def _log_run(job: Job) -> None:
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{job.project_id} {os.getpid()}\n")


def fake_render(job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    _log_run(job)
    timeline = job.spec.get("timeline")
    clips = timeline.get("clips", []) if isinstance(timeline, dict) else []
    fps = float(timeline.get("fps", 25)) if isinstance(timeline, dict) else 25.0
    if any(c.get("source") == "fail.mp4" for c in clips):
        raise RenderError("clip 'fail.mp4': cannot decode (test failure)")
    seconds = sum(float(c.get("gap", 0)) for c in clips)
    if isinstance(timeline, str):
        seconds = float(json.loads(Path(timeline).read_text()).get("seconds", 1.0))
    frames = max(1, round(seconds * fps))
    started = time.monotonic()
    for frame in range(1, frames + 1):
        ctx.check()
        delay = started + frame / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ctx.progress(frame, frames)
    return {"jobId": job.id, "projectId": job.project_id, "status": "succeeded",
            "video": {"file": "preview.mp4", "frames": frames}, "pid": os.getpid()}


def busy(job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Like `render`, but burns the CPU in Python for the whole time: the worst case for the event loop's share
    of the GIL, which renews the job's lock."""
    _log_run(job)
    timeline = job.spec["timeline"]
    seconds = sum(float(c.get("gap", 0)) for c in timeline["clips"])
    started = time.monotonic()
    spins = 0
    while time.monotonic() - started < seconds:
        for _ in range(10_000):
            spins += 1
        ctx.check()
        ctx.progress(min(99, int(100 * (time.monotonic() - started) / seconds)), 100)
    return {"jobId": job.id, "projectId": job.project_id, "spins": spins}


def noop(job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    return {"projectId": job.project_id}


def register(registry: HandlerRegistry) -> None:
    registry.register("render", fake_render)
    registry.register("noop", noop)
    registry.register("busy", busy)


def gap_spec(project: str, seconds: float, fps: float = 25, **fields: Any) -> dict[str, Any]:
    return {"projectId": project, "timeline": {"fps": fps, "clips": [{"gap": seconds}]}, **fields}


def timeline_file(path: Path, seconds: float) -> str:
    """A timeline file for the fake renderer: it 'renders' `seconds` of gap."""
    path.write_text(json.dumps({"seconds": seconds}))
    return str(path)
