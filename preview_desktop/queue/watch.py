"""Noticing commits to a diskcache store by any process, for LocalStore.watch."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path


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
        self._thread = threading.Thread(target=self._run, name="store-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def _run(self) -> None:
        con = sqlite3.connect(str(self._path), timeout=5, isolation_level=None, check_same_thread=False)
        try:
            last = con.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self._interval):
                try:
                    version = con.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue
                if version != last:
                    last = version
                    self._on_change()
        finally:
            con.close()
