"""The engine's upkeep (engine/upkeep.py) in a running engine, over both stores: a lease another worker took
stops the job here; a dead worker's expired lease is reaped, its job runs here, and staging leftovers go.

The store's clock is the test's: a lease expires when the test moves the clock, not after real seconds. Every
change the test makes goes through `Engine.call`, on the engine's one store thread, so no heartbeat or lease of
the engine can fall between its steps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.events import Event, JobOutcome
from preview_desktop.core.handler import HandlerRegistry, JobContext
from preview_desktop.core.job import Job, JobState, new_job_id
from preview_desktop.core.spec import JobSpec
from preview_desktop.engine.engine import Engine
from preview_desktop.queue.base import JobStore, Lease
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.memory import MemoryStore
from preview_desktop.settings import load_settings
from tests.support.clock import Clock
from tests.support.jobs import make_spec
from tests.support.qtloop import run

pytestmark = pytest.mark.timeout(120)


class Handler:
    """Runs until cancelled (at most 30 s); remembers which jobs ran to the end and which were stopped."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped: list[str] = []
        self.finished: list[str] = []

    def __call__(self, job: Job, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
        self.started.set()
        until = time.monotonic() + (30.0 if spec.projectId == "long" else 0.1)
        try:
            while time.monotonic() < until:
                ctx.check()
                time.sleep(0.02)
        except Exception:
            self.stopped.append(job.id)
            raise
        self.finished.append(job.id)
        return {"ok": True}


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture(params=["local", "memory"])
def engine(request: pytest.FixtureRequest, qloop: asyncio.AbstractEventLoop, tmp_path: Path, clock: Clock,
           handler: Handler) -> Iterator[Engine]:
    settings = load_settings(env={"DATA_DIR": str(tmp_path / "data")}, settings_file=tmp_path / "none.json"
                             ).with_overrides(max_concurrency=1, lease_seconds=3.0, shutdown_grace=2.0)
    store: JobStore = (LocalStore(settings.queue_dir, clock=clock) if request.param == "local"
                       else MemoryStore(clock=clock))
    registry = HandlerRegistry()
    registry.register("render", handler)
    eng = Engine(settings, store, registry, qloop)
    run(qloop, eng.start())
    yield eng
    run(qloop, eng.stop(grace=2))
    eng.close()
    store.close()


async def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_lease_another_worker_took_stops_the_job_here(
        engine: Engine, qloop: asyncio.AbstractEventLoop, clock: Clock, handler: Handler,
        caplog: pytest.LogCaptureFixture) -> None:
    events: list[Event] = []
    engine.subscribe(events.append)
    store = engine.store
    job = store.submit(make_spec("long"))
    run(qloop, until(lambda: job.id in engine.running and handler.started.is_set(), "the job to start here"))

    def take_over() -> Lease | None:
        clock.now += 10  # our lease (3 s) expired: a reaper elsewhere requeues the job and another worker takes it
        assert store.reap() == [job.id]
        return store.lease("another-host:1:w", 60)

    other = run(qloop, engine.call(take_over))
    assert other is not None and other.job.id == job.id
    taken_at = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="preview_desktop.engine"):
        run(qloop, until(lambda: any(isinstance(e, JobOutcome) for e in events), "the job to stop here"))
    assert time.monotonic() - taken_at < 10, "the next heartbeat (every 1 s) should have stopped it"
    assert handler.stopped == [job.id] and handler.finished == []
    assert [e.outcome for e in events if isinstance(e, JobOutcome)] == ["lost"]
    assert any("lease lost" in r.getMessage() and job.id in r.getMessage() for r in caplog.records)
    kept = store.get(job.id)  # the other worker's run is left alone
    assert kept.state is JobState.RUNNING and kept.worker == "another-host:1:w"


def test_a_dead_workers_lease_is_reaped_and_its_job_runs_here(
        engine: Engine, qloop: asyncio.AbstractEventLoop, clock: Clock, handler: Handler) -> None:
    store = engine.store
    orphan = engine.layout.staging_dir("proj", new_job_id(clock.now))  # a killed render's leftover, after start

    def ghost_takes_a_job() -> Lease | None:
        store.submit(make_spec("short"))
        return store.lease("another-host:1:ghost", 3.0)

    ghost = run(qloop, engine.call(ghost_takes_a_job))
    assert ghost is not None
    run(qloop, asyncio.sleep(1.0))  # housekeeping rounds (every 0.75 s): the lease still holds
    assert store.get(ghost.job.id).worker == "another-host:1:ghost" and not handler.started.is_set()
    assert orphan.exists()

    def ghost_is_gone() -> None:
        clock.now += 10

    run(qloop, engine.call(ghost_is_gone))
    run(qloop, until(lambda: store.get(ghost.job.id).state is JobState.SUCCEEDED, "the reaped job to run here"))
    done = store.get(ghost.job.id)
    assert done.worker == engine.worker_id and done.stalls == 1 and handler.finished == [ghost.job.id]
    assert not orphan.exists(), "staging leftovers are removed after a reap"
