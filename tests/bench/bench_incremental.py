"""Incremental-render benchmark: re-rendering after a small edit against the full render of the same timeline.

Timeline: 10 clips of 6 s (60 s) cut from a generated 1080p30 H.264 + AAC source (bench_render's), rendered at
the default preview output (640×360 ultrafast + AAC). Each round starts from an empty cache (a fresh DATA_DIR):
  (a) full render with the default burn-ins (timecode + DRAFT label), then clip 6 slipped by 0.5 s, re-rendered;
  (b) full render with the record-timecode burn-in off, then clip 6 shortened by 1 s (a ripple), re-rendered;
  (c) as (b) with the default burn-ins: the known expensive case, measured for the documentation.
Reports each ratio re-render / full render (median over rounds; target ≤ 0.15), the single-pass renderer's time
for the same timeline (the segment path's own overhead on a cold cache), and where a re-render spends its time.

Run on demand (not part of the test suite):
    python -m tests.bench.bench_incremental      # or: pytest tests/bench/bench_incremental.py -s
Environment: BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import copy
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_render import make_source

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SOURCE_SECONDS = 20
CLIPS, CLIP_SECONDS, EDITED = 10, 6.0, 5


def timeline(source: Path) -> dict[str, Any]:
    clips = []
    for k in range(CLIPS):
        start = round((k * 1.37) % (SOURCE_SECONDS - CLIP_SECONDS - 1), 2)
        clips.append({"source": str(source), "in": start, "out": start + CLIP_SECONDS, "name": f"shot {k + 1}"})
    return {"fps": 30, "clips": clips}


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


def render(work: Path, data: Path, tl: dict[str, Any], burn_in: dict[str, Any] | None, tag: str, *,
           cache: bool = True, profile: cProfile.Profile | None = None) -> tuple[float, dict[str, Any]]:
    """One render through the public API; returns (wall seconds, preview.json)."""
    from preview_desktop.core.handler import JobContext
    from preview_desktop.core.job import Job, new_job_id
    from preview_desktop.core.spec import parse_spec
    from preview_desktop.render.renderer import render_to_folder
    from preview_desktop.settings import Settings

    settings = Settings(data_dir=data, media_roots=(work,), cache_max_bytes=5 * 1024**3 if cache else 0)
    output: dict[str, Any] = {} if burn_in is None else {"burnIn": burn_in}
    spec = parse_spec({"projectId": "bench", "timeline": tl, "output": output})
    out = work / f"out-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    ctx = JobContext(job=Job(id="bench", project_id="bench", spec={}))
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    document = render_to_folder(spec, out, job_id=new_job_id(), settings=settings, ctx=ctx)
    if profile is not None:
        profile.disable()
    return time.perf_counter() - started, document


def top_functions(profile: cProfile.Profile, count: int = 14) -> str:
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(count)
    return text.getvalue()


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    source = make_source(cache / f"src_1080p_{SOURCE_SECONDS}s.mp4")
    cases = {
        "a_slip_default_burn_ins": (slipped, None),
        "b_shorten_1s_timecode_off": (shortened, {"timecode": False, "clipName": False, "label": "DRAFT"}),
        # no target: the record timecode moves in every frame after a ripple (docs/incremental.md)
        "c_shorten_1s_timecode_on": (shortened, None),
    }
    results: dict[str, dict[str, list[float]]] = {name: {"full": [], "again": [], "ratio": []} for name in cases}
    counts: dict[str, Any] = {}
    profiles = {name: cProfile.Profile() for name in cases}
    single_pass: list[float] = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        shutil.copy(source, work / source.name)
        base = timeline(work / source.name)
        render(work, work / "warm", base, None, "warm", cache=False)  # imports, page cache
        for round_ in range(ROUNDS):
            for name, (change, burn_in) in cases.items():
                data = work / f"data-{name}-{round_}"  # an empty cache each round
                full, _ = render(work, data, base, burn_in, f"{name}-{round_}-full")
                last = round_ == ROUNDS - 1
                again, document = render(work, data, change(base), burn_in, f"{name}-{round_}-again",
                                         profile=profiles[name] if last else None)
                results[name]["full"].append(full)
                results[name]["again"].append(again)
                results[name]["ratio"].append(again / full)
                counts[name] = document["cache"]
                shutil.rmtree(data, ignore_errors=True)
            if round_ == 0:
                single_pass.append(render(work, work / "single", base, None, "single", cache=False)[0])
    report: dict[str, Any] = {"rounds": ROUNDS, "cpus": os.cpu_count(), "timeline_seconds": CLIPS * CLIP_SECONDS,
                              "single_pass_seconds": [round(v, 2) for v in single_pass]}
    for name, values in results.items():
        report[name] = {
            "full_seconds": [round(v, 2) for v in values["full"]],
            "rerender_seconds": [round(v, 2) for v in values["again"]],
            "ratios": [round(v, 3) for v in values["ratio"]],
            "median_ratio": round(statistics.median(values["ratio"]), 3),
            "target": None if name.startswith("c_") else 0.15,
            "cache": counts[name],
        }
    print(json.dumps(report, indent=2))
    for name, profile in profiles.items():
        print(f"\n--- where the last re-render of {name} spent its time (cumulative) ---")
        print(top_functions(profile))
    return report


def test_bench_incremental() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
