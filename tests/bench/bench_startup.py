"""Start-up floor of a `preview-desktop render`: what a Python process pays before its first frame, against the
ffmpeg CLI's whole preview of bench_render's easy source, in the same alternating rounds.

Each figure is a whole fresh process, wall and CPU seconds (user + sys, from wait4), median of BENCH_ROUNDS
(default 7), as an installed program runs (bytecode compiled, tests/bench/user_env.py; one OpenBLAS thread,
preview_desktop/native.py):
  - the interpreter alone (`python -c pass`);
  - `python -c "import X"` for each library a render needs: numpy, PyAV, OpenCV, pydantic with our spec models,
    OpenTimelineIO (each alone, so each figure includes the interpreter);
  - all of them in one process, as a render imports them: the import floor; and numpy + PyAV + OpenCV alone, the
    libraries the renderer's pixels go through (the floor without pydantic and OTIO);
  - `preview-desktop render --dry-run` of the easy source: the command up to its plan (spec, probe, plan and
    preview.json; without the video path's imports);
  - the ffmpeg CLI's whole preview of the easy source (bench_render's command): the reference.
Prints each figure and the ratios floor / ffmpeg and dry run / ffmpeg: the share of ffmpeg's whole job that a
Python render has spent before it decodes anything.

    python -m tests.bench.bench_startup
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.bench.bench_render import EASY_FPS, EASY_SECONDS, Job, make_easy, run_together
from tests.bench.user_env import user_env

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = {
    "numpy": "import numpy",
    "av (PyAV)": "import av",
    "cv2 (OpenCV)": "import cv2",
    "pydantic + spec models": "import preview_desktop.core.spec",
    "opentimelineio": "import opentimelineio",
}
FLOOR = "import numpy, av, cv2, opentimelineio, preview_desktop.core.spec"
PIXELS = "import numpy, av, cv2"  # what the renderer is made of, without the spec's pydantic and OTIO
Command = tuple[list[str], dict[str, str] | None]


def main() -> dict[str, dict[str, float]]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    source = make_easy(cache / f"src_easy_1080p{EASY_FPS}_{EASY_SECONDS}s.mp4")
    # as every preview-desktop process runs (preview_desktop/native.py): without it numpy's and OpenCV's OpenBLAS
    # start a thread per core at import and the import probes would count their CPU
    env = user_env(PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", PYDANTIC_DISABLE_PLUGINS="__all__")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        local = work / source.name
        shutil.copy(source, local)
        job = Job(local, EASY_FPS, work)

        def dry_run() -> Command:
            cmd, render_env = job.ours()
            return [*cmd, "--dry-run"], render_env

        def python(code: str) -> Callable[[], Command]:
            return lambda: ([sys.executable, "-c", code], env)

        contestants: dict[str, Callable[[], Command]] = {
            "interpreter": python("pass"),
            **{name: python(code) for name, code in LIBRARIES.items()},
            "import floor (all of them)": python(FLOOR),
            "numpy + av + cv2 only": python(PIXELS),
            "render --dry-run": dry_run,
            "ffmpeg CLI, whole preview": job.ffmpeg,
        }
        for make in contestants.values():  # warm the file cache and the bytecode
            run_together([make()])
        walls: dict[str, list[float]] = {name: [] for name in contestants}
        cpus: dict[str, list[float]] = {name: [] for name in contestants}
        names = list(contestants)
        for round_ in range(ROUNDS):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                run = run_together([contestants[name]()])[0]
                walls[name].append(run.wall)
                cpus[name].append(run.cpu)
            job.clean()
    report = {name: {"wall_s": round(statistics.median(walls[name]), 3),
                     "cpu_s": round(statistics.median(cpus[name]), 3)} for name in names}
    ffmpeg = report["ffmpeg CLI, whole preview"]
    print(f"median of {ROUNDS}, whole processes          wall s   CPU s", file=sys.stderr)
    for name, figure in report.items():
        print(f"  {name:38s} {figure['wall_s']:6.3f}  {figure['cpu_s']:6.3f}", file=sys.stderr)
    for name in ("import floor (all of them)", "numpy + av + cv2 only", "render --dry-run"):
        print(f"{name} / ffmpeg's whole preview: wall {report[name]['wall_s'] / ffmpeg['wall_s']:.2f}, "
              f"CPU {report[name]['cpu_s'] / ffmpeg['cpu_s']:.2f}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return report


def test_bench_startup() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
