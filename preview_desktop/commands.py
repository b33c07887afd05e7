"""The CLI's commands. Each returns an exit code; PreviewErrors travel up to cli.main, which reports them.

Queue commands act through the job service (the same one the API and the window use), run inline: the CLI has
no event loop of its own to keep free, so store calls simply block.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.job import Job, JobState
from .errors import EXIT_FAILED, EXIT_OK, PreviewError
from .settings import Settings

if TYPE_CHECKING:  # the store pulls in pydantic and diskcache: `render` on a cache hit needs neither
    from .queue.local import LocalStore
    from .service.jobs import JobService


def _open_store(settings: Settings) -> LocalStore:
    """The local store, checked: a damaged one is set aside and refilled (queue/recovery.py; its log line goes
    to stderr)."""
    from .core.layout import Layout
    from .queue.recovery import open_checked

    return open_checked(settings.queue_dir, Layout(settings.data_dir).previews, settings.queue_max)[0]


def _service(settings: Settings) -> JobService:
    from .service.jobs import JobService, inline

    return JobService(_open_store(settings), settings.effective_media_roots, inline, path_map=settings.path_map)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "project", None):
        overrides["projectId"] = args.project
    if getattr(args, "priority", None) is not None:
        overrides["priority"] = args.priority
    if getattr(args, "dry_run", False):
        overrides["dryRun"] = True
    return overrides


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _progress_text(job: Job) -> str:
    if job.state is JobState.RUNNING and job.progress.frames:
        return f"{job.progress.fraction * 100:5.1f}%"
    if job.state is JobState.RETRYING and job.not_before:
        return f"in {max(0.0, job.not_before - time.time()):.0f}s"
    return ""


# ---------------------------------------------------------------------------------------------- submit
def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio  # lazily: `render` never needs it (start-up time)

    return asyncio.run(_submit(args, settings))


async def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from .core.submission import PathSource

    if args.farm:
        return await _submit_to_farm(args, settings)
    jobs = _service(settings)
    job = await jobs.submit(PathSource(args.source, Path.cwd(), _overrides(args)))
    if not args.wait:
        if args.json:
            _print_json(job.to_wire())
        else:
            print(job.id)
        return EXIT_OK
    if not args.json:
        print(f"queued {job.id} ({job.project_id})", file=sys.stderr)
    job = await _follow(jobs, job.id, TerminalBar(enabled=not args.json and sys.stderr.isatty()))
    if args.json:
        _print_json(job.to_wire())
    else:
        _print_outcome(job, settings)
    return EXIT_OK if job.state is JobState.SUCCEEDED else EXIT_FAILED


async def _submit_to_farm(args: argparse.Namespace, settings: Settings) -> int:
    """`submit --farm`: the job goes to the farm's queue; with Redis away it is queued here, and the line says so."""
    from .core.submission import PathSource, QueuedLocally
    from .errors import FarmDisabled, InvalidInput

    if not settings.redis_url:
        raise FarmDisabled()
    if args.wait:
        raise InvalidInput("--wait follows local jobs only; follow a farm job with GET /v1/farm/jobs/{id}")
    from .farm.gateway import ClientSeat, FarmGateway
    from .service.jobs import JobService, inline

    seat = ClientSeat(settings.redis_url, settings.farm_queue)
    store = _open_store(settings)
    try:
        jobs = JobService(store, settings.effective_media_roots, inline, farm=FarmGateway(seat),
                          queue_max=settings.queue_max, path_map=settings.path_map)
        sent = await jobs.submit_to_farm(PathSource(args.source, Path.cwd(), _overrides(args)))
    finally:
        await seat.close()
        store.close()
    if isinstance(sent, QueuedLocally):
        print(f"{sent.reason}: queued locally as {sent.job.id}", file=sys.stderr)
        if args.json:
            _print_json({**sent.job.to_wire(), "queuedLocally": True, "reason": sent.reason})
        else:
            print(sent.job.id)
        return EXIT_OK
    if args.json:
        _print_json({"id": sent.id, "state": sent.state, "queuedLocally": False})
    else:
        print(sent.id)
    return EXIT_OK


async def _follow(jobs: JobService, job_id: str, bar: TerminalBar) -> Job:
    """Poll the store until the job finishes; draw a progress bar on a terminal."""
    import asyncio  # lazily: `render` never needs it (start-up time)

    waiting_since = time.monotonic()
    hinted = False
    try:
        while True:
            job = await jobs.get(job_id)
            if job.state.finished:
                return job
            if job.state is JobState.RUNNING and job.progress.frames:
                bar.update(job.progress.frame, job.progress.frames, fps=job.progress.fps)
            else:
                bar.show(job.display_state + (f" ({_progress_text(job)})" if _progress_text(job) else ""))
            if (
                not hinted
                and job.state is JobState.QUEUED
                and time.monotonic() - waiting_since > 5
                and not await jobs.list_jobs(states=[JobState.RUNNING], limit=1)
            ):
                hinted = True
                print("\nwaiting for a worker: start one with `preview-desktop --worker` or open the window",
                      file=sys.stderr)
            await asyncio.sleep(0.2)
    finally:
        bar.close()


def _print_outcome(job: Job, settings: Settings) -> None:
    if job.state is JobState.SUCCEEDED:
        from .core.layout import Layout

        folder = Layout(settings.data_dir).preview_dir(job.project_id, job.id)
        print(f"succeeded: {folder}")
        for warning in (job.result or {}).get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
    else:
        state = job.display_state
        print(f"{state}: {job.error}" if job.error else state, file=sys.stderr)


