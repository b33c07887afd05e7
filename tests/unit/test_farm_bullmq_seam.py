"""bullmq's internals are reached in one module only (farm/bullmq_compat.py), so a version bump is checked there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

FARM = Path(__file__).resolve().parents[2] / "preview_desktop" / "farm"
COMPAT = FARM / "bullmq_compat.py"
# what the farm uses of bullmq beyond its public surface (docs/farm.md, "Code")
INTERNALS = {"backend", "moveToCompleted", "nextJobFromJobData", "stalledCheckTimer", "runStalledJobsCheck",
             "lockManager", "closing", "waiting", "getNextJob", "moveToDelayed", "processJob", "emit"}


def test_only_the_compat_module_touches_bullmq_internals() -> None:
    for path in sorted(FARM.glob("*.py")):
        if path == COMPAT:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & INTERNALS
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} & {"bullmq.timer"}
        assert not used and not imported, f"{path.name} reaches into bullmq: {sorted(used | imported)}"


def test_the_compat_module_says_which_bullmq_it_was_checked_with() -> None:
    pyproject = (FARM.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    pinned = re.search(r'"bullmq==([0-9.]+)"', pyproject)
    assert pinned is not None
    assert f"Checked with bullmq {pinned.group(1)}" in COMPAT.read_text(encoding="utf-8")
