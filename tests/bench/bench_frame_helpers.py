"""CPU of the render's per-frame helpers on the main thread, the code before issue #14's work against today's.

Frames: 300 frames of 640×360 I420 as the render sees them (area-scaled by render/scaler.py) — decoded from
BENCH_SOURCE when set (e.g. the render bench's easy source), else ffmpeg's testsrc2 at 1080p25 made in process.
Each figure is the CPU time of the calling thread (getrusage RUSAGE_THREAD: user + sys) for all 300 frames, old
and new interleaved, median of BENCH_REPEATS (default 15) repeats; each sample runs the 300 frames BENCH_LOOPS
times (default 3) and is divided back, since thread CPU is counted in scheduler ticks.
The old code is the reference kept in tests/unit/render/test_frame_equivalence.py.

    python -m tests.bench.bench_frame_helpers
"""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from preview_desktop.render import compose
from preview_desktop.render.artifacts import looks_like_picture
from preview_desktop.render.scaler import Scaler
from tests.unit.render.test_frame_equivalence import ref_burn_in_i420, ref_looks_like_picture, ref_thumbnail

REPEATS = int(os.environ.get("BENCH_REPEATS", "15"))
LOOPS = int(os.environ.get("BENCH_LOOPS", "3"))
FRAMES = 300
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]  # incremental.THUMB_QUALITY
Step = Callable[[int, np.ndarray], object]


def frames() -> list[np.ndarray]:
    scaler = Scaler((640, 360), "i420")
    source = os.environ.get("BENCH_SOURCE")
    if source:
        with av.open(str(Path(source))) as container:
            out = []
            for frame in container.decode(video=0):
                out.append(scaler.scale(frame).copy())
                if len(out) == FRAMES:
                    return out
            return out
    graph = av.filter.Graph()
    pattern = graph.add("testsrc2", "size=1920x1080:rate=25")
    sink = graph.add("buffersink")
    pattern.link_to(sink)
    graph.configure()
    return [scaler.scale(sink.pull()).copy() for _ in range(FRAMES)]


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def measure(images: list[np.ndarray], steps: dict[str, tuple[Step, Step, bool]]) -> dict[str, tuple[float, float]]:
    """name → (old ms, new ms) per 300 frames; the bool asks for fresh copies (the step draws in place)."""
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in steps}
    for _ in range(REPEATS):
        for name, (old, new, draws) in steps.items():
            for k, step in enumerate((old, new)):
                batches = [[image.copy() for image in images] if draws else images for _ in range(LOOPS)]
                started = _thread_cpu()
                for batch in batches:
                    for index, image in enumerate(batch):
                        step(index, image)
                samples[name][k].append((_thread_cpu() - started) / LOOPS)
    return {name: (statistics.median(o) * 1000, statistics.median(n) * 1000) for name, (o, n) in samples.items()}


def main() -> None:
    images = frames()
    thumbs = [ref_thumbnail(image, 640, 360, (160, 90)) for image in images]
    thumbnailer = compose.Thumbnailer(640, 360, (160, 90))  # one per render, as artifacts.Collector keeps it

    def old_frame(index: int, image: np.ndarray) -> None:
        small = ref_thumbnail(image, 640, 360, (160, 90))
        cv2.imencode(".jpg", small, JPEG)
        ref_looks_like_picture(small, 2)
        ref_burn_in_i420(image, 640, 360, tc=compose.timecode(index, 25))

    def new_frame(index: int, image: np.ndarray) -> None:
        small = thumbnailer(image)
        cv2.imencode(".jpg", small, JPEG)
        looks_like_picture(small, 2)
        compose.burn_in_i420(image, 640, 360, tc=compose.timecode(index, 25))

    steps: dict[str, tuple[Step, Step, bool]] = {
        "burn-in (burn_in_i420 + timecode)": (
            lambda i, image: ref_burn_in_i420(image, 640, 360, tc=compose.timecode(i, 25)),
            lambda i, image: compose.burn_in_i420(image, 640, 360, tc=compose.timecode(i, 25)), True),
        "thumbnail (Collector.thumbnail)": (
            lambda i, image: ref_thumbnail(image, 640, 360, (160, 90)),
            lambda i, image: thumbnailer(image), False),
        "poster test (looks_like_picture, step 2)": (
            lambda i, image: ref_looks_like_picture(thumbs[i], 2),
            lambda i, image: looks_like_picture(thumbs[i], 2), False),
        "thumbnail JPEG q90 (unchanged)": (
            lambda i, image: cv2.imencode(".jpg", thumbs[i], JPEG),
            lambda i, image: cv2.imencode(".jpg", thumbs[i], JPEG), False),
        "all four, as render_segment does": (old_frame, new_frame, True),
    }
    results = measure(images, steps)
    print(f"{len(images)} frames of 640x360 I420; thread CPU per {len(images)} frames, median of {REPEATS}")
    print(f"{'helper':42s} {'old ms':>8s} {'new ms':>8s} {'new/old':>8s}")
    for name, (old, new) in results.items():
        print(f"{name:42s} {old:8.1f} {new:8.1f} {new / old:8.2f}")


if __name__ == "__main__":
    main()
