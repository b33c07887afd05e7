#!/usr/bin/env python3
"""The smoke test's farm client: adds one `render` job with plain BullMQ (as a studio's Node.js backend would) and
prints the job's return value (the preview.json object) as JSON once a farm node has finished it.

    python packaging/farm_producer.py REDIS_URL SPEC.json [--queue previews] [--timeout 120]

Runs in the development environment (it needs bullmq), not in the bundle. Exit 0 when the job completed,
1 when it failed or did not finish in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path


async def run(url: str, spec: dict[str, object], queue_name: str, timeout: float) -> int:
    from bullmq import Job, Queue

    queue = Queue(queue_name, {"connection": url})
    try:
        job = await queue.add("render", spec, {"attempts": 1, "removeOnComplete": False})
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            state = await queue.getJobState(job.id)
            if state in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        done = await Job.fromId(queue, job.id)
        if state != "completed" or done is None:
            reason = getattr(done, "failedReason", None) if done is not None else None
            print(f"farm_producer: job {job.id} is {state} after {timeout:.0f}s: {reason}", file=sys.stderr)
            return 1
        print(json.dumps({"jobId": job.id, "progress": done.progress, "returnvalue": done.returnvalue}))
        return 0
    finally:
        await queue.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("spec", type=Path)
    parser.add_argument("--queue", default="previews")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    return asyncio.run(run(args.url, spec, args.queue, args.timeout))


if __name__ == "__main__":
    raise SystemExit(main())
