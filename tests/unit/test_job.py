"""The job state machine: every legal transition works, every other one is a clear error."""

from __future__ import annotations

import itertools

import pytest

from preview_desktop.core.job import TRANSITIONS, Job, JobState, new_job_id
from preview_desktop.core.layout import JOB_ID_RE
from preview_desktop.errors import IllegalTransition


def make(state: JobState) -> Job:
    job = Job(id=new_job_id(), project_id="p", spec={"timeline": "a.otio"})
    job.state = state
    return job


@pytest.mark.parametrize(("source", "target"), list(itertools.product(JobState, JobState)))
def test_transition_table_is_enforced(source: JobState, target: JobState) -> None:
    job = make(source)
    if target in TRANSITIONS[source]:
        job.transition(target, now=100.0)
        assert job.state is target
        if target.finished:
            assert job.finished_at == 100.0
    else:
        with pytest.raises(IllegalTransition, match=job.id):
            job.transition(target)
        assert job.state is source


def test_cancel_succeeded_names_the_problem() -> None:
    with pytest.raises(IllegalTransition, match=r"cannot cancel job .*: it is succeeded"):
        make(JobState.SUCCEEDED).transition(JobState.CANCELLED)


def test_record_round_trip_and_wire_format() -> None:
    job = make(JobState.QUEUED)
    job.result = {"video": {"frames": 3}}
    again = Job.from_record(job.to_record())
    assert again == job
    wire = job.to_wire()
    assert wire["projectId"] == "p" and wire["state"] == "queued" and wire["createdAt"].endswith("Z")
    assert Job.from_record({**job.to_record(), "field_from_the_future": 1}) == job


def test_job_ids_are_safe_and_sortable() -> None:
    a, b = new_job_id(1_000_000_000.0), new_job_id(1_000_000_001.0)
    assert JOB_ID_RE.match(a) and a < b
