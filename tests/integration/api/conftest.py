"""Fixtures: the suite's JSON log files (read back by the secrets test) and a live node with its API."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.layout import Layout
from preview_desktop.logs import setup_logging
from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from tests.support.qtloop import run, settle

from .harness import REDIS_URL, TOKEN, Api, build_registry, sample_mp4

SUITE_LOGS: list[Path] = []
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist the API suite stays on one worker, in file order: the secrets test (test_zz_...) runs
    last there and reads every line the suite wrote through the program's log handlers."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.xdist_group("api"))


@pytest.fixture(scope="session", autouse=True)
def suite_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every log line of the API suite goes, through the program's own handlers, to one JSON-lines folder."""
    root = logging.getLogger()
    level = root.level
    folder = tmp_path_factory.mktemp("suite-logs")
    SUITE_LOGS.append(folder)
    setup_logging(folder, "DEBUG", stderr=False)
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)  # access lines too: they hold URLs and headers
    yield folder
    for handler in list(root.handlers):
        if getattr(handler, "_preview_desktop", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return sample_mp4(tmp_path_factory.mktemp("mp4"))


@pytest.fixture
def make_api(
    qloop: asyncio.AbstractEventLoop, data_dir: Path, mp4_bytes: bytes
) -> Iterator[Callable[..., Api]]:
    def factory(token: str | None = TOKEN, **overrides: Any) -> Api:
        env = dict(os.environ)
        env["REDIS_URL"] = REDIS_URL
        if token is not None:
            env["PREVIEW_API_TOKEN"] = token
        settings = load_settings(env=env).with_overrides(
            **{"max_concurrency": 2, "lease_seconds": 3.0, "shutdown_grace": 2.0, **overrides}
        )
        node = Node(settings, qloop, registry=build_registry(Layout(settings.data_dir)), with_farm=False)
        api = Api(node, qloop, settings)
        apis.append(api)
        return api  # started by its first `api.run(...)`, inside the test

    apis: list[Api] = []
    yield factory
    for api in apis:
        run(qloop, api.shutdown())
    apis.clear()
    settle(qloop)  # the Qt objects go now, on the Qt thread (not later from e.g. a fuzzing thread)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
