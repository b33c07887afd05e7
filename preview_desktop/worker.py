"""Headless mode (`--worker`): QCoreApplication + qasync loop + the node. No display needed."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from . import __version__
from .settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    # QCoreApplication needs no platform plugin, so no QT_QPA_PLATFORM and no display are required.
    from PySide6.QtCore import QCoreApplication

    from .engine.event_loop import make_event_loop
    from .engine.signals import SignalBridge
    from .node import Node
    from .qt_compat import protect_bools

    protect_bools()  # PySide6 6.12 + Python 3.11: each emit leaks a reference to True (see qt_compat)

    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    loop = make_event_loop(app)
    node = Node(settings, loop, mirror_finished=False)  # no job table to feed: memory flat over any number of jobs
    done = asyncio.Event()
    exit_code = 0

    async def shutdown(interrupt: bool) -> None:
        await node.stop(interrupt=interrupt)
        done.set()

    def first(signum: int) -> None:
        log.info("signal %d: finishing running jobs (up to %.0fs); send again to interrupt them",
                 signum, settings.shutdown_grace)
        loop.create_task(shutdown(interrupt=False))

    def second(signum: int) -> None:
        log.info("signal %d again: interrupting running jobs; they go back to the queue", signum)
        node.engine.interrupt_running()

    bridge = SignalBridge(first, second)

    async def main() -> None:
        nonlocal exit_code
        await node.start()
        api = node.api_url
        parts = [
            f"Preview Desktop {__version__} worker ready",
            f"node {node.engine.worker_id}",
            f"{settings.max_concurrency} slot(s)",
            f"DATA_DIR {settings.data_dir}",
        ]
        if api:
            parts.append(f"API {api}")
        if node.farm is not None:
            parts.append(f"farm queue {settings.farm_queue!r}")
        if settings.watch:
            parts.append(f"watching {len(settings.watch)} folder(s)")
        print(", ".join(parts), flush=True)
        await done.wait()

    with loop:
        try:
            loop.run_until_complete(main())
        finally:
            bridge.close()
    if node.engine.running:
        # A handler ignored its cancel flag; its lease is released, so do not wait for its thread.
        logging.shutdown()
        os._exit(exit_code)
    return exit_code
