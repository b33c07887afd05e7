"""The house rules: no Qt below the engine (core, queue, render, service, api, farm); only ui/ imports QtWidgets
or pyqtgraph; nothing imports upward (the layering table below)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "preview_desktop"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (PACKAGE / folder).rglob("*.py")]


def test_core_queue_render_import_no_qt_statically() -> None:
    for path in _modules("core", "queue", "render"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("PySide6", "pyqtgraph", "qasync", "shiboken6")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_core_imports_no_heavy_libraries() -> None:
    for path in _modules("core"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("av", "cv2", "opentimelineio", "redis", "bullmq")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_only_ui_imports_widgets() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts[:1]:
            continue
        bad = {n for n in _imports(path) if n in ("PySide6.QtWidgets", "PySide6.QtGui", "pyqtgraph")
               or n.startswith("pyqtgraph.")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def _import_with_qt_blocked(*folders: str) -> None:
    """Import every module of `folders` in a fresh interpreter where Qt cannot be imported at all."""
    modules = sorted(
        "preview_desktop." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in _modules(*folders)
        if p.name != "__init__.py"
    )
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'qasync', 'shiboken6'): sys.modules[name] = None\n"
        f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_core_queue_render_import_with_qt_blocked() -> None:
    _import_with_qt_blocked("core", "queue", "render")


# ------------------------------------------------------------------ layering: nothing imports upward
# Each package may import only the packages listed (itself always). Leaf modules at the top level (errors,
# settings, logs, api_token, about, qt_compat and the package's own __init__ for the version) sit below everything
# that lists them. node.py, worker.py, cli.py and commands.py are the wiring: they may import anything.
LEAVES = {"__init__", "errors", "settings", "logs"}
ALLOWED: dict[str, set[str]] = {
    "core": {"errors"},
    "queue": {"core", "errors"},
    "render": {"core"} | LEAVES,
    "engine": {"core", "queue"} | LEAVES,
    "service": {"core", "queue", "errors"},
    "farm": {"core", "engine"} | LEAVES,
    "api": {"core", "api_token"} | LEAVES,
    "watch": {"core"} | LEAVES,  # beside service/: it reaches jobs through its own WatchJobs Protocol
    "presence": {"core"} | LEAVES,  # the user's idle time (OS calls) and workstation lending; the farm sees a gate
    "ui": {"core", "api_token", "about", "qt_compat"} | LEAVES,
}
# The window's wiring (it builds the node and hands the adapter its ports), like node.py for the headless node.
WIRING_IN_UI = {"app.py"}


def _internal_imports(path: Path) -> set[str]:
    """The first-level parts of preview_desktop that a module imports (relative imports resolved)."""
    rel = path.relative_to(PACKAGE)
    here = ["preview_desktop", *rel.with_suffix("").parts]
    if rel.name == "__init__.py":
        here = [*here[:-1], "__init__"]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level] if node.level else []
            names = [".".join([*base, node.module] if node.module else base)] if node.level else [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "preview_desktop":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def test_nothing_imports_upward() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in _modules(package):
            if package == "ui" and path.name in WIRING_IN_UI:
                continue
            bad = _internal_imports(path) - allowed - {package}
            if bad:
                problems.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not problems, "\n".join(problems)


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a core module importing the engine is reported (relative and absolute forms)."""
    fake = PACKAGE / "core" / "_contract_probe.py"
    try:
        fake.write_text("from ..engine import engine\nimport preview_desktop.ui.adapter\n", encoding="utf-8")
        assert _internal_imports(fake) == {"engine", "ui"}
    finally:
        fake.unlink()


def test_api_farm_service_import_no_qt_statically() -> None:
    for path in _modules("api", "farm", "service", "watch", "presence"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("PySide6", "pyqtgraph", "qasync", "shiboken6")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_api_farm_service_import_with_qt_blocked() -> None:
    _import_with_qt_blocked("api", "farm", "service", "watch", "presence")
