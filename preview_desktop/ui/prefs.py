"""Window-only preferences (geometry, column widths, default priority) in an INI file beside the settings file.

Not in Settings: load_settings refuses keys it does not know, and these mean nothing to a headless worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from ..settings import Settings


def window_prefs(settings: Settings) -> QSettings:
    base = settings.settings_file.parent if settings.settings_file else settings.data_dir
    return QSettings(str(Path(base) / "window.ini"), QSettings.Format.IniFormat)


def pref_int(prefs: QSettings, key: str, default: int) -> int:
    value: Any = prefs.value(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
