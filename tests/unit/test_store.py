"""The job store contract: leases, priorities, queue limit, retries, cancel, supersede, change log, watch.

Every test runs against both stores (LocalStore on diskcache, MemoryStore in memory) unless it says why it is
LocalStore's alone: the two must not drift apart.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.job import JobState, Progress
from preview_desktop.errors import IllegalTransition, JobNotFound, QueueFull
from preview_desktop.queue.base import JobStore
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.memory import MemoryStore
from tests.support.clock import Clock
from tests.support.jobs import make_spec


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Callable[..., JobStore]]:
    """Makes stores of the kind under test (the test clock unless told otherwise); closes them afterwards."""
    made: list[JobStore] = []

    def make(**options: Any) -> JobStore:
        options.setdefault("clock", clock)
        if request.param == "local":
            new: JobStore = LocalStore(tmp_path / f"queue{len(made)}", **options)
        else:
            new = MemoryStore(**options)
        made.append(new)
        return new

    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., JobStore]) -> JobStore:
    return make_store(queue_max=50)


def test_submit_then_lease_runs_the_job(store: JobStore) -> None:
    job = store.submit(make_spec())
    assert store.get(job.id).state is JobState.QUEUED
    lease = store.lease("w1", 30)
    assert lease is not None and lease.job.id == job.id
    assert store.get(job.id).state is JobState.RUNNING
    assert store.get(job.id).attempts_made == 1
    assert store.lease("w1", 30) is None
    done = store.complete(job.id, lease.token, {"ok": True})
    assert done.state is JobState.SUCCEEDED and done.result == {"ok": True}
    assert store.counts()["succeeded"] == 1 and store.counts()["queued"] == 0


def test_priority_higher_first_then_fifo(store: JobStore, clock: Clock) -> None:
    ids = []
    for priority in (5, 9, 5, 0, 9):
        clock.now += 1
        ids.append(store.submit(make_spec(timeline=f"/t{len(ids)}.otio", priority=priority)).id)
    order = []
    while (lease := store.lease("w", 30)) is not None:
        order.append(lease.job.id)
    assert order == [ids[1], ids[4], ids[0], ids[2], ids[3]]


def test_set_priority_moves_a_queued_job(store: JobStore) -> None:
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio"))
    store.set_priority(b.id, 10)
    first = store.lease("w", 30)
    second = store.lease("w", 30)
    assert first is not None and second is not None
    assert [first.job.id, second.job.id] == [b.id, a.id]
    assert store.lease("w", 30) is None  # the stale entry of b is skipped, not run twice


def test_queue_full_stores_nothing(make_store: Callable[..., JobStore]) -> None:
    store = make_store(queue_max=2, clock=time.time)
    store.submit(make_spec(timeline="/1.otio"))
    store.submit(make_spec(timeline="/2.otio"))
    before = store.list_jobs()
    with pytest.raises(QueueFull, match="PREVIEW_QUEUE_MAX"):
        store.submit(make_spec(timeline="/3.otio"))
    assert store.list_jobs() == before
    # running jobs do not count against the limit of *waiting* jobs
    assert store.lease("w", 30) is not None
    store.submit(make_spec(timeline="/3.otio"))


def test_expired_lease_is_requeued_by_the_reaper(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec())
    lease = store.lease("otherhost:1:ab", 10)
    assert lease is not None
    clock.now += 5
    assert store.reap() == []
    clock.now += 6
    assert store.reap() == [job.id]
    again = store.get(job.id)
    assert again.state is JobState.QUEUED and again.stalls == 1 and again.attempts_made == 0
    with pytest.raises(IllegalTransition):  # the old worker can no longer complete it
        store.complete(job.id, lease.token, {})
    lease2 = store.lease("w2", 10)
    assert lease2 is not None and lease2.job.id == job.id


def test_heartbeat_extends_the_lease_and_reports_cancel(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec())
    lease = store.lease("otherhost:1:ab", 10)
    assert lease is not None
    clock.now += 8
    reply = store.heartbeat({job.id: lease.token}, 10, {job.id: Progress(0.5, 5, 10, 2.0)})
    assert reply.cancel_requested == frozenset() and reply.lost == frozenset()
    assert store.get(job.id).progress.frame == 5
    clock.now += 8
    assert store.reap() == []  # extended
    store.cancel(job.id)
    assert store.get(job.id).state is JobState.RUNNING  # the worker must see and acknowledge it
    reply = store.heartbeat({job.id: lease.token}, 10)
    assert reply.cancel_requested == {job.id}
    assert store.acknowledge_cancel(job.id, lease.token).state is JobState.CANCELLED


def test_dead_local_worker_is_reaped_before_its_deadline(store: JobStore) -> None:
    from preview_desktop.core.process import HOSTNAME

    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=int)
    proc.start()
    proc.join()
    job = store.submit(make_spec())
    assert store.lease(f"{HOSTNAME}:{proc.pid}:ab", 3600) is not None
    assert store.reap() == [job.id]


def test_failures_retry_with_backoff_then_fail(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec(attempts=3))
    delays = []
    for attempt in range(1, 4):
        lease = store.lease("w", 30)
        if lease is None:
            due = store.next_due()
            assert due is not None
            delays.append(due - clock.now)
            clock.now = due
            lease = store.lease("w", 30)
        assert lease is not None and lease.job.attempts_made == attempt
        failed = store.fail(job.id, lease.token, f"boom {attempt}", "tb", retryable=True)
    assert delays == [2.0, 4.0]
    assert failed.state is JobState.FAILED and failed.error == "boom 3" and failed.traceback == "tb"


def test_a_disk_full_failure_waits_without_using_an_attempt(store: JobStore, clock: Clock) -> None:
    """`wait` (a full disk): the attempt is given back and the job runs again after `wait` seconds, however
    often it happens; an ordinary failure afterwards still counts."""
    job = store.submit(make_spec(attempts=2))
    for _ in range(5):
        lease = store.lease("w", 30)
        assert lease is not None and lease.job.attempts_made == 1
        waiting = store.fail(job.id, lease.token, "disk full: no space left in DATA_DIR/previews", None, True,
                             wait=60.0)
        assert waiting.state is JobState.RETRYING and waiting.attempts_made == 0
        assert store.next_due() == clock.now + 60.0
        assert store.lease("w", 30) is None  # not before the wait is over
        clock.now += 60.0
    lease = store.lease("w", 30)
    assert lease is not None
    assert store.fail(job.id, lease.token, "boom", None, True).attempts_made == 1


def test_unretryable_failure_fails_at_once(store: JobStore) -> None:
    job = store.submit(make_spec(attempts=5))
    lease = store.lease("w", 30)
    assert lease is not None
    assert store.fail(job.id, lease.token, "bad media", None, retryable=False).state is JobState.FAILED


def test_cancel_and_retry_transitions(store: JobStore) -> None:
    job = store.submit(make_spec())
    assert store.cancel(job.id).state is JobState.CANCELLED
    assert store.lease("w", 30) is None  # cancelled jobs are not run
    with pytest.raises(IllegalTransition, match="cannot cancel"):
        store.cancel(job.id)
    retried = store.retry(job.id)
    assert retried.state is JobState.QUEUED and retried.attempts_made == 0
    lease = store.lease("w", 30)
    assert lease is not None
    store.complete(job.id, lease.token, {})
    with pytest.raises(IllegalTransition, match=r"cannot cancel job .*: it is succeeded"):
        store.cancel(job.id)
    with pytest.raises(IllegalTransition):
        store.retry(job.id)
    with pytest.raises(JobNotFound):
        store.cancel("20260101-000000-00000000")


def test_release_gives_the_job_back_without_using_an_attempt(store: JobStore) -> None:
    job = store.submit(make_spec())
    lease = store.lease("w", 30)
    assert lease is not None
    released = store.release(job.id, lease.token)
    assert released.state is JobState.QUEUED and released.attempts_made == 0
    assert store.lease("w", 30) is not None


def test_new_job_supersedes_older_ones_of_the_same_timeline(store: JobStore) -> None:
    old_queued = store.submit(make_spec(timeline="/cut.otio"))
    other = store.submit(make_spec(timeline="/other.otio"))
    new = store.submit(make_spec(timeline="/cut.otio"))
    assert store.get(old_queued.id).state is JobState.CANCELLED
    assert store.get(old_queued.id).superseded_by == new.id
    assert store.get(other.id).state is JobState.QUEUED
    keep = store.submit(make_spec(timeline="/cut.otio", supersede=False))
    assert store.get(new.id).state is JobState.QUEUED and store.get(keep.id).state is JobState.QUEUED


def test_supersede_asks_a_running_job_to_stop(store: JobStore) -> None:
    running = store.submit(make_spec(timeline="/cut.otio"))
    lease = store.lease("w", 30)
    assert lease is not None
    newer = store.submit(make_spec(timeline="/cut.otio"))
    job = store.get(running.id)
    assert job.state is JobState.RUNNING and job.cancel_requested and job.superseded_by == newer.id


def test_change_log_names_changed_jobs(store: JobStore) -> None:
    rev = store.current_rev()
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio"))
    store.cancel(a.id)
    changes = store.changes_since(rev)
    assert changes.job_ids == (a.id, b.id)
    assert store.changes_since(changes.rev).job_ids == ()
    assert store.changes_since(-5).job_ids is None  # too far behind: reload


def test_remove_and_purge_finished(store: JobStore, clock: Clock) -> None:
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio"))
    with pytest.raises(IllegalTransition):
        store.remove(a.id)
    store.cancel(a.id)
    store.cancel(b.id)
    store.remove(a.id)
    with pytest.raises(JobNotFound):
        store.get(a.id)
    clock.now += 10 * 86400
    assert store.purge_finished(86400) == 1
    assert store.list_jobs() == []
    assert store.counts()["cancelled"] == 0


def test_paused_store_leases_nothing(store: JobStore) -> None:
    store.submit(make_spec())
    store.set_paused(True)
    assert store.lease("w", 30) is None
    store.set_paused(False)
    assert store.lease("w", 30) is not None


def test_list_filters(store: JobStore) -> None:
    a = store.submit(make_spec(project="one", timeline="/a.otio"))
    store.submit(make_spec(project="two", timeline="/b.otio"))
    store.cancel(a.id)
    assert [j.id for j in store.list_jobs(states=[JobState.CANCELLED])] == [a.id]
    assert [j.project_id for j in store.list_jobs(project_id="two")] == ["two"]


def test_kinds_a_worker_cannot_run_stay_queued(store: JobStore) -> None:
    other = store.submit(make_spec(timeline="/a.otio"), kind="other")
    mine = store.submit(make_spec(timeline="/b.otio"), kind="render")
    lease = store.lease("w", 30, kinds=["render"])
    assert lease is not None and lease.job.id == mine.id
    lease2 = store.lease("w", 30, kinds=["other"])
    assert lease2 is not None and lease2.job.id == other.id


def _lease_all(directory: str, out: multiprocessing.Queue[list[str]]) -> None:
    store = LocalStore(Path(directory))
    got: list[str] = []
    while (lease := store.lease(f"proc-{multiprocessing.current_process().pid}", 30)) is not None:
        store.complete(lease.job.id, lease.token, {})
        got.append(lease.job.id)
    out.put(got)


# LocalStore only: sharing one store between processes is what diskcache is for (MemoryStore is one process's).
def test_two_processes_lease_concurrently_without_duplicates_or_loss(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "q", queue_max=10_000)
    ids = {store.submit(make_spec(timeline=f"/{i}.otio")).id for i in range(400)}
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_lease_all, args=(str(tmp_path / "q"), out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    leased = [job_id for result in results for job_id in result]
    assert len(leased) == len(set(leased)) == 400
    assert set(leased) == ids
    assert all(len(r) > 0 for r in results), "both processes should have taken work"
    assert store.counts()["succeeded"] == 400


def test_a_job_read_is_a_copy(store: JobStore) -> None:
    job = store.submit(make_spec())
    read = store.get(job.id)
    read.spec["timeline"] = "/elsewhere.otio"
    read.state = JobState.FAILED
    job.spec["timeline"] = "/other.otio"  # what submit returned is a copy too
    again = store.get(job.id)
    assert again.state is JobState.QUEUED and again.spec["timeline"] == "/media/cut.otio"


def test_heartbeat_of_a_reaped_lease_reports_it_lost(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec())
    lease = store.lease("otherhost:1:ab", 10)
    assert lease is not None
    clock.now += 11
    assert store.reap() == [job.id]
    reply = store.heartbeat({job.id: lease.token}, 10, {job.id: Progress(0.5, 5, 10, 2.0)})
    assert reply.lost == {job.id} and reply.cancel_requested == frozenset()
    assert store.get(job.id).progress.frame == 0


def test_too_many_stalls_fail_the_job(make_store: Callable[..., JobStore], clock: Clock) -> None:
    store = make_store(max_stalls=1)
    job = store.submit(make_spec())
    for _ in range(2):
        assert store.lease("otherhost:1:ab", 10) is not None
        clock.now += 11
        assert store.reap() == [job.id]
    failed = store.get(job.id)
    assert failed.state is JobState.FAILED and failed.stalls == 2
    assert failed.error == "its worker stopped responding 2 times; giving up"
    assert store.counts()["failed"] == 1 and store.counts()["running"] == 0 and store.counts()["queued"] == 0
    assert store.lease("w", 10) is None


def test_reaping_a_job_asked_to_cancel_cancels_it(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec())
    assert store.lease("otherhost:1:ab", 10) is not None
    store.cancel(job.id)
    clock.now += 11
    assert store.reap() == [job.id]
    assert store.get(job.id).state is JobState.CANCELLED
    assert store.lease("w", 10) is None


def test_release_or_fail_of_a_job_asked_to_cancel_cancels_it(store: JobStore) -> None:
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio", attempts=3))
    lease_a, lease_b = store.lease("w", 30), store.lease("w", 30)
    assert lease_a is not None and lease_b is not None and lease_a.job.id == a.id
    store.cancel(a.id)
    store.cancel(b.id)
    assert store.release(a.id, lease_a.token).state is JobState.CANCELLED
    assert store.fail(b.id, lease_b.token, "boom", None, retryable=True).state is JobState.CANCELLED
    assert store.next_due() is None and store.lease("w", 30) is None
    assert store.counts()["cancelled"] == 2 and store.counts()["running"] == 0


def test_retry_base_and_the_reaper_promotes_due_retries(make_store: Callable[..., JobStore], clock: Clock) -> None:
    store = make_store(retry_base=0.5)
    job = store.submit(make_spec(attempts=2))
    lease = store.lease("w", 30)
    assert lease is not None
    retrying = store.fail(job.id, lease.token, "boom", None, retryable=True)
    assert retrying.state is JobState.RETRYING and retrying.not_before == clock.now + 0.5
    assert store.next_due() == clock.now + 0.5
    assert store.lease("w", 30) is None  # not before its backoff
    assert store.counts()["retrying"] == 1
    clock.now += 0.5
    assert store.reap() == []  # no lease expired, but the due retry is queued again
    assert store.get(job.id).state is JobState.QUEUED and store.next_due() is None
    again = store.lease("w", 30)
    assert again is not None and again.job.attempts_made == 2


def test_priority_is_clamped_and_fixed_once_finished(store: JobStore) -> None:
    job = store.submit(make_spec())
    assert store.set_priority(job.id, 42).priority == 10
    assert store.get(job.id).spec["priority"] == 10
    assert store.set_priority(job.id, -3).priority == 0
    store.cancel(job.id)
    with pytest.raises(IllegalTransition, match="priority"):
        store.set_priority(job.id, 1)


def test_retry_is_refused_when_the_queue_is_full(make_store: Callable[..., JobStore]) -> None:
    store = make_store(queue_max=1)
    a = store.submit(make_spec(timeline="/a.otio"))
    store.cancel(a.id)
    store.submit(make_spec(timeline="/b.otio"))
    rev = store.current_rev()
    with pytest.raises(QueueFull, match="was not retried"):
        store.retry(a.id)
    assert store.get(a.id).state is JobState.CANCELLED and store.current_rev() == rev


def test_illegal_operations_change_nothing(store: JobStore) -> None:
    job = store.submit(make_spec())
    lease = store.lease("w", 30)
    assert lease is not None
    store.complete(job.id, lease.token, {"ok": True})
    rev, counts = store.current_rev(), store.counts()
    with pytest.raises(IllegalTransition):
        store.complete(job.id, lease.token, {})  # the lease ended with the first complete
    with pytest.raises(IllegalTransition):
        store.cancel(job.id)
    with pytest.raises(JobNotFound):
        store.remove("20260101-000000-00000000")
    assert store.current_rev() == rev and store.counts() == counts


def test_pause_is_in_the_change_log(store: JobStore) -> None:
    rev = store.current_rev()
    store.set_paused(True)
    assert store.is_paused()
    changes = store.changes_since(rev)
    assert changes.rev > rev and changes.job_ids == ()
    store.set_paused(False)
    assert not store.is_paused()


def test_threads_lease_concurrently_without_duplicates_or_loss(make_store: Callable[..., JobStore]) -> None:
    store = make_store(queue_max=1000, clock=time.time)
    ids = {store.submit(make_spec(timeline=f"/{i}.otio")).id for i in range(200)}
    taken: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        while (lease := store.lease("w", 30)) is not None:
            store.complete(lease.job.id, lease.token, {})
            out.append(lease.job.id)

    threads = [threading.Thread(target=work, args=(out,)) for out in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    leased = [job_id for out in taken for job_id in out]
    assert len(leased) == len(set(leased)) == 200
    assert set(leased) == ids
    assert store.counts()["succeeded"] == 200


def test_watch_hears_a_change_from_another_thread_until_stopped(store: JobStore) -> None:
    heard = threading.Event()
    revs: list[int] = []

    def on_change() -> None:
        revs.append(store.current_rev())  # the store can be read from the callback
        heard.set()

    watch = store.watch(on_change)
    try:
        submitter = threading.Thread(target=store.submit, args=(make_spec(),))
        submitter.start()
        submitter.join(timeout=30)
        assert heard.wait(5), "the watcher did not hear the submit"
        assert revs[-1] >= 1
    finally:
        watch.stop()
    heard.clear()
    store.submit(make_spec(timeline="/later.otio"))
    time.sleep(0.1)
    assert not heard.is_set(), "a stopped watcher was called"
    watch.stop()  # idempotent


def test_a_failing_watcher_breaks_neither_the_store_nor_itself(store: JobStore) -> None:
    calls: list[int] = []

    def on_change() -> None:
        calls.append(1)
        raise RuntimeError("watcher bug")

    watch = store.watch(on_change)
    try:
        store.submit(make_spec(timeline="/a.otio"))
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        store.submit(make_spec(timeline="/b.otio"))
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 2
    finally:
        watch.stop()
    assert store.counts()["queued"] == 2


def _submit_one(directory: str) -> None:
    LocalStore(Path(directory)).submit(make_spec(timeline="/from-another-process.otio"))


# LocalStore only: another process's commit reaches a watcher through SQLite (a MemoryStore is one process's).
def test_local_watch_hears_a_submit_from_another_process(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "q")
    heard = threading.Event()
    watch = store.watch(heard.set)
    try:
        proc = multiprocessing.get_context("spawn").Process(target=_submit_one, args=(str(tmp_path / "q"),))
        proc.start()
        proc.join(timeout=60)
        assert proc.exitcode == 0
        assert heard.wait(5), "the watcher did not hear the other process's submit"
        assert [j.spec["timeline"] for j in store.list_jobs()] == ["/from-another-process.otio"]
    finally:
        watch.stop()
        store.close()


def test_cancelling_a_retrying_job_drops_its_backoff(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec(attempts=3))
    lease = store.lease("w", 30)
    assert lease is not None
    store.fail(job.id, lease.token, "boom", None, retryable=True)
    assert store.next_due() is not None
    assert store.cancel(job.id).state is JobState.CANCELLED
    assert store.next_due() is None
    clock.now += 3600
    assert store.reap() == [] and store.lease("w", 30) is None
    assert store.get(job.id).state is JobState.CANCELLED


def test_a_failed_record_counts_as_failed_and_supersedes(store: JobStore) -> None:
    """record_failed: what could not be queued (a watched export) is kept as a failed job with its reason."""
    older = store.submit(make_spec(project="p", timeline="/m/a.otio"))
    failed = store.record_failed({"projectId": "p", "timeline": "/m/a.otio", "output": {"width": 3}},
                                 "output.width: must be even")
    assert failed.state is JobState.FAILED and failed.error == "output.width: must be even"
    assert store.get(older.id).superseded_by == failed.id
    assert store.counts()["failed"] == 1 and store.counts()["queued"] == 0
    assert [j.id for j in store.list_jobs(states=[JobState.FAILED])] == [failed.id]
    assert store.lease("w1", 30) is None  # never leased, never waiting
    retried = store.retry(failed.id)  # legal; the boundary refuses the recorded spec again when it runs
    assert retried.state is JobState.QUEUED


def test_only_failed_or_cancelled_jobs_can_be_retried(store: JobStore) -> None:
    """Retrying a running job would queue it while its lease lives: it would run twice."""
    job = store.submit(make_spec())
    with pytest.raises(IllegalTransition, match="cannot retry"):
        store.retry(job.id)  # queued
    lease = store.lease("w1", 30)
    assert lease is not None
    with pytest.raises(IllegalTransition, match="it is running"):
        store.retry(job.id)
    assert store.get(job.id).state is JobState.RUNNING and store.reap() == []
