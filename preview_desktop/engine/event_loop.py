"""The program's asyncio loop on Qt: qasync's QEventLoop (sockets, executors, run/stop) with asyncio's own
scheduling: a FIFO of ready callbacks and a heap of timers, both served by one Qt timer.

qasync turns every `call_soon` and every `call_later` into a Qt timer of its own, and a cancelled `call_later`
keeps its Qt timer until it would have fired. asyncio schedules a callback for each task step and a timeout for
each network read (redis-py's socket timeout is 15 s), so a farm node moving a thousand jobs a second carried
~45,000 live Qt timers: timer bookkeeping took a fifth of the loop thread, and when the first cancelled timeouts
expired together the loop stalled long enough for job locks to lapse. Here:
- `call_soon` appends to the ready FIFO; `call_at`/`call_later` push onto a heap; cancelled timers are dropped
  from the heap in bulk when they are over half of it (as asyncio's loop does);
- one precise single-shot QTimer is armed for "now" while callbacks are ready, else for the earliest timer;
- each round runs only the callbacks that were ready when it began, so Qt paints and reads sockets in between.
In debug mode (`loop.set_debug(True)`) qasync's own per-callback timers are used: they time each callback.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
from contextvars import Context
from typing import Any

from PySide6.QtCore import Qt, QTimer

from .qasync_core import qasync  # qasync without QtGui/QtWidgets (headless start-up needs no GL)

_IMMEDIATE = 0.0  # "armed for now"; real deadlines are monotonic times, always > 0
_MIN_CANCELLED_TO_PRUNE = 100
_MAX_WAIT_MS = 3_600_000  # QTimer takes a 32-bit int of milliseconds


class QtEventLoop(qasync.QEventLoop):
    def __init__(self, app: Any = None, already_running: bool = False) -> None:
        self._ready_handles: collections.deque[asyncio.Handle] = collections.deque()
        self._timers: list[asyncio.TimerHandle] = []  # heap by deadline
        self._cancelled_timers = 0
        self._armed_for: float | None = None  # what the wake-up timer is set for, None when it is idle
        super().__init__(app, already_running=already_running)
        self._wake = QTimer()
        self._wake.setSingleShot(True)
        self._wake.setTimerType(Qt.TimerType.PreciseTimer)
        self._wake.timeout.connect(self._on_wake)

    # ------------------------------------------------------------------ scheduling
    def call_soon(self, callback: Any, *args: Any, context: Context | None = None) -> asyncio.Handle:
        if self.get_debug():
            handle: asyncio.Handle = super().call_soon(callback, *args, context=context)
            return handle
        handle = asyncio.Handle(callback, args, self, context=context)
        if self.is_closed():  # e.g. a render thread's last report, queued by Qt before the loop closed: dropped,
            handle.cancel()   # as qasync drops it (raising here would raise inside Qt's event dispatch)
            return handle
        self._ready_handles.append(handle)
        if self._armed_for != _IMMEDIATE:
            self._arm()
        return handle

    def call_later(self, delay: float, callback: Any, *args: Any,
                   context: Context | None = None) -> asyncio.Handle:
        if self.get_debug():
            handle: asyncio.Handle = super().call_later(delay, callback, *args, context=context)
            return handle
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Any, *args: Any, context: Context | None = None) -> asyncio.Handle:
        if self.get_debug():
            return self.call_later(when - self.time(), callback, *args, context=context)
        timer = asyncio.TimerHandle(when, callback, args, self, context=context)
        if self.is_closed():
            timer.cancel()
            return timer
        heapq.heappush(self._timers, timer)
        timer._scheduled = True  # type: ignore[attr-defined]  # asyncio-internal, not in typeshed
        if self._armed_for is None or when < self._armed_for:
            self._arm()
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """asyncio.TimerHandle.cancel calls this: count it; `_on_wake` prunes the heap when they pile up."""
        if handle._scheduled:  # type: ignore[attr-defined]
            self._cancelled_timers += 1

    # ------------------------------------------------------------------ running
    def _arm(self) -> None:
        """Point the wake-up timer at what is due next: now if callbacks are ready, else the earliest timer."""
        if self._ready_handles:
            target = _IMMEDIATE
        elif self._timers:
            target = self._timers[0].when()
        else:
            self._armed_for = None
            self._wake.stop()
            return
        self._armed_for = target
        msecs = 0 if target == _IMMEDIATE else max(0, math.ceil((target - self.time()) * 1000))
        self._wake.start(min(msecs, _MAX_WAIT_MS))  # a far-off timer: wake early, find nothing due, re-arm

    def _on_wake(self) -> None:
        self._armed_for = None
        timers = self._timers
        if self._cancelled_timers > _MIN_CANCELLED_TO_PRUNE and self._cancelled_timers * 2 > len(timers):
            live = []
            for timer in timers:
                if timer._cancelled:
                    timer._scheduled = False  # type: ignore[attr-defined]
                else:
                    live.append(timer)
            heapq.heapify(live)
            self._timers = timers = live
            self._cancelled_timers = 0
        ready = self._ready_handles
        due_by = self.time() + 0.001  # Qt timers have millisecond resolution: do not spin on the last one
        while timers and (timers[0]._cancelled or timers[0].when() <= due_by):
            timer = heapq.heappop(timers)
            timer._scheduled = False  # type: ignore[attr-defined]
            if timer._cancelled:
                self._cancelled_timers -= 1
            else:
                ready.append(timer)
        try:
            for _ in range(len(ready)):  # only what was ready at the start: Qt gets its turn between rounds
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:  # also after KeyboardInterrupt: what is left still runs
            self._arm()

    def close(self) -> None:
        if not self.is_running() and not self.is_closed():
            self._wake.stop()
            self._ready_handles.clear()
            self._timers.clear()
        super().close()


def make_event_loop(app: Any = None, already_running: bool = False) -> QtEventLoop:
    """The loop every entry point (window, `--worker`, tests, benches) runs on, set as the current loop."""
    loop = QtEventLoop(app, already_running=already_running)
    asyncio.set_event_loop(loop)
    return loop
