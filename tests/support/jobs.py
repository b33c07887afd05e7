"""Small helpers for tests that need specs and jobs without media."""

from __future__ import annotations

from typing import Any

from preview_desktop.core.spec import JobSpec, parse_spec


def make_spec(project: str = "proj", timeline: str = "/media/cut.otio", **fields: Any) -> JobSpec:
    return parse_spec({"projectId": project, "timeline": timeline, **fields})
