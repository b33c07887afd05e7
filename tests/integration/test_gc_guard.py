"""Garbage with Qt objects must die on the Qt thread: MainThreadGC collects there, and only there."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from preview_desktop.engine.gc_guard import MainThreadGC


class Cycle:
    finalized_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cycle.finalized_on.append(threading.current_thread().name)


def test_cycles_made_on_a_worker_thread_are_collected_on_the_qt_thread(qapp: Any) -> None:
    guard = MainThreadGC(interval_ms=20)
    guard.start()
    try:
        assert not gc.isenabled(), "automatic collection must be off while the guard runs"
        Cycle.finalized_on.clear()

        kept: list[list[Any]] = []

        def churn() -> None:
            Cycle()
            kept.extend([] for _ in range(5_000))  # far past the youngest generation's threshold

        worker = threading.Thread(target=churn, name="render-thread")
        worker.start()
        worker.join()
        assert gc.get_count()[0] > gc.get_threshold()[0]
        assert Cycle.finalized_on == []
        deadline = time.monotonic() + 5
        while not Cycle.finalized_on and time.monotonic() < deadline:
            qapp.processEvents()
            time.sleep(0.01)
        assert Cycle.finalized_on == [threading.main_thread().name]
    finally:
        guard.stop()


def test_stop_restores_the_previous_collector_state(qapp: Any) -> None:
    gc.enable()
    try:
        guard = MainThreadGC()
        guard.start()
        guard.stop()
        assert gc.isenabled()
    finally:
        gc.disable()  # as tests/conftest.py keeps it
