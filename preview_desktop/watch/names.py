"""Which file names in a watch folder are exports, and which are the debris editing software leaves around.

Exports are written through temporary names (Resolve, Premiere, Office-style lock files, browsers' partial
downloads); queueing one of those would render half a timeline, so they are ignored by name before any stat.
"""

from __future__ import annotations

import re

from ..core.intake import TIMELINE_SUFFIXES

SPEC_FILE = "preview-spec.json"  # optional, in the watch folder: spec fields for every export queued from it
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", ".bak", ".lock")
# Office lock files (~$name), Resolve/Premiere/FCP autosave and temp names, editors' backup files (name~, #name#)
_TEMP_NAME = re.compile(r"^(~|\.~|#)|~$|#$|\.(tmp|temp)\.|_tmp\d*\.|^(temp|tmp)[_-]|autosave", re.IGNORECASE)


def is_ignored(name: str) -> bool:
    """Hidden, temporary and partial files: never queued, whatever their suffix."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(TEMP_SUFFIXES) or bool(_TEMP_NAME.search(name))


def is_export(name: str) -> bool:
    """A timeline file worth queueing: a known timeline suffix and not ignored."""
    return name.lower().endswith(TIMELINE_SUFFIXES) and not is_ignored(name)
