"""A damaged job store, for real: a store made by a real worker, then truncated or overwritten on disk, or left
locked by a process killed -9 in the middle of a write (docs/queue.md, "A damaged store").

A damaged store is moved aside (named with the time), a fresh one is made and the finished jobs come back from
their preview.json files: `list`, `status`, the API and the window show them done with their artifacts, and
nothing under previews/ changes. A store locked by a dead process is not damaged: it opens with every job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.farm_mark import FarmMark
from preview_desktop.core.job import JobState
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.recovery import damage
from tests.support.cli import run_cli, start_worker, wait_ready, worker_stderr
from tests.support.media import make_clip

pytestmark = pytest.mark.timeout(300)
TOKEN = "tok-damaged-store-0123456789"


def _env(data_dir: Path, root: Path) -> dict[str, str]:
    return {"DATA_DIR": str(data_dir), "PREVIEW_SETTINGS": str(root / "settings.json"),
            "PREVIEW_MEDIA_ROOTS": str(root), "PREVIEW_API_PORT": "0", "PREVIEW_API_TOKEN": TOKEN,
            "REDIS_URL": "", "QT_QPA_PLATFORM": ""}


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A DATA_DIR where a real worker rendered two previews (made once; each test works on a copy)."""
    root = tmp_path_factory.mktemp("golden")
    data_dir = root / "data"
    env = _env(data_dir, root)
    ids = []
    for name in ("one", "two"):
        clip = make_clip(root / f"{name}.mp4", seconds=1.0)
        done = run_cli("submit", str(clip), "--project", "recover", "--json", env=env)
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["id"])
    proc = start_worker(env=env)
    try:
        wait_ready(proc, timeout=60)
        store = LocalStore(data_dir / "queue")
        deadline = time.monotonic() + 180
        while not all(store.get(i).state is JobState.SUCCEEDED for i in ids):
            assert time.monotonic() < deadline, worker_stderr(proc)
            time.sleep(0.2)
        store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    with sqlite3.connect(data_dir / "queue" / "cache.db") as db:  # everything in cache.db: the damage is real
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data_dir, ids


@pytest.fixture
def copied(golden: tuple[Path, list[str]], data_dir: Path) -> tuple[Path, list[str]]:
    shutil.copytree(golden[0], data_dir)
    return data_dir, golden[1]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def damage_db(db: Path, how: str) -> None:
    size = db.stat().st_size
    if how == "truncated":
        with open(db, "r+b") as handle:
            handle.truncate(size // 2 + 1000)  # mid-page
    elif how == "truncated to nothing":
        db.write_bytes(b"")
    elif how == "header overwritten":
        with open(db, "r+b") as handle:
            handle.write(os.urandom(100))
    else:  # random bytes over every page but the first
        with open(db, "r+b") as handle:
            for offset in range(4096, size, 4096):
                handle.seek(offset + 16)
                handle.write(os.urandom(256))


@pytest.mark.parametrize("how", ["truncated", "truncated to nothing", "header overwritten", "pages overwritten"])
def test_a_damaged_store_is_set_aside_and_finished_jobs_come_back(copied: tuple[Path, list[str]], how: str) -> None:
    data_dir, ids = copied
    farm_copy = data_dir / "previews" / "recover" / "20261130-120000-0badf00d"  # a farm render kept on this node
    shutil.copytree(data_dir / "previews" / "recover" / ids[0], farm_copy)
    FarmMark(queue="previews", jobId="7", nodeId="box:1:aaaa", localId=farm_copy.name).write(farm_copy)
    previews_before = digests(data_dir / "previews")
    damage_db(data_dir / "queue" / "cache.db", how)
    assert damage(data_dir / "queue") is not None

    listed = run_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    said = [line for line in listed.stderr.splitlines() if "damaged" in line]
    assert len(said) == 1 and "moved aside to queue.damaged-" in said[0] and "put back 2 finished job(s)" in said[0]
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert set(jobs) == set(ids)  # the farm's render is not made a local job
    for job_id in ids:
        assert jobs[job_id]["state"] == "succeeded"
        assert jobs[job_id]["projectId"] == "recover"
        assert jobs[job_id]["result"]["video"]["file"] == "preview.mp4"

    aside = [p for p in data_dir.iterdir() if p.name.startswith("queue.damaged-")]
    assert len(aside) == 1 and (aside[0] / "cache.db").is_file()
    assert digests(data_dir / "previews") == previews_before  # nothing under previews/ lost or changed
    assert damage(data_dir / "queue") is None

    again = run_cli("status", ids[0], "--json")  # the fresh store is simply used from now on
    assert again.returncode == 0 and json.loads(again.stdout)["state"] == "succeeded"
    assert "damaged" not in again.stderr


def test_the_worker_repairs_at_start_and_its_api_serves_the_recovered_artifacts(
        copied: tuple[Path, list[str]]) -> None:
    data_dir, ids = copied
    damage_db(data_dir / "queue" / "cache.db", "header overwritten")
    proc = start_worker(env={"PREVIEW_API_TOKEN": TOKEN, "REDIS_URL": "", "QT_QPA_PLATFORM": ""})
    try:
        wait_ready(proc, timeout=60)
        jobs = api_get(data_dir, "/v1/jobs")
        listed = jobs["jobs"] if isinstance(jobs, dict) else jobs
        assert {j["id"] for j in listed} == set(ids)
        assert all(j["state"] == "succeeded" for j in listed)
        artifacts = api_get(data_dir, f"/v1/jobs/{ids[0]}/artifacts")
        names = {a["name"] for a in (artifacts["artifacts"] if isinstance(artifacts, dict) else artifacts)}
        assert {"preview.mp4", "preview.json", "poster.jpg", "thumbs.jpg", "thumbs.vtt"} <= names
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    logged = [json.loads(line) for line in (data_dir / "logs" / "preview-desktop.log").read_text().splitlines()]
    assert len([e for e in logged if "was damaged" in e["message"]]) == 1


def api_get(data_dir: Path, path: str) -> Any:
    url = json.loads((data_dir / "api.json").read_text())["url"]
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


HOLDER = """
import sys, time
from preview_desktop.core.spec import parse_spec
from preview_desktop.queue.local import LocalStore
store = LocalStore(sys.argv[1])
committed = store.submit(parse_spec({"projectId": "locked", "timeline": "/media/committed.mp4"}))
with store._cache.transact():  # a write transaction that never ends: the process dies inside it
    store.submit(parse_spec({"projectId": "locked", "timeline": "/media/uncommitted.mp4"}))
    print(committed.id, flush=True)
    time.sleep(600)
"""


def test_a_store_left_locked_by_a_killed_process_opens_with_every_job(copied: tuple[Path, list[str]]) -> None:
    data_dir, ids = copied
    queue = data_dir / "queue"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(queue)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        committed = holder.stdout.readline().strip()
        assert committed, "the holder did not start"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert (queue / "cache.db-wal").exists() and (queue / "cache.db-shm").exists()  # stale files left behind
    assert damage(queue) is None

    listed = run_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "damaged" not in listed.stderr
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert set(jobs) == {*ids, committed}  # every committed job; the write in flight was rolled back
    assert not [p for p in data_dir.iterdir() if ".damaged-" in p.name]
    more = run_cli("submit", str(make_clip(data_dir.parent / "new.mp4", seconds=0.5)), "--json")
    assert more.returncode == 0, more.stderr  # the lock died with its process
