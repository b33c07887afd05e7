"""Pool threads keep one Python thread state for life, like Python-made threads.

PySide gives each QRunnable.run a fresh thread state; OpenTimelineIO (pybind11) then deadlocked on a stale one
and the worker hung (tests/integration/test_crash.py hung in 4 of 4 runs without this). A thread-local value that
survives from one run to the next on the same thread is the observable sign that the state lives on.
"""

from __future__ import annotations

import asyncio
import threading

from preview_desktop.engine.pool import RenderPool
from tests.support.qtloop import run

local = threading.local()


def remember() -> tuple[int, bool]:
    seen = getattr(local, "seen", False)
    local.seen = True
    return threading.get_ident(), seen


def test_thread_locals_survive_between_runs_on_a_pool_thread(qloop: asyncio.AbstractEventLoop) -> None:
    pool = RenderPool(2, qloop)

    async def scenario() -> list[tuple[int, bool]]:
        results = []
        for _ in range(20):
            results += await asyncio.gather(pool.submit(remember), pool.submit(remember))
        return results

    try:
        results = run(qloop, scenario())
    finally:
        pool.close()
    first_seen: dict[int, int] = {}
    for index, (ident, seen) in enumerate(results):
        first_seen.setdefault(ident, index)
        assert seen == (first_seen[ident] != index), f"run {index} on thread {ident} lost its thread state"
    assert 1 <= len(first_seen) <= 2
