"""Fake job kinds reach worker subprocesses only through the test launcher (tests/support/fake_node.py): the
product itself imports nothing named in its environment."""

from __future__ import annotations

import pytest

from preview_desktop import node
from preview_desktop.core.layout import Layout
from preview_desktop.settings import load_settings
from tests.integration.farm import handlers
from tests.support import fake_node

FAKES = "tests.integration.farm.handlers:register"


def test_the_product_has_no_handler_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEW_EXTRA_HANDLERS", FAKES)  # the old hook's variable: ignored now
    settings = load_settings()
    registry = node.default_registry(settings, Layout(settings.data_dir))
    assert "render" in registry.kinds() and not {"noop", "busy"} & set(registry.kinds())
    assert registry.get("render") is not handlers.fake_render


def test_the_launcher_adds_the_fake_kinds_to_every_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node, "default_registry", node.default_registry)  # restored after the test
    real_kinds = set(node.default_registry(load_settings(), Layout(load_settings().data_dir)).kinds())
    fake_node.install(fake_node.load(FAKES))
    settings = load_settings()
    registry = node.default_registry(settings, Layout(settings.data_dir))
    assert set(registry.kinds()) == real_kinds | {"noop", "busy"}
    assert registry.get("render") is handlers.fake_render  # replaces the renderer
    with pytest.raises(SystemExit, match="MODULE:FUNCTION"):
        fake_node.load("no-colon")
