"""Farm chunks: a long preview cut into runs of whole segments that different nodes render into the shared
segment store, after which the parent's normal incremental render finds every segment there and only joins.

The farm code (BullMQ flows) calls, in order:

1. `plan_chunks_for(spec, settings, count)` on the parent: the plan cut into at most `count` chunks of whole
   segments, balanced by frames; each `Chunk.to_wire()` goes into one child job's data (with the spec).
2. `render_chunk_for(spec, Chunk.from_wire(data), settings, check=..., progress=...)` on any node: renders the
   chunk's segments that the store lacks, plus the AAC chunks under its frames and the poster frame when it
   falls inside, into PREVIEW_FARM_STORAGE/cache. Writes no preview.mp4. Returns a `ChunkResult`.
3. the parent's normal render (`render_to_folder`): every segment and AAC chunk is a hit; it joins.

Each node prepares the spec from the job data itself, `core.intake.prepare_wire_spec(data, roots,
path_map=settings.path_map)`, so paths written on the submitting machine are mapped to its own mounts; segment
keys do not depend on those paths (segments.Identities), so every node computes the parent's keys.

A chunk carries the parent's segment keys. A node that computes other keys (another renderer or FFmpeg
version, or media that differs on its mount) would fill the store with segments the parent never looks up:
it renders nothing and reports `mismatched`, and the parent renders those segments itself.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RenderError
from .audio_cache import render_audio
from .codec import AUDIO_RATE
from .incremental import IncrementalRender
from .plan import Plan, to_frames
from .segment_cache import Store
from .segments import AudioChunk, Identities, Segment, plan_segments

if TYPE_CHECKING:
    from ..core.spec import JobSpec
    from ..settings import Settings

log = logging.getLogger(__name__)
MIN_CHUNK_SECONDS = 10.0  # of output: a chunk's render should outweigh a child job's start-up and plan build


@dataclass(frozen=True)
class Chunk:
    """Segments [first_segment, stop_segment) of a plan = output frames [start, stop)."""

    index: int
    first_segment: int
    stop_segment: int
    start: int
    stop: int
    keys: tuple[str, ...] = ()  # the parent's keys of those segments (checked by the rendering node)

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def to_wire(self) -> dict[str, Any]:
        """JSON for a child job's data (camelCase like the spec)."""
        return {"index": self.index, "segments": [self.first_segment, self.stop_segment],
                "frames": [self.start, self.stop], "keys": list(self.keys)}

    @classmethod
    def from_wire(cls, data: Any) -> Chunk:
        try:
            first, stop_segment = (int(v) for v in data["segments"])
            start, stop = (int(v) for v in data["frames"])
            chunk = cls(int(data["index"]), first, stop_segment, start, stop,
                         tuple(str(k) for k in data.get("keys") or ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise RenderError(f"malformed chunk description: {exc}") from None
        if not (0 <= first < stop_segment and 0 <= start < stop):
            raise RenderError(f"malformed chunk description: {data!r}")
        return chunk


@dataclass
class ChunkResult:
    """What one chunk render did; `to_wire()` is a child job's return value."""

    index: int
    keys: list[str]
    frames: int
    reused: int = 0
    rendered: int = 0
    audio_reused: int = 0
    audio_rendered: int = 0
    mismatched: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "keys": self.keys, "frames": self.frames, "segmentsReused": self.reused,
                "segmentsRendered": self.rendered, "audioChunksReused": self.audio_reused,
                "audioChunksRendered": self.audio_rendered, "mismatched": self.mismatched,
                "warnings": self.warnings}


def split_segments(segments: Sequence[Segment], count: int, *, min_frames: int = 1) -> list[Chunk]:
    """Cut a plan's segments into at most `count` chunks of whole segments, balanced by frames: boundaries at
    the segment edges nearest k/count of the frames. Fewer chunks when a chunk would have fewer than
    `min_frames` frames or there are fewer segments than chunks. Never empty for a non-empty plan."""
    if not segments:
        return []
    total = segments[-1].stop - segments[0].start
    count = max(1, min(count, len(segments), total // max(1, min_frames)))
    edges = [segment.stop for segment in segments]  # frame after each segment
    cuts: list[int] = []  # segment index each chunk ends before
    previous = 0
    for k in range(1, count):
        ideal = segments[0].start + total * k / count
        low, high = previous + 1, len(segments) - (count - k)  # keep room for one segment per later chunk
        best = min(range(low, high + 1), key=lambda i: (abs(edges[i - 1] - ideal), i))
        cuts.append(best)
        previous = best
    chunks = []
    for index, (first, stop) in enumerate(zip([0, *cuts], [*cuts, len(segments)], strict=True)):
        part = segments[first:stop]
        chunks.append(Chunk(index, first, stop, part[0].start, part[-1].stop, tuple(s.key for s in part)))
    return chunks


def plan_chunks(plan: Plan, spec: JobSpec, count: int, *, min_seconds: float = MIN_CHUNK_SECONDS) -> list[Chunk]:
    """`split_segments` of the plan's segments, each chunk at least `min_seconds` of output (about)."""
    return split_segments(plan_segments(plan, spec), count, min_frames=max(1, to_frames(min_seconds, plan.fps)))


def audio_selector(plan: Plan, chunk: Chunk) -> Callable[[AudioChunk], bool]:
    """The AAC chunks a video chunk encodes: those starting under its frames (chunks partition the samples,
    since frame f maps to sample round(f * 48000 / fps) and the last chunk ends at the last sample)."""
    first, stop = _sample(plan, chunk.start), _sample(plan, chunk.stop)
    return lambda audio: first <= audio.start < stop


def _sample(plan: Plan, frame: int) -> int:
    """The output sample at a frame edge, as `segments.total_samples` counts (the same at the last frame)."""
    return round(frame * AUDIO_RATE / plan.fps)


def render_chunk(plan: Plan, spec: JobSpec, chunk: Chunk, store: Store, work_dir: Path, *,
                 check: Callable[[], None], progress: Callable[[int, int], None],
                 threads: int | None = None) -> ChunkResult:
    """Render the chunk's missing segments (and its AAC chunks) into `store`; `work_dir` holds the temporary
    MP4 of one segment at a time. Progress counts the chunk's own frames."""
    identities = Identities()
    segments = plan_segments(plan, spec, identities)
    mine = segments[chunk.first_segment: chunk.stop_segment]
    keys = [segment.key for segment in mine]
    result = ChunkResult(chunk.index, keys, chunk.frames)
    if not mine or mine[0].start != chunk.start or mine[-1].stop != chunk.stop:
        raise RenderError(f"chunk {chunk.index} (frames {chunk.start}-{chunk.stop}) does not fit this plan")
    if chunk.keys and tuple(keys) != chunk.keys:
        log.warning("chunk %d: this node computes other segment keys than the parent (renderer/FFmpeg version "
                    "or media content differ): nothing rendered, the parent renders it", chunk.index)
        result.mismatched = True
        return result
    done = 0

    def step(_done: int, _total: int) -> None:
        progress(min(chunk.frames, done + render.done), chunk.frames)

    render = IncrementalRender(plan, spec, work_dir, store, check=check, progress=step, threads=threads)
    try:
        for segment in mine:
            check()
            hit = store.get_video(segment.key)
            if hit is not None:
                hit[0].close()
                if hit[1].frames == segment.frames:
                    result.reused += 1
                    done += segment.frames
                    progress(done + render.done, chunk.frames)
                    continue
            path = work_dir / f"chunk-{chunk.index}-{segment.start}.mp4"
            try:
                meta = render.render_segment(segment, path)
                store.put_video(segment.key, path, meta)
            finally:
                path.unlink(missing_ok=True)
            render.keep_target(segment)
            result.rendered += 1
        if spec.output.audio:
            _packets, counts = render_audio(plan, spec, store, check=check, identities=identities,
                                            select=audio_selector(plan, chunk))
            result.audio_reused, result.audio_rendered = counts["reused"], counts["rendered"]
    finally:
        if render.composer is not None:
            render.composer.close()
        store.cull()
    result.warnings = list(dict.fromkeys(plan.warnings))
    return result


def plan_chunks_for(spec: JobSpec, settings: Settings, count: int, *,
                    min_seconds: float = MIN_CHUNK_SECONDS) -> list[Chunk]:
    """On the parent: build the plan as a render would and cut it into at most `count` chunks."""
    from .timeline import build_plan

    plan, _loaded = build_plan(spec, settings)
    return plan_chunks(plan, spec, count, min_seconds=min_seconds)


def render_chunk_for(spec: JobSpec, chunk: Chunk, settings: Settings, *, check: Callable[[], None],
                     progress: Callable[[int, int], None]) -> ChunkResult:
    """On any node: render one chunk into PREVIEW_FARM_STORAGE/cache. Raises RenderError when the farm storage
    is not set or not reachable (a chunk rendered into a node's own cache would be lost to the parent)."""
    from .renderer import limit_threads
    from .shared_store import open_shared_store
    from .timeline import build_plan

    if settings.farm_storage is None:
        raise RenderError("rendering a farm chunk needs PREVIEW_FARM_STORAGE")
    check()
    plan, _loaded = build_plan(spec, settings)
    try:
        store = open_shared_store(settings)
    except OSError as exc:
        raise RenderError(f"farm storage {settings.farm_storage} is not usable: {exc}") from exc
    threads = limit_threads(settings.render_threads)
    with store, tempfile.TemporaryDirectory(prefix="preview-chunk-") as work:
        return render_chunk(plan, spec, chunk, store, Path(work), check=check, progress=progress,
                            threads=threads)
