"""The house rules: core/, queue/ and render/ never import Qt; only ui/ imports QtWidgets or pyqtgraph."""

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


def test_core_queue_render_import_with_qt_blocked() -> None:
    modules = sorted(
        "preview_desktop." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in _modules("core", "queue", "render")
        if p.name != "__init__.py"
    )
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'qasync', 'shiboken6'): sys.modules[name] = None\n"
        f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
