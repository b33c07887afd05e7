"""A headless worker's engine mirrors only unfinished jobs (Engine(mirror_finished=False)): its memory follows
the work in flight, not every job the store holds. Found by the soak benchmark (tests/bench/soak_day.py): with
the full mirror a worker's RSS grew ~30 KB per finished job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preview_desktop.core.events import JobRemoved, JobUpdated
from preview_desktop.core.handler import HandlerRegistry
from preview_desktop.core.job import JobState
from preview_desktop.engine.engine import Engine
from preview_desktop.queue.local import LocalStore
from preview_desktop.settings import Settings
from tests.support.jobs import make_spec
from tests.support.qtloop import run

from .test_engine import Tracker, collect, settings, sleep_handler  # noqa: F401  (settings is a fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("mirror_finished", [True, False])
def test_finished_jobs_leave_a_headless_mirror_but_are_still_announced(
    qloop: asyncio.AbstractEventLoop, settings: Settings, tmp_path: Path, mirror_finished: bool  # noqa: F811
) -> None:
    registry = HandlerRegistry()
    registry.register("sleep", sleep_handler(Tracker()))
    store = LocalStore(settings.queue_dir, queue_max=100)
    engine = Engine(settings, store, registry, qloop, mirror_finished=mirror_finished)
    events = collect(engine)

    async def scenario() -> list[str]:
        await engine.start()
        ids = [(await engine.call(store.submit, make_spec(timeline=f"sleep:0.05:{i}"), kind="sleep")).id
               for i in range(5)]
        for _ in range(2000):
            done = [e.job.id for e in events if isinstance(e, JobUpdated) and e.job.state is JobState.SUCCEEDED]
            if set(ids) <= set(done):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the change log's last sync
        await engine.call(store.remove, ids[0])
        for _ in range(200):
            if any(isinstance(e, JobRemoved) for e in events):
                break
            await asyncio.sleep(0.01)
        return ids

    try:
        ids = run(qloop, scenario())
        finished = {e.job.id for e in events if isinstance(e, JobUpdated) and e.job.state is JobState.SUCCEEDED}
        assert set(ids) <= finished  # announced either way (SSE, metrics)
        assert [e.job_id for e in events if isinstance(e, JobRemoved)] == [ids[0]]
        if mirror_finished:
            assert set(engine.jobs) == set(ids[1:])  # the window's job table holds them
        else:
            assert engine.jobs == {}
            assert all(store.get(i).state is JobState.SUCCEEDED for i in ids[1:])
    finally:
        run(qloop, engine.stop(grace=1))
        engine.close()
        store.close()
