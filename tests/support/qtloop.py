"""A qasync event loop on a Qt application, as the program runs, for tests that drive the engine in-process.

The program spends its whole life inside `loop.run_forever()`. A test runs the loop in slices (`run`), and between
slices Qt still processes events (pytest-qt does between test phases, widgets do on show): qasync then runs
callbacks and task steps while asyncio believes no loop is running, and anything that checks its loop (an
asyncio.Event in the engine's dispatcher) fails with "bound to a different event loop". So between slices the
test's loop stays registered as the running loop, as it would be in the program. That includes the last
round of Qt events qasync's `run_until_complete` processes after its `run_forever` has returned.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture
def qloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    from preview_desktop.engine.event_loop import make_event_loop

    loop = make_event_loop(qapp)
    asyncio.events._set_running_loop(loop)
    slice_of_time = loop.run_forever

    def run_forever() -> Any:
        try:
            return slice_of_time()
        finally:
            asyncio.events._set_running_loop(loop)  # qasync cleared it; Qt events still follow (see above)

    loop.run_forever = run_forever  # type: ignore[method-assign]
    try:
        yield loop
    finally:
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """End a test's use of `loop`: collect its Qt objects now, on the Qt thread (left to the cyclic GC they may be
    destroyed later from whichever thread allocates), and let every task left on it finish its cancellation (a
    pending task would be woken later by Qt on a closed loop: the next test's loop shares the Qt application)."""
    gc.collect()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
