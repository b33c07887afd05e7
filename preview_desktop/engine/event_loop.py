"""The program's asyncio loop on Qt: qasync's QEventLoop with a ready queue for `call_soon`.

qasync turns every `call_soon` into a Qt timer of its own (startTimer, then killTimer when it fires). asyncio
calls `call_soon` for each task step, future callback and socket read, so on a busy loop (a farm node moving
hundreds of jobs a second, the API under load) timer bookkeeping took about a fifth of the loop thread.
Here `call_soon` appends to a FIFO and one zero-delay Qt timer drains it, as asyncio's own loop does: a drain runs
the callbacks that were ready when it began, and those they schedule wait for the next drain, so Qt still paints
and reads sockets between rounds. Timers with a delay (`call_later`, `asyncio.sleep`) stay qasync's.
"""

from __future__ import annotations

import asyncio
import collections
from contextvars import Context
from typing import Any

import qasync


class QtEventLoop(qasync.QEventLoop):
    def __init__(self, app: Any = None, already_running: bool = False) -> None:
        self._ready_handles: collections.deque[asyncio.Handle] = collections.deque()
        self._drain_scheduled = False
        super().__init__(app, already_running=already_running)

    def call_soon(self, callback: Any, *args: Any, context: Context | None = None) -> asyncio.Handle:
        if self.get_debug():  # qasync's per-callback timers time each callback (slow-callback warnings)
            handle: asyncio.Handle = super().call_soon(callback, *args, context=context)
            return handle
        if asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with call_soon")
        if not callable(callback):
            raise TypeError(f"callback must be callable: {type(callback).__name__}")
        handle = asyncio.Handle(callback, args, self, context=context)
        self._ready_handles.append(handle)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._timer.add_callback(asyncio.Handle(self._drain, (), self), 0)
        return handle

    def _drain(self) -> None:
        self._drain_scheduled = False
        ready = self._ready_handles
        try:
            for _ in range(len(ready)):  # only what was ready at the start: Qt gets its turn between rounds
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:  # also after KeyboardInterrupt: what is left still runs
            if ready and not self._drain_scheduled:
                self._drain_scheduled = True
                self._timer.add_callback(asyncio.Handle(self._drain, (), self), 0)


def make_event_loop(app: Any = None, already_running: bool = False) -> QtEventLoop:
    """The loop every entry point (window, `--worker`, tests, benches) runs on, set as the current loop."""
    loop = QtEventLoop(app, already_running=already_running)
    asyncio.set_event_loop(loop)
    return loop
