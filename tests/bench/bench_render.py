"""Render benchmark: whole `preview-desktop render` processes against the ffmpeg CLI doing the same job.

Job: a 1080p H.264 + AAC clip → 640×360 H.264 (ultrafast) + AAC 128 kb/s, timecode burn-in, +faststart.
Sources: "easy" (ffmpeg's testsrc2 + a sine, 1080p25, 12 s, x264 preset medium: cheap to decode) and "hard" (a
noisy 1080p30 ~10 Mb/s clip made by `make_source`, BENCH_SECONDS long). For each source, alternating:
  - one at a time: `preview-desktop render SPEC --out DIR` (a fresh DATA_DIR each run: cold caches) against
    `ffmpeg -i SRC -vf scale=640:360:flags=area,drawtext=timecode... -c:v libx264 -preset ultrafast -c:a aac
    -movflags +faststart`; wall seconds, CPU seconds (user+sys of the child, from wait4) and peak RSS;
  - two at once: two renders started together against two ffmpeg runs started together (wall until both end).
Ratios are ffmpeg / ours, measured in the same run: >= 1.0 means we are at least as fast (or use no more CPU).

Run on demand (not part of the test suite):
    python -m tests.bench.bench_render            # or: pytest tests/bench/bench_render.py -s
Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS (hard source length, default 20), BENCH_SOURCES
(default "easy,hard"), PREVIEW_RENDER_THREADS (passed through to our renders), BENCH_BASELINE (a folder holding
another `preview_desktop` package, e.g. `git archive` of an older commit: measured too, in the same rounds).
This process imports nothing heavy (sources are made in a child), so a child's ru_maxrss is its own.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.user_env import user_env

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SOURCES = [s.strip() for s in os.environ.get("BENCH_SOURCES", "easy,hard").split(",") if s.strip()]
FPS = 30
BASELINE = Path(os.environ["BENCH_BASELINE"]).resolve() if os.environ.get("BENCH_BASELINE") else None
EASY_SECONDS, EASY_FPS = 12, 25


def make_source(path: Path) -> Path:
    """1080p30 H.264 (a moving gradient, so the decoder has real work) with a stereo AAC tone."""
    from fractions import Fraction

    import av
    import cv2
    import numpy as np

    if path.exists():
        return path
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.mp4")  # benches may run side by side
    container = av.open(str(tmp), "w", options={"movflags": "+faststart"})
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
    video.options = {"preset": "veryfast", "crf": "20"}
    audio = container.add_stream("aac", rate=48000, layout="stereo")
    x = np.linspace(0, 255, 1920, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, 1080, dtype=np.float32)[:, None]
    per = 48000 // FPS
    rng = np.random.default_rng(1)
    for i in range(int(SECONDS * FPS)):
        b = ((x + i * 4) % 256 + 0 * y).astype(np.uint8)
        g = ((y + i * 2) % 256 + 0 * x).astype(np.uint8)
        r = ((x + y + i * 3) % 256).astype(np.uint8)
        image = np.dstack([b, g, r])
        noise = rng.integers(0, 24, size=(270, 480, 1), dtype=np.uint8)
        image[::4, ::4] += noise  # texture: keeps the bitrate realistic (~10 Mb/s)
        cv2.circle(image, (200 + (i * 13) % 1500, 540), 120, (255, 255, 255), -1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = i
        container.mux(video.encode(frame))
        t = (np.arange(per) + i * per) / 48000
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        chunk = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        chunk.sample_rate, chunk.pts, chunk.time_base = 48000, i * per, Fraction(1, 48000)
        container.mux(audio.encode(chunk))
    container.mux(video.encode(None))
    container.mux(audio.encode(None))
    container.close()
    tmp.rename(path)
    return path


def make_easy(path: Path) -> Path:
    """ffmpeg's testsrc2 1080p25 (x264 preset medium) with a stereo 440 Hz tone: easy to decode."""
    if path.exists():
        return path
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.mp4")  # benches may run side by side
    subprocess.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={EASY_FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(EASY_SECONDS), "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", "-b:a", "128k", "-movflags", "+faststart", str(tmp),
    ], check=True)
    tmp.rename(path)
    return path


def make_hard(path: Path) -> Path:
    """make_source in a child process, so this one stays small (see the module docstring)."""
    if not path.exists():
        code = "import sys; from pathlib import Path; from tests.bench.bench_render import make_source; " \
               "make_source(Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=ROOT)
    return path


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys seconds
    rss_mb: float  # peak resident set of the process


