"""Id patterns shared by the spec (pydantic) and the layout (plain Python).

They live apart from spec.py so that core.layout — and the CLI's cache-hit path through it — never imports
pydantic (~200 ms of start-up).
"""

from __future__ import annotations

import re

PROJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PROJECT_ID_RE = re.compile(PROJECT_ID_PATTERN)
