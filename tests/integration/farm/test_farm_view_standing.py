"""The Farm view's node states and its Drain/Resume actions (issue #17): the action reaches a real worker process
through the window's real adapter, job service and Redis, and the node's row shows "draining" from the node's own
heartbeat; "resting" rows and the status bar read what the registry says."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal

from preview_desktop.core.farm_status import FarmStatus, NodeInfo
from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from tests.support.qtloop import run, settle
from tests.support.redis_server import RedisServer
from tests.ui.conftest import wait_until

from .conftest import NodeProcess


class StandIn(QObject):
    """The adapter's farm surface, recording the drain actions."""

    farmStatusChanged = Signal(object)

    def __init__(self, status: FarmStatus) -> None:
        super().__init__()
        self.status = status
        self.drained: list[tuple[str, bool]] = []

    def farm_status(self) -> FarmStatus:
        return self.status

    def drain_farm_node(self, node_id: str, draining: bool) -> None:
        self.drained.append((node_id, draining))


def test_resting_and_draining_rows_buttons_and_status_bar(qtbot: Any) -> None:
    from PySide6.QtGui import QAction

    from preview_desktop.ui.farm_view import FarmStatusButton, FarmView

    now = time.time()
    until = now + 300
    mine = NodeInfo(nodeId="me:1:aaaa", host="me", pid=1, version="0.1.0", capacity=2, heartbeat=now,
                    state="resting", restingUntil=until)
    other = NodeInfo(nodeId="box:2:bbbb", host="box", pid=2, version="0.1.0", capacity=2, heartbeat=now,
                     state="draining")
    status = FarmStatus(url="redis://farm:6379/0", queue="previews", connected=True, nodes=[mine, other],
                        counts={}, nodeId="me:1:aaaa")
    farm = StandIn(status)
    view = FarmView(farm, lambda: [])
    qtbot.addWidget(view)
    resting, draining = view.tree.topLevelItem(0), view.tree.topLevelItem(1)
    assert resting is not None and draining is not None
    assert f"resting until {time.strftime('%H:%M', time.localtime(until))}" in resting.text(0)
    assert "draining" in draining.text(0)
    resting.setSelected(True)
    assert view.drain_button.isEnabled() and not view.resume_button.isEnabled()
    view.drain_button.click()
    resting.setSelected(False)
    draining.setSelected(True)
    assert view.resume_button.isEnabled() and not view.drain_button.isEnabled()
    view.resume_button.click()
    assert farm.drained == [("me:1:aaaa", True), ("box:2:bbbb", False)]
    button = FarmStatusButton(farm, QAction())
    qtbot.addWidget(button)
    assert "this node resting until" in button.text()


@pytest.fixture
def window_node(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                redis_server: RedisServer) -> Iterator[tuple[Node, Any]]:
    from preview_desktop.ui.adapter import EngineAdapter

    env = dict(os.environ)
    env["REDIS_URL"] = redis_server.url
    settings = load_settings(env=env).with_overrides(max_concurrency=1, shutdown_grace=2.0)
    node = Node(settings, qloop, with_api=False)
    adapter = EngineAdapter(node.engine, node.jobs, settings, qloop)
    run(qloop, node.start())
    yield node, adapter
    stop = qloop.create_task(node.stop(grace=1, interrupt=True))
    run(qloop, asyncio.wait([stop], timeout=30))
    adapter.close()
    settle(qloop)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_drain_action_reaches_a_worker_and_its_row_shows_draining(
    qloop: asyncio.AbstractEventLoop, qtbot: Any, redis_server: RedisServer,
    start_node: Callable[..., NodeProcess], window_node: tuple[Node, Any],
) -> None:
    from preview_desktop.ui.farm_view import FarmView

    _node, adapter = window_node
    worker = start_node(redis_server.url, concurrency=1, name="worker")
    view = FarmView(adapter, lambda: [])
    qtbot.addWidget(view)
    view.show()

    def worker_row() -> Any:
        for i in range(view.tree.topLevelItemCount()):
            item = view.tree.topLevelItem(i)
            if item is not None and f":{worker.pid}:" in item.text(0):
                return item
        return None

    wait_until(qloop, worker_row, 20, "the worker's row")
    worker_row().setSelected(True)
    assert view.drain_button.isEnabled()
    clicked = time.monotonic()
    view.drain_button.click()
    wait_until(qloop, lambda: worker_row() is not None and "draining" in worker_row().text(0), 10,
               "the worker's row to show draining")
    shown_after = time.monotonic() - clicked
    wait_until(qloop, lambda: "farm: draining" in worker.log(), 5, "the worker's log line")
    row = worker_row()
    row.setSelected(True)  # the view keeps the selection across heartbeats; select again in case it moved
    assert view.resume_button.isEnabled() and not view.drain_button.isEnabled()
    view.resume_button.click()
    wait_until(qloop, lambda: worker_row() is not None and "draining" not in worker_row().text(0), 10,
               "the worker's row to lose draining")
    wait_until(qloop, lambda: "resumed: taking farm jobs again" in worker.log(), 5, "the worker resumed")
    assert shown_after < 5.0  # the worker polls its key every 0.5 s; the window's heartbeat reads it every 2 s
