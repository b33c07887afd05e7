"""The window as an editor's workstation: a real Node on a real redis-server whose lending follows a real X server
(Xvfb, input from xdotool); the status bar's farm button says whether this computer is lent, and the settings
dialog's choice applies at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from preview_desktop.node import Node
from preview_desktop.settings import Settings, load_settings
from tests.support.qtloop import run
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)
from tests.support.xvfb import Xvfb, xvfb  # noqa: F401  (the fixture)
from tests.ui.conftest import fake_demo, fake_render, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def workstation(qloop: asyncio.AbstractEventLoop, data_dir: Any, redis_server: RedisServer,  # noqa: F811
                monkeypatch: pytest.MonkeyPatch, xvfb: Xvfb) -> Iterator[Any]:  # noqa: F811
    from preview_desktop.core.handler import HandlerRegistry
    from preview_desktop.ui.adapter import EngineAdapter
    from preview_desktop.ui.main_window import MainWindow

    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    settings: Settings = load_settings().with_overrides(redis_url=redis_server.url, farm_idle_minutes=0.05,
                                                        max_concurrency=1, shutdown_grace=2.0)
    registry = HandlerRegistry()
    registry.register("render", fake_render)
    node = Node(settings, qloop, registry=registry, with_api=False, with_watch=False, window=True)
    adapter = EngineAdapter(node.engine, node.jobs, settings, qloop, make_demo=fake_demo, lending=node.lending)
    run(qloop, node.start())
    adapter.flush()
    window = MainWindow(adapter, settings)
    window.show()
    yield window, node, xvfb
    window._quitting = True
    window.close()
    adapter.close()
    run(qloop, node.stop(grace=1, interrupt=True))


def test_the_status_bar_says_whether_this_computer_is_lent(qloop: asyncio.AbstractEventLoop,
                                                           workstation: Any) -> None:
    window, node, server = workstation
    button = window.farm_button
    assert node.lending is not None and node.lending.when == "idle"  # the window's default
    wait_until(qloop, lambda: button.text().startswith("Farm: lending this computer"), 20, "lending after 3 s idle")
    assert "away" in button.toolTip()
    server.input()
    wait_until(qloop, lambda: button.text().startswith("Farm: idle-only, you are active"), 5, "the user is back")
    window.adapter.set_lending("never", 0.05)  # what the settings dialog does on Save
    wait_until(qloop, lambda: button.text().startswith("Farm: not lending this computer"), 5, "never")
    window.adapter.set_lending("always", 0.05)
    wait_until(qloop, lambda: button.text().startswith("Farm: lending this computer"), 5, "always")


def test_a_lost_x_server_stops_the_lending_and_says_why(qloop: asyncio.AbstractEventLoop, workstation: Any) -> None:
    window, node, server = workstation
    wait_until(qloop, lambda: node.lending.open(), 20, "lending")
    server.stop()  # the X server goes away under the running node
    button = window.farm_button
    wait_until(qloop, lambda: button.text().startswith("Farm: idle-only, cannot tell if you are away"), 5,
               "cannot tell")
    assert "went away" in button.toolTip() or "does not answer" in button.toolTip()
    assert not node.lending.open()
