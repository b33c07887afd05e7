"""Render slots: a QThreadPool whose maxThreadCount is PREVIEW_MAX_CONCURRENCY, shared by local and farm work.

`submit` runs a callable on a pool thread and resolves an asyncio future on the loop thread. We count slots
ourselves (QThreadPool.activeThreadCount lags behind `start`), so the dispatcher and the farm node can both ask
"is there room?" on the loop thread without racing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QRunnable, QThreadPool


class _Call(QRunnable):
    def __init__(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it (kept in RenderPool._live until done)
        self._fn = fn
        self._done = done

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # delivered to the awaiting future, not swallowed
            self._done(None, exc)
        else:
            self._done(result, None)


class RenderPool:
    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(max(1, capacity))
        self._pool.setExpiryTimeout(-1)  # keep warm threads: starting one costs more than a render frame
        self._loop = loop
        self._active = 0
        self._live: set[_Call] = set()
        self._on_free: list[Callable[[], None]] = []

    @property
    def capacity(self) -> int:
        return int(self._pool.maxThreadCount())

    @property
    def active(self) -> int:
        return self._active

    @property
    def free(self) -> int:
        return max(0, self.capacity - self._active)

    def set_capacity(self, capacity: int) -> None:
        """Applied live: running jobs finish; new ones start only while active < capacity."""
        self._pool.setMaxThreadCount(max(1, capacity))
        self._notify_free()

    def on_free(self, callback: Callable[[], None]) -> None:
        self._on_free.append(callback)

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        if self.free <= 0:
            raise RuntimeError("no free render slot")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._active += 1
        holder: list[_Call] = []

        def done(result: Any, error: BaseException | None) -> None:  # on the pool thread
            self._loop.call_soon_threadsafe(self._settle, future, holder[0], result, error)

        call = _Call(fn, done)
        holder.append(call)
        self._live.add(call)
        self._pool.start(call)
        return future

    def _settle(self, future: asyncio.Future[Any], call: _Call, result: Any, error: BaseException | None) -> None:
        self._active -= 1
        self._live.discard(call)
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._notify_free()

    def _notify_free(self) -> None:
        for callback in list(self._on_free):
            callback()

    def wait_idle(self, msecs: int) -> bool:
        """Block until pool threads are done (only at exit, off the normal path)."""
        return bool(self._pool.waitForDone(msecs))
