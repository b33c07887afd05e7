"""The renderer's entry points: the engine's handler, the foreground render (with its cache-hit path), demo media.

Importing this module is cheap on purpose (the CLI imports it at start-up): av, cv2 and opentimelineio are
imported inside the functions that need them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.farm_mark import FarmMark
from ..core.layout import ARTIFACT_NAMES, Layout, swap_in
from ..errors import InvalidInput, JobTimeout, MediaError, MediaNotFound, disk_full_from, is_disk_full
from .files import sha256_hex, write_preview_json
from .media import MISSING

if TYPE_CHECKING:
    from ..core.handler import JobContext
    from ..core.job import Job
    from ..core.spec import JobSpec
    from ..settings import Settings

def render_to_folder(
    spec: JobSpec,
    out_dir: Path,
    *,
    job_id: str,
    settings: Settings,
    ctx: JobContext,
    created_at: float | None = None,
    inputs: list[Any] | None = None,
) -> dict[str, Any]:
    """Render the spec's artifacts (or a dry-run preview.json) into `out_dir`, an existing empty folder.

    `inputs`, when given, receives the files the render reads, stat'ed before reading (for the output cache).
    Raises InvalidInput subclasses for bad input, MediaError for offline media under `strict`, RenderError
    (naming clip, file and reason) for failures while rendering, JobCancelled/JobTimeout from `ctx.check()`.
    """
    from . import artifacts
    from .timeline import build_plan

    started = time.time()
    check = _checker(ctx, settings)
    check()
    plan, loaded = build_plan(spec, settings)
    if inputs is not None:
        from .output_cache import plan_inputs

        inputs.extend(plan_inputs(plan, loaded))
    offline = [layer for layer in plan.video if layer.source.kind == "offline"]
    if spec.output.strict and offline:
        first = offline[0]
        missing = all(layer.source.reason == MISSING for layer in offline)  # not here; another node may have them
        raise (MediaNotFound if missing else MediaError)(
            f"clip {first.name!r}: media offline ({first.source.reason}): {first.source.path or 'no path'}"
            + (f" (and {len(offline) - 1} more)" if len(offline) > 1 else ""),
            clip=first.name,
            file=str(first.source.path),
        )
    timeline_info = {
        "source": loaded.source_text,
        "format": loaded.format,
        "digest": loaded.digest,
        "clips": plan.clip_count,
    }
    common: dict[str, Any] = {
        "job_id": job_id,
        "project_id": spec.projectId,
        "created_at": created_at,
        "started_at": started,
        "plan": plan,
        "timeline": timeline_info,
    }
    if spec.dryRun:
        document = artifacts.preview_document(dry_run=True, **common)
        write_preview_json(out_dir, document)
        return document

    ctx.progress(0, plan.frames)
    thumbnails, facts = _render_media(plan, spec, out_dir, settings=settings, check=check, progress=ctx.progress)
    mp4 = out_dir / "preview.mp4"
    video = {
        "file": "preview.mp4",
        "codec": "h264",
        "width": plan.width,
        "height": plan.height,
        "fps": int(plan.fps) if float(plan.fps).is_integer() else round(plan.fps, 3),
        "frames": facts["frames"],
        "durationSeconds": round(facts["frames"] / plan.fps, 6),
        "audio": "aac" if spec.output.audio else None,
        "bytes": mp4.stat().st_size,
        "sha256": sha256_hex(mp4),
    }
    document = artifacts.preview_document(dry_run=False, video=video, thumbnails=thumbnails, **common)
    document["cache"] = facts.get("cache")  # segment reuse counts (docs/incremental.md); null: cache disabled
    write_preview_json(out_dir, document)
    return document


def _render_media(plan: Any, spec: JobSpec, out_dir: Path, *, settings: Settings, check: Any,
                  progress: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """preview.mp4, poster and thumbnails: through the segment cache (docs/incremental.md), or in one pass when
    PREVIEW_CACHE_MAX_BYTES is 0. Returns (thumbnails entry, facts)."""
    threads = limit_threads(settings.render_threads)
    if settings.cache_max_bytes <= 0:
        from .pipeline import render_video

        collector, facts = render_video(plan, spec, out_dir, check=check, progress=progress, threads=threads)
        return collector.write(out_dir), facts
    from .incremental import render_incremental
    from .segment_cache import store_for

    with store_for(settings) as store:
        return render_incremental(plan, spec, out_dir, store, check=check, progress=progress, threads=threads)


def limit_threads(render_threads: int | None) -> int | None:
    """Apply PREVIEW_RENDER_THREADS to OpenCV's worker pool (process-wide, so every render on this node shares
    the cap) and return it for the decoders. None leaves every library at its default (all cores)."""
    if render_threads is not None:
        import cv2

        if cv2.getNumThreads() != render_threads:
            cv2.setNumThreads(render_threads)
    return render_threads


def _checker(ctx: JobContext, settings: Settings) -> Any:
    """ctx.check() plus the per-job timeout from settings when the engine set no deadline."""
    deadline = None
    if ctx.deadline is None and settings.job_timeout > 0:
        deadline = time.monotonic() + settings.job_timeout

    def check() -> None:
        ctx.check()
        if deadline is not None and time.monotonic() > deadline:
            raise JobTimeout(f"job {ctx.job.id} ran past its time limit ({settings.job_timeout:g} s)")

    return check


class RenderHandler:
    """The engine's handler for job kind "render": stage, render, publish into DATA_DIR/previews/{project}/{job}.

    Built once per node with the settings and layout it renders with, so a job sees them typed."""

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout

    def __call__(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
        layout = self.layout
        layout.remove_staging_for(job.id)
        staging = layout.staging_dir(spec.projectId, job.id)
        try:
            document, record = _render_or_reuse(
                spec, staging, job_id=job.id, settings=self.settings, ctx=ctx, created_at=job.created_at
            )
            if job.origin == "farm" and job.farm_id and job.worker:  # published with it: farm/orphans.py reads it
                FarmMark(self.settings.farm_queue, job.farm_id, job.worker, job.id).write(staging)
            final = layout.publish(staging, spec.projectId, job.id)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)  # nothing half-written is ever published
            if is_disk_full(exc):  # ENOSPC from a file write, PyAV or SQLite: one typed error naming the folder
                raise disk_full_from(exc, staging, self.settings.data_dir) from exc
            raise
        record(final)
        return document


def _render_or_reuse(
    spec: JobSpec, folder: Path, *, job_id: str, settings: Settings, ctx: JobContext, created_at: float | None,
    request: str | None = None,
) -> tuple[dict[str, Any], Callable[[Path], None]]:
    """Reuse a finished job's artifacts when the whole input is the same (render/output_cache.py), else render.

    Returns the preview.json object and `record(published_folder)`, to call once the folder is in place: it
    remembers the render (or the new copy) in the output cache. Never fails a job for a broken cache.
    """
    from . import output_cache as oc

    keyed = None
    if not spec.dryRun and settings.cache_max_bytes > 0:  # PREVIEW_CACHE_MAX_BYTES=0 turns every cache off
        try:
            keyed = oc.output_key(spec.to_wire(), settings.effective_media_roots)
        except oc.CACHE_ERRORS as exc:
            oc.log.warning("output cache: cannot key job %s (%s)", job_id, exc)
    if keyed is None:
        return render_to_folder(spec, folder, job_id=job_id, settings=settings, ctx=ctx,
                                created_at=created_at), lambda _folder: None
    key, digest = keyed
    document = _reuse(key, folder, settings=settings, ctx=ctx, job_id=job_id, project_id=spec.projectId,
                      created_at=created_at)
    if document is not None:
        linked = oc.copy_of(folder)  # stat'ed before the rename that publishes it (see copy_of)
        return document, lambda published: _record(settings, "add_copy", key, oc.moved(linked, published),
                                                   request=request, project_id=spec.projectId)
    inputs: list[Any] = []
    document = render_to_folder(spec, folder, job_id=job_id, settings=settings, ctx=ctx, created_at=created_at,
                                inputs=inputs)
    rendered = oc.copy_of(folder)
    return document, lambda published: _record(settings, "remember", key, job_id=job_id, document=document,
                                               copy=oc.moved(rendered, published), inputs=inputs, digest=digest,
                                               request=request)


def _reuse(key: str, folder: Path, *, settings: Settings, ctx: JobContext, job_id: str, project_id: str,
           created_at: float | None) -> dict[str, Any] | None:
    """Link a finished job's artifacts into `folder` and write this job's preview.json; None on a miss."""
    from . import output_cache as oc

    started = time.time()
    ctx.check()
    cache = oc.open_cache(settings.data_dir)
    if cache is None:
        return None
    try:
        with cache:
            found = cache.find(key)
    except oc.CACHE_ERRORS as exc:
        oc.log.warning("output cache: lookup failed (%s: %s); rendering", type(exc).__name__, exc)
        return None
    if found is None:
        return None
    entry, copy = found
    if not oc.link_artifacts(copy, folder):
        for leftover in folder.iterdir():
            leftover.unlink()
        return None
    document = oc.reused_document(entry, job_id=job_id, project_id=project_id, created_at=created_at,
                                  started_at=started)
    write_preview_json(folder, document)
    frames = int((document.get("video") or {}).get("frames") or 0)
    ctx.progress(frames, frames)
    return document


def _record(settings: Settings, method: str, key: str, *args: Any, **kwargs: Any) -> None:
    from . import output_cache as oc

    cache = oc.open_cache(settings.data_dir)
    if cache is None:
        return
    try:
        with cache:
            getattr(cache, method)(key, *args, **kwargs)
    except oc.CACHE_ERRORS as exc:
        oc.log.warning("output cache: could not record %s (%s: %s)", key[:12], type(exc).__name__, exc)


def render_foreground(spec: JobSpec, out_dir: Path, *, settings: Settings, ctx: JobContext,
                      request: str | None = None) -> dict[str, Any]:
    """`preview-desktop render --out DIR`: the artifacts land directly in DIR, all at once.

    DIR is created when missing. An existing DIR must be empty or hold only a previous render's artifacts
    (preview.mp4, preview.json, poster.jpg, thumbs.jpg, thumbs.vtt), which are replaced; anything else is
    refused (InvalidInput) rather than mixed with or deleted. Identical input reuses a finished job's
    artifacts; `request` (output_cache.request_key) lets the next identical command find them without
    validating.
    """
    out_dir = Path(os.path.abspath(out_dir))
    job_id = ctx.job.id  # the id the command made: one job, one id in preview.json and the caches
    records: list[Callable[[Path], None]] = []

    def fill(staging: Path) -> dict[str, Any]:
        document, record = _render_or_reuse(spec, staging, job_id=job_id, settings=settings, ctx=ctx,
                                            created_at=ctx.job.created_at, request=request)
        records.append(record)
        return document

    document = _place(out_dir, fill)
    assert document is not None
    records[0](out_dir)
    return document


def reuse_foreground(argument: str, cwd: Path, overrides: Mapping[str, Any], out_dir: Path, *,
                     settings: Settings, created_at: float) -> tuple[dict[str, Any] | None, str | None]:
    """The cache-hit path of `preview-desktop render`: no pydantic, av, cv2, numpy or OTIO is imported.

    Returns (preview.json object, request key) on a hit; (None, request key) on a miss, and the caller
    validates and renders as usual, passing the key to `render_foreground`.
    """
    from ..core.handler import JobContext
    from ..core.job import Job, new_job_id
    from . import output_cache as oc

    if settings.cache_max_bytes <= 0:
        return None, None
    request = oc.request_key(argument, cwd, overrides, settings.effective_media_roots, oc.MAX_REQUEST_BYTES)
    if request is None:
        return None, None
    cache = oc.open_cache(settings.data_dir)
    if cache is None:
        return None, request
    try:
        with cache:
            resolved = cache.resolve_request(request)
    except oc.CACHE_ERRORS:
        return None, request
    if resolved is None:
        return None, request
    key, project_id = resolved
    out_dir = Path(os.path.abspath(out_dir))
    job_id = new_job_id()
    ctx = JobContext(job=Job(id=job_id, project_id=project_id, spec={}))
    linked: list[dict[str, Any] | None] = []

    def fill(staging: Path) -> dict[str, Any] | None:
        document = _reuse(key, staging, settings=settings, ctx=ctx, job_id=job_id, project_id=project_id,
                          created_at=created_at)
        linked.append(oc.copy_of(staging))  # before the rename (see copy_of)
        return document

    document = _place(out_dir, fill)
    if document is not None:
        _record(settings, "add_copy", key, oc.moved(linked[0], out_dir))
    return document, request


def _place(out_dir: Path, fill: Callable[[Path], dict[str, Any] | None]) -> dict[str, Any] | None:
    """Fill a hidden sibling of DIR, then rename it into place, replacing a previous render's artifacts as a
    whole. When `fill` returns None, DIR is left as it was."""
    _check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.staging-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        document = fill(staging)
        if document is None:
            shutil.rmtree(staging, ignore_errors=True)
            return None
        _check_out_dir(out_dir)
        swap_in(staging, out_dir, out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}")
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(exc):  # `render --out` on a full disk: one line, not a traceback
            raise disk_full_from(exc, out_dir.parent) from exc
        raise
    return document


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise InvalidInput(f"--out {out_dir}: exists and is not a folder")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ARTIFACT_NAMES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise InvalidInput(
            f"--out {out_dir}: folder is not empty and not a previous render output (holds {shown})"
        )


def make_demo(media_dir: Path) -> Path:
    """Write demo clips, a still and an OTIO timeline using them into `media_dir`; returns the timeline."""
    from .demo import make_demo as _make

    return _make(media_dir)
