"""Farm scaling benchmark: one preview on 1 node against the same preview chunked over 2 nodes (farm/flows.py).

    .venv/bin/python -m tests.bench.bench_farm_scaling [--seconds 120] [--clips 10] [--size 1920x1080]

Each node is a real `preview-desktop --worker` process with PREVIEW_MAX_CONCURRENCY=1 and PREVIEW_RENDER_THREADS=1,
on one real redis-server, sharing one PREVIEW_FARM_STORAGE folder (fresh for every run, so nothing is cached).
Media: `--clips` H.264 clips (testsrc2 + a tone, made once with the ffmpeg CLI into --media, default
~/.cache/preview-desktop-bench/scaling) adding up to `--seconds`. Times are submit → result, from BullMQ's own
timestamps. Prints:
  - 1 node, plain (PREVIEW_FARM_CHUNK_SECONDS=0: today's single render), and 2 nodes chunked; the ratio;
  - the parts of the chunked run: the split (parent's first run), each chunk (pickup wait, wall), the wait for the
    parent's second pickup, the join (audio mux, poster, thumbnails, publish);
  - per-chunk overhead: the same preview again on a warm store (every segment a hit): a chunk then costs only its
    job (Redis), its plan (probing the media) and the store look-ups.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
QUEUE = "previews"


def make_media(folder: Path, clips: int, seconds: float, size: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    each = seconds / clips
    paths = []
    for i in range(clips):
        path = folder / f"clip{i:02d}-{size}-{each:g}s.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                            "-f", "lavfi", "-i", f"sine=frequency={300 + 50 * i}:sample_rate=48000",
                            "-t", f"{each:g}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                            "-c:a", "aac", "-shortest", str(tmp)], check=True)
            tmp.rename(path)
        paths.append(path)
    return paths


def start_node(url: str, work: Path, name: str, storage: Path, chunk_seconds: str, media: Path) -> Any:
    env = dict(os.environ)
    env.update({"DATA_DIR": str(work / name), "PREVIEW_SETTINGS": str(work / f"{name}.json"),
                "PREVIEW_MEDIA_ROOTS": str(media), "PREVIEW_API_PORT": "0", "PREVIEW_MAX_CONCURRENCY": "1",
                "PREVIEW_RENDER_THREADS": "1", "PREVIEW_FARM_STORAGE": str(storage),
                "PREVIEW_FARM_CHUNK_SECONDS": chunk_seconds, "PYTHONPATH": str(REPO), "PREVIEW_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-m", "preview_desktop", "--worker", "--redis", url],
                            stdout=subprocess.PIPE, stderr=(work / f"{name}.log").open("w"), text=True, env=env,
                            cwd=REPO, stdin=subprocess.DEVNULL)
    from tests.support.cli import wait_ready

    wait_ready(proc, timeout=60)
    return proc


async def run_preview(url: str, spec: dict[str, Any], nodes: int, timeout: float) -> dict[str, Any]:
    """Submit and wait; returns wall seconds and the flow's timestamps (BullMQ's, in ms)."""
    from preview_desktop.farm.bullmq_compat import pending_children
    from preview_desktop.farm.client import FarmClient

    client = FarmClient(url, QUEUE)
    try:
        while len((await client.status()).nodes) < nodes:  # every node registered: the split sees them all
            await asyncio.sleep(0.2)
        started = time.time()
        job = await client.queue.add("render", spec, {"attempts": 1})
        children: set[str] = set()
        first_run: tuple[int, int] | None = None
        deadline = time.monotonic() + timeout
        while True:
            state = await client.queue.getJobState(str(job.id))
            children |= set(await pending_children(client.redis, "bull", QUEUE, str(job.id)))
            if first_run is None and children:
                parent = await client.queue.getJob(str(job.id))
                first_run = (int(parent.processedOn or 0), int(time.time() * 1000))
            if state in ("completed", "failed"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"preview {job.id} still {state} after {timeout}s")
            await asyncio.sleep(0.05)
        wall = time.time() - started
        parent = await client.queue.getJob(str(job.id))
        if state != "completed":
            raise RuntimeError(f"preview failed: {parent.failedReason}")
        children |= {key.rsplit(":", 1)[-1] for key in await parent.getChildrenValues()}  # too quick to see
        chunks = []
        for cid in sorted(children, key=int):
            child = await client.queue.getJob(cid)
            if child is not None:
                chunks.append({"id": cid, "added": child.timestamp, "start": child.processedOn,
                               "end": child.finishedOn, "frames": (child.returnvalue or {}).get("frames"),
                               "rendered": (child.returnvalue or {}).get("segmentsRendered"),
                               "node": ((child.returnvalue or {}).get("artifacts") or {}).get("nodeId")})
        return {"wall": wall, "submitted": job.timestamp, "parent": {
            "start": parent.processedOn, "end": parent.finishedOn, "first": first_run},
            "chunks": chunks, "result": parent.returnvalue}
    finally:
        await client.close()


def one_run(media: list[Path], nodes: int, chunk_seconds: str, warm: bool, timeout: float) -> list[dict[str, Any]]:
    from tests.support.redis_server import RedisServer, redis_server_binary

    binary = redis_server_binary()
    assert binary, "redis-server is needed"
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        work = Path(tmp)
        redis = RedisServer(binary, work / "redis", fsync="everysec")
        redis.start()
        procs = [start_node(redis.url, work, f"node{i}", work / "farm", chunk_seconds, media[0].parent)
                 for i in range(nodes)]
        try:
            spec = {"projectId": "bench", "supersede": False,
                    "timeline": {"fps": 25, "clips": [{"source": str(p)} for p in media]}}
            before = sum(cpu_seconds(p.pid) for p in procs)
            runs = [asyncio.run(run_preview(redis.url, spec, nodes, timeout))]
            runs[0]["cpu"] = sum(cpu_seconds(p.pid) for p in procs) - before
            if warm:
                runs.append(asyncio.run(run_preview(redis.url, {**spec, "projectId": "bench-warm"}, nodes, timeout)))
            return runs
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            redis.stop()
            shutil.rmtree(work, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a node process (all its threads) so far: the work, whatever else loads the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parts(run: dict[str, Any]) -> dict[str, float]:
    """Seconds: split (parent's first run until its children exist), chunks (first chunk start → last end),
    rejoin wait (last chunk end → parent's second pickup), join (parent's second run)."""
    chunks = run["chunks"]
    first = run["parent"]["first"]
    last_end = max(c["end"] for c in chunks)
    return {
        "split": (min(c["added"] for c in chunks) - (first[0] if first else run["submitted"])) / 1000,
        "chunk pickup": statistics.mean((c["start"] - c["added"]) / 1000 for c in chunks),
        "chunk walls": [round((c["end"] - c["start"]) / 1000, 2) for c in chunks],  # type: ignore[dict-item]
        "chunks span": (last_end - min(c["start"] for c in chunks)) / 1000,
        "rejoin wait": (run["parent"]["start"] - last_end) / 1000,
        "join": (run["parent"]["end"] - run["parent"]["start"]) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--media", type=Path, default=Path.home() / ".cache" / "preview-desktop-bench" / "scaling")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    media = make_media(args.media, args.clips, args.seconds, args.size)
    print(f"timeline: {args.clips} clips, {args.seconds:g} s, {args.size}; nodes: 1 slot, 1 render thread each")
    plain = one_run(media, 1, "0", False, args.timeout)[0]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"1 node, plain render:   {plain['wall']:7.2f} s   CPU {plain['cpu']:.1f} s")
    chunked, warm = one_run(media, 2, "10", True, args.timeout)
    print(f"2 nodes, chunked:       {chunked['wall']:7.2f} s   speed-up {plain['wall'] / chunked['wall']:.2f}x "
          f"(target 1.7x)   CPU {chunked['cpu']:.1f} s ({chunked['cpu'] / plain['cpu']:.2f}x the plain render's)")
    farm = (chunked["result"] or {}).get("farm") or {}
    print(f"  chunks {farm.get('chunks')} on nodes {farm.get('nodes')}")
    for name, value in parts(chunked).items():
        print(f"  {name:14s} {value if isinstance(value, list) else round(value, 2)}")
    if not warm["chunks"]:
        raise SystemExit("the warm re-run did not split")
    w = parts(warm)
    print(f"warm re-run (all hits): {warm['wall']:7.2f} s")
    for name, value in w.items():
        print(f"  {name:14s} {value if isinstance(value, list) else round(value, 2)}")
    overhead = statistics.mean(w["chunk walls"]) + w["chunk pickup"]  # type: ignore[arg-type]
    serial = parts(chunked)["split"] + parts(chunked)["rejoin wait"] + parts(chunked)["join"]
    work = sum(parts(chunked)["chunk walls"]) - overhead * len(chunked["chunks"])  # type: ignore[arg-type]
    print(f"per-chunk overhead (Redis + plan + store look-ups, warm): {overhead:.2f} s")
    print(f"serial part in the parent (split + rejoin wait + join): {serial:.2f} s")
    print(f"parallel work (chunk walls minus overhead): {work:.2f} s")
    print("model, T(N) = serial + overhead + work / chunks (chunks = min(N, seconds / 10)):")
    for n in (1, 2, 10, 50):
        chunks = max(1, min(n, int(args.seconds // 10)))
        walls = serial + overhead + work / chunks  # the chunks' walls as measured on this machine
        cpu = serial + overhead + chunked["cpu"] / chunks  # nodes on their own cores: work = CPU seconds
        print(f"  {n:3d} nodes ({chunks:2d} chunks): {walls:7.2f} s from walls here ({plain['wall'] / walls:.2f}x); "
              f"{cpu:7.2f} s on dedicated cores ({plain['cpu'] / cpu:.2f}x the plain render's CPU)")

if __name__ == "__main__":
    main()
