"""The watcher: file system events (watchdog) or polling per folder, the settle check, and queueing.

Everything blocking runs on the watcher's own thread: stats, directory scans, reading a folder's spec file, and
waiting for the job service (whose store calls run where the service says: the engine's store thread in a node,
inline in `preview-desktop watch`). The event loop only runs the service's coroutines.

Folders come and go (a share unmounted, a drive renamed): once a second each folder is checked; a folder that
vanished is marked unavailable and its event watch dropped, and when it is back (or is a different folder at
the same path) it is watched afresh and rescanned, so exports written meanwhile are picked up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from ..core.job import Job
from ..core.submission import SpecSource
from ..errors import InvalidInput, PreviewError
from ..settings import WatchFolder
from .names import is_export
from .place import HandledStore, is_network_path
from .request import build_request
from .settle import SettleTracker, Signature, signature_of

log = logging.getLogger(__name__)
T = TypeVar("T")

TICK = 0.2  # seconds between rounds of the watcher's thread
CHECK_SECONDS = 1.0  # is each folder still there (and the same folder)?
RETRY_SECONDS = 10.0  # after the store refused for a passing reason (queue full, store busy)
CALL_TIMEOUT = 120.0
FIRST_LOOK_SECONDS = 5.0  # start() waits this long at most for the first look (a hung share must not stall it)


class WatchJobs(Protocol):
    """What the watcher needs of the job service."""

    async def submit(self, source: SpecSource) -> Job: ...
    async def record_failure(self, spec_data: Mapping[str, Any], error: str) -> Job: ...


@dataclass(frozen=True)
class WatchReport:
    """One thing the watcher did, for whoever shows it (the CLI prints these)."""

    folder: str
    outcome: str  # queued | failed | unavailable | watching
    file: str = ""
    job_id: str | None = None
    message: str = ""


@dataclass(frozen=True)
class FolderStatus:
    path: str
    mode: str  # events | polling | unavailable


@dataclass
class _Folder:
    config: WatchFolder
    tracker: SettleTracker
    baseline: bool  # never watched before: what is there now is not queued
    polled: bool = False
    watch: ObservedWatch | None = None
    identity: tuple[int, int] | None = None
    available: bool = False
    next_check: float = 0.0
    next_rescan: float = 0.0
    dirty: set[str] = field(default_factory=set)


class _Events(FileSystemEventHandler):
    """watchdog's thread → names to look at (the watcher's thread stats them)."""

    def __init__(self, folder: _Folder, lock: threading.Lock) -> None:
        self.folder = folder
        self.lock = lock
        # FSEvents reports resolved paths (/private/var/... for /var/...): either form is this folder
        self.roots = {folder.config.path, os.path.realpath(folder.config.path)}

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if path and os.path.dirname(path) in self.roots and is_export(os.path.basename(path)):
                with self.lock:
                    self.folder.dirty.add(os.path.basename(path))


class Watcher:
    """A node Component: start() / stop(). `set_folders` applies a new list while running (the window)."""

    def __init__(
        self,
        jobs: WatchJobs,
        folders: Sequence[WatchFolder],
        state_dir: Path,
        *,
        settle_seconds: float = 2.0,
        output_defaults: Mapping[str, Any] | None = None,
        rescan_seconds: float = 30.0,
        poll_seconds: float = 2.0,
        report: Callable[[WatchReport], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.settle = settle_seconds
        self.output_defaults = dict(output_defaults or {})
        self.rescan_seconds = rescan_seconds
        self.poll_seconds = poll_seconds
        self.report = report or (lambda r: None)
        self._handled = HandledStore(state_dir)
        self._wanted: list[WatchFolder] = list(folders)
        self._folders: dict[str, _Folder] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.looked = threading.Event()  # every folder had its first look (what is there before is the baseline)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._native: BaseObserver | None = None
        self._polling: BaseObserver | None = None

    # ------------------------------------------------------------------ the loop's side
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._native = Observer()
        self._polling = PollingObserver(timeout=self.poll_seconds)
        for observer in (self._native, self._polling):
            observer.daemon = True
            observer.start()
        self._thread = threading.Thread(target=self._run, name="preview-watch", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + FIRST_LOOK_SECONDS  # started = each folder's baseline taken (if it is there)
        while not self.looked.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + CALL_TIMEOUT
        while self._thread is not None and self._thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the thread may be waiting on a coroutine of ours: keep the loop turning
        for observer in (self._native, self._polling):
            if observer is not None:
                observer.stop()
        for observer in (self._native, self._polling):
            if observer is not None:
                await asyncio.get_running_loop().run_in_executor(None, observer.join, 5.0)

    def set_folders(self, folders: Sequence[WatchFolder], output_defaults: Mapping[str, Any] | None = None) -> None:
        """Thread-safe; applied on the watcher's next round (output defaults: from the next export on)."""
        with self._lock:
            self._wanted = list(folders)
            if output_defaults is not None:
                self.output_defaults = dict(output_defaults)
        self._wake.set()

    def folders(self) -> list[WatchFolder]:
        with self._lock:
            return list(self._wanted)

    def status(self) -> list[FolderStatus]:
        with self._lock:
            folders = list(self._folders.values())
        return [FolderStatus(f.config.path, "unavailable" if not f.available else "polling" if f.polled
                             else "events") for f in folders]

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a job service coroutine on the loop and wait for it here (the watcher's thread)."""
        assert self._loop is not None

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CALL_TIMEOUT)

    # ------------------------------------------------------------------ the watcher's thread
    def _run(self) -> None:
        while not self._stop.is_set():
            self._reconcile()
            now = time.monotonic()
            for folder in list(self._folders.values()):
                if self._stop.is_set():
                    break
                try:
                    self._round(folder, now)
                except Exception:  # a folder's trouble must not end the watching of the others
                    log.exception("watch folder %s: unexpected error", folder.config.path)
                    folder.next_check = now + RETRY_SECONDS
            self.looked.set()
            self._wake.wait(TICK)
            self._wake.clear()
        for folder in list(self._folders.values()):
            self._unschedule(folder)

    def _reconcile(self) -> None:
        with self._lock:
            wanted = {f.path: f for f in self._wanted}
        for path in [p for p in self._folders if p not in wanted]:
            self._unschedule(self._folders.pop(path))
        for path, config in wanted.items():
            folder = self._folders.get(path)
            if folder is None:
                handled = self._handled.load(path)
                self._folders[path] = _Folder(config, SettleTracker(self.settle, handled or {}), handled is None)
            elif folder.config != config:
                if folder.config.poll != config.poll:
                    self._unschedule(folder)
                    folder.available = False
                    folder.next_check = 0.0
                folder.config = config

    def _round(self, folder: _Folder, now: float) -> None:
        if now >= folder.next_check:
            folder.next_check = now + CHECK_SECONDS
            self._check_available(folder, now)
        if not folder.available:
            return
        with self._lock:
            names, folder.dirty = folder.dirty, set()
        if now >= folder.next_rescan:
            folder.next_rescan = now + self.rescan_seconds
            names |= self._rescan(folder)
        names.update(folder.tracker.pending)
        root = Path(folder.config.path)
        for name in names:
            folder.tracker.observe(name, _stat_file(root / name), now)
        for name, signature in folder.tracker.due(now):
            if self._stop.is_set():
                return
            self._queue(folder, name, signature, now)

    def _rescan(self, folder: _Folder) -> set[str]:
        try:
            names = {e.name for e in os.scandir(folder.config.path) if is_export(e.name)}
        except OSError as exc:
            log.warning("watch folder %s: cannot list it (%s)", folder.config.path, exc.strerror or exc)
            return set()
        stale = [n for n in folder.tracker.handled if n not in names]
        for name in stale:
            del folder.tracker.handled[name]
        if folder.baseline:  # first time this folder is watched: what is already there is not an export
            root = Path(folder.config.path)
            for name in names:
                signature = _stat_file(root / name)
                if signature is not None:
                    folder.tracker.done(name, signature)
            folder.baseline = False
            self._save(folder)
            return set()
        if stale:
            self._save(folder)
        return names

    def _check_available(self, folder: _Folder, now: float) -> None:
        path = folder.config.path
        try:
            st = os.stat(path)
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
        except OSError:
            identity = None
        if identity is None:
            if folder.available:
                folder.available = False
                self._unschedule(folder)
                log.warning("watch folder %s is unavailable; watching for it to come back", path)
                self.report(WatchReport(path, "unavailable", message="the folder is not there"))
            return
        if folder.available and identity == folder.identity and self._watch_alive(folder):
            return
        self._unschedule(folder)
        folder.polled = folder.config.poll if folder.config.poll is not None else is_network_path(path)
        observer = self._polling if folder.polled else self._native
        assert observer is not None
        try:
            folder.watch = observer.schedule(_Events(folder, self._lock), path, recursive=False)
        except OSError as exc:  # gone again, or no more inotify watches: the periodic rescan still works
            log.warning("watch folder %s: no file system events (%s); rescanning every %.0fs", path,
                        exc.strerror or exc, self.rescan_seconds)
            folder.watch = None
        folder.identity = identity
        folder.available = True
        if folder.baseline:  # before saying "watching": what is there now is not an export to queue
            self._rescan(folder)
        folder.next_rescan = now  # whatever arrived while we were not looking
        mode = "polling" if folder.polled else "events"
        log.info("watching %s (%s)", path, mode)
        self.report(WatchReport(path, "watching", message=mode))

    def _watch_alive(self, folder: _Folder) -> bool:
        """watchdog ends a folder's emitter when the folder is deleted or its file system unmounted."""
        if folder.watch is None:
            return True  # events never worked here: the rescan carries it
        observer = self._polling if folder.polled else self._native
        return observer is not None and any(
            e.watch == folder.watch and e.is_alive() for e in observer.emitters)

    def _unschedule(self, folder: _Folder) -> None:
        watch, folder.watch = folder.watch, None
        if watch is None:
            return
        for observer in (self._native, self._polling):
            try:
                if observer is not None:
                    observer.unschedule(watch)
            except (KeyError, OSError):
                pass  # not scheduled there, or its emitter is gone with the folder

    def _save(self, folder: _Folder) -> None:
        try:
            self._handled.save(folder.config.path, folder.tracker.handled)
        except OSError as exc:
            log.warning("could not remember watch folder %s's exports (%s)", folder.config.path, exc)

    # ------------------------------------------------------------------ one export → one job
    def _queue(self, folder: _Folder, name: str, signature: Signature, now: float) -> None:
        path = Path(folder.config.path) / name
        with self._lock:
            defaults = self.output_defaults
        request = build_request(folder.config, path, defaults)
        try:
            if request.error is None:
                try:
                    job = self._call(lambda: self.jobs.submit(request.source))
                except InvalidInput as exc:
                    if _stat_file(path) is None:  # deleted before we got to it: nothing to say
                        folder.tracker.observe(name, None, now)
                        return
                    where = f" (settings from {request.spec_file})" if request.spec_file else ""
                    self._record_failure(folder, name, request.spec_data, f"{exc}{where}")
                else:
                    log.info("queued %s from watch folder %s as job %s", name, folder.config.path, job.id)
                    self.report(WatchReport(folder.config.path, "queued", name, job.id, job.project_id))
            else:
                self._record_failure(folder, name, request.spec_data, request.error)
        except PreviewError as exc:  # the queue is full, the store is busy: the export waits, it is not lost
            log.warning("watch folder %s: %s not queued yet (%s); trying again in %.0fs", folder.config.path,
                        name, exc, RETRY_SECONDS)
            folder.tracker.later(name, now + RETRY_SECONDS)
            return
        except Exception:
            log.exception("watch folder %s: queueing %s failed; trying again in %.0fs", folder.config.path, name,
                          RETRY_SECONDS)
            folder.tracker.later(name, now + RETRY_SECONDS)
            return
        folder.tracker.done(name, signature)
        self._save(folder)

    def _record_failure(self, folder: _Folder, name: str, spec_data: dict[str, Any], error: str) -> None:
        job = self._call(lambda: self.jobs.record_failure(spec_data, error))
        log.warning("watch folder %s: %s could not be queued: %s (failed job %s)", folder.config.path, name, error,
                    job.id)
        self.report(WatchReport(folder.config.path, "failed", name, job.id, error))


def _stat_file(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return signature_of(st) if stat.S_ISREG(st.st_mode) else None
