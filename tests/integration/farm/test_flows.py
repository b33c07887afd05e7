"""One preview, many nodes (farm/flows.py): a plain `render` job split into chunk jobs on two worker processes
sharing a farm storage folder, joined and published there. Real redis-server, real renders, real media."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.farm.bullmq_compat import pending_children
from preview_desktop.farm.client import FarmClient
from tests.support.media import decode, make_clip
from tests.support.redis_server import RedisServer

from .conftest import NodeProcess, arun, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
QUEUE = "previews"


def farm_env(storage: Path, **extra: str) -> dict[str, str]:
    """A node with the real renderer on a shared folder; chunks of 2 s so small test media splits."""
    return {"PREVIEW_FARM_STORAGE": str(storage), "PREVIEW_FARM_CHUNK_SECONDS": "2", **extra}


def clips(folder: Path, count: int, seconds: float, size: tuple[int, int] = (320, 180)) -> list[Path]:
    return [make_clip(folder / f"c{i}.mp4", seconds=seconds, size=size, colour=(40 * i % 255, 80, 160),
                      beeps=[0.5]) for i in range(count)]


def preview_spec(project: str, sources: list[Path], size: tuple[int, int] = (160, 90)) -> dict[str, Any]:
    return {"projectId": project, "timeline": {"fps": 25, "clips": [{"source": str(p)} for p in sources]},
            "output": {"width": size[0], "height": size[1]}}


async def finished(client: FarmClient, job_id: str, timeout: float,
                   seen: list[Any] | None = None) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        got = await client.get(job_id)
        if seen is not None and got is not None:
            seen.append(got["progress"])
        return got if got is not None and got["state"] in ("completed", "failed") else None

    result: dict[str, Any] = await wait_for(check, timeout, interval=0.1)
    return result


async def chunk_ids(client: FarmClient, parent: str, count: int) -> list[str]:
    async def listed() -> list[str] | None:
        ids = await pending_children(client.redis, "bull", QUEUE, parent)
        return ids if len(ids) >= count else None

    ids: list[str] = await wait_for(listed, 60, interval=0.05)
    return ids


def test_a_long_preview_is_split_across_two_nodes_and_joined(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    storage = tmp_path / "farm"
    sources = clips(tmp_path, 4, 2.0)
    a = start_node(redis_server.url, concurrency=1, env=farm_env(storage), real_render=True)
    b = start_node(redis_server.url, concurrency=1, env=farm_env(storage), real_render=True)
    progress: list[Any] = []

    async def scenario() -> dict[str, Any]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            job = await client.queue.add("render", preview_spec("flow", sources), {"attempts": 1})
            return await finished(client, str(job.id), 180, progress)
        finally:
            await client.close()

    result = arun(scenario(), timeout=200)
    assert result["state"] == "completed", (result["failedReason"], a.log()[-3000:], b.log()[-3000:])
    value = result["returnvalue"]
    farm = value["farm"]
    assert farm["chunks"] >= 2 and len(farm["chunkResults"]) == farm["chunks"]
    assert len(farm["nodes"]) == 2, farm  # both nodes rendered a chunk
    assert value["cache"]["segmentsRendered"] == 0  # the parent only joined
    folder = storage / "previews" / "flow" / result["id"]
    assert value["artifacts"]["path"] == str(folder)
    doc = json.loads((folder / "preview.json").read_text())
    assert doc["farm"]["chunks"] == farm["chunks"] and sorted(doc["farm"]["nodes"]) == sorted(farm["nodes"])
    decoded = decode(folder / "preview.mp4")
    assert len(decoded.frames) == 200 == doc["video"]["frames"]
    assert (folder / "poster.jpg").exists() or any(folder.glob("poster*"))
    ends = [p for p in progress if isinstance(p, dict) and p.get("frames")]
    assert ends and ends[-1]["frames"] == 200 and ends[-1]["frame"] == 200 and ends[-1]["chunks"] == farm["chunks"]


def test_a_node_killed_mid_chunk_does_not_lose_the_preview(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    storage = tmp_path / "farm"
    sources = clips(tmp_path, 4, 5.0, size=(640, 360))
    env = farm_env(storage, PREVIEW_RENDER_THREADS="1")
    nodes = [start_node(redis_server.url, concurrency=1, env=env, real_render=True) for _ in range(2)]

    async def scenario() -> tuple[dict[str, Any], NodeProcess]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            job = await client.queue.add("render", preview_spec("killed", sources, (640, 360)), {"attempts": 2})
            ids = await chunk_ids(client, str(job.id), 2)

            async def running_victim() -> NodeProcess | None:
                for cid in ids:
                    got = await client.get(cid)
                    prog = got["progress"] if got else None
                    if got and got["state"] == "active" and isinstance(prog, dict) and 0 < prog["frame"] < prog[
                            "frames"]:
                        for node in nodes:
                            if f"farm: job {cid} (" in node.log():
                                return node
                return None

            victim: NodeProcess = await wait_for(running_victim, 60, interval=0.05)
            victim.kill()
            killed = time.monotonic()
            result = await finished(client, str(job.id), 150)
            print(f"preview completed {time.monotonic() - killed:.1f} s after the kill -9")
            return result, victim
        finally:
            await client.close()

    result, victim = arun(scenario(), timeout=220)
    assert result["state"] == "completed", result["failedReason"]
    assert len(decode(storage / "previews" / "killed" / result["id"] / "preview.mp4").frames) == 500
    survivor = next(n for n in nodes if n is not victim)
    assert survivor.proc.poll() is None


def test_cancelling_a_chunked_preview_stops_every_chunk(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    storage = tmp_path / "farm"
    sources = clips(tmp_path, 4, 5.0, size=(640, 360))
    env = farm_env(storage, PREVIEW_RENDER_THREADS="1")
    nodes = [start_node(redis_server.url, concurrency=1, env=env, real_render=True) for _ in range(2)]

    async def scenario() -> tuple[str, float, list[dict[str, Any] | None], dict[str, Any]]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            job = await client.queue.add("render", preview_spec("cancel", sources, (640, 360)), {"attempts": 1})
            ids = await chunk_ids(client, str(job.id), 2)

            async def both_running() -> bool:
                got = [await client.get(cid) for cid in ids]
                return all(g is not None and g["state"] == "active" and isinstance(g["progress"], dict)
                           and g["progress"]["frame"] > 0 for g in got)

            await wait_for(both_running, 60, interval=0.05)
            started = time.monotonic()
            answer = await client.cancel(str(job.id), "test cancel")

            async def chunks_stopped() -> bool:
                states = [await client.queue.getJobState(cid) for cid in ids]
                return all(s in ("failed", "unknown") for s in states)

            await wait_for(chunks_stopped, 20, interval=0.05)  # failed: stopped by the cancel, not run out
            stopped = time.monotonic() - started
            chunks = [await client.get(cid) for cid in ids]
            parent = await finished(client, str(job.id), 30)
            await asyncio.sleep(0.5)
            return answer, stopped, chunks, parent
        finally:
            await client.close()

    answer, stopped, chunks, parent = arun(scenario(), timeout=200)
    assert answer == "requested"
    print(f"chunks stopped {stopped:.2f} s after the cancel")
    assert all(c is None or "cancelled: test cancel" in (c["failedReason"] or "") for c in chunks), chunks
    assert parent["state"] == "failed" and "cancelled: test cancel" in parent["failedReason"], (
        parent["failedReason"], [n.log()[-2500:] for n in nodes])
    assert not list((storage / "previews").rglob("preview.mp4")) if (storage / "previews").exists() else True


def test_a_chunk_that_fails_for_good_fails_the_preview_with_its_reason(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    storage = tmp_path / "farm"
    good = clips(tmp_path, 2, 2.0)
    bad = make_clip(tmp_path / "bad.mp4", seconds=4.0, size=(320, 180), faststart=True)
    data = bytearray(bad.read_bytes())  # the index (moov, first) stays whole: the file probes fine when planned
    noise = random.Random(1)
    for i in range(len(data) * 3 // 4, len(data)):  # its last second decodes to garbage: the second chunk's
        data[i] = noise.randrange(256)
    bad.write_bytes(bytes(data))
    for _ in range(2):
        start_node(redis_server.url, concurrency=1, env=farm_env(storage), real_render=True)

    async def scenario() -> dict[str, Any]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            spec = preview_spec("broken", [*good, bad])
            spec["output"]["strict"] = True  # undecodable media fails the render instead of holding a frame
            job = await client.queue.add("render", spec, {"attempts": 1})
            return await finished(client, str(job.id), 120)
        finally:
            await client.close()

    result = arun(scenario(), timeout=150)
    assert result["state"] == "failed", result
    reason = result["failedReason"]
    print(f"failedReason: {reason}")
    assert reason.startswith("chunk 2 of 2 (job ") and "failed: " in reason, reason
    assert "bad.mp4" in reason, reason
    assert not (storage / "previews" / "broken").exists() or not list((storage / "previews").rglob("preview.mp4"))


def test_a_preview_too_short_to_split_renders_on_one_node_as_before(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    storage = tmp_path / "farm"
    sources = clips(tmp_path, 1, 3.0)  # 3 s: less than two chunks of 2 s
    node = start_node(redis_server.url, concurrency=1, env=farm_env(storage), real_render=True)

    async def scenario() -> dict[str, Any]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            job = await client.queue.add("render", preview_spec("short", sources), {"attempts": 1})
            return await finished(client, str(job.id), 60)
        finally:
            await client.close()

    result = arun(scenario(), timeout=90)
    assert result["state"] == "completed", result["failedReason"]
    value = result["returnvalue"]
    assert "farm" not in value and value["video"]["frames"] == 75
    assert Path(value["artifacts"]["path"]).is_relative_to(node.data_dir)  # today's place: DATA_DIR/previews
    assert not isinstance(result["progress"], dict) or "chunks" not in result["progress"]


def test_a_node_js_producer_adding_a_plain_render_job_gets_a_chunked_preview(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    from .test_interop_node import bullmq_dir

    folder = bullmq_dir(6)
    storage = tmp_path / "farm"
    sources = clips(tmp_path, 4, 2.0)
    for _ in range(2):
        start_node(redis_server.url, concurrency=1, env=farm_env(storage), real_render=True)
    env = dict(os.environ, BULLMQ_DIR=str(folder), REDIS_URL=redis_server.url,
               SPEC=json.dumps(preview_spec("from_node", sources)))
    try:
        proc = subprocess.run(["node", str(Path(__file__).with_name("node_flow_producer.js"))],
                              capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{exc.stdout!r} {exc.stderr!r}") from None
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = out["result"]
    assert result["farm"]["chunks"] >= 2 and result["video"]["frames"] == 200
    assert result["artifacts"]["path"] == str(storage / "previews" / "from_node" / out["id"])
    assert out["progress"] and out["progress"][-1]["frame"] == 200 and out["progress"][-1]["chunks"] >= 2
    frames = [p["frame"] for p in out["progress"]]
    assert any(0 < f < 200 for f in frames) and frames == sorted(frames)  # one number, rising, as chunks run
    assert out["dependencies"]["processed"] == result["farm"]["chunks"]  # Node's BullMQ sees the flow too


def otio_timeline(path: Path, sources: list[Path], seconds: float, fps: int = 25) -> Path:
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name=path.stem)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for source in sources:
        track.append(otio.schema.Clip(
            name=source.name, media_reference=otio.schema.ExternalReference(target_url=str(source)),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                                 otio.opentime.RationalTime(seconds * fps, fps))))
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def test_a_newer_job_supersedes_a_chunked_preview_and_stops_its_chunks(
    redis_server: RedisServer, start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    from preview_desktop.core.spec import parse_spec

    storage = tmp_path / "farm"
    sources = clips(tmp_path, 4, 5.0, size=(640, 360))
    timeline = otio_timeline(tmp_path / "cut.otio", sources, 5.0)
    env = farm_env(storage, PREVIEW_RENDER_THREADS="1")
    for _ in range(2):
        start_node(redis_server.url, concurrency=1, env=env, real_render=True)
    spec = {"projectId": "sup", "timeline": str(timeline), "output": {"width": 640, "height": 360}}

    async def scenario() -> tuple[float, dict[str, Any], dict[str, Any], list[dict[str, Any] | None]]:
        client = FarmClient(redis_server.url, QUEUE)
        try:
            old = await client.submit(parse_spec(spec))
            ids = await chunk_ids(client, old, 2)

            async def both_running() -> bool:
                got = [await client.get(cid) for cid in ids]
                return all(g is not None and g["state"] == "active" for g in got)

            await wait_for(both_running, 60, interval=0.05)
            started = time.monotonic()
            new = await client.submit(parse_spec({**spec, "output": {"width": 320, "height": 180}}))

            async def chunks_stopped() -> bool:
                states = [await client.queue.getJobState(cid) for cid in ids]
                return all(s in ("failed", "unknown") for s in states)

            await wait_for(chunks_stopped, 20, interval=0.05)  # failed: stopped by the newer job, not run out
            stopped = time.monotonic() - started
            chunks = [await client.get(cid) for cid in ids]
            return stopped, await finished(client, old, 30), await finished(client, new, 120), chunks
        finally:
            await client.close()

    stopped, old, new, chunks = arun(scenario(), timeout=220)
    print(f"superseded chunks stopped {stopped:.2f} s after the newer job was submitted")
    assert old["state"] == "failed" and f"cancelled: superseded by job {new['id']}" in old["failedReason"], old
    assert all(c is None or "superseded by job" in (c["failedReason"] or "") for c in chunks), chunks
    assert new["state"] == "completed", new["failedReason"]
    assert new["returnvalue"]["farm"]["chunks"] >= 2
    assert [p.name for p in (storage / "previews" / "sup").iterdir()] == [new["id"]]
