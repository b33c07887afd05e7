"""Id patterns shared by the spec (pydantic) and the layout (plain Python), and the supersede group id.

They live apart from spec.py so that core.layout — and the CLI's cache-hit path through it — never imports
pydantic (~200 ms of start-up).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

PROJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PROJECT_ID_RE = re.compile(PROJECT_ID_PATTERN)


def supersede_group(project_id: Any, timeline: Any) -> str | None:
    """Jobs with the same group supersede each other — locally and on the farm: the same projectId and the same
    timeline file. Inline timelines belong to no group (None)."""
    if not isinstance(project_id, str) or not isinstance(timeline, str):
        return None
    return hashlib.sha256(f"{project_id}\x00{timeline}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
