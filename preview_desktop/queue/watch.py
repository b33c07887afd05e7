"""Noticing commits to a diskcache store by any process, for LocalStore.watch."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class StoreWatcher:
    """Calls `on_change` (from its own thread) when any process commits to the store.

    SQLite's `PRAGMA data_version` changes when another connection commits; reading it costs no I/O beyond the
    WAL index, so polling every 10 ms is nearly free and gives other processes' submits ~10 ms latency.
    """

    def __init__(self, db_path: Path, on_change: Callable[[], None], interval: float = 0.01) -> None:
        self._path = db_path
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reads the first version before returning: every commit after `start` is heard."""
        con = sqlite3.connect(str(self._path), timeout=5, isolation_level=None, check_same_thread=False)
        first = con.execute("PRAGMA data_version").fetchone()[0]
        self._thread = threading.Thread(target=self._run, args=(con, first), name="store-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1)

    def _run(self, con: sqlite3.Connection, last: int) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    version = con.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue
                if version != last:
                    last = version
                    try:
                        self._on_change()
                    except Exception:
                        log.exception("a store watcher failed")
        finally:
            con.close()
