"""A node: the parts one process runs (store, engine, API, farm), wired once from Settings.

The window and `--worker` build the same Node; only what sits on top (widgets or nothing) differs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .core.handler import HandlerRegistry, JobContext
from .core.job import Job
from .engine.engine import Engine
from .engine.gc_guard import MainThreadGC
from .queue.local import LocalStore
from .settings import Settings

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something that lives as long as the node: the API server, the farm client."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def render_handler(job: Job, ctx: JobContext) -> dict[str, Any]:
    """The `render` kind. Imported lazily: av, cv2 and OTIO load only when a render really runs."""
    from .render.api import render_job

    return render_job(job, ctx)


EXTRA_HANDLERS_ENV = "PREVIEW_EXTRA_HANDLERS"


def default_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("render", render_handler)
    _register_extra_handlers(registry)
    return registry


def _register_extra_handlers(registry: HandlerRegistry) -> None:
    """Test-only hook: PREVIEW_EXTRA_HANDLERS="module:function" calls function(registry) so worker subprocesses
    in tests can run fast fake job kinds (farm jobs run the handler named by their BullMQ job name)."""
    import importlib
    import os

    target = os.environ.get(EXTRA_HANDLERS_ENV, "").strip()
    if target:
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(registry)


class Node:
    def __init__(
        self,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
        registry: HandlerRegistry | None = None,
        with_api: bool = True,
        with_farm: bool = True,
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.store = LocalStore(settings.queue_dir, queue_max=settings.queue_max)
        self.engine = Engine(settings, self.store, registry or default_registry(), loop)
        self.gc = MainThreadGC()  # Qt objects must never be collected on a render thread
        self.components: list[Component] = []
        self.api: Any = None
        self.farm: Any = None
        if with_api:
            self.api = self._make_api()
        if with_farm and settings.redis_url:
            self.farm = self._make_farm()

    def _make_api(self) -> Any:
        try:
            from .api.server import ApiServer
        except ImportError:  # the API package is optional at this stage of the build
            return None
        server = ApiServer(self)
        self.components.append(server)
        return server

    def _make_farm(self) -> Any:
        try:
            from .farm.node import FarmNode
        except ImportError:
            return None
        farm = FarmNode(self)
        self.components.append(farm)
        return farm

    async def start(self) -> None:
        self.gc.start()
        await self.engine.start()
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
