"""Turning what a user hands us (a timeline path or a spec file, plus flags) into a validated JobSpec.

Relative paths are made absolute here, against the folder the user meant (the spec file's folder, or the
current folder), so a queued job means the same thing to a worker started elsewhere. Paths written on another
machine (a spec made on Windows, a farm job from a Mac) are mapped through PREVIEW_PATH_MAP first
(core/pathmap.py); the media roots are checked on the mapped paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, InvalidSpec, TimelineNotFound
from .layout import check_path_text, contain
from .pathmap import PathMap, map_path
from .spec import JobSpec, parse_spec, parse_spec_json

TIMELINE_SUFFIXES = (".otio", ".otioz", ".edl", ".xml", ".fcpxml")


def project_id_from_name(name: str) -> str:
    """A valid projectId from a file name: 'Promo v3 (final).otio' -> 'Promo_v3_final'."""
    stem = Path(name).stem if "." in name else name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    cleaned = re.sub(r"_+", "_", cleaned)[:64].strip("._-")
    return cleaned or "untitled"


def load_spec_source(argument: str, cwd: Path, overrides: Mapping[str, Any],
                     path_map: PathMap | None = None) -> tuple[dict[str, Any], Path]:
    """Read a spec file or wrap a timeline path; returns (raw spec dict, folder relative paths resolve in)."""
    argument = map_path(argument, path_map)
    check_path_text(argument, "argument")
    path = Path(argument).expanduser()
    path = path if path.is_absolute() else cwd / path
    if path.suffix.lower() == ".json":
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"spec file not found: {path}") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read spec file {path}: {exc.strerror}") from None
        spec = parse_spec_json(text)  # validates before any override so errors name the file's fields
        raw = spec.to_wire()
        base = path.parent
    else:
        raw = {"projectId": project_id_from_name(path.name), "timeline": str(path)}
        base = cwd
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "output":
            raw["output"] = {**raw.get("output", {}), **value}
        else:
            raw[key] = value
    return raw, base


def absolutize(raw: dict[str, Any], base: Path, path_map: PathMap | None = None) -> dict[str, Any]:
    """Map (`path_map`) and make `timeline` (when a path) and `mediaSearchPaths` absolute against `base`."""
    raw = dict(raw)
    search = [map_path(p, path_map) for p in raw.get("mediaSearchPaths") or [] if isinstance(p, str)]
    for item in search:
        check_path_text(item, "mediaSearchPaths entry")
    search = [str(p if Path(p).is_absolute() else base / p) for p in (Path(s).expanduser() for s in search)]
    timeline = raw.get("timeline")
    if isinstance(timeline, str):
        timeline = map_path(timeline, path_map)
        check_path_text(timeline, "timeline")
        path = Path(timeline).expanduser()
        raw["timeline"] = str(path if path.is_absolute() else base / path)
    elif isinstance(timeline, dict):
        search = [str(base), *search]  # inline clips resolve against the spec's folder first
    if "mediaSearchPaths" in raw or search:
        raw["mediaSearchPaths"] = search
    return raw


def check_timeline(spec: JobSpec, media_roots: Sequence[Path]) -> JobSpec:
    """A path timeline must exist, be a file and lie inside the media roots."""
    if isinstance(spec.timeline, str):
        path = Path(spec.timeline)
        if not path.exists():
            raise TimelineNotFound(str(path))
        if not path.is_file():
            raise InvalidSpec("timeline", f"not a file: {path}")
        contain(path, media_roots, "timeline")
    return spec


def prepare_spec(
    argument: str, cwd: Path, media_roots: Sequence[Path], overrides: Mapping[str, Any] | None = None,
    *, path_map: PathMap | None = None,
) -> JobSpec:
    """A spec from a command line or a watch folder; `path_map` is Settings.path_map."""
    raw, base = load_spec_source(argument, cwd, overrides or {}, path_map)
    return check_timeline(parse_spec(absolutize(raw, base, path_map)), media_roots)


def prepare_wire_spec(data: Any, media_roots: Sequence[Path], *, path_map: PathMap | None = None) -> JobSpec:
    """A spec from the API or the farm: no current folder, so relative paths resolve against the first root.
    `path_map` (Settings.path_map) maps paths written on the submitting machine to this one's."""
    spec = parse_spec(data)
    base = media_roots[0] if media_roots else Path.cwd()
    return check_timeline(parse_spec(absolutize(spec.to_wire(), base, path_map)), media_roots)
