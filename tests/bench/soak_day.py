"""A chaotic day, accelerated: many small real renders through two local workers and two farm nodes while
workers and nodes are killed with SIGKILL every few seconds and Redis restarts once; then one worker's memory
over a long quiet run.

    .venv/bin/python -m tests.bench.soak_day [--jobs 1000] [--rss-jobs 2000] [--phases chaos,rss]
    .venv/bin/python -m tests.bench.soak_day --jobs 60 --rss-jobs 100 --rss-warmup 20      # a quick look

Chaos phase: a real redis-server (append-only, fsync always, as docs/farm.md recommends), two `--worker`
processes on one shared DATA_DIR (no Redis), two `--worker --redis` farm nodes (each its own DATA_DIR, one shared
PREVIEW_FARM_STORAGE, PREVIEW_FARM_CHUNK_SECONDS 2), one render slot each. Half the jobs are queued locally
through the job service (as the CLI and the window do), half are added to the BullMQ queue as a studio backend
does (job name `render`, data = the spec, the producer's own job id so a retried add is idempotent); a few farm
jobs are 4 s long and split into chunk jobs. Every job renders a 1–2 s 320×180 clip to a 160×90 preview with
its own burn-in label (so no job is an output-cache hit). Jobs are fed to keep a backlog, not all at once.
A chaos loop SIGKILLs a random process every --kill-every seconds (±40 %) and starts it again 0.3-1.5 s later
(at most --max-down processes down or starting at once); when half the jobs have finished it SIGKILLs
redis-server and starts it again on the same port after --redis-down seconds.

Verdict: every job reached done (a failed job counts as lost and is printed with its reason); every finished
job's folder holds a whole preview (preview.json parses, preview.mp4 decodes to the expected frame count, poster
and thumbnails there); no other folder under any previews/ root (nodes' DATA_DIRs and the farm storage): no
second publication of a job, no staging leftovers; no process died unless killed. Before counting, the farm nodes
start once more and stop after their orphan sweep at join (farm/orphans.py): a node killed between publishing a
preview and completing its job leaves a copy that a sweep removes; those removed are reported, any left is stray.

RSS phase: one `--worker` (no kills) runs --rss-jobs jobs; its RSS (psutil) after --rss-warmup jobs against at
the end (medians of the samples over 5 % of the jobs at each point) must grow less than 10 %.

Exit status 1 when a target is missed. Work folder: a fresh temporary one (kept with --keep, printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.soak_checks import verdict
from tests.bench.soak_cluster import Media, make_media
from tests.bench.soak_run import ChaosOutcome, RssOutcome, chaos_phase, rss_phase


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the chaos phase (half local, half farm)")
    parser.add_argument("--farm-share", type=float, default=0.5, help="share of the jobs sent to the farm")
    parser.add_argument("--chunked", type=float, default=0.05, help="share of farm jobs long enough to split")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills (±40%%)")
    parser.add_argument("--max-down", type=int, default=1,
                        help="processes down or starting at once (a kill waits while this many are)")
    parser.add_argument("--redis-down", type=float, default=3.0, help="seconds Redis stays down")
    parser.add_argument("--backlog", type=int, default=30, help="waiting jobs kept per side while feeding")
    parser.add_argument("--rss-jobs", type=int, default=2000, help="jobs through the measured worker")
    parser.add_argument("--rss-warmup", type=int, default=200, help="jobs before the first RSS figure")
    parser.add_argument("--rss-concurrency", type=int, default=2, help="render slots of the measured worker")
    parser.add_argument("--phases", default="chaos,rss", help="chaos, rss or both (comma separated)")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds per phase (default: 3 s per job)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--media", type=Path, default=Path.home() / ".cache" / "preview-desktop-bench" / "soak")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores, previews)")
    return parser.parse_args(argv)


def row(name: str, value: str, target: str, ok: bool) -> tuple[str, str, str, bool]:
    return (name, value, target, ok)


def chaos_rows(out: ChaosOutcome) -> list[tuple[str, str, str, bool]]:
    check = out.verdict
    lost = [f for f in out.finished.values() if f.state != "done"]
    return [
        row("jobs submitted (local + farm)", f"{out.submitted} ({out.local} + {out.farm}, {out.chunked} split)",
            "", True),
        row("jobs done", str(sum(1 for f in out.finished.values() if f.state == "done")), str(out.submitted),
            not lost and len(out.finished) == out.submitted),
        row("jobs lost (failed, or never finished)", str(len(lost) + out.submitted - len(out.finished)), "0",
            not lost and len(out.finished) == out.submitted),
        row("previews valid (json + frames + files)", f"{check.valid}/{check.checked}", "all",
            check.valid == check.checked),
        row("previews half (missing/broken files)", str(len(check.half)), "0", not check.half),
        row("orphan farm previews removed by their sweep", str(out.orphans_removed), "", True),
        row("previews published twice (stray folders)", str(len(check.stray)), "0", not check.stray),
        row("staging leftovers (.staging-*)", str(len(check.tmp)), "0", not check.tmp),
        row("cache temp files of killed writers", f"{len(check.cache_tmp)} (swept after 1 h)", "", True),
        row("kill -9 (workers / nodes)", f"{out.kills_local} / {out.kills_farm}", "", True),
        row("redis-server restarts", f"{out.redis_restarts} (down {out.redis_down:.1f} s)", "1",
            out.redis_restarts == 1),
        row("unexpected process exits", str(len(out.crashes)), "0", not out.crashes),
        row("chaos wall time", f"{out.wall:.0f} s ({out.submitted / max(out.wall, 1e-9):.2f} jobs/s)", "", True),
    ]


def rss_rows(out: RssOutcome) -> list[tuple[str, str, str, bool]]:
    growth = (out.rss_end - out.rss_warm) / out.rss_warm * 100 if out.rss_warm else float("inf")
    return [
        row("RSS worker jobs done", f"{out.done}/{out.jobs}", str(out.jobs), out.done == out.jobs),
        row(f"RSS after {out.warmup} jobs", f"{out.rss_warm / 2**20:.1f} MiB", "", True),
        row(f"RSS after {out.jobs} jobs", f"{out.rss_end / 2**20:.1f} MiB", "", True),
        row("RSS growth", f"{growth:+.1f} %", "< 10 %", growth < 10.0),
        row("RSS peak", f"{out.rss_peak / 2**20:.1f} MiB", "", True),
        row("RSS wall time", f"{out.wall:.0f} s ({out.done / max(out.wall, 1e-9):.2f} jobs/s, "
            f"{out.cpu / max(out.done, 1):.2f} s CPU per job)", "", True),
    ]


def print_table(rows: list[tuple[str, str, str, bool]]) -> None:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"\n{'figure':<{width}}  {'value':<{vwidth}}  target   ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {target:<7}  {'yes' if ok else 'NO'}")


def report_chaos(out: ChaosOutcome) -> None:
    for f in out.finished.values():
        if f.state != "done":
            print(f"LOST {f.side} job {f.key}: {f.state}: {f.reason}")
    for key in sorted(set(out.keys) - set(out.finished)):
        print(f"LOST job {key}: never finished")
    for line in out.verdict.half[:20]:
        print(f"HALF {line}")
    for line in out.verdict.stray[:20]:
        print(f"STRAY {line}")
    for line in out.verdict.tmp[:20]:
        print(f"TMP {line}")
    for line in out.crashes:
        print(f"CRASH {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    rng = random.Random(args.seed)
    media: Media = make_media(args.media)
    work = Path(tempfile.mkdtemp(prefix="soak-day-"))
    print(f"work folder {work}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
          flush=True)
    rows: list[tuple[str, str, str, bool]] = []
    try:
        if "chaos" in phases:
            timeout = args.timeout or 3.0 * args.jobs + 120
            chaos = asyncio.run(chaos_phase(args, media, work / "chaos", rng, timeout))
            chaos.verdict = verdict(chaos.expected, chaos.roots, chaos.caches)
            report_chaos(chaos)
            rows += chaos_rows(chaos)
        if "rss" in phases:
            timeout = args.timeout or 3.0 * args.rss_jobs + 120
            rss = asyncio.run(rss_phase(args, media, work / "rss", timeout))
            rows += rss_rows(rss)
            if rss.samples:
                print("RSS samples (jobs done: MiB): " + ", ".join(
                    f"{d}: {r / 2**20:.0f}" for d, r in rss.samples[:: max(1, len(rss.samples) // 12)]))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not rows:
        print("nothing to do: --phases takes chaos, rss", file=sys.stderr)
        return 2
    print_table(rows)
    missed = [r[0] for r in rows if not r[3]]
    print(f"\n{'ALL TARGETS MET' if not missed else 'MISSED: ' + '; '.join(missed)}"
          f" ({time.strftime('%Y-%m-%d %H:%M')})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
