"""What the About dialog shows, without Qt: the version facts and the third-party notices text.

Kept apart from ui/ so the CLI, tests and the packaging checks can read the same facts without a display, and so
the notices file is found the same way from a source checkout, an installed wheel and a frozen bundle (PyInstaller
places package data beside the package's modules, so a path relative to this file works in all three).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

from . import APP_ID, APP_NAME, __version__

NOTICES_FILE = Path(__file__).resolve().parent / "resources" / "THIRD_PARTY_NOTICES.txt"
# Distributions whose versions the About dialog lists (the ones that carry licence obligations or matter in bugs).
KEY_DISTRIBUTIONS = ("PySide6-Essentials", "av", "opencv-python-headless", "numpy", "opentimelineio", "pyqtgraph")

LICENCE = "GPL-3.0-or-later"
LICENCE_SUMMARY = (
    "Preview Desktop is free software: you can redistribute it and/or modify it under the terms of the GNU "
    "General Public License, version 3 or (at your option) any later version (GPL-3.0-or-later); it comes with "
    "NO WARRANTY. The full licence text is in the notices below. The installers bundle third-party software "
    "under licences compatible with it: Qt 6 and PySide6 (LGPL-3.0, as replaceable shared libraries), FFmpeg "
    "inside PyAV built with libx264 and libx265 (GPL-2.0-or-later), OpenCV (Apache-2.0), OpenTimelineIO "
    "(Apache-2.0), numpy (BSD-3-Clause), pyqtgraph (MIT) and others. The full notices follow."
)


def notices_text() -> str:
    """The bundled THIRD_PARTY_NOTICES.txt, or a one-line explanation if it is missing (a broken install)."""
    try:
        return NOTICES_FILE.read_text(encoding="utf-8")
    except OSError as exc:
        return f"The third-party notices file is missing ({NOTICES_FILE}: {exc.strerror}). It ships with every release."


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_info() -> dict[str, Any]:
    """App name and version, how it runs (frozen or from source), and the key libraries' versions.

    Reads distribution metadata only, so it imports none of the heavy libraries (the frozen bundle carries the
    metadata of every bundled distribution for exactly this).
    """
    return {
        "name": APP_NAME,
        "id": APP_ID,
        "version": __version__,
        "licence": LICENCE,
        "frozen": bool(getattr(sys, "frozen", False)),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "libraries": {name: version for name in KEY_DISTRIBUTIONS if (version := _dist_version(name)) is not None},
    }
