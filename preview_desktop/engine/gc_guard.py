"""Cyclic garbage collection on the Qt thread only.

Python's automatic collector runs in whichever thread happens to allocate: a render thread, the store thread, the
change watcher. When the garbage holds Qt objects (a closed dialog, a finished QThreadPool, an old event-loop
helper), their C++ destructors then run off the thread that owns them while that thread may be delivering their
events — Qt crashes (a segmentation fault in the event loop, seen in our test runs). So automatic collection is
switched off and a timer on the Qt thread collects instead, generation by generation, with the interpreter's own
thresholds. The same approach as pyqtgraph's GarbageCollector.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer

CHECK_INTERVAL_MS = 200


class MainThreadGC:
    def __init__(self, interval_ms: int = CHECK_INTERVAL_MS) -> None:
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)
        self._was_enabled = gc.isenabled()
        self._thresholds = gc.get_threshold()

    def start(self) -> None:
        """Call on the Qt thread; from now on only that thread collects cycles."""
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> int:
        """Collect the oldest generation whose allocation count passed its threshold; returns it (or -1)."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return generation
        return -1
