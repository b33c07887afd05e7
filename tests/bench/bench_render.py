"""Render benchmark: our renderer against the ffmpeg CLI on the same job, alternating in one run.

Job: a generated 1080p30 H.264 + AAC 20 s clip → 640×360 H.264 (ultrafast) + AAC with a timecode burn-in.
Reports: our fps vs ffmpeg's (medians), two concurrent jobs vs one, peak RSS of one render in its own process,
and a stage profile (demux+decode, swscale convert, compose, encode).

Run on demand (not part of the test suite):
    python -m tests.bench.bench_render            # or: pytest tests/bench/bench_render.py -s
Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS (default 20).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FPS = 30


def make_source(path: Path) -> Path:
    """1080p30 H.264 (a moving gradient, so the decoder has real work) with a stereo AAC tone."""
    import av
    import cv2

    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.mp4")
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


def run_ours(source: Path, work: Path, tag: str) -> float:
    """One render through the public API; returns wall seconds."""
    from preview_desktop.core.handler import JobContext
    from preview_desktop.core.job import Job, new_job_id
    from preview_desktop.core.spec import parse_spec
    from preview_desktop.render.renderer import render_to_folder
    from preview_desktop.settings import Settings

    # A fresh DATA_DIR each run: a full render with a cold segment cache, as the first render of a timeline is
    # (a warm cache would turn this into the incremental benchmark, tests/bench/bench_incremental.py).
    data_dir = work / f"data-{tag}-{new_job_id()}"
    settings = Settings(data_dir=data_dir, media_roots=(work,))
    spec = parse_spec({
        "projectId": "bench",
        "timeline": str(source),
        "output": {"width": 640, "height": 360, "burnIn": {"timecode": True, "clipName": False, "label": None}},
    })
    out = work / f"ours-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    ctx = JobContext(job=Job(id="bench", project_id="bench", spec={}))
    started = time.perf_counter()
    render_to_folder(spec, out, job_id=new_job_id(), settings=settings, ctx=ctx)
    seconds = time.perf_counter() - started
    shutil.rmtree(data_dir, ignore_errors=True)
    return seconds


def run_ffmpeg(source: Path, work: Path, tag: str) -> float:
    out = work / f"ffmpeg-{tag}.mp4"
    vf = ("scale=640:360:flags=area,drawtext=timecode='00\\:00\\:00\\:00':rate=30:fontsize=22:"
          "fontcolor=white:box=1:boxcolor=black@0.75:x=(w-tw)/2:y=h-th-12")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-vf", vf, "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
           "-movflags", "+faststart", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started


def peak_rss_mb(source: Path, work: Path) -> float:
    """One render in a fresh process, which reports its own peak RSS (interpreter + imports + render).

    VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child forked from this (large) benchmark
    process would report the parent's size; RUSAGE_CHILDREN would also count the ffmpeg CLI runs.
    """
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
        "from tests.bench.bench_render import run_ours; run_ours(Path(sys.argv[2]), Path(sys.argv[3]), 'rss');"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    done = subprocess.run([sys.executable, "-c", code, str(ROOT), str(source), str(work)], check=True,
                          capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def profile(source: Path) -> dict[str, float]:
    """Per-frame milliseconds of each stage, measured in isolation on the same clip."""
    import av

    from preview_desktop.render import compose
    from preview_desktop.render.codec import DECODE_THREADS, Encoder

    stages: dict[str, float] = {}
    frames_n = 0
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODE_THREADS
        started = time.perf_counter()
        for _frame in container.decode(stream):
            frames_n += 1
        stages["decode"] = time.perf_counter() - started
    images = []
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODE_THREADS
        convert = 0.0
        started = time.perf_counter()
        for frame in container.decode(stream):
            t0 = time.perf_counter()
            image = frame.to_ndarray(format="bgr24", width=640, height=360, interpolation="AREA")
            convert += time.perf_counter() - t0
            if len(images) < 60:
                images.append(image)
        stages["convert"] = convert
    started = time.perf_counter()
    for i in range(frames_n):
        image = compose.place(images[i % len(images)], 640, 360)
        compose.burn_in(image, tc=compose.timecode(i, FPS))
    stages["compose"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder(Path(tmp) / "x.mp4", 640, 360, Fraction(FPS), audio=True)
        silence = np.zeros((2, 1600), dtype=np.float32)
        started = time.perf_counter()
        for i in range(frames_n):
            encoder.write_video(images[i % len(images)])
        stages["encode_video"] = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(frames_n):
            encoder.write_audio(silence)
        encoder.finish()
        stages["encode_audio"] = time.perf_counter() - started
    return {name: round(seconds / frames_n * 1000, 3) for name, seconds in stages.items()}


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    source = make_source(cache / f"src_1080p_{int(SECONDS)}s.mp4")
    frames = int(SECONDS * FPS)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        shutil.copy(source, work / source.name)
        source = work / source.name
        run_ours(source, work, "warm")
        ours: list[float] = []
        theirs: list[float] = []
        for round_ in range(ROUNDS):  # alternating, so machine noise hits both alike
            ours.append(frames / run_ours(source, work, str(round_)))
            theirs.append(frames / run_ffmpeg(source, work, str(round_)))
        pair: list[float] = []
        for round_ in range(ROUNDS):
            threads = [threading.Thread(target=run_ours, args=(source, work, f"{round_}-{k}")) for k in range(2)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            pair.append(2 * frames / (time.perf_counter() - started))
        rss = peak_rss_mb(source, work)
        stages = profile(source)
    one = statistics.median(ours)
    report = {
        "frames": frames,
        "ours_fps": [round(v, 1) for v in ours],
        "ffmpeg_fps": [round(v, 1) for v in theirs],
        "ours_median_fps": round(one, 1),
        "ffmpeg_median_fps": round(statistics.median(theirs), 1),
        "ratio_vs_ffmpeg": round(one / statistics.median(theirs), 3),
        "two_jobs_fps": [round(v, 1) for v in pair],
        "two_jobs_ratio": round(statistics.median(pair) / one, 3),
        "peak_rss_mb_one_job_process": round(rss, 1),
        "profile_ms_per_frame": stages,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    return report


def test_bench_render() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
