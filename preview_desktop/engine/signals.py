"""SIGINT/SIGTERM while Qt's event loop runs.

Python runs signal handlers only when the interpreter gets control, which a C++ event loop may not give it for
a long time. `signal.set_wakeup_fd` writes a byte to a socket at C level; a QSocketNotifier on the other end
wakes the loop, Python runs the handler, and the handler calls back on the loop thread.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from types import FrameType

from PySide6.QtCore import QSocketNotifier


class SignalBridge:
    """First signal: `on_first()`. Second: `on_second()`. Later ones: ignored (we are already stopping)."""

    def __init__(self, on_first: Callable[[int], None], on_second: Callable[[int], None]) -> None:
        self._on_first = on_first
        self._on_second = on_second
        self.count = 0
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._drain)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _drain(self, *args: object) -> None:
        try:
            while self._reader.recv(64):
                pass
        except BlockingIOError:
            pass

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self._on_first(signum)
        elif self.count == 2:
            self._on_second(signum)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._notifier.setEnabled(False)
        self._reader.close()
        self._writer.close()
