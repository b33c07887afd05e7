"""LocalStore semantics: leases, priorities, queue limit, retries, cancel, supersede, change log."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from preview_desktop.core.job import JobState, Progress
from preview_desktop.errors import IllegalTransition, JobNotFound, QueueFull
from preview_desktop.queue.local import LocalStore
from tests.support.jobs import make_spec


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> LocalStore:
    s = LocalStore(tmp_path / "queue", queue_max=50, clock=clock)
    yield s
    s.close()


def test_submit_then_lease_runs_the_job(store: LocalStore) -> None:
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


def test_priority_higher_first_then_fifo(store: LocalStore, clock: Clock) -> None:
    ids = []
    for priority in (5, 9, 5, 0, 9):
        clock.now += 1
        ids.append(store.submit(make_spec(timeline=f"/t{len(ids)}.otio", priority=priority)).id)
    order = []
    while (lease := store.lease("w", 30)) is not None:
        order.append(lease.job.id)
    assert order == [ids[1], ids[4], ids[0], ids[2], ids[3]]


def test_set_priority_moves_a_queued_job(store: LocalStore) -> None:
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio"))
    store.set_priority(b.id, 10)
    first = store.lease("w", 30)
    second = store.lease("w", 30)
    assert first is not None and second is not None
    assert [first.job.id, second.job.id] == [b.id, a.id]
    assert store.lease("w", 30) is None  # the stale entry of b is skipped, not run twice


def test_queue_full_stores_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "q", queue_max=2)
    store.submit(make_spec(timeline="/1.otio"))
    store.submit(make_spec(timeline="/2.otio"))
    before = store.list_jobs()
    with pytest.raises(QueueFull, match="PREVIEW_QUEUE_MAX"):
        store.submit(make_spec(timeline="/3.otio"))
    assert store.list_jobs() == before
    # running jobs do not count against the limit of *waiting* jobs
    assert store.lease("w", 30) is not None
    store.submit(make_spec(timeline="/3.otio"))


def test_expired_lease_is_requeued_by_the_reaper(store: LocalStore, clock: Clock) -> None:
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


def test_heartbeat_extends_the_lease_and_reports_cancel(store: LocalStore, clock: Clock) -> None:
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


def test_dead_local_worker_is_reaped_before_its_deadline(store: LocalStore) -> None:
    from preview_desktop.core.process import HOSTNAME

    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=int)
    proc.start()
    proc.join()
    job = store.submit(make_spec())
    assert store.lease(f"{HOSTNAME}:{proc.pid}:ab", 3600) is not None
    assert store.reap() == [job.id]


def test_failures_retry_with_backoff_then_fail(store: LocalStore, clock: Clock) -> None:
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


def test_unretryable_failure_fails_at_once(store: LocalStore) -> None:
    job = store.submit(make_spec(attempts=5))
    lease = store.lease("w", 30)
    assert lease is not None
    assert store.fail(job.id, lease.token, "bad media", None, retryable=False).state is JobState.FAILED


def test_cancel_and_retry_transitions(store: LocalStore) -> None:
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


def test_release_gives_the_job_back_without_using_an_attempt(store: LocalStore) -> None:
    job = store.submit(make_spec())
    lease = store.lease("w", 30)
    assert lease is not None
    released = store.release(job.id, lease.token)
    assert released.state is JobState.QUEUED and released.attempts_made == 0
    assert store.lease("w", 30) is not None


def test_new_job_supersedes_older_ones_of_the_same_timeline(store: LocalStore) -> None:
    old_queued = store.submit(make_spec(timeline="/cut.otio"))
    other = store.submit(make_spec(timeline="/other.otio"))
    new = store.submit(make_spec(timeline="/cut.otio"))
    assert store.get(old_queued.id).state is JobState.CANCELLED
    assert store.get(old_queued.id).superseded_by == new.id
    assert store.get(other.id).state is JobState.QUEUED
    keep = store.submit(make_spec(timeline="/cut.otio", supersede=False))
    assert store.get(new.id).state is JobState.QUEUED and store.get(keep.id).state is JobState.QUEUED


def test_supersede_asks_a_running_job_to_stop(store: LocalStore) -> None:
    running = store.submit(make_spec(timeline="/cut.otio"))
    lease = store.lease("w", 30)
    assert lease is not None
    newer = store.submit(make_spec(timeline="/cut.otio"))
    job = store.get(running.id)
    assert job.state is JobState.RUNNING and job.cancel_requested and job.superseded_by == newer.id


def test_change_log_names_changed_jobs(store: LocalStore) -> None:
    rev = store.current_rev()
    a = store.submit(make_spec(timeline="/a.otio"))
    b = store.submit(make_spec(timeline="/b.otio"))
    store.cancel(a.id)
    changes = store.changes_since(rev)
    assert changes.job_ids == (a.id, b.id)
    assert store.changes_since(changes.rev).job_ids == ()
    assert store.changes_since(-5).job_ids is None  # too far behind: reload


def test_remove_and_purge_finished(store: LocalStore, clock: Clock) -> None:
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


def test_paused_store_leases_nothing(store: LocalStore) -> None:
    store.submit(make_spec())
    store.set_paused(True)
    assert store.lease("w", 30) is None
    store.set_paused(False)
    assert store.lease("w", 30) is not None


def test_list_filters(store: LocalStore) -> None:
    a = store.submit(make_spec(project="one", timeline="/a.otio"))
    store.submit(make_spec(project="two", timeline="/b.otio"))
    store.cancel(a.id)
    assert [j.id for j in store.list_jobs(states=[JobState.CANCELLED])] == [a.id]
    assert [j.project_id for j in store.list_jobs(project_id="two")] == ["two"]


def test_kinds_a_worker_cannot_run_stay_queued(store: LocalStore) -> None:
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
