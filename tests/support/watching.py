"""A watcher as a node runs it, without Qt: a real LocalStore and JobService, the watcher's own thread, and the
service's coroutines on an asyncio loop in a second thread (the node's loop). Tests read the store directly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from preview_desktop.core.job import Job
from preview_desktop.queue.local import LocalStore
from preview_desktop.service.jobs import JobService, inline
from preview_desktop.settings import WatchFolder
from preview_desktop.watch.watcher import Watcher, WatchReport

T = TypeVar("T")


class Watching:
    def __init__(self, data_dir: Path, media_root: Path, folders: Sequence[WatchFolder], *, settle: float = 0.5,
                 rescan: float = 0.5, **options: Any) -> None:
        self.store = LocalStore(data_dir / "queue")
        self.service = JobService(self.store, [media_root], inline)
        self.reports: list[WatchReport] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()
        self.watcher = Watcher(self.service, folders, data_dir / "watch", settle_seconds=settle,
                               rescan_seconds=rescan, poll_seconds=0.3, report=self.reports.append, **options)
        self.call(self.watcher.start())
        self.wait(lambda: len([r for r in self.reports if r.outcome == "watching"]) >= len(folders),
                  "the folders being watched")

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def jobs(self) -> list[Job]:
        return sorted(self.store.list_jobs(), key=lambda j: j.created_at)

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 15) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; reports: {self.reports}")

    def wait_jobs(self, count: int, timeout: float = 15) -> list[Job]:
        def enough() -> list[Job] | None:
            jobs = self.jobs()
            return jobs if len(jobs) >= count else None

        return self.wait(enough, f"{count} job(s)", timeout)

    def status_of(self, folder: Path) -> str:
        return next(s.mode for s in self.watcher.status() if s.path == str(folder))

    def close(self) -> None:
        try:
            self.call(self.watcher.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.store.close()
