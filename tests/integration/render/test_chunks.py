"""Farm chunks: runs of whole segments rendered into the shared store by other processes (other DATA_DIRs),
after which the parent's normal render finds every segment and AAC chunk there and only joins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from preview_desktop.render.chunks import Chunk, plan_chunks, plan_chunks_for, render_chunk
from preview_desktop.render.segments import plan_segments
from preview_desktop.render.shared_store import SharedSegmentStore
from preview_desktop.render.timeline import build_plan
from tests.integration.render.conftest import spec_for
from tests.integration.render.test_farm_storage import media as farm_media
from tests.integration.render.test_farm_storage import node, render
from tests.integration.render.test_incremental import BASE, assert_same_preview
from tests.support.media import decode

ROOT = Path(__file__).resolve().parents[3]
media = farm_media  # the fixture: four 3 s clips


_CHUNK_NODE = """
import json, sys
from preview_desktop.core.spec import parse_spec
from preview_desktop.render.chunks import Chunk, render_chunk_for
from preview_desktop.settings import load_settings
spec, settings = parse_spec(json.loads(sys.argv[1])), load_settings()
results = [render_chunk_for(spec, Chunk.from_wire(c), settings, check=lambda: None,
                            progress=lambda done, total: None).to_wire() for c in json.loads(sys.argv[2])]
print(json.dumps(results))
"""


def test_chunks_rendered_by_two_nodes_leave_the_parent_only_the_join(tmp_path: Path, media: Path) -> None:
    parent = node(tmp_path, "parent")
    spec = spec_for(BASE, mediaSearchPaths=[str(media)])
    chunks = plan_chunks_for(spec, parent, 3, min_seconds=1.0)
    assert len(chunks) == 3
    plan, _ = build_plan(spec, parent)
    segments = plan_segments(plan, spec)
    assert [c.keys for c in chunks] == [tuple(s.key for s in segments[c.first_segment:c.stop_segment])
                                        for c in chunks]
    env = {**os.environ, "PREVIEW_FARM_STORAGE": str(tmp_path / "farm"), "PREVIEW_MEDIA_ROOTS": str(tmp_path)}
    nodes = [subprocess.Popen([sys.executable, "-c", _CHUNK_NODE, json.dumps(spec.to_wire()),
                               json.dumps([c.to_wire() for c in mine])], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "DATA_DIR": str(tmp_path / name)})
             for name, mine in (("node-1", [chunks[0], chunks[2]]), ("node-2", [chunks[1]]))]
    results = []
    for proc in nodes:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        results.extend(json.loads(stdout.strip().splitlines()[-1]))
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert sum(r["segmentsRendered"] for r in results) == len(segments)
    assert sum(r["frames"] for r in results) == plan.frames
    assert not any(r["mismatched"] for r in results)
    assert not list(tmp_path.rglob("preview.mp4"))  # chunks write into the store only
    assert list((tmp_path / "farm" / "cache" / "frames").rglob("*.bin"))  # the poster frame, for the parent
    doc = render(parent, BASE, tmp_path / "joined", mediaSearchPaths=[str(media)])
    assert doc["cache"]["segmentsRendered"] == 0 and doc["cache"]["audioChunksRendered"] == 0
    assert doc["cache"]["segmentsReused"] == len(segments)
    joined = decode(tmp_path / "joined" / "preview.mp4")
    assert len(joined.frames) == plan.frames == doc["video"]["frames"]
    render(parent.with_overrides(cache_max_bytes=0), BASE, tmp_path / "single", mediaSearchPaths=[str(media)])
    assert_same_preview(joined, decode(tmp_path / "single" / "preview.mp4"))


def test_a_node_computing_other_keys_renders_nothing(tmp_path: Path, media: Path) -> None:
    settings = node(tmp_path, "node")
    spec = spec_for(BASE, mediaSearchPaths=[str(media)])
    plan, _ = build_plan(spec, settings)
    chunk = plan_chunks(plan, spec, 2, min_seconds=1.0)[1]
    foreign = Chunk(chunk.index, chunk.first_segment, chunk.stop_segment, chunk.start, chunk.stop,
                    tuple("v" + "0" * 64 for _ in chunk.keys))
    with SharedSegmentStore(tmp_path / "farm" / "cache", 10**9) as store:
        result = render_chunk(plan, spec, foreign, store, tmp_path, check=lambda: None,
                              progress=lambda done, total: None)
        assert result.mismatched and result.rendered == 0 and len(store) == 0
