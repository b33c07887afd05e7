# ruff: noqa: F811  (the store fixtures are imported from test_store.py and shadowed by test arguments)
"""The store contract of `mirror`, the one operation that writes a farm record (a local job that runs on the farm),
over both stores (the fixtures of test_store.py run each test on LocalStore and MemoryStore)."""

from __future__ import annotations

import pytest

from preview_desktop.core.job import FARM_KIND, Job, JobState, Progress
from preview_desktop.errors import IllegalTransition
from preview_desktop.queue.base import FarmUpdate, JobStore
from preview_desktop.queue.rules import steps_to
from tests.support.jobs import make_spec
from tests.unit.test_store import Clock, clock, make_store, store  # noqa: F401  (fixtures)


def sent(store: JobStore, farm_id: str = "17", timeline: str = "/cut.otio") -> Job:
    """A local job sent to the farm: converted in place into a farm record."""
    job = store.submit(make_spec(timeline=timeline))
    return store.mirror(job.id, FarmUpdate(JobState.QUEUED, farm_id=farm_id))


def test_a_waiting_job_sent_to_the_farm_becomes_a_farm_record_the_engine_never_leases(store: JobStore) -> None:
    job = sent(store)
    assert (job.kind, job.origin, job.farm_id, job.state) == (FARM_KIND, "farm", "17", JobState.QUEUED)
    stored = store.get(job.id)
    assert (stored.kind, stored.origin, stored.farm_id) == (FARM_KIND, "farm", "17")
    assert store.lease("w", 30) is None  # not even a worker that runs every kind
    assert store.lease("w", 30, kinds=[FARM_KIND]) is None
    assert stored.to_wire()["farmId"] == "17" and stored.to_wire()["origin"] == "farm"


def test_a_farm_records_priority_change_gives_it_no_local_queue_entry(store: JobStore) -> None:
    """The farm orders a farm record (JobService.set_priority changes the farm job first); the store only notes the
    new priority. Before, a queued record got a live local queue entry, which a worker of every kind leased."""
    job = sent(store)
    local = store.submit(make_spec(timeline="/local.otio"))
    raised = store.set_priority(job.id, 9)
    assert (raised.priority, raised.spec["priority"], raised.state, raised.kind) == (9, 9, JobState.QUEUED, FARM_KIND)
    assert store.get(job.id).priority == 9
    lease = store.lease("w", 30)  # any kind
    assert lease is not None and lease.job.id == local.id  # the local job, although the record now ranks higher
    assert store.lease("w", 30) is None


def test_the_farm_state_is_mirrored_step_by_step_through_the_state_machine(store: JobStore, clock: Clock) -> None:
    job = sent(store)
    rev = store.current_rev()
    clock.now += 1
    running = store.mirror(job.id, FarmUpdate(JobState.RUNNING, progress=Progress(0.5, 5, 10), worker="box:9:ab",
                                              attempts_made=1))
    assert running.state is JobState.RUNNING and running.started_at == clock.now
    assert (running.progress.frame, running.progress.frames, running.worker) == (5, 10, "box:9:ab")
    assert store.changes_since(rev).job_ids == (job.id,)
    assert store.counts()["running"] == 1 and store.counts()["queued"] == 0
    clock.now += 1
    done = store.mirror(job.id, FarmUpdate(JobState.SUCCEEDED, progress=Progress(1.0, 10, 10), result={"ok": 1}))
    assert done.state is JobState.SUCCEEDED and done.result == {"ok": 1} and done.finished_at == clock.now
    assert store.get(job.id).result == {"ok": 1} and store.counts()["succeeded"] == 1


def test_a_state_the_poll_missed_is_walked_through(store: JobStore) -> None:
    job = sent(store)
    done = store.mirror(job.id, FarmUpdate(JobState.SUCCEEDED, result={"ok": 1}))  # queued → running → succeeded
    assert done.state is JobState.SUCCEEDED and done.started_at is not None
    failed = store.mirror(sent(store, "18", "/b.otio").id, FarmUpdate(JobState.FAILED, error="boom"))
    assert failed.state is JobState.FAILED and failed.error == "boom"
    assert steps_to(JobState.QUEUED, JobState.RETRYING) == [JobState.RUNNING, JobState.RETRYING]
    assert steps_to(JobState.RUNNING, JobState.QUEUED) == [JobState.QUEUED]
    with pytest.raises(IllegalTransition):
        steps_to(JobState.SUCCEEDED, JobState.RUNNING)


