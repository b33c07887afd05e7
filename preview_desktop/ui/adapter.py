"""THE adapter between the engine and the widgets: engine events in, typed Qt signals out; async actions in.

Widgets never see the store, the engine's threads or its event classes: they connect to these signals and call
these methods. Job updates are coalesced per loop turn, so the engine's full reload of 10,000 jobs reaches the
table as one batch (one insert), not 10,000 signals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..api_token import TokenFile
from ..core.events import EngineStatus, Event, JobOutcome, JobProgress, JobRemoved, JobUpdated, NodeNotice
from ..core.farm_status import FarmStatus
from ..core.intake import project_id_from_name
from ..core.job import Job, JobState
from ..core.layout import Layout
from ..core.submission import PathSource
from ..errors import PreviewError
from ..settings import Settings, WatchFolder
from .ports import ApiPort, DemoMaker, EnginePort, JobsPort, LendingPort, WatchPort

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = (".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".webm", ".mts", ".mpg", ".wav", ".aif", ".aiff")


@dataclass
class SubmitOptions:
    """What the queue dialog asks for; `projectId` None means "from the file name"; `on_farm`: render on the
    farm, followed here as a farm record."""

    project_id: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    priority: int = 5
    on_farm: bool = False


class EngineAdapter(QObject):
    jobsChanged = Signal(list, list)  # (updated Jobs, removed job ids), coalesced per loop turn
    jobProgress = Signal(str, int, int, float, float)  # job id, frame, frames, fraction, fps (live, this node)
    outcome = Signal(str, str, float, int)  # job id, success|failure|retry|cancelled|released|lost, seconds, frames
    statusChanged = Signal(object)  # EngineStatus
    countsChanged = Signal(dict)  # store counts by state (all processes), after each batch
    error = Signal(str, str)  # title, message: an action that failed, for the status bar / a message box
    info = Signal(str)  # a short confirmation for the status bar
    ready = Signal()  # the node started and its first full sync reached the widgets
    farmStatusChanged = Signal(object)  # FarmStatus: every farm heartbeat and every change of the Redis link
    notice = Signal(str, str)  # kind (disk_full, disk_ok, store_recovered), text: the node's trouble, said once

    def __init__(
        self,
        engine: EnginePort,
        jobs: JobsPort,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
        *,
        api: ApiPort | None = None,
        make_demo: DemoMaker | None = None,
        watch: WatchPort | None = None,
        lending: LendingPort | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.service = jobs
        self.api = api
        self.settings = settings
        self.layout = Layout(settings.data_dir)
        self.loop = loop
        self._make_demo = make_demo
        self.watch = watch
        self.lending = lending
        self.status: EngineStatus = engine.status()
        self.counts: dict[str, int] = {}
        self.last_notice: tuple[str, str] | None = None  # (kind, text) of the last NodeNotice, for new widgets
        self._pending: dict[str, Job] = {}
        self._removed: set[str] = set()
        self._flush_scheduled = False
        self._counts_pending = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = engine.subscribe(self._on_event)
        jobs.on_farm_status(self.farmStatusChanged.emit)

    # ------------------------------------------------------------------ engine → signals
    @property
    def worker_id(self) -> str:
        return str(self.engine.worker_id)

    def jobs(self) -> dict[str, Job]:
        return dict(self.engine.jobs)

    def job(self, job_id: str) -> Job | None:
        """A local job as the store last said (None for an unknown id, e.g. a farm job rendered here)."""
        return self.engine.jobs.get(job_id)

    @property
    def stopping(self) -> bool:
        return self.engine.stopping

    def api_url(self) -> str | None:
        return self.api.url if self.api is not None else None

    def api_token(self) -> str:
        return self.api.token if self.api is not None else TokenFile(self.settings).api_token()

    def regenerate_api_token(self) -> str | None:
        """Through the running API when there is one, so the new token applies at once."""
        if self.api is None:
            return TokenFile(self.settings).regenerate_api_token()
        try:
            return self.api.regenerate_token()
        except PreviewError as exc:  # PREVIEW_API_TOKEN pins it
            self.error.emit("Could not regenerate the API token", str(exc))
            return None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, JobUpdated):
            self._removed.discard(event.job.id)
            self._pending[event.job.id] = event.job
            self._schedule_flush()
        elif isinstance(event, JobRemoved):
            self._pending.pop(event.job_id, None)
            self._removed.add(event.job_id)
            self._schedule_flush()
        elif isinstance(event, JobProgress):
            self.jobProgress.emit(event.job_id, event.frame, event.frames, event.fraction, event.fps)
        elif isinstance(event, JobOutcome):
            self.outcome.emit(event.job_id, event.outcome, event.seconds, event.frames)
        elif isinstance(event, EngineStatus):
            self.status = event
            self.statusChanged.emit(event)
        elif isinstance(event, NodeNotice):
            self.last_notice = (event.kind, event.text)
            self.notice.emit(event.kind, event.text)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Deliver what piled up this loop turn (tests call it to skip the wait)."""
        self._flush_scheduled = False
        if not self._pending and not self._removed:
            return
        updated, removed = list(self._pending.values()), sorted(self._removed)
        self._pending, self._removed = {}, set()
        self.jobsChanged.emit(updated, removed)
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        if self._counts_pending or self.engine.stopping:
            return
        self._counts_pending = True

        async def fetch() -> None:
            try:
                self.counts = await self.service.counts()
            finally:
                self._counts_pending = False
            self.countsChanged.emit(self.counts)

        self.spawn(fetch(), "reading the queue counts")

    def close(self) -> None:
        self._unsubscribe()

    # ------------------------------------------------------------------ running actions
    def spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        """Run an action on the loop; a failure becomes an `error` signal, never an unhandled exception."""

        async def guarded() -> Any:
            try:
                return await coro
            except PreviewError as exc:
                self.error.emit(f"Could not finish {what}", str(exc))
            except Exception as exc:  # the action boundary: report, log, keep the window alive
                log.exception("%s failed", what)
                self.error.emit(f"Could not finish {what}", f"{type(exc).__name__}: {exc}")
            return None

        task = self.loop.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _each(self, job_ids: Iterable[str], act: Callable[[str], Awaitable[object]], verb: str) -> int:
        """Apply one action per job; go on after a refusal and report all refusals at once."""
        done, problems = 0, []
        for job_id in job_ids:
            try:
                await act(job_id)
                done += 1
            except PreviewError as exc:
                problems.append(str(exc))
        if problems:
            more = f"\n… and {len(problems) - 5} more" if len(problems) > 5 else ""
            self.error.emit(f"Could not {verb} {len(problems)} job(s)", "\n".join(problems[:5]) + more)
        if done:
            self.info.emit(f"{verb.capitalize()}: {done} job(s)")
        return done

    def _state(self, job_id: str) -> JobState | None:
        job = self.engine.jobs.get(job_id)
        return job.state if job else None

    def cancel(self, job_ids: Sequence[str]) -> asyncio.Task[Any]:
        ids = [i for i in job_ids if (s := self._state(i)) is not None and not s.finished]
        return self.spawn(self._each(ids, self.service.cancel, "cancel"), "cancelling")

    def retry(self, job_ids: Sequence[str]) -> asyncio.Task[Any]:
        ids = [i for i in job_ids if self._state(i) in (JobState.FAILED, JobState.CANCELLED)]
        return self.spawn(self._each(ids, self.service.retry, "retry"), "retrying")

    def change_priority(self, job_ids: Sequence[str], delta: int) -> asyncio.Task[Any]:
        jobs = [self.engine.jobs[i] for i in job_ids if i in self.engine.jobs]
        targets = {j.id: j.priority + delta for j in jobs if j.priority_can_change}

        def apply(job_id: str) -> Awaitable[Job]:
            return self.service.set_priority(job_id, targets[job_id])

        verb = "raise the priority of" if delta > 0 else "lower the priority of"
        return self.spawn(self._each(list(targets), apply, verb), "changing priorities")

    def remove(self, job_ids: Sequence[str]) -> asyncio.Task[Any]:
        ids = [i for i in job_ids if (s := self._state(i)) is not None and s.finished]
        return self.spawn(self._each(ids, self.service.remove, "remove"), "removing jobs")

    def set_paused(self, paused: bool) -> asyncio.Task[Any]:
        async def act() -> None:
            await self.service.set_paused(paused)
            self.info.emit("Queue paused: running jobs finish, no new ones start" if paused else "Queue resumed")

        return self.spawn(act(), "pausing the queue" if paused else "resuming the queue")

    def set_concurrency(self, n: int) -> None:
        self.engine.set_concurrency(n)

    def submit_files(self, paths: Sequence[Path], options: SubmitOptions) -> asyncio.Task[Any]:
        """Each file becomes a job (reading and checking the file runs off the loop, in the job service)."""
        return self.spawn(self._each([str(p) for p in paths], partial(self._submit_one, options), "queue"),
                          "queueing")

    async def _submit_one(self, options: SubmitOptions, path: str) -> Job:
        overrides: dict[str, Any] = {"priority": options.priority,
                                     "projectId": options.project_id or project_id_from_name(Path(path).name)}
        if options.output:
            overrides["output"] = dict(options.output)
        source = PathSource(path, Path.cwd(), overrides)
        if options.on_farm and self.service.farm_status() is not None:
            return await self.service.submit_tracked(source)
        return await self.service.submit(source)

    def render_demo(self, options: SubmitOptions | None = None) -> asyncio.Task[Any]:
        """Make the demo media off the loop thread, then queue it."""

        async def act() -> None:
            make_demo = self._make_demo
            if make_demo is None:
                self.error.emit("The demo project is not available", "This build has no demo maker.")
                return
            self.info.emit("Making the demo project…")
            timeline = await self.loop.run_in_executor(None, make_demo, self.layout.media)
            await self.submit_files([Path(timeline)], options or SubmitOptions(project_id="demo"))

        return self.spawn(act(), "rendering the demo project")

    # ------------------------------------------------------------------ the farm
    def farm_status(self) -> FarmStatus | None:
        """None when this node is not on a farm."""
        return self.service.farm_status()

    def cancel_farm_job(self, job_id: str) -> asyncio.Task[Any]:
        return self.spawn(self.service.cancel_farm_job(job_id, "cancelled from the window"),
                          f"cancelling farm job {job_id}")

    def drain_farm_node(self, node_id: str, draining: bool) -> asyncio.Task[Any]:
        """Drain a farm node (it finishes what it runs, takes no more farm jobs) or resume it: any node, through
        Redis; the Farm view shows its state from the node's next heartbeat (about 1 s)."""
        return self.spawn(self.service.drain_farm_node(node_id, draining),
                          f"{'draining' if draining else 'resuming'} farm node {node_id}")

    def send_to_farm(self, job_ids: Sequence[str]) -> asyncio.Task[Any]:
        """Each selected local job that has not started goes to the farm and stays in the table, same row, as a
        farm record (the farm tracker follows it). With the farm away they stay queued here (they are already)."""
        ids = [i for i in job_ids if (j := self.engine.jobs.get(i)) is not None and j.state.waiting
               and j.farm_id is None]
        return self.spawn(self._each(ids, self.service.send_to_farm, "send to the farm"), "sending jobs to the farm")

    # ------------------------------------------------------------------ watch folders
    def set_lending(self, when: str, idle_minutes: float) -> None:
        """Workstation mode, applied at once (the status bar follows through the farm status)."""
        if self.lending is not None:
            self.lending.configure(when, idle_minutes)

    def watch_status(self) -> dict[str, str]:
        """Folder path -> events | polling | unavailable, as the watcher last saw it (empty without one)."""
        return {s.path: s.mode for s in self.watch.status()} if self.watch is not None else {}

    def set_watch_folders(self, folders: Sequence[WatchFolder], output_defaults: dict[str, Any] | None = None) -> None:
        """Applied at once: new folders are watched, removed ones dropped (the watcher's thread does the work);
        new output defaults apply from the next export on."""
        if self.watch is None:
            return
        changed = list(folders) != self.watch.folders()
        self.watch.set_folders(folders, output_defaults)
        if changed:
            self.info.emit(f"Watching {len(folders)} folder(s)" if folders else "No watch folders")

    # ------------------------------------------------------------------ reading files off the loop thread
    async def read_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """File reads (artifacts, logs) run on the default executor, never on the loop thread."""
        return await self.loop.run_in_executor(None, fn, *args)

    def preview_dir(self, job: Job) -> Path | None:
        try:
            return self.layout.preview_dir(job.project_id, job.id)
        except PreviewError:
            return None
