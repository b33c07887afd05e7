"""Crash safety: kill -9 the worker at random moments while it renders; nothing is lost or half-published.

A real `--worker` subprocess renders real (tiny) previews. Several rounds: start, wait until a job runs, a random
moment more, SIGKILL, restart. At the end every job has succeeded exactly as submitted, none is stuck running,
every published folder is complete and decodable, and no staging (temporary) folder is left behind.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.layout import ARTIFACT_NAMES, STAGING_PREFIX
from preview_desktop.core.spec import parse_spec
from preview_desktop.queue.local import LocalStore
from tests.support.cli import start_worker, wait_ready
from tests.support.media import decode, make_clip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
JOBS = 20
ROUNDS = 4


def wait_running(store: LocalStore, timeout: float = 20) -> bool:
    """True once a job runs (the worker leased it); False if none did in time (the queue ran dry)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.list_jobs(states=[JobState.RUNNING]):
            return True
        if store.counts()["queued"] == 0:
            return False
        time.sleep(0.01)
    return False


def test_kill_9_during_renders_loses_nothing(data_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=3.0, tone=440.0)
    store = LocalStore(data_dir / "queue", queue_max=1000)
    expected_frames: dict[str, int] = {}
    for i in range(JOBS):
        start = (i % 5) * 0.2
        spec = parse_spec({
            "projectId": f"crash{i % 3}",
            "timeline": {"fps": 25, "clips": [{"source": str(clip), "in": start, "out": start + 2.0}]},
            "output": {"width": 320, "height": 180},
            "attempts": 3,
        })
        expected_frames[store.submit(spec).id] = 50

    rng = random.Random(1234)
    env = {"PREVIEW_MAX_CONCURRENCY": "2", "PREVIEW_LEASE_SECONDS": "5"}
    kills = 0
    for _ in range(ROUNDS):
        proc = start_worker(env=env)
        try:
            wait_ready(proc)
            running = wait_running(store)
            time.sleep(rng.uniform(0.0, 0.4))  # somewhere inside a render: decoding, encoding or publishing
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += bool(running)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert kills >= 2, "the kills should have hit running renders"

    proc = start_worker(env=env)
    try:
        wait_ready(proc)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            counts = store.counts()
            if counts["succeeded"] + counts["failed"] + counts["cancelled"] == JOBS:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    jobs = store.list_jobs()
    assert len(jobs) == JOBS
    not_ok = [(j.id, j.state.value, j.error) for j in jobs if j.state is not JobState.SUCCEEDED]
    assert not not_ok, not_ok
    assert any(j.stalls > 0 for j in jobs), "some jobs should have been redelivered after a kill"

    previews = data_dir / "previews"
    staging = [p for p in previews.rglob(f"{STAGING_PREFIX}*")]
    assert staging == [], f"left-over temporary folders: {staging}"
    for job in jobs:
        folder = previews / job.project_id / job.id
        assert sorted(p.name for p in folder.iterdir()) == sorted(ARTIFACT_NAMES)
        meta = json.loads((folder / "preview.json").read_text())
        assert meta["jobId"] == job.id and meta["status"] == "succeeded"
        assert len(decode(folder / "preview.mp4").frames) == expected_frames[job.id]
    published = {p.name for project in previews.iterdir() for p in project.iterdir()}
    assert published == set(expected_frames)
