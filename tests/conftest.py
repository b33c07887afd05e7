"""Test isolation: every test gets its own DATA_DIR, settings file and media root; Qt runs offscreen."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["tests.support.qtloop"]  # the `qloop` fixture: a qasync loop on the Qt application

_ISOLATED_VARS = (
    "DATA_DIR",
    "REDIS_URL",
    "DEV_JOB_STORE",
    "PREVIEW_MAX_CONCURRENCY",
    "PREVIEW_QUEUE_MAX",
    "PREVIEW_MEDIA_ROOTS",
    "PREVIEW_API_HOST",
    "PREVIEW_API_PORT",
    "PREVIEW_API_TOKEN",
    "PREVIEW_FARM_QUEUE",
    "PREVIEW_SETTINGS",
    "PREVIEW_LEASE_SECONDS",
    "PREVIEW_CACHE_MAX_BYTES",
    "PREVIEW_WATCH",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh DATA_DIR under tmp_path with media allowed from tmp_path; returns DATA_DIR."""
    for name in _ISOLATED_VARS:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("PREVIEW_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("PREVIEW_MEDIA_ROOTS", str(tmp_path))
    monkeypatch.setenv("PREVIEW_API_PORT", "0")
    yield data_dir


@pytest.fixture
def data_dir(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture(autouse=True)
def collect_garbage_on_the_qt_thread() -> Iterator[None]:
    """As the program does (engine/gc_guard.py): no automatic collection, which could run in a render thread and
    destroy an earlier test's Qt objects there; each test's garbage is collected after it, on the Qt thread."""
    gc.disable()
    yield
    gc.collect()
