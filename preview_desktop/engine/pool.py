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
    """One callable on a pool thread; its outcome goes back to the loop thread. Qt deletes it after `run`."""

    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, settle: Callable[..., None],
                 future: asyncio.Future[Any]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._loop = loop
        self._settle = settle
        self._future = future

    def run(self) -> None:
        fn, settle, future = self._fn, self._settle, self._future
        self._fn = self._settle = self._future = None  # type: ignore[assignment]  # no cycles through Qt
        try:
            result = fn()
        except BaseException as exc:  # delivered to the awaiting future, not swallowed
            self._loop.call_soon_threadsafe(settle, future, None, exc)
        else:
            self._loop.call_soon_threadsafe(settle, future, result, None)


class RenderPool:
    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(max(1, capacity))
        self._pool.setExpiryTimeout(-1)  # keep warm threads: starting one costs more than a render frame
        self._loop = loop
        self._active = 0
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
        self._pool.start(_Call(fn, self._loop, self._settle, future))
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

    def wait_idle(self, msecs: int) -> bool:
        """Block until pool threads are done (only at exit, off the normal path)."""
        return bool(self._pool.waitForDone(msecs))
