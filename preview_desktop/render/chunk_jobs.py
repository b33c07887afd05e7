"""The renderer's side of the farm's chunked previews, for farm/flow_jobs.py (which may not import render/).
Cheap to import (node start-up): av, cv2 and the chunk code load when a job runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.handler import JobContext
    from ..core.job import Job
    from ..core.layout import Layout
    from ..core.spec import JobSpec
    from ..settings import Settings


class ChunkJobs:
    """What the farm's chunk handlers (farm/flow_jobs.py, which may not import render/) ask of the renderer,
    bound to one node's settings and layout: wired in node.default_registry."""

    def __init__(self, settings: Settings, layout: Layout) -> None:
        from .renderer import RenderHandler

        self.settings = settings
        self._plain = RenderHandler(settings, layout)

    def plan(self, spec: JobSpec, count: int, min_seconds: float) -> list[dict[str, Any]]:
        from .chunks import plan_chunks_for

        return [c.to_wire() for c in plan_chunks_for(spec, self.settings, count, min_seconds=min_seconds)]

    def chunk(self, spec: JobSpec, chunk: Any, ctx: JobContext) -> dict[str, Any]:
        from .chunks import Chunk, render_chunk_for

        return render_chunk_for(spec, Chunk.from_wire(chunk), self.settings, check=ctx.check,
                                progress=ctx.progress).to_wire()

    def join(self, spec: JobSpec, folder: Path, ctx: JobContext, *, job_id: str, created_at: float | None,
             farm: dict[str, Any]) -> dict[str, Any]:
        """The normal render (all cache hits after the chunks: it joins), preview.json with a "farm" entry."""
        from .files import write_preview_json
        from .renderer import render_to_folder

        document = render_to_folder(spec, folder, job_id=job_id, settings=self.settings, ctx=ctx,
                                    created_at=created_at)
        document["farm"] = farm
        write_preview_json(folder, document)
        return document

    def plain(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
        """Today's render into DATA_DIR/previews: a preview too short to split."""
        return self._plain(job, spec, ctx)