# ---------------------------------------------------------------------------------------------- reading
def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio  # lazily: `render` never needs it (start-up time)

    states = [JobState(args.state)] if args.state else None
    jobs = asyncio.run(_service(settings).list_jobs(states=states, project_id=args.project))
    if args.json:
        _print_json([j.to_wire() for j in jobs])
        return EXIT_OK
    if not jobs:
        print("no jobs", file=sys.stderr)
        return EXIT_OK
    print(f"{'JOB ID':<24}  {'STATE':<10}  {'PROGRESS':>8}  {'PRI':>3}  {'CREATED':<10}  PROJECT / TIMELINE")
    for job in jobs:
        print(f"{job.id:<24}  {job.display_state:<10}  {_progress_text(job):>8}  {job.priority:>3}  "
              f"{_age(job.created_at):<10}  {job.project_id} / {Path(job.label).name}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio  # lazily: `render` never needs it (start-up time)

    job = asyncio.run(_service(settings).get(args.job_id))
    if args.json:
        _print_json(job.to_wire())
        return EXIT_OK
    rows = [
        ("job", job.id),
        ("project", job.project_id),
        ("timeline", job.label),
        ("state", job.display_state + (f" ({_progress_text(job)})" if _progress_text(job) else "")),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts_made} of {job.attempts_allowed}"),
        ("created", f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(job.created_at))}"),
    ]
    if job.worker:
        rows.append(("worker", job.worker))
    if job.finished_at and job.started_at:
        rows.append(("duration", f"{job.finished_at - job.started_at:.1f}s"))
    if job.superseded_by:
        rows.append(("superseded by", job.superseded_by))
    if job.error:
        rows.append(("error", job.error))
    if job.state is JobState.SUCCEEDED:
        from .core.layout import Layout

        rows.append(("preview", str(Layout(settings.data_dir).preview_dir(job.project_id, job.id))))
    for key, value in rows:
        print(f"{key + ':':<15}{value}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- actions
def _each(args: argparse.Namespace, settings: Settings, action: str) -> int:
    import asyncio  # lazily: `render` never needs it (start-up time)

    jobs = _service(settings)
    act = jobs.cancel if action == "cancel" else jobs.retry
    worst = EXIT_OK
    results: list[dict[str, Any]] = []
    for job_id in args.job_ids:
        try:
            job = asyncio.run(act(job_id))
        except PreviewError as exc:
            print(f"preview-desktop: error: {exc}", file=sys.stderr)
            worst = max(worst, exc.exit_code)
            continue
        results.append(job.to_wire())
        if not args.json:
            print(f"{job.id}: {job.display_state}")
    if args.json:
        _print_json(results)
    return worst


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    return _each(args, settings, "cancel")


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    return _each(args, settings, "retry")


# ---------------------------------------------------------------------------------------------- render, demo
def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    from .core.handler import JobContext
    from .core.job import Job, new_job_id
    from .render.renderer import render_foreground, reuse_foreground

    out = Path(args.out).absolute()
    created = time.time()
    request = None
    if not args.dry_run:  # the output cache's fast path: a request that rendered before, unchanged since
        result, request = reuse_foreground(args.source, Path.cwd(), _overrides(args), out, settings=settings,
                                           created_at=created)
        if result is not None:
            return _report_render(args, out, result)
    from .core.intake import prepare_spec

    spec = prepare_spec(args.source, Path.cwd(), settings.effective_media_roots, _overrides(args),
                        path_map=settings.path_map)
    job = Job(id=new_job_id(), project_id=spec.projectId, spec=spec.to_wire(), created_at=created)
    bar = TerminalBar(enabled=not args.json and sys.stderr.isatty())
    ctx = JobContext(job=job, progress_fn=bar.update)
    previous = signal.signal(signal.SIGINT, lambda *_: ctx.cancel_event.set())
    try:
        result = render_foreground(spec, out, settings=settings, ctx=ctx, request=request)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    return _report_render(args, out, result)


def _report_render(args: argparse.Namespace, out: Path, result: dict[str, Any]) -> int:
    if args.json:
        _print_json(result)
    else:
        reused = f" (reused the artifacts of job {result['reusedFrom']})" if result.get("reusedFrom") else ""
        print(f"rendered {out}{reused}")
        for warning in result.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


class TerminalBar:
    """One progress line on stderr (a terminal only), redrawn at most 10 times a second; cleared at the end.

    Fed from a render thread (`render`) or the polling loop (`submit --wait`)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._width = 0

    def update(self, frame: int, frames: int, fps: float | None = None) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and frame < frames):
            return
        fraction = frame / frames if frames else 0.0
        rate = frame / max(1e-6, now - self._started) if fps is None else fps
        filled = int(30 * fraction)
        eta = f" eta {max(0.0, (frames - frame) / rate):.0f}s" if rate > 0 else ""
        self.show(f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {frame}/{frames} {rate:.0f} fps{eta}")

    def show(self, line: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._last = time.monotonic()
            self._width = max(self._width, len(line))
            sys.stderr.write("\r" + line.ljust(self._width))
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .core.layout import Layout
    from .render.renderer import make_demo

    timeline = make_demo(Layout(settings.data_dir).media)
    if args.json:
        _print_json({"timeline": str(timeline)})
    else:
        print(timeline)
        print(f"render it:  preview-desktop render {timeline} --out demo-preview", file=sys.stderr)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """The watch folders in the foreground (watch/): exports are queued; a worker or the window renders them."""
    from .watch.cli import run_watch

    return run_watch(args, settings, _service(settings))


COMMANDS = {
    "submit": cmd_submit, "list": cmd_list, "status": cmd_status, "cancel": cmd_cancel, "retry": cmd_retry,
    "render": cmd_render, "demo": cmd_demo, "watch": cmd_watch,
}
