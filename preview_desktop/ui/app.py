"""The window's process: QApplication + qasync loop + Node + MainWindow, and the `--screenshot` path.

Same shape as worker.py (one loop, one node); the window sits on top through the adapter. This module is the
window's wiring: the one place in ui/ that knows the node's concrete parts (the import contract allows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import APP_ID, APP_NAME
from ..settings import Settings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)
SCREENSHOT_TIMEOUT = 20.0  # seconds to wait for the first paint with data before grabbing anyway


def make_app() -> QApplication:
    from PySide6.QtWidgets import QApplication

    from ..qt_compat import protect_bools

    protect_bools()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_ID)
    app.setDesktopFileName(APP_ID)
    app.setStyle("Fusion")  # the same look on every platform, offscreen included
    app.setQuitOnLastWindowClosed(False)  # the tray may keep rendering with the window closed
    return app


def run_window(settings: Settings, screenshot: Path | None = None) -> int:
    from PySide6.QtWidgets import QMessageBox

    from ..engine.event_loop import make_event_loop
    from ..engine.signals import SignalBridge
    from ..node import Node
    from ..render.renderer import make_demo
    from .adapter import EngineAdapter
    from .main_window import MainWindow

    app = make_app()
    loop = make_event_loop(app)
    shooting = screenshot is not None
    # A screenshot looks at the data; it must not start renders, bind the API port or join the farm.
    node = Node(settings, loop, with_api=not shooting, with_farm=not shooting, with_watch=not shooting,
                window=True)
    if shooting:
        node.engine.leasing = False
    adapter = EngineAdapter(node.engine, node.jobs, settings, loop, api=node.api, make_demo=make_demo,
                            watch=node.watch, lending=node.lending)
    window = MainWindow(adapter, settings)
    done = asyncio.Event()
    stop_jobs = True
    exit_code = 0

    def quit_requested(stop: bool) -> None:
        nonlocal stop_jobs
        stop_jobs = stop
        done.set()

    window.quitRequested.connect(quit_requested)
    bridge = SignalBridge(lambda signum: window.request_quit(stop_jobs=False),
                          lambda signum: node.engine.interrupt_running())

    async def main() -> None:
        nonlocal exit_code
        window.show()
        try:
            await node.start()
        except Exception as exc:  # e.g. the API port is taken: say so in the window's terms, then leave
            log.exception("the node did not start")
            if not shooting:
                QMessageBox.critical(window, APP_NAME, f"Preview Desktop could not start:\n{exc}")
            exit_code = 1
            return
        adapter.flush()
        window.metrics.numbers.seed(adapter.jobs().values())
        adapter.ready.emit()
        if screenshot is not None:
            exit_code = await take_screenshot(window, screenshot)
        else:
            await done.wait()

    with loop:
        try:
            loop.run_until_complete(main())
            loop.run_until_complete(node.stop(grace=2.0 if stop_jobs else None, interrupt=stop_jobs))
        finally:
            bridge.close()
            adapter.close()
            teardown(window)
    if node.engine.running:  # a handler ignored its cancel flag; its lease is released: do not wait for it
        logging.shutdown()
        os._exit(exit_code)
    return exit_code


def teardown(window: object) -> None:
    """Destroy the widgets while QApplication still lives: left to interpreter shutdown, pyqtgraph's items
    are collected after Qt's objects and the process aborts on exit instead of returning its exit code."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QWidget

    if isinstance(window, QWidget):
        window.hide()
        window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


async def take_screenshot(window: object, path: Path) -> int:
    """Wait for the first paint with the jobs (or a timeout), let the detail pane load, then grab."""
    from PySide6.QtCore import QCoreApplication

    from .main_window import MainWindow

    assert isinstance(window, MainWindow)
    painted = asyncio.Event()
    window.painted.connect(painted.set)
    window.table.viewport().update()
    window.select_showcase_job()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(painted.wait(), SCREENSHOT_TIMEOUT)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and window.detail.loading:
        await asyncio.sleep(0.02)
    window.metrics.view.redraw()
    for _ in range(3):
        QCoreApplication.processEvents()
        await asyncio.sleep(0.05)
    image = window.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.isNull() or not image.save(str(path), "PNG"):
        log.error("could not save the screenshot to %s", path)
        return 1
    log.info("screenshot saved to %s (%dx%d)", path, image.width(), image.height())
    return 0
