"""Shared helpers for render tests: settings from the isolated environment, a context, a render call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from preview_desktop.core.handler import JobContext
from preview_desktop.core.job import Job
from preview_desktop.core.spec import parse_spec
from preview_desktop.settings import Settings, load_settings

JOB_ID = "20260101-000000-0123abcd"


FARM_VARS = ("PREVIEW_FARM_STORAGE", "PREVIEW_FARM_CACHE_MAX_BYTES", "PREVIEW_PATH_MAP", "PREVIEW_RENDER_THREADS")


@pytest.fixture(autouse=True)
def no_farm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render tests start without a developer's farm storage, path map or thread cap."""
    for name in FARM_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(isolated_env: Path, no_farm_environment: None) -> Settings:
    return load_settings()


def make_ctx(spec: dict[str, Any] | None = None, job_id: str = JOB_ID) -> JobContext:
    return JobContext(job=Job(id=job_id, project_id="p", spec=spec or {}))


def spec_for(timeline: Any, **changes: Any) -> Any:
    output = {"width": 320, "height": 180, "burnIn": {"timecode": False, "clipName": False, "label": None}}
    output.update(changes.pop("output", {}))
    data = {"projectId": "p", "timeline": timeline, "output": output, **changes}
    return parse_spec(data)


@pytest.fixture
def render(settings: Settings, tmp_path: Path) -> Any:
    """render(timeline, **spec changes) → (preview.json dict, out folder)."""
    from preview_desktop.render.renderer import render_to_folder

    counter = {"n": 0}

    def run(timeline: Any, **changes: Any) -> tuple[dict[str, Any], Path]:
        counter["n"] += 1
        out = tmp_path / f"out{counter['n']}"
        out.mkdir()
        spec = spec_for(timeline, **changes)
        doc = render_to_folder(spec, out, job_id=JOB_ID, settings=settings, ctx=make_ctx())
        return doc, out

    return run
