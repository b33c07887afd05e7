"""Incremental-render benchmark: whole `preview-desktop render` commands re-rendering after a small edit, against
the whole command's full render of the same timeline from a fresh DATA_DIR.

Timeline: 10 clips of 6 s (60 s) cut from one of bench_render's 1080p H.264 + AAC sources ("hard": the noisy
1080p30 clip; "easy": testsrc2 1080p25, cheap to decode), rendered at the default preview output (640×360
ultrafast + AAC). Each round, per case, in a new empty DATA_DIR:
  full render of the base timeline (cold cache: the denominator), then the edited timeline in the same DATA_DIR
  (the numerator). Both are whole processes (`python -m preview_desktop render SPEC --out DIR --json`), so start-up
  and imports count as a user sees them.
  (a) clip 6 slipped by 0.5 s, default burn-ins (timecode + DRAFT label);
  (b) clip 6 shortened by 1 s (a ripple: every later clip moves), record-timecode burn-in off;
  (c) as (b) with the timecode burnt in: the known expensive case (docs/incremental.md), only with BENCH_CASES=abc.
Reports each ratio re-render / full render per round and their median (target ≤ 0.15 for a and b), in wall time
and in CPU time (user + sys of the command: much less disturbed by other work on a loaded machine), and the cache
counts the re-render wrote into preview.json (segments and AAC chunks reused / encoded again).

Run on demand (not part of the test suite), from the repository root:
    python -m tests.bench.bench_incremental      # or: pytest tests/bench/bench_incremental.py -s
Environment: BENCH_ROUNDS (default 3), BENCH_CASES (default "ab"; "abc" adds case c), BENCH_SOURCES (default
"hard,easy").
"""

from __future__ import annotations

import copy
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.bench_render import EASY_FPS, EASY_SECONDS, make_easy, make_source
from tests.bench.user_env import user_env

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CASES = os.environ.get("BENCH_CASES", "ab")
SOURCES = [s.strip() for s in os.environ.get("BENCH_SOURCES", "hard,easy").split(",") if s.strip()]
SOURCE_SECONDS = 20
CLIPS, CLIP_SECONDS, EDITED = 10, 6.0, 5
ROOT = Path(__file__).resolve().parents[2]


def timeline(source: Path, seconds: float, fps: int) -> dict[str, Any]:
    clips = []
    for k in range(CLIPS):
        start = round((k * 1.37) % (seconds - CLIP_SECONDS - 1), 2)
        clips.append({"source": str(source), "in": start, "out": start + CLIP_SECONDS, "name": f"shot {k + 1}"})
    return {"fps": fps, "clips": clips}


def slipped(base: dict[str, Any]) -> dict[str, Any]:
    edited = copy.deepcopy(base)
    clip = edited["clips"][EDITED]
    clip["in"] += 0.5
    clip["out"] += 0.5
    return edited


def shortened(base: dict[str, Any]) -> dict[str, Any]:
    edited = copy.deepcopy(base)
    edited["clips"][EDITED]["out"] -= 1.0
    return edited


def render(work: Path, data: Path, tl: dict[str, Any], burn_in: dict[str, Any] | None,
           tag: str) -> tuple[float, float, dict[str, Any]]:
    """One whole `preview-desktop render` command; returns (wall seconds, CPU seconds, its preview.json)."""
    output: dict[str, Any] = {} if burn_in is None else {"burnIn": burn_in}
    spec = work / f"{tag}.json"
    spec.write_text(json.dumps({"projectId": "bench", "timeline": tl, "output": output}))
    out = work / f"out-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    env = user_env(DATA_DIR=str(data), PREVIEW_MEDIA_ROOTS=str(work))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "preview_desktop", "render", str(spec), "--out", str(out),
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"render {tag} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, cpu, json.loads((out / "preview.json").read_text())


Change = Callable[[dict[str, Any]], dict[str, Any]]


def measure(source: Path, seconds: float, fps: int) -> dict[str, Any]:
    """Every case on one source: full render then the edited re-render, a fresh DATA_DIR each round."""
    no_timecode = {"timecode": False, "clipName": False, "label": "DRAFT"}
    every: dict[str, tuple[Change, dict[str, Any] | None]] = {
        "a_slip_default_burn_ins": (slipped, None),
        "b_shorten_1s_timecode_off": (shortened, no_timecode),
        # no target: the record timecode moves in every frame after a ripple (docs/incremental.md)
        "c_shorten_1s_timecode_on": (shortened, None),
    }
    cases = {name: case for name, case in every.items() if name[0] in CASES}
    keys = ("full", "again", "ratio", "full_cpu", "again_cpu", "cpu_ratio")
    results: dict[str, dict[str, list[float]]] = {name: {key: [] for key in keys} for name in cases}
    counts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        work = Path(tmp)
        shutil.copy(source, work / source.name)
        base = timeline(work / source.name, seconds, fps)
        render(work, work / "warm", base, None, "warm")  # page cache, byte-code cache
        for round_ in range(ROUNDS):
            for name, (change, burn_in) in cases.items():
                data = work / f"data-{name}-{round_}"  # an empty cache each round
                full, full_cpu, _ = render(work, data, base, burn_in, f"{name}-{round_}-full")
                again, again_cpu, document = render(work, data, change(base), burn_in, f"{name}-{round_}-again")
                for key, value in zip(keys, (full, again, again / full, full_cpu, again_cpu, again_cpu / full_cpu),
                                      strict=True):
                    results[name][key].append(value)
                counts[name] = document["cache"]
                shutil.rmtree(data, ignore_errors=True)
    report: dict[str, Any] = {}
    for name, values in results.items():
        report[name] = {
            "full_seconds": [round(v, 2) for v in values["full"]],
            "rerender_seconds": [round(v, 2) for v in values["again"]],
            "ratios": [round(v, 3) for v in values["ratio"]],
            "median_ratio": round(statistics.median(values["ratio"]), 3),
            "full_cpu_seconds": [round(v, 2) for v in values["full_cpu"]],
            "rerender_cpu_seconds": [round(v, 2) for v in values["again_cpu"]],
            "median_cpu_ratio": round(statistics.median(values["cpu_ratio"]), 3),
            "target": None if name.startswith("c_") else 0.15,
            "cache": counts[name],
        }
    return report


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    made = {
        "hard": lambda: (make_source(cache / f"src_1080p_{SOURCE_SECONDS}s.mp4"), SOURCE_SECONDS, 30),
        "easy": lambda: (make_easy(cache / f"src_easy_1080p{EASY_FPS}_{EASY_SECONDS}s.mp4"), EASY_SECONDS, EASY_FPS),
    }
    report: dict[str, Any] = {"rounds": ROUNDS, "cpus": os.cpu_count(), "timeline_seconds": CLIPS * CLIP_SECONDS,
                              "load_before": [round(v, 1) for v in os.getloadavg()]}
    for name in SOURCES:
        source, seconds, fps = made[name]()
        report[name] = measure(source, seconds, fps)
        for case, figures in report[name].items():
            print(f"{name} {case}: median ratio {figures['median_ratio']} (cpu {figures['median_cpu_ratio']})",
                  file=sys.stderr)
    report["load_after"] = [round(v, 1) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return report


def test_bench_incremental() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
