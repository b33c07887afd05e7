"""What a watched export becomes: the job service's PathSource, with the folder's settings and spec file.

A folder's settings come from the settings (the window's list, the settings file, PREVIEW_WATCH) and, when the
folder holds a `preview-spec.json`, from that file too (it wins: it travels with the folder on a share).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.intake import project_id_from_name
from ..core.submission import PathSource
from ..settings import WatchFolder
from .names import SPEC_FILE

MAX_SPEC_FILE_BYTES = 1024 * 1024
NOT_IN_SPEC_FILE = ("timeline", "watchFolder")  # the export and the folder decide these


@dataclass(frozen=True)
class ExportRequest:
    source: PathSource
    spec_data: dict[str, Any]  # what is recorded on a failed job when intake refuses it
    spec_file: Path | None  # the folder's spec file, when one was used
    error: str | None = None  # the spec file could not be used: record a failed job with this reason


def build_request(folder: WatchFolder, path: Path, output_defaults: Mapping[str, Any]) -> ExportRequest:
    """Blocking (reads the folder's spec file): runs on the watcher's thread."""
    overrides: dict[str, Any] = {"projectId": folder.project_id or project_id_from_name(path.name),
                                 "watchFolder": folder.path}
    if folder.priority is not None:
        overrides["priority"] = folder.priority
    output = {**output_defaults, **folder.output}
    if output:
        overrides["output"] = output
    spec_file = Path(folder.path) / SPEC_FILE
    error = None
    try:
        data = _read_spec_file(spec_file)
    except ValueError as exc:
        data, error = None, f"watch spec file {spec_file}: {exc}"
    if data is not None:
        for key, value in data.items():
            if key == "output" and isinstance(value, dict):
                overrides["output"] = {**overrides.get("output", {}), **value}
            else:
                overrides[key] = value
    used = spec_file if data is not None or error else None
    source = PathSource(str(path), Path(folder.path), overrides)
    return ExportRequest(source, {**overrides, "timeline": str(path)}, used, error)


def _read_spec_file(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_SPEC_FILE_BYTES:
            raise ValueError(f"is larger than {MAX_SPEC_FILE_BYTES} bytes")
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("must hold a JSON object of spec fields")
    for key in NOT_IN_SPEC_FILE:
        if key in data:
            raise ValueError(f"{key}: is set by the watch folder, not the spec file")
    return data
