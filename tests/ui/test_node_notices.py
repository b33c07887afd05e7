"""The window says what is wrong with the node: a full disk (until space is back) and a repaired job store.

Real parts: the node renders with the real renderer into a DATA_DIR on a small tmpfs, or starts on a job store
whose file was overwritten with random bytes, next to previews made by the real `preview-desktop render`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.job import JobState, new_job_id
from preview_desktop.core.spec import parse_spec
from preview_desktop.node import Node
from preview_desktop.settings import Settings
from tests.support.cli import run_cli
from tests.support.media import make_clip
from tests.support.noise import make_noise_clip
from tests.support.qtloop import run
from tests.support.tmpfs import MB, fill, tmpfs
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.timeout(300)


def _damaged_store_beside_two_previews(data_dir: Path, tmp_path: Path) -> list[str]:
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    ids = [new_job_id() for _ in range(2)]
    for job_id in ids:
        done = run_cli("render", str(clip), "--project", "win", "--out", str(data_dir / "previews" / "win" / job_id))
        assert done.returncode == 0, done.stderr
    (data_dir / "queue").mkdir(parents=True, exist_ok=True)
    (data_dir / "queue" / "cache.db").write_bytes(os.urandom(16384))
    return ids


@pytest.fixture
def node(request: pytest.FixtureRequest, qloop: asyncio.AbstractEventLoop, settings: Settings, data_dir: Path,
         tmp_path: Path) -> Iterator[Node]:
    """A node with the real renderer; `request.param` prepares DATA_DIR: "full disk" or "damaged store"."""
    with contextlib.ExitStack() as stack:
        if request.param == "full disk":
            stack.enter_context(tmpfs(data_dir, 40))
        else:
            request.node.recoverable = _damaged_store_beside_two_previews(data_dir, tmp_path)
        node = Node(settings.with_overrides(max_concurrency=1, disk_full_retry_seconds=2.0, lease_seconds=30.0),
                    qloop, with_api=False, with_farm=False, with_watch=False)
        yield node
        if not node.engine.stopping:
            run(qloop, node.stop(grace=2, interrupt=True))


@pytest.mark.parametrize("node", ["full disk"], indirect=True)
def test_the_window_says_disk_full_and_the_job_succeeds_once_space_is_back(
        window: Any, node: Node, qloop: asyncio.AbstractEventLoop, data_dir: Path, tmp_path: Path) -> None:
    clip = make_noise_clip(tmp_path / "media" / "noise.mp4", seconds=4)
    ballast = fill(data_dir, 4 * MB)
    spec = parse_spec({"projectId": "full", "timeline": str(clip)})
    job = run(qloop, node.engine.call(node.store.submit, spec))
    label = window.node_notice
    wait_until(qloop, lambda: label.isVisible() and label.text().startswith("Disk full: "), timeout=120,
               what="the disk-full notice")
    assert "no space left in DATA_DIR/" in label.text()
    stored = wait_until(qloop, lambda: (j := node.store.get(job.id)).error and j, what="the job's reason")
    assert stored.error.startswith("disk full: ")
    assert stored.state is not JobState.FAILED
    assert window.isVisible()
    ballast.unlink()
    wait_until(qloop, lambda: node.store.get(job.id).state is JobState.SUCCEEDED, timeout=180, what="success")
    wait_until(qloop, lambda: label.text() == "Disk space is back", timeout=10, what="the notice to clear")
    assert (data_dir / "previews" / "full" / job.id / "preview.mp4").is_file()


@pytest.mark.parametrize("node", ["damaged store"], indirect=True)
def test_the_window_says_the_store_was_repaired_and_shows_the_recovered_jobs(
        window: Any, node: Node, qloop: asyncio.AbstractEventLoop, data_dir: Path,
        request: pytest.FixtureRequest) -> None:
    ids = request.node.recoverable
    label = window.node_notice
    assert label.isVisible() and label.text().startswith("Job store repaired: the job store ")
    assert "put back 2 finished job(s)" in label.text()
    wait_until(qloop, lambda: window.model.rowCount() == 2, what="the recovered jobs in the table")
    assert {node.engine.jobs[i].state for i in ids} == {JobState.SUCCEEDED}
    assert [p.name for p in data_dir.iterdir() if p.name.startswith("queue.damaged-")]
