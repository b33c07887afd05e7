"""Audio-thread benchmark: CPU of the render's audio path against FFmpeg's AAC encoder alone on the same samples.

What the audio thread spends beyond the encoder is ours to cut (docs/incremental.md, "Reading and mixing"). Per
input, in one process, each measured in a fresh thread with RUSAGE_THREAD (user + sys of that thread), median of
BENCH_ROUNDS (default 5) rounds:
  - render_audio: the whole audio thread of a cold-cache render (mix, AAC encode in one pass, chunk bookkeeping;
    an in-memory store, so no disk writes);
  - mix: Mixer.render over the whole output in the encoder's feed blocks (reading, decoding, mixing);
  - encoder: audio_cache.new_encoder on the mixed samples, fed the same blocks (the floor: "the work");
  - overhead = render_audio − encoder. Also checks that render_audio's packets are the encoder's bytes.
Inputs: the easy source of bench_render (12 s, one AAC clip) and bench_incremental's 60 s timeline (10 clips cut
from one 1080p30 file).

Run on demand (not part of the test suite), from the repository root:
    python -m tests.bench.bench_audio      # or: pytest tests/bench/bench_audio.py -s
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.bench_incremental import SOURCE_SECONDS, timeline
from tests.bench.bench_render import EASY_FPS, EASY_SECONDS, make_easy, make_source

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def in_thread(work: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds of a fresh thread running `work`, its result)."""
    box: dict[str, Any] = {}

    def run() -> None:
        start = thread_cpu()
        box["result"] = work()
        box["cpu"] = thread_cpu() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return box["cpu"], box["result"]


class MemoryStore:
    """The Store protocol's audio half in memory: the bench measures the audio path, not the disk."""

    def __init__(self) -> None:
        self.audio: dict[str, Any] = {}

    def get_audio(self, key: str) -> Any:
        return self.audio.get(key)

    def put_audio(self, key: str, value: Any) -> None:
        self.audio[key] = value


def measure(timeline_value: Any, media_root: Path) -> dict[str, Any]:
    import av

    from preview_desktop.core.spec import parse_spec
    from preview_desktop.render.audio import Mixer
    from preview_desktop.render.audio_cache import FEED, new_encoder, render_audio
    from preview_desktop.render.codec import AUDIO_RATE
    from preview_desktop.render.segments import Identities, total_samples
    from preview_desktop.render.timeline import build_plan
    from preview_desktop.settings import load_settings

    os.environ["PREVIEW_MEDIA_ROOTS"] = str(media_root)
    spec = parse_spec({"projectId": "bench", "timeline": timeline_value, "output": {"width": 640, "height": 360}})
    plan, _ = build_plan(spec, load_settings())
    total = total_samples(plan)

    def whole() -> list[bytes]:
        packets, _counts = render_audio(plan, spec, MemoryStore(), check=lambda: None, identities=Identities())
        return [packet.data for packet in packets]

    def mix() -> np.ndarray:
        mixer = Mixer(plan.audio, plan.fps, lambda layer, message: None)
        try:
            return np.concatenate([mixer.render(at, min(FEED, total - at)) for at in range(0, total, FEED)], axis=1)
        finally:
            mixer.close()

    samples = mix()

    def encode() -> list[bytes]:
        context, out = new_encoder(), []
        for at in range(0, total, FEED):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, at: at + FEED]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, at, Fraction(1, AUDIO_RATE)
            out.extend(bytes(packet) for packet in context.encode(frame))
        out.extend(bytes(packet) for packet in context.encode(None))
        return out

    runs: dict[str, list[float]] = {"render_audio": [], "mix": [], "encoder": []}
    same = True
    for _ in range(ROUNDS):
        cpu, packets = in_thread(whole)
        runs["render_audio"].append(cpu)
        runs["mix"].append(in_thread(mix)[0])
        cpu, encoded = in_thread(encode)
        runs["encoder"].append(cpu)
        same = same and packets == encoded
    medians = {name: round(statistics.median(values), 4) for name, values in runs.items()}
    return {
        "audio_seconds": round(total / AUDIO_RATE, 2),
        "cpu_seconds_median": medians,
        "overhead_beyond_encoder": round(medians["render_audio"] - medians["encoder"], 4),
        "cpu_seconds_all": {name: [round(v, 3) for v in values] for name, values in runs.items()},
        "packets_identical_to_bare_encoder": same,
    }


def main() -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "preview-desktop-bench"
    cache.mkdir(exist_ok=True)
    easy = make_easy(cache / f"src_easy_1080p{EASY_FPS}_{EASY_SECONDS}s.mp4")
    source = make_source(cache / f"src_1080p_{SOURCE_SECONDS}s.mp4")
    report: dict[str, Any] = {"rounds": ROUNDS, "cpus": os.cpu_count(),
                              "load_before": [round(v, 1) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory(dir=cache) as data:
        os.environ["DATA_DIR"] = data
        report["easy_12s"] = measure(str(easy), cache)
        report["timeline_60s_10_clips"] = measure(timeline(source), cache)
    report["load_after"] = [round(v, 1) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return report


def test_bench_audio() -> None:  # collected only when the bench file is named explicitly
    main()


if __name__ == "__main__":
    main()
