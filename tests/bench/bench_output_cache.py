"""Output-cache benchmark: the WHOLE `preview-desktop render SPEC --out DIR` command on an identical resubmission.

Timeline: bench_incremental's 10 clips × 6 s (60 s) from a generated 1080p30 source, default preview output.
Measures, each as a whole command in a fresh process (Python start-up included):
  - bare start-up: `python -c pass`;
  - the full render of the spec (fresh DATA_DIR: every cache cold);
  - the identical command again into a new folder (an output-cache hit), median of BENCH_HITS runs;
and prints the hit's median, its ratio to the bare start-up and to the full render (target: hit ≤ 0.3 s), plus
the modules the hit path imports beyond the bare interpreter, slowest first.

Run on demand (not part of the test suite):
    python -m tests.bench.bench_output_cache      # or: pytest tests/bench/bench_output_cache.py -s
Environment: BENCH_ROUNDS (full renders, default 1), BENCH_HITS (default 15).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_incremental import SOURCE_SECONDS, timeline
from tests.bench.bench_render import make_source

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
HITS = int(os.environ.get("BENCH_HITS", "15"))
TARGET_S = 0.3


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return seconds, result


def slowest_imports(stderr: str, count: int = 8) -> list[tuple[str, float]]:
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _self, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if not name.startswith(" "):
                rows.append((name, int(cumulative) / 1000))
    top = [(n, ms) for n, ms in rows if not n.startswith(("encodings", "site", "_"))]
    return sorted(top, key=lambda r: -r[1])[:count]


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    source = make_source(cache / f"src_1080p_{SOURCE_SECONDS}s.mp4")
    python = sys.executable
    full: list[float] = []
    hits: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        shutil.copy(source, work / source.name)
        spec = work / "spec.json"
        spec.write_text(json.dumps({"projectId": "bench", "timeline": timeline(work / source.name)}))
        for round_ in range(ROUNDS):
            env = {**os.environ, "DATA_DIR": str(work / f"data{round_}"), "PREVIEW_MEDIA_ROOTS": str(work),
                   "PREVIEW_SETTINGS": str(work / "none.json")}
            render = [python, "-m", "preview_desktop", "render", str(spec)]
            seconds, _ = timed([*render, "--out", str(work / f"full{round_}")], env)
            full.append(seconds)
            print(f"round {round_ + 1}: full render {seconds:.2f} s", flush=True)
            for n in range(HITS):
                bare.append(timed([python, "-c", "pass"], env)[0])
                seconds, result = timed([*render, "--out", str(work / f"hit{round_}-{n}")], env)
                if "reused the artifacts" not in result.stdout:
                    raise RuntimeError(f"expected a cache hit: {result.stdout}")
                hits.append(seconds)
            _, profile = timed([python, "-X", "importtime", *render[1:], "--out", str(work / f"imp{round_}")], env)
    report = {
        "hit_median_s": round(statistics.median(hits), 4),
        "hit_min_s": round(min(hits), 4),
        "hit_max_s": round(max(hits), 4),
        "bare_python_median_s": round(statistics.median(bare), 4),
        "full_render_median_s": round(statistics.median(full), 3),
        "hit_vs_bare_python": round(statistics.median(hits) / statistics.median(bare), 2),
        "hit_vs_full_render": round(statistics.median(hits) / statistics.median(full), 4),
        "target_s": TARGET_S,
        "met": statistics.median(hits) <= TARGET_S,
        "slowest_imports_ms": slowest_imports(profile.stderr),
    }
    for key, value in report.items():
        print(f"{key:24} {value}")
    return report


def test_bench_output_cache() -> None:  # collected only when the bench file is named explicitly
    assert main()["met"]


if __name__ == "__main__":
    main()