def test_a_finished_record_stays_finished_and_a_refused_mirror_changes_nothing(store: JobStore) -> None:
    job = sent(store)
    store.mirror(job.id, FarmUpdate(JobState.SUCCEEDED, result={"ok": 1}))
    before, rev = store.get(job.id), store.current_rev()
    with pytest.raises(IllegalTransition):
        store.mirror(job.id, FarmUpdate(JobState.RUNNING, worker="late"))
    cancelled = store.cancel(sent(store, "19", "/c.otio").id)  # a queued farm record is cancelled at once
    with pytest.raises(IllegalTransition):
        store.mirror(cancelled.id, FarmUpdate(JobState.RUNNING))  # the farm job lingers: no un-cancelling
    assert store.get(cancelled.id).state is JobState.CANCELLED
    assert store.get(job.id) == before and store.changes_since(rev).job_ids == (cancelled.id,)


def test_only_farm_records_and_waiting_jobs_being_sent_are_mirrored(store: JobStore) -> None:
    local = store.submit(make_spec())
    with pytest.raises(IllegalTransition, match="not on the farm"):
        store.mirror(local.id, FarmUpdate(JobState.RUNNING))
    lease = store.lease("w", 30)
    assert lease is not None
    with pytest.raises(IllegalTransition, match="it is running"):
        store.mirror(local.id, FarmUpdate(JobState.QUEUED, farm_id="20"))  # the engine took it first
    job = store.get(local.id)
    assert (job.state, job.kind, job.farm_id) == (JobState.RUNNING, "render", None)


def test_a_retrying_job_sent_to_the_farm_leaves_its_backoff(store: JobStore, clock: Clock) -> None:
    job = store.submit(make_spec())
    lease = store.lease("w", 30)
    assert lease is not None
    store.fail(job.id, lease.token, "boom", None, retryable=True)
    assert store.next_due() is not None
    moved = store.mirror(job.id, FarmUpdate(JobState.QUEUED, farm_id="21"))
    assert moved.state is JobState.QUEUED and moved.attempts_made == 0 and moved.error is None
    assert store.next_due() is None
    clock.now += 3600
    store.reap()
    assert store.lease("w", 30) is None and store.get(job.id).state is JobState.QUEUED


def test_a_farm_record_and_a_local_job_do_not_supersede_each_other(store: JobStore) -> None:
    record = sent(store, "22", "/cut.otio")
    newer_local = store.submit(make_spec(timeline="/cut.otio"))
    assert store.get(record.id).state is JobState.QUEUED and not store.get(record.id).cancel_requested
    store.mirror(record.id, FarmUpdate(JobState.RUNNING))
    newest_local = store.submit(make_spec(timeline="/cut.otio"))
    assert not store.get(record.id).cancel_requested
    assert store.get(newer_local.id).superseded_by == newest_local.id  # local jobs still supersede each other


def test_retry_resubmits_a_finished_record_with_a_new_farm_id(store: JobStore) -> None:
    job = sent(store, "23")
    store.mirror(job.id, FarmUpdate(JobState.FAILED, error="boom", attempts_made=3))
    with pytest.raises(IllegalTransition):
        store.mirror(job.id, FarmUpdate(JobState.QUEUED, farm_id="23"))  # the same farm job: nothing new
    again = store.mirror(job.id, FarmUpdate(JobState.QUEUED, farm_id="24"))
    assert (again.state, again.farm_id, again.attempts_made, again.error) == (JobState.QUEUED, "24", 0, None)
    assert store.lease("w", 30) is None
    store.mirror(job.id, FarmUpdate(JobState.SUCCEEDED, result={}))
    with pytest.raises(IllegalTransition):
        store.mirror(job.id, FarmUpdate(JobState.QUEUED, farm_id="25"))  # a succeeded job is not retried


def test_cancel_of_a_running_farm_record_waits_for_the_farm(store: JobStore) -> None:
    job = sent(store)
    store.mirror(job.id, FarmUpdate(JobState.RUNNING))
    asked = store.cancel(job.id)
    assert asked.state is JobState.RUNNING and asked.display_state == "cancelling"
    still = store.mirror(job.id, FarmUpdate(JobState.RUNNING, progress=Progress(0.2, 2, 10)))
    assert still.cancel_requested  # a progress report does not undo the request
    done = store.mirror(job.id, FarmUpdate(JobState.CANCELLED, error="cancelled: cancelled from the window"))
    assert done.state is JobState.CANCELLED


def test_records_written_before_farm_ids_existed_still_load() -> None:
    record = Job(id="20261130-120000-abcdef01", project_id="p", spec={}).to_record()
    del record["farm_id"]
    job = Job.from_record(record)
    assert job.farm_id is None and job.to_wire()["farmId"] is None


def test_a_record_superseded_on_the_farm_reads_superseded(store: JobStore) -> None:
    older, newer = sent(store, "30", "/cut.otio"), sent(store, "31", "/cut.otio")
    assert store.get(older.id).state is JobState.QUEUED  # records do not supersede each other here: the farm does
    done = store.mirror(older.id, FarmUpdate(JobState.CANCELLED, error="cancelled: superseded by job 31",
                                             superseded_by=newer.id))
    assert done.display_state == "superseded" and store.get(older.id).superseded_by == newer.id
