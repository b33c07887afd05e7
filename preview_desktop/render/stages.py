"""Pipeline stages on threads of their own, joined by bounded queues (memory stays flat however fast one side is).

PyAV releases the GIL while it decodes, scales (swscale) and encodes, and OpenCV while it converts, so a stage on
its own thread runs on the other core: decoding and scaling run ahead of composing, and H.264 encoding and the
audio encode run behind and beside it, as the ffmpeg CLI overlaps them (docs/rendering.md, "Pipeline").

Errors and cancel keep their meaning: an exception raised on a stage's thread is raised again, the same object, on
the thread that next talks to the stage (so a RenderError or MediaError reaches the job boundary typed as
before); `stop()`/`abort()` end a stage within one queue poll and join its thread, so nothing outlives a render.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
POLL = 0.05  # seconds: how often a blocked stage looks at its stop flag

END: Any = object()  # what `Prefetch.get()` returns once the producer has finished


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Stopped(Exception):
    """Raised inside a stage's own thread when it is told to stop; never seen outside it."""


class Prefetch(Generic[T]):
    """Runs `produce(emit)` on its own thread; `emit(item)` waits while `maxsize` items are queued.

    The consumer's `get()` returns the items in order, then `END`; an exception in `produce` is raised by `get()`.
    """

    def __init__(self, produce: Callable[[Callable[[T], None]], None], *, maxsize: int, name: str) -> None:
        self._produce: Callable[[Callable[[T], None]], None] | None = produce
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _emit(self, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                self._queue.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        assert self._produce is not None
        try:
            self._produce(self._emit)
            self._emit(END)
        except Stopped:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            try:
                self._emit(_Failed(exc))
            except Stopped:
                return
        finally:
            # `produce` is usually a bound method of the stage's owner, which holds the stage: without this
            # cycle-break a finished reader (its demuxer and decoder) would wait for the garbage collector
            self._produce = None

    def get(self) -> T:
        item = self._queue.get()
        if isinstance(item, _Failed):
            self._queue.put(item)  # every later get() fails alike
            raise item.error
        if item is END:
            self._queue.put(item)
        return item

    def stop(self) -> None:
        """Stop the producer and join its thread (it ends at its next emit, or when `produce` returns)."""
        _halt(self._stop, self._thread, self._queue)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Offload(Generic[T]):
    """Runs `handle(item)` on its own thread for each item `put()`, in order, at most `maxsize` waiting.

    `put()` and `close()` raise the handler's exception (the first one; the stage stops at it). `close()` waits
    for the queued items; `abort()` drops them and stops."""

    def __init__(self, handle: Callable[[T], None], *, maxsize: int, name: str) -> None:
        self._handle: Callable[[T], None] | None = handle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._handle = None  # break the owner → stage → bound method → owner cycle (see Prefetch._run)

    def _loop(self) -> None:
        assert self._handle is not None
        while True:
            try:
                item = self._queue.get(timeout=POLL)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is END or self._stop.is_set():
                return
            try:
                self._handle(item)
            except BaseException as exc:
                self._error = exc
                self._stop.set()
                _drain(self._queue)
                return

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        while True:
            self._raise()
            if self._stop.is_set():
                raise RuntimeError(f"{self._thread.name}: stage already stopped")
            try:
                self._queue.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued item to be handled, end the thread, raise the handler's error if any."""
        while self._thread.is_alive():
            try:
                self._queue.put(END, timeout=POLL)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        _halt(self._stop, self._thread, self._queue)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Background(Generic[T]):
    """`work(stopped)` on its own thread; `result()` joins it and returns its value or raises its exception.

    `work` should call `stopped()` often (with the job's own check): it raises `Stopped` once `cancel()` ran.
    `inline`: run `work` in the caller's thread when `result()` is asked for (one thread only,
    PREVIEW_RENDER_THREADS=1: the work then follows the caller's, as before stages existed)."""

    def __init__(self, work: Callable[[Callable[[], None]], T], *, name: str, inline: bool = False) -> None:
        self._work: Callable[[Callable[[], None]], T] | None = work
        self._stop = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._inline = inline
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        if not inline:
            self._thread.start()

    def _stopped(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def _run(self) -> None:
        assert self._work is not None
        try:
            self._value = self._work(self._stopped)
        except BaseException as exc:
            self._error = exc
        finally:
            self._work = None

    def result(self) -> T:
        if self._inline:
            self._inline = False
            self._run()
        if self._thread.is_alive():
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        """Ask the work to stop and join its thread; its result or error is dropped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _halt(stop: threading.Event, thread: threading.Thread, items: queue.Queue[Any]) -> None:
    """Tell a stage's thread to stop and join it, emptying its queue meanwhile (a thread blocked on a full queue
    sees room, and then the stop)."""
    stop.set()
    while thread.is_alive():
        _drain(items)
        thread.join(POLL)
    _drain(items)


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
