"""Frozen entry point: what PyInstaller's executables run (the source checkout uses `python -m preview_desktop`).

Kept outside the package so the package's own `__main__` stays free of freezing concerns.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def _ensure_streams() -> None:
    """A windowed Windows executable has no console: sys.stdout/stderr are None, and `print` would crash.

    Send them to the null device instead; the logs under DATA_DIR/logs still record everything.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the process


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless something spawns a multiprocessing child on Windows/macOS
    _ensure_streams()
    from preview_desktop.cli import main

    raise SystemExit(main())
