"""A farm node's stop never hangs on a background loop that swallowed its cancel (redis-py did, about once in a
dozen stops): the wait is bounded, a second cancel is tried, and what survives is left behind, counted."""

from __future__ import annotations

import asyncio
import inspect
import time

from preview_desktop.farm.member import end_tasks

DEFAULT_WAIT = inspect.signature(end_tasks).parameters["wait_s"].default  # the tests pass wait_s=0.2


async def _swallows_cancel(times: int, stop: asyncio.Event) -> None:
    swallowed = 0
    while not stop.is_set():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > times:
                raise


def test_a_loop_that_swallows_one_cancel_ends_at_the_second() -> None:
    async def scenario() -> tuple[int, float, bool]:
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_swallows_cancel(1, stop))
        await asyncio.sleep(0)
        task.cancel()
        started = time.monotonic()
        left = await end_tasks([task], wait_s=0.2)
        return left, time.monotonic() - started, task.cancelled()

    left, seconds, cancelled = asyncio.run(scenario())
    assert left == 0 and cancelled and seconds < DEFAULT_WAIT  # wait_s was honoured


def test_a_loop_that_never_ends_is_left_behind_without_hanging() -> None:
    async def scenario() -> tuple[int, float]:
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_swallows_cancel(10**9, stop))
        await asyncio.sleep(0)
        task.cancel()
        started = time.monotonic()
        left = await end_tasks([task], wait_s=0.2)
        seconds = time.monotonic() - started
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return left, seconds

    left, seconds = asyncio.run(scenario())
    assert left == 1 and seconds < DEFAULT_WAIT  # wait_s was honoured: no hang
