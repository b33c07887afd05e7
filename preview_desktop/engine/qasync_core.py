"""qasync, imported with QtCore only: headless processes (`--worker`, the CLI) never load QtGui or QtWidgets.

qasync imports `QtGui` and `QtWidgets` at import time, whatever the application class, only to name
`QApplication`; it calls nothing on them but the static `QApplication.instance()` and `processEvents()`, which
QCoreApplication has too. Loading them costs start-up time and, worse, links the process against libGL, libEGL
and libxcb: a render box without those libraries could not start `--worker` at all.

So unless the process already runs widgets (the window imports QtWidgets before it makes the loop), qasync is
imported with two stand-in modules under those names for the duration of the import: `QtWidgets.QApplication`
is `QCoreApplication`, `QtGui` is empty. The stand-ins leave `sys.modules` right after, so a later real
`import PySide6.QtWidgets` gets the real module. `tests/integration/test_headless_imports.py` keeps this true.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_STAND_INS = ("PySide6.QtGui", "PySide6.QtWidgets")


def _import_qasync() -> Any:
    if "qasync" in sys.modules or sys.modules.get("PySide6.QtWidgets") is not None:
        import qasync

        return qasync
    from PySide6.QtCore import QCoreApplication

    widgets = types.ModuleType("PySide6.QtWidgets", "qasync's stand-in: QtCore only (engine/qasync_core.py)")
    widgets.QApplication = QCoreApplication  # type: ignore[attr-defined]
    gui = types.ModuleType("PySide6.QtGui", "qasync's stand-in: QtCore only (engine/qasync_core.py)")
    stand_ins = dict(zip(_STAND_INS, (gui, widgets), strict=True))
    if sys.modules.get("PySide6.QtGui") is not None:  # QtGui without widgets (rare): qasync may have the real one
        del stand_ins["PySide6.QtGui"]
    missing = object()
    before = {name: sys.modules.get(name, missing) for name in stand_ins}  # a None entry blocks the import: kept
    sys.modules.update(stand_ins)
    try:
        import qasync
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                if before[name] is missing:
                    del sys.modules[name]
                else:
                    sys.modules[name] = before[name]  # type: ignore[assignment]
    if qasync.QtCore.__name__ != "PySide6.QtCore":  # QT_API named another binding: it would not share our app
        raise ImportError(f"qasync chose {qasync.QtCore.__name__}; Preview Desktop runs on PySide6 (unset QT_API)")
    return qasync


qasync = _import_qasync()

__all__ = ["qasync"]
