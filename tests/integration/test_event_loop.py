"""The program's event loop (engine/event_loop.py): call_soon through one ready queue, on a real Qt application."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any

from preview_desktop.engine.event_loop import QtEventLoop

CHAIN_SECONDS = 6.0  # how long the never-ending chain runs at most: a starved timer would fire only after it


def test_the_fixture_loop_is_the_program_loop(qloop: asyncio.AbstractEventLoop) -> None:
    assert isinstance(qloop, QtEventLoop)
    assert asyncio.get_event_loop() is qloop


def test_callbacks_run_in_order_and_those_scheduled_meanwhile_run_after(qloop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    done = qloop.create_future()

    def first() -> None:
        order.append("first")
        qloop.call_soon(order.append, "scheduled by first")

    qloop.call_soon(first)
    qloop.call_soon(order.append, "second")
    qloop.call_soon(order.append, "third")
    qloop.call_soon(lambda: qloop.call_soon(done.set_result, None))
    qloop.run_until_complete(asyncio.wait_for(done, 5))
    assert order == ["first", "second", "third", "scheduled by first"]


def test_a_cancelled_callback_does_not_run(qloop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    handle = qloop.call_soon(ran.append, 1)
    qloop.call_soon(ran.append, 2)
    handle.cancel()
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert ran == [2]


def test_a_failing_callback_is_reported_and_the_rest_still_run(qloop: asyncio.AbstractEventLoop) -> None:
    reported: list[dict[str, Any]] = []
    qloop.set_exception_handler(lambda _loop, context: reported.append(context))
    ran: list[int] = []

    def boom() -> None:
        raise ValueError("boom")

    qloop.call_soon(boom)
    qloop.call_soon(ran.append, 1)
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert ran == [1]
    assert isinstance(reported[0]["exception"], ValueError)


def test_a_callback_chain_that_never_ends_does_not_starve_qt(qloop: asyncio.AbstractEventLoop) -> None:
    """Each drain runs only what was ready when it began, so Qt timers (paint, sockets) get their turn."""
    from PySide6.QtCore import QTimer

    spins = 0
    fired = qloop.create_future()
    started = time.monotonic()

    def spin() -> None:
        nonlocal spins
        spins += 1
        if not fired.done() and time.monotonic() - started < CHAIN_SECONDS:  # a starving loop fails, not hangs
            qloop.call_soon(spin)

    qloop.call_soon(spin)
    QTimer.singleShot(20, lambda: fired.set_result(time.monotonic()))
    qloop.run_until_complete(asyncio.wait_for(fired, 5))
    assert fired.result() - started < CHAIN_SECONDS / 2  # the timer ran during the chain, not after it
    assert spins > 10  # the chain did run meanwhile


def test_call_soon_threadsafe_runs_on_the_loop_thread(qloop: asyncio.AbstractEventLoop) -> None:
    seen = qloop.create_future()
    thread = threading.Thread(
        target=lambda: qloop.call_soon_threadsafe(lambda: seen.set_result(threading.get_ident())))
    thread.start()
    thread.join()
    assert qloop.run_until_complete(asyncio.wait_for(seen, 5)) == threading.get_ident()


def test_debug_mode_keeps_qasyncs_timed_callbacks(qloop: asyncio.AbstractEventLoop) -> None:
    qloop.set_debug(True)
    try:
        ran = qloop.create_future()
        qloop.call_soon(ran.set_result, "ran")
        assert qloop.run_until_complete(asyncio.wait_for(ran, 5)) == "ran"
    finally:
        qloop.set_debug(False)


def test_timers_fire_in_deadline_order_and_not_early(qloop: asyncio.AbstractEventLoop) -> None:
    fired: list[tuple[str, float]] = []
    done = qloop.create_future()
    start = qloop.time()
    qloop.call_later(0.08, lambda: fired.append(("80 ms", qloop.time() - start)))
    qloop.call_later(0.02, lambda: fired.append(("20 ms", qloop.time() - start)))
    qloop.call_at(start + 0.05, lambda: fired.append(("50 ms", qloop.time() - start)))
    qloop.call_later(0.1, done.set_result, None)
    qloop.run_until_complete(asyncio.wait_for(done, 5))
    assert [name for name, _ in fired] == ["20 ms", "50 ms", "80 ms"]
    for (_, at), due in zip(fired, (0.02, 0.05, 0.08), strict=True):
        assert due - 0.002 <= at < due + 0.5


def test_a_cancelled_timer_neither_runs_nor_lingers(qloop: asyncio.AbstractEventLoop) -> None:
    """Every network read sets a timeout that is cancelled when the reply comes. qasync kept each one (and its Qt
    timer) until it would have fired; tens of thousands piled up on a busy farm node and stalled the loop."""
    ran: list[int] = []
    handles = [qloop.call_later(60, ran.append, i) for i in range(1000)]
    refs = [weakref.ref(h) for h in handles]
    for handle in handles:
        handle.cancel()
    del handles, handle
    for _ in range(3):  # a few rounds of the loop, as any traffic would cause
        qloop.run_until_complete(asyncio.sleep(0.01))
    gc.collect()
    assert ran == []
    assert sum(ref() is not None for ref in refs) < 150  # pruned in bulk once they are over half the timers


def test_asyncio_timeouts_work_on_the_loop(qloop: asyncio.AbstractEventLoop) -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    async def scenario() -> float:
        start = qloop.time()
        try:
            await asyncio.wait_for(slow(), 0.05)
        except TimeoutError:
            return qloop.time() - start
        raise AssertionError("no timeout")

    assert 0.045 <= qloop.run_until_complete(scenario()) < 5.0  # the timeout, not the 10 s sleep


def test_a_call_that_arrives_after_close_is_dropped_quietly(qapp: Any) -> None:
    """A render thread's last call_soon_threadsafe can reach Qt's queue just before the loop closes; Qt delivers
    it afterwards, inside its own event dispatch, where an exception would be an error in the Qt event loop."""
    from preview_desktop.engine.event_loop import make_event_loop

    loop = make_event_loop(qapp)
    ran: list[int] = []
    thread = threading.Thread(target=lambda: loop.call_soon_threadsafe(ran.append, 1))
    thread.start()
    thread.join()
    loop.close()
    asyncio.set_event_loop(None)
    qapp.processEvents()  # Qt delivers the queued call now
    assert ran == []
    assert loop.call_soon(ran.append, 2).cancelled() and loop.call_later(0, ran.append, 3).cancelled()
