"""Render slots: a QThreadPool whose maxThreadCount is PREVIEW_MAX_CONCURRENCY, shared by local and farm work.

`submit` runs a callable on a pool thread and resolves an asyncio future on the loop thread. We count slots
ourselves (QThreadPool.activeThreadCount lags behind `start`), so the dispatcher and the farm node can both ask
"is there room?" on the loop thread without racing.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QThreadPool

_thread_state = threading.local()


def _keep_thread_state() -> None:
    """Give this Qt pool thread one Python thread state for its whole life, as a Python-made thread has.

    PySide creates a fresh thread state for every `run()` and deletes it afterwards. pybind11 extensions
    (OpenTimelineIO) remember a thread state per thread and re-acquire the GIL through it; a stale one makes them
    wait for a GIL their own thread holds — the worker hung for good in tests/integration/test_crash.py. One extra
    PyGILState_Ensure that is never released keeps the state alive; PySide's own Ensure/Release pairs then only
    count up and down (and still release the GIL between runs).
    """
    if not getattr(_thread_state, "kept", False):
        ctypes.pythonapi.PyGILState_Ensure()
        _thread_state.kept = True


def _call(fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, settle: Callable[..., None],
          future: asyncio.Future[Any]) -> None:
    """One callable on a pool thread; its outcome goes back to the loop thread."""
    _keep_thread_state()
    try:
        result = fn()
    except BaseException as exc:  # delivered to the awaiting future, not swallowed
        loop.call_soon_threadsafe(settle, future, None, exc)
    else:
        loop.call_soon_threadsafe(settle, future, result, None)


class RenderPool:
    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = QThreadPool()
        self._capacity = max(1, capacity)
        self._pool.setMaxThreadCount(self._capacity)
        self._pool.setExpiryTimeout(-1)  # keep warm threads: starting one costs more than a render frame
        self._loop = loop
        self._active = 0
        self._on_free: list[Callable[[], None]] = []
        self._closed = False

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def active(self) -> int:
        return self._active

    @property
    def free(self) -> int:
        return max(0, self.capacity - self._active)

    def set_capacity(self, capacity: int) -> None:
        """Applied live: running jobs finish; new ones start only while active < capacity."""
        self._capacity = max(1, capacity)
        if not self._closed:
            self._pool.setMaxThreadCount(self._capacity)
        self._notify_free()

    def on_free(self, callback: Callable[[], None]) -> None:
        self._on_free.append(callback)

    def off_free(self, callback: Callable[[], None]) -> None:
        if callback in self._on_free:
            self._on_free.remove(callback)

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        if self.free <= 0 or self._closed:
            raise RuntimeError("no free render slot")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._active += 1
        self._pool.start(partial(_call, fn, self._loop, self._settle, future))
        return future

    def _settle(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._active -= 1
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._notify_free()

    def _notify_free(self) -> None:
        for callback in list(self._on_free):
            callback()

    def close(self, msecs: int = 2000) -> None:
        """Destroy the Qt pool here, on the loop thread, rather than whenever (and wherever) Python frees it.

        A job that ignores its cancel flag keeps its thread; then the pool is left for process exit instead of
        blocking in the destructor."""
        if self._closed:
            return
        self._closed = True
        if self._pool.waitForDone(msecs):
            import shiboken6

            shiboken6.delete(self._pool)
