"""The soak's cluster: one redis-server, local workers sharing a DATA_DIR, farm nodes on Redis, test media.

Every process is the real program (`python -m preview_desktop --worker`) with the real renderer. Its stdout and
stderr go to one log file per process name, appended across restarts, so a crash's traceback survives the
restart that follows it. Kill is SIGKILL (a crash, a power cut of one node); start waits for the ready line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from tests.support.media import make_clip

REPO = Path(__file__).resolve().parents[2]
QUEUE = "previews"
FPS = 25
CLIP_SECONDS = (1.0, 1.5, 2.0)  # the small jobs: one clip each
LONG_SECONDS = 2.0  # chunked farm jobs: two clips of this length (4 s, split in 2 with 2 s chunks)


@dataclass
class Media:
    """Clips made once; `frames` = decoded frame count of each (what a preview of it must hold)."""

    folder: Path
    clips: list[Path]
    frames: dict[Path, int]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def make_media(folder: Path) -> Media:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, seconds in enumerate(CLIP_SECONDS):
        path = folder / f"soak{i}-{seconds:g}s.mp4"
        if not path.exists():
            tmp = folder / f".tmp-{path.name}"
            make_clip(tmp, seconds=seconds, size=(320, 180), colour=(40 + 60 * i, 90, 160), beeps=[0.3],
                      faststart=True)
            tmp.rename(path)
        clips.append(path)
    return Media(folder, clips, {path: frame_count(path) for path in clips})


@dataclass
class Proc:
    """One worker process: restartable with the same environment and DATA_DIR."""

    name: str
    kind: str  # "local" | "farm"
    env: dict[str, str]
    log_path: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    mark: int = 0  # log offset of the current start

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n=== soak: start #{self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.mark = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "preview_desktop", "--worker", *self.args],
                stdout=log, stderr=log, env=self.env, cwd=REPO, stdin=subprocess.DEVNULL)
        self.starts += 1

    def ready(self) -> bool:
        """The ready line of the current start has been written."""
        with self.log_path.open("rb") as log:
            log.seek(self.mark)
            return b"worker ready" in log.read()

    def current_log(self) -> bytes:
        """What the current start has written so far."""
        with self.log_path.open("rb") as log:
            log.seek(self.mark)
            return log.read()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start; see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} printed no ready line within {timeout:.0f}s; see {self.log_path}")

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.kills += 1

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (finish or give back running jobs); SIGKILL if it hangs. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return -9
        return self.proc.returncode


def base_env(work: Path, name: str, data_dir: Path, media: Path, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREVIEW_") and k not in ("REDIS_URL", "DATA_DIR", "DEV_JOB_STORE")}
    env.update({
        "DATA_DIR": str(data_dir), "PREVIEW_SETTINGS": str(work / f"{name}-settings.json"),
        "PREVIEW_MEDIA_ROOTS": str(media), "PREVIEW_API_PORT": "0",
        "PREVIEW_MAX_CONCURRENCY": str(concurrency), "PREVIEW_RENDER_THREADS": "1",
        "PREVIEW_SHUTDOWN_GRACE": "5", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
    })
    return env


def local_worker(work: Path, name: str, data_dir: Path, media: Path, concurrency: int) -> Proc:
    """A `--worker` on the shared local DATA_DIR, no Redis."""
    return Proc(name, "local", base_env(work, name, data_dir, media, concurrency), work / f"{name}.log")


def farm_node(work: Path, name: str, url: str, storage: Path, media: Path, concurrency: int,
              chunk_seconds: float) -> Proc:
    """A `--worker --redis URL` with its own DATA_DIR and the shared farm storage."""
    env = base_env(work, name, work / name, media, concurrency)
    env.update({"PREVIEW_FARM_STORAGE": str(storage), "PREVIEW_FARM_CHUNK_SECONDS": f"{chunk_seconds:g}"})
    return Proc(name, "farm", env, work / f"{name}.log", args=["--redis", url])
