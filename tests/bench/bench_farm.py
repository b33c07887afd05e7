"""Farm benchmark (run on demand): end-to-end jobs/s through one node with a trivial handler, and the pickup
latency of an idle farm.

    .venv/bin/python -m tests.bench.bench_farm [--jobs 5000] [--concurrency 4] [--idle-samples 20]

One in-process node (qasync loop, the real FarmMember, the engine's render pool) on a private redis-server.
Jobs are added with addBulk before the node starts, so the number is the node's consuming rate: fetch, validate
the spec, run the handler on a pool thread, complete in Redis. Pickup latency = processedOn - timestamp of the
job (both stamped by Redis), after the node has been idle past a whole drainDelay; its reference is a Redis round
trip (PING) from the same loop, measured in the same run. The test suite checks only that an idle node does not
wait out the drain delay (tests/integration/farm/test_farm.py); this is where the figure lives.

Reference, measured in the same run on the same Redis and the same kind of loop, in a fresh process (whichever
of the two runs second in one process is slowed by the first's leftovers): bullmq's own Worker (`run()`, same
concurrency) with a no-op coroutine as processor: no spec check, no render pool, no cancel or progress loops.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_JOBS_PER_S = 1000.0
TARGET_PICKUP_S = 0.100


def noop(job: Any, spec: Any, ctx: Any) -> dict[str, Any]:
    return {"projectId": job.project_id}


SPEC = {"projectId": "bench", "timeline": {"fps": 25, "clips": [{"gap": 1.0}]}}


async def fill(queue: Any, jobs: int) -> None:
    for start in range(0, jobs, 1000):
        batch = [{"name": "noop", "data": SPEC, "opts": {"removeOnComplete": True}}
                 for _ in range(min(1000, jobs - start))]
        await queue.addBulk(batch)


async def reference(url: str, jobs: int, concurrency: int) -> float:
    """jobs/s of a bare bullmq Worker with a no-op processor: the floor of the library this node builds on."""
    from bullmq import Queue, Worker

    queue = Queue("bench-reference", {"connection": url})
    await fill(queue, jobs)
    done = asyncio.Event()
    completed = 0

    async def processor(job: Any, token: str) -> dict[str, Any]:
        return {}

    def on_completed(*_: Any) -> None:
        nonlocal completed
        completed += 1
        if completed >= jobs:
            done.set()

    t0 = time.perf_counter()
    worker = Worker("bench-reference", processor, {"connection": url, "concurrency": concurrency})
    worker.on("completed", on_completed)
    await done.wait()
    elapsed = time.perf_counter() - t0
    await worker.close()
    await queue.close()
    return jobs / elapsed


async def scenario(node: Any, client: Any, jobs: int, idle_samples: int, idle_wait: float) -> dict[str, float]:
    await fill(client.queue, jobs)
    t0 = time.perf_counter()
    await node.start()
    farm = node.farm
    while farm.completed < jobs:
        await asyncio.sleep(0.005)
    # the last completions are written right after the handler ends: wait for Redis to show them all
    while (await client.queue.getJobCounts("active"))["active"] > 0:
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - t0
    latencies: list[float] = []
    await asyncio.sleep(idle_wait)
    for i in range(idle_samples):
        job = await client.queue.add("noop", SPEC, {})
        while True:
            fresh = await client.queue.getJob(job.id)
            if fresh is not None and fresh.finishedOn:
                break
            await asyncio.sleep(0.002)
        latencies.append((fresh.processedOn - fresh.timestamp) / 1000)
        await asyncio.sleep(idle_wait if i % 5 == 4 else 0.3)
    pings = []  # the floor of any pickup: one round trip to the same Redis from the same loop, measured now
    for _ in range(50):
        t0 = time.perf_counter()
        await client.redis.ping()
        pings.append(time.perf_counter() - t0)
    await node.stop(grace=1.0)
    return {"elapsed": elapsed, "rate": jobs / elapsed, "p50": statistics.median(latencies),
            "p99": sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)], "max": max(latencies),
            "ping": statistics.median(pings)}


def run_reference(url: str, jobs: int, concurrency: int) -> int:
    from PySide6.QtCore import QCoreApplication

    from preview_desktop.engine.event_loop import make_event_loop

    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    loop = make_event_loop(app)
    with loop:
        print(loop.run_until_complete(reference(url, jobs, concurrency)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument("--idle-wait", type=float, default=6.0, help="idle seconds before some samples")
    parser.add_argument("--fsync", choices=("always", "everysec"), default="everysec",
                        help="Redis appendfsync (everysec is Redis's default with an append-only file)")
    parser.add_argument("--reference-only", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_only:
        return run_reference(args.reference_only, args.jobs, args.concurrency)

    from PySide6.QtCore import QCoreApplication

    from preview_desktop.core.handler import HandlerRegistry
    from preview_desktop.engine.event_loop import make_event_loop
    from preview_desktop.farm.client import FarmClient
    from preview_desktop.node import Node
    from preview_desktop.settings import load_settings
    from tests.support.redis_server import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-farm-"))
    server = RedisServer(binary, tmp / "redis", fsync=args.fsync)
    server.start()
    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    loop = make_event_loop(app)
    try:
        settings = load_settings(
            env={"DATA_DIR": str(tmp / "data"), "REDIS_URL": server.url, "PREVIEW_MEDIA_ROOTS": str(tmp),
                 "PREVIEW_MAX_CONCURRENCY": str(args.concurrency)},
            settings_file=tmp / "settings.json",
        )
        (tmp / "data").mkdir()
        registry = HandlerRegistry()
        registry.register("noop", noop)
        node = Node(settings, loop, registry=registry, with_api=False)
        client = FarmClient(server.url, settings.farm_queue)
        ref = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_farm", "--reference-only", server.url, "--jobs", str(args.jobs),
             "--concurrency", str(args.concurrency)], capture_output=True, text=True, check=True)
        ref_rate = float(ref.stdout.strip().splitlines()[-1])
        with loop:
            result = loop.run_until_complete(
                scenario(node, client, args.jobs, args.idle_samples, args.idle_wait))
            loop.run_until_complete(client.close())
    finally:
        server.stop()
    rate, p50, p99 = result["rate"], result["p50"], result["p99"]
    print(f"end to end, one node, {args.concurrency} slots, trivial handler: {args.jobs} jobs in "
          f"{result['elapsed']:.2f}s = {rate:,.0f} jobs/s (target >= {TARGET_JOBS_PER_S:,.0f}: "
          f"{rate / TARGET_JOBS_PER_S:.2f}x)")
    print(f"reference, bullmq's own Worker, no-op processor, same kind of loop, same Redis: {ref_rate:,.0f} jobs/s; "
          f"this node runs at {rate / ref_rate:.2f}x of it")
    print(f"idle pickup latency over {args.idle_samples} jobs: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {result['max'] * 1000:.1f} ms (target < {TARGET_PICKUP_S * 1000:.0f} ms: "
          f"{TARGET_PICKUP_S / max(p99, 1e-6):.1f}x headroom at p99); p50 = {p50 / result['ping']:.1f}x a Redis "
          f"round trip measured now ({result['ping'] * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