def _spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # `python -m` looks in the current folder first: run ours where its package is (PYTHONPATH)
    cwd = env.get("PYTHONPATH") if env else None
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _reap(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(cpu seconds, peak RSS MB) of one child, from its own rusage; raises when it failed."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args!r} failed ({proc.returncode}): {err[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_together(commands: list[tuple[list[str], dict[str, str] | None]]) -> list[Run]:
    """Start every command at once; wall of each is until ALL have ended (the batch's wall)."""
    started = time.perf_counter()
    procs = [_spawn(cmd, env) for cmd, env in commands]
    reaped = [_reap(proc) for proc in procs]
    wall = time.perf_counter() - started
    return [Run(wall, cpu, rss) for cpu, rss in reaped]


class Job:
    """One source's job, as our command and as the ffmpeg CLI command."""

    def __init__(self, source: Path, fps: int, work: Path) -> None:
        self.source, self.fps, self.work = source, fps, work
        self.spec = work / f"{source.stem}.json"
        self.spec.write_text(json.dumps({
            "projectId": "bench",
            "timeline": str(source),
            "output": {"width": 640, "height": 360,
                       "burnIn": {"timecode": True, "clipName": False, "label": None}},
        }))
        self.count = 0

    def ours(self, package_root: Path = ROOT) -> tuple[list[str], dict[str, str]]:
        self.count += 1
        tag = f"{self.source.stem}-{self.count}"
        data_dir = self.work / f"data-{tag}"  # fresh: a cold segment cache and output cache
        out = self.work / f"ours-{tag}"
        env = user_env(DATA_DIR=str(data_dir), PREVIEW_MEDIA_ROOTS=str(self.work), PYTHONPATH=str(package_root))
        return [sys.executable, "-m", "preview_desktop", "render", str(self.spec), "--out", str(out)], env

    def baseline(self) -> tuple[list[str], dict[str, str]]:
        return self.ours(BASELINE) if BASELINE else self.ours()

    def ffmpeg(self) -> tuple[list[str], None]:
        self.count += 1
        out = self.work / f"ffmpeg-{self.source.stem}-{self.count}.mp4"
        vf = (f"scale=640:360:flags=area,drawtext=timecode='00\\:00\\:00\\:00':rate={self.fps}:"
              "fontsize=22:fontcolor=white:box=1:boxcolor=black@0.75:x=(w-tw)/2:y=h-th-12")
        return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(self.source), "-vf", vf, "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                "-movflags", "+faststart", str(out)], None

    def clean(self) -> None:
        for path in self.work.iterdir():
            if path.name.startswith(("data-", "ours-", "ffmpeg-")):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def _pick(runs: list[Run]) -> dict[str, Any]:
    return {"wall_s": [round(r.wall, 3) for r in runs], "cpu_s": [round(r.cpu, 3) for r in runs],
            "rss_mb": [round(r.rss_mb, 1) for r in runs]}


def measure(job: Job) -> dict[str, Any]:
    """Alternating rounds (the order turns each round): one at a time, then two of a kind at once."""
    contestants: dict[str, Any] = {"ours": job.ours, "ffmpeg": job.ffmpeg}
    if BASELINE:
        contestants["baseline"] = job.baseline
    run_together([job.ours()])  # warm the file cache and the interpreter's bytecode
    one: dict[str, list[Run]] = {name: [] for name in contestants}
    two: dict[str, list[Run]] = {name: [] for name in contestants}
    names = list(contestants)
    for together, results in ((1, one), (2, two)):
        for round_ in range(ROUNDS):
            turn = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in turn:
                runs = run_together([contestants[name]() for _ in range(together)])
                results[name].append(Run(runs[0].wall, sum(r.cpu for r in runs), max(r.rss_mb for r in runs)))
            job.clean()
    report: dict[str, Any] = {}
    ff1, ff2 = one["ffmpeg"], two["ffmpeg"]
    for name in names:
        report[name] = {"one": _pick(one[name]), "two": _pick(two[name])}
        if name == "ffmpeg":
            continue
        report[name]["ratios_vs_ffmpeg"] = {  # >= 1.0: at least as fast / no more CPU
            "speed": round(_median(ff1, "wall") / _median(one[name], "wall"), 3),
            "cpu": round(_median(ff1, "cpu") / _median(one[name], "cpu"), 3),
            "two_at_once_speed": round(_median(ff2, "wall") / _median(two[name], "wall"), 3),
            "two_at_once_cpu": round(_median(ff2, "cpu") / _median(two[name], "cpu"), 3),
        }
        report[name]["peak_rss_mb"] = round(max(r.rss_mb for r in one[name]), 1)
    return report


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    made = {
        "easy": lambda: (make_easy(cache / f"src_easy_1080p{EASY_FPS}_{EASY_SECONDS}s.mp4"), EASY_FPS),
        "hard": lambda: (make_hard(cache / f"src_1080p_{int(SECONDS)}s.mp4"), FPS),
    }
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "render_threads": os.environ.get("PREVIEW_RENDER_THREADS"),
        "rounds": ROUNDS,
    }
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        for name in SOURCES:
            source, fps = made[name]()
            local = work / source.name
            shutil.copy(source, local)
            job = Job(local, fps, work)
            report[name] = measure(job)
            job.clean()
            for who in [w for w in report[name] if w != "ffmpeg"]:
                print(f"{name} {who}: {report[name][who]['ratios_vs_ffmpeg']}, "
                      f"rss {report[name][who]['peak_rss_mb']} MB", file=sys.stderr)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return report


def test_bench_render() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
