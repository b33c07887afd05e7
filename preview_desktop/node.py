"""A node: the parts one process runs (store, engine, job service, API, farm), wired once from Settings.

The window and `--worker` build the same Node; only what sits on top (widgets or nothing) differs. This is the
one place that knows the concrete classes; every part below gets the small, typed pieces it depends on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .api.server import ApiServer
from .core.events import NodeNotice
from .core.handler import HandlerRegistry
from .core.layout import Layout
from .engine.engine import Engine
from .engine.gc_guard import MainThreadGC
from .farm.flow_jobs import register_flow_handlers
from .farm.gateway import FarmGateway
from .farm.member import FarmMember
from .presence.lending import Lending
from .queue.base import JobStore
from .queue.recovery import open_checked
from .render.chunk_jobs import ChunkJobs
from .render.renderer import RenderHandler
from .service.farm_tracker import FarmTracker
from .service.jobs import JobService
from .settings import Settings
from .watch.watcher import Watcher

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something that lives as long as the node: the API server, the farm member, the watch folders."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def default_registry(settings: Settings, layout: Layout) -> HandlerRegistry:
    """The `render` kind. Cheap to build: av, cv2 and OTIO load only when a render really runs."""
    registry = HandlerRegistry()
    registry.register("render", RenderHandler(settings, layout))
    register_flow_handlers(registry, settings, ChunkJobs(settings, layout))  # chunked farm previews (farm/flows.py)
    return registry


class Node:
    def __init__(
        self,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
        registry: HandlerRegistry | None = None,
        with_api: bool = True,
        with_farm: bool = True,
        with_watch: bool = True,
        window: bool = False,
        mirror_finished: bool = True,
    ) -> None:
        """`window`: the node of the window, an editor's workstation (farm lending defaults to `idle` there).
        `mirror_finished`: keep finished jobs in the engine's in-memory mirror (the window's job table needs them;
        a headless worker does not: without them its memory stays flat however many jobs it runs)."""
        self.settings = settings
        self.loop = loop
        self.layout = Layout(settings.data_dir)
        # checked at opening: a damaged store is set aside and its finished jobs come back (queue/recovery.py)
        store, self.recovery = open_checked(settings.queue_dir, self.layout.previews, settings.queue_max)
        self.store: JobStore = store
        self.engine = Engine(settings, self.store, registry or default_registry(settings, self.layout), loop,
                             mirror_finished=mirror_finished)
        self.gc = MainThreadGC()  # Qt objects must never be collected on a render thread
        self.components: list[Component] = []
        self.farm: FarmMember | None = None
        self.lending: Lending | None = None  # when this node takes farm jobs (workstation mode, presence/)
        if with_farm and settings.redis_url:
            self.lending = Lending(settings.farm_when_for(window), settings.farm_idle_minutes)
            self.farm = FarmMember(settings, self.engine, self.layout, lending=self.lending)
            self.components += [self.lending, self.farm]  # the first idle reading before the first fetch
        self.jobs = JobService(self.store, settings.effective_media_roots, self.engine.call,
                               farm=FarmGateway(self.farm) if self.farm is not None else None,
                               queue_max=settings.queue_max, path_map=settings.path_map)
        self.api: ApiServer | None = None
        if with_api:
            self.api = ApiServer(settings, self.layout, self.jobs, self.engine)
            self.components.insert(0, self.api)  # listening before the farm advertises its address
            if self.farm is not None:
                self.farm.api = self.api
        self.tracker: FarmTracker | None = None  # farm records follow their farm jobs (service/farm_tracker.py)
        if self.farm is not None:
            self.tracker = FarmTracker(self.jobs, self.layout, lambda: self.engine.jobs.values())
            self.components.append(self.tracker)
        self.watch: Watcher | None = None  # watch folders (issue #18); started last: it queues through the service
        if with_watch:
            self.watch = Watcher(self.jobs, settings.watch, settings.data_dir / "watch",
                                 settle_seconds=settings.watch_settle_seconds, output_defaults=settings.output_defaults)
            self.components.append(self.watch)

    @property
    def api_url(self) -> str | None:
        return self.api.url if self.api is not None else None

    async def start(self) -> None:
        self.gc.start()
        await self.engine.start()
        if self.recovery is not None:  # the window says it too (subscribers listen from before start)
            self.engine.events.emit(NodeNotice("store_recovered", "Job store repaired: " + self.recovery.message))
        for component in self.components:
            await component.start()

    async def stop(self, grace: float | None = None, interrupt: bool = False) -> None:
        """Stop accepting work, finish or hand back running jobs, then stop the components."""
        await self.engine.stop(grace=grace, interrupt=interrupt)
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        self.engine.close()
        self.store.close()
        self.gc.stop()
