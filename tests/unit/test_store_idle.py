"""An idle worker's poll writes nothing: `lease` on an empty or paused queue commits no transaction; and reading
the change log takes no write lock.

Every worker leases in a loop; a write per poll would wake every process's store watcher and grow the WAL for
nothing. SQLite's `PRAGMA data_version`, read from a second connection, changes exactly when another connection
commits, so it tells whether a lease wrote.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from preview_desktop.core.job import JobState
from preview_desktop.queue.base import Changes, JobStore
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.memory import MemoryStore
from preview_desktop.settings import load_settings
from tests.support.clock import Clock
from tests.support.jobs import make_spec


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def local(tmp_path: Path, clock: Clock) -> Iterator[LocalStore]:
    settings = load_settings(env={"DATA_DIR": str(tmp_path / "data")}, settings_file=tmp_path / "none.json")
    store = LocalStore(settings.queue_dir, clock=clock, retry_base=10.0)
    yield store
    store.close()


@pytest.fixture
def version(local: LocalStore) -> Iterator[Callable[[], int]]:
    """SQLite's data_version of the store's database, as another connection sees it."""
    con = sqlite3.connect(str(local.db_path), isolation_level=None)
    yield lambda: int(con.execute("PRAGMA data_version").fetchone()[0])
    con.close()


def test_leasing_from_an_empty_queue_writes_nothing(local: LocalStore, version: Callable[[], int]) -> None:
    before = version()
    for _ in range(5):
        assert local.lease("w1", 30) is None
    assert version() == before, "an empty lease committed a write"
    job = local.submit(make_spec())
    submitted = version()
    assert submitted != before
    lease = local.lease("w1", 30)
    assert lease is not None and lease.job.id == job.id
    assert version() != submitted, "taking a lease committed nothing"
    assert local.lease("w1", 30) is None  # the only job runs: idle again
    leased = version()
    assert local.lease("w1", 30) is None
    assert version() == leased


def test_leasing_from_a_paused_queue_writes_nothing(local: LocalStore, version: Callable[[], int]) -> None:
    job = local.submit(make_spec())
    local.set_paused(True)
    before = version()
    for _ in range(5):
        assert local.lease("w1", 30) is None
    assert version() == before, "a lease on a paused queue committed a write"
    local.set_paused(False)
    resumed = version()
    lease = local.lease("w1", 30)
    assert lease is not None and lease.job.id == job.id
    assert version() != resumed


def test_a_retry_not_yet_due_writes_nothing_and_a_due_one_is_promoted(
        local: LocalStore, version: Callable[[], int], clock: Clock) -> None:
    job = local.submit(make_spec(attempts=3))
    lease = local.lease("w1", 30)
    assert lease is not None
    local.fail(job.id, lease.token, "boom", None, retryable=True)
    assert local.get(job.id).state is JobState.RETRYING
    before = version()
    for _ in range(3):
        assert local.lease("w1", 30) is None  # its backoff (10 s) has not passed
    assert version() == before, "a lease with no due retry committed a write"
    # Paused, the due retry is still promoted (written) though nothing is leased.
    local.set_paused(True)
    paused = version()
    clock.now += 11
    assert local.lease("w1", 30) is None
    assert version() != paused, "the due retry was promoted but not written"
    assert local.get(job.id).state is JobState.QUEUED
    promoted = version()
    assert local.lease("w1", 30) is None
    assert version() == promoted
    local.set_paused(False)
    again = local.lease("w1", 30)
    assert again is not None and again.job.id == job.id


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_an_idle_lease_wakes_no_watcher(kind: str, tmp_path: Path) -> None:
    """Both stores: a watcher (the engine's, in every process on the store) hears a lease taken, never an idle one."""
    store: JobStore = LocalStore(tmp_path / "queue") if kind == "local" else MemoryStore()
    heard = threading.Event()
    watch = store.watch(heard.set)
    try:
        for _ in range(5):
            assert store.lease("w1", 30) is None
        time.sleep(0.2)  # LocalStore's watcher polls every 10 ms
        assert not heard.is_set(), "an idle lease woke the watcher"
        store.submit(make_spec())
        assert heard.wait(5)
        time.sleep(0.1)
        heard.clear()
        assert store.lease("w1", 30) is not None
        assert heard.wait(5), "taking a lease woke no watcher"
    finally:
        watch.stop()
        store.close()


def test_reading_the_change_log_waits_for_no_writer(local: LocalStore) -> None:
    """Every process's engine reads the change log after each commit it hears; while another process holds the
    store's write lock (a long purge, a full disk's retries), that read must not queue behind it."""
    first = local.submit(make_spec()).id
    rev = local.current_rev()
    second = local.submit(make_spec()).id
    latest = local.current_rev()
    writer = sqlite3.connect(str(local.db_path), isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, left open
    try:
        answer: list[Changes] = []
        reader = threading.Thread(target=lambda: answer.append(local.changes_since(rev - 1)), daemon=True)
        reader.start()
        reader.join(5.0)
        assert not reader.is_alive(), "changes_since waited for another connection's write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert answer == [Changes(latest, (first, second))]


def test_a_window_pruned_meanwhile_asks_for_a_full_sync(local: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a transaction, commits may land between reading the revision and reading the log: when they are
    enough to prune the window being read, the reader is told to sync in full, never handed a silent gap."""
    from preview_desktop.queue import local as local_module

    for _ in range(4):
        local.submit(make_spec())
    rev = local.current_rev()
    monkeypatch.setattr(local_module, "LOG_KEEP", 3)  # the 4 commits below prune the window after `rev - 2`
    reads = iter([rev, rev + 4])  # the revision as read before and after the log
    monkeypatch.setattr(local, "_meta", lambda: {"rev": next(reads)})
    assert local.changes_since(rev - 2).job_ids is None
