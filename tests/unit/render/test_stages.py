"""The pipeline stages (render/stages.py) with real threads: order, bounded queues, errors raised on the
consumer's side as the same object, and stop/abort/cancel ending every thread promptly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from preview_desktop.errors import RenderError
from preview_desktop.render.stages import END, Background, Offload, Prefetch, Stopped


def test_prefetch_keeps_order_and_stays_bounded() -> None:
    produced: list[int] = []

    def produce(emit: Callable[[int], None]) -> None:
        for n in range(50):
            produced.append(n)
            emit(n)

    stage: Prefetch[int] = Prefetch(produce, maxsize=3, name="test prefetch")
    time.sleep(0.2)
    assert len(produced) <= 3 + 1  # 3 queued, one waiting to be put
    got = []
    while (item := stage.get()) is not END:
        got.append(item)
    assert got == list(range(50))
    assert stage.get() is END  # stays at the end
    stage.stop()
    assert not stage.alive


def test_prefetch_raises_the_producers_error_itself() -> None:
    error = RenderError("clip 'a': decoding failed")

    def produce(emit: Callable[[int], None]) -> None:
        emit(1)
        raise error

    stage: Prefetch[int] = Prefetch(produce, maxsize=2, name="test prefetch")
    assert stage.get() == 1
    with pytest.raises(RenderError) as caught:
        stage.get()
    assert caught.value is error
    stage.stop()
    assert not stage.alive


def test_prefetch_stop_ends_a_blocked_producer() -> None:
    def produce(emit: Callable[[int], None]) -> None:
        n = 0
        while True:
            emit(n)
            n += 1

    stage: Prefetch[int] = Prefetch(produce, maxsize=2, name="test prefetch")
    assert stage.get() == 0
    started = time.monotonic()
    stage.stop()
    assert not stage.alive and time.monotonic() - started < 1.0


def test_offload_handles_in_order_and_close_waits() -> None:
    handled: list[int] = []

    def handle(n: int) -> None:
        time.sleep(0.001)
        handled.append(n)

    stage: Offload[int] = Offload(handle, maxsize=2, name="test offload")
    for n in range(30):
        stage.put(n)
    stage.close()
    assert handled == list(range(30)) and not stage.alive


def test_offload_error_surfaces_on_put_or_close() -> None:
    error = OSError(28, "No space left on device")

    def handle(n: int) -> None:
        if n == 3:
            raise error

    stage: Offload[int] = Offload(handle, maxsize=2, name="test offload")
    with pytest.raises(OSError) as caught:
        for n in range(100):
            stage.put(n)
        stage.close()
    assert caught.value is error
    stage.abort()
    assert not stage.alive


def test_offload_abort_drops_the_queue_and_joins() -> None:
    release = threading.Event()
    stage: Offload[int] = Offload(lambda _n: release.wait(5), maxsize=2, name="test offload")
    stage.put(1)
    stage.put(2)
    threading.Timer(0.1, release.set).start()
    started = time.monotonic()
    stage.abort()
    assert not stage.alive and time.monotonic() - started < 2.0


def test_background_result_error_and_cancel() -> None:
    assert Background(lambda _stopped: 42, name="test bg").result() == 42
    error = RenderError("audio failed")

    def failing(_stopped: Callable[[], None]) -> int:
        raise error

    with pytest.raises(RenderError) as caught:
        Background(failing, name="test bg").result()
    assert caught.value is error

    def endless(stopped: Callable[[], None]) -> int:
        while True:
            stopped()
            time.sleep(0.01)

    task = Background(endless, name="test bg")
    started = time.monotonic()
    task.cancel()
    assert not task.alive and time.monotonic() - started < 1.0
    ran: list[str] = []
    inline = Background(lambda _stopped: ran.append(threading.current_thread().name), name="test bg", inline=True)
    assert ran == []  # inline work waits for result(), on the caller's thread
    inline.result()
    assert ran == [threading.current_thread().name]


def test_stopped_is_an_exception_of_the_stage_only() -> None:
    assert issubclass(Stopped, Exception) and not issubclass(Stopped, RenderError)
