"""One Settings object, built once at start: defaults < settings file < environment < CLI flags.

Nothing here runs at import. `load_settings` reads the file and the environment it is handed, validates every
value and raises SettingsError naming the variable, so a bad value stops the program with one clear line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import APP_ID
from .core.pathmap import PathMap, is_windows_path, parse_path_map
from .errors import SettingsError

# environment variable -> settings field (existing deployments use these names)
ENV_NAMES: dict[str, str] = {
    "DATA_DIR": "data_dir",
    "REDIS_URL": "redis_url",
    "DEV_JOB_STORE": "job_store",
    "PREVIEW_MAX_CONCURRENCY": "max_concurrency",
    "PREVIEW_QUEUE_MAX": "queue_max",
    "PREVIEW_MEDIA_ROOTS": "media_roots",
    "PREVIEW_API_HOST": "api_host",
    "PREVIEW_API_PORT": "api_port",
    "PREVIEW_API_TOKEN": "api_token",
    "PREVIEW_FARM_QUEUE": "farm_queue",
    "PREVIEW_CACHE_MAX_BYTES": "cache_max_bytes",
    "PREVIEW_FARM_STORAGE": "farm_storage",
    "PREVIEW_FARM_CACHE_MAX_BYTES": "farm_cache_max_bytes",
    "PREVIEW_PATH_MAP": "path_map",
    "PREVIEW_RENDER_THREADS": "render_threads",
    "PREVIEW_FARM_CHUNK_SECONDS": "farm_chunk_seconds",
    "PREVIEW_FARM_WHEN": "farm_when",
    "PREVIEW_FARM_IDLE_MINUTES": "farm_idle_minutes",
    "PREVIEW_FARM_REST_MINUTES": "farm_rest_minutes",
    "PREVIEW_LEASE_SECONDS": "lease_seconds",
    "PREVIEW_RETENTION_DAYS": "retention_days",
    "PREVIEW_JOB_TIMEOUT": "job_timeout",
    "PREVIEW_SHUTDOWN_GRACE": "shutdown_grace",
    "PREVIEW_DISK_FULL_RETRY_SECONDS": "disk_full_retry_seconds",
    "PREVIEW_LOG_LEVEL": "log_level",
    "PREVIEW_WATCH": "watch",
}
FIELD_ENV = {v: k for k, v in ENV_NAMES.items()}
FARM_WHEN_CHOICES = ("always", "idle", "never")
FARM_WHEN_WINDOW, FARM_WHEN_HEADLESS = "idle", "always"
FARM_IDLE_MINUTES_MAX = 7 * 24 * 60.0
SETTINGS_FILE_ENV = "PREVIEW_SETTINGS"


def source_checkout_root() -> Path | None:
    """The repository root when running from a source checkout (then DATA_DIR defaults to ./data there)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return root
    return None


def default_data_dir() -> Path:
    root = source_checkout_root()
    if root is not None:
        return root / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_ID, appauthor=False))


def default_settings_file() -> Path:
    root = source_checkout_root()
    if root is not None:
        return root / "data" / "settings.json"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_ID, appauthor=False)) / "settings.json"


def default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str | None = None
    job_store: Path | None = None  # None: DATA_DIR/queue
    max_concurrency: int = field(default_factory=default_concurrency)
    queue_max: int = 1000
    media_roots: tuple[Path, ...] = ()  # empty: home + DATA_DIR/media
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    api_token: str | None = None  # None: generated once into DATA_DIR/api-token
    farm_queue: str = "previews"
    cache_max_bytes: int = 5 * 1024**3
    farm_storage: Path | None = None  # a folder every farm node mounts: shared segment cache, farm previews
    farm_cache_max_bytes: int = 50 * 1024**3  # size limit of FARM_STORAGE/cache (LRU, swept by one node at a time)
    path_map: PathMap = field(default_factory=PathMap)  # FROM=TO prefixes for paths written on other machines
    render_threads: int | None = None  # threads one render may use; None: as many as it likes (all cores)
    farm_chunk_seconds: float = 10.0  # least output per farm chunk (docs/farm.md, "One preview, many nodes"); 0: off
    farm_when: str | None = None  # always | idle | never: when this node takes farm jobs; None: `farm_when_for`
    farm_idle_minutes: float = 10.0  # idle mode: the user away this long lends the computer (docs/farm.md)
    farm_rest_minutes: float = 10.0  # a node that failed 3 farm jobs in a row rests this long (docs/farm.md)
    farm_orphan_sweep_minutes: float = 5.0  # settings file only: how often farm/orphans.py looks (docs/farm.md)
    lease_seconds: float = 30.0
    retention_days: float = 30.0
    job_timeout: float = 4 * 3600.0
    shutdown_grace: float = 10.0
    disk_full_retry_seconds: float = 60.0  # a job that met a full disk runs again after this (attempt not counted)
    log_level: str = "INFO"
    output_defaults: Mapping[str, Any] = field(default_factory=dict)  # spec `output` defaults from the window
    watch: tuple[WatchFolder, ...] = ()  # watch folders (issue #18): exports there are queued without a click
    watch_settle_seconds: float = 2.0  # a file must keep its size and mtime this long before it is queued
    settings_file: Path | None = None
    forced: frozenset[str] = frozenset()  # fields set by environment or CLI: shown read-only in the window

    @property
    def queue_dir(self) -> Path:
        return self.job_store or self.data_dir / "queue"

    @property
    def effective_media_roots(self) -> tuple[Path, ...]:
        return self.media_roots or (Path.home(), self.data_dir / "media")

    def farm_when_for(self, window: bool) -> str:
        """When this node takes farm jobs: as set, else `idle` for the window (an editor's workstation) and
        `always` headless (a render box)."""
        return self.farm_when or (FARM_WHEN_WINDOW if window else FARM_WHEN_HEADLESS)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """For logs and the window: secrets masked."""
        from .logs import redact

        data = asdict(self)
        data["api_token"] = "***" if self.api_token else None
        data["redis_url"] = redact(self.redis_url) if self.redis_url else None
        data["path_map"] = str(self.path_map)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


# ---------------------------------------------------------------------------------------------- watch folders
WATCH_KEYS = ("path", "project_id", "priority", "output", "poll")
_WATCH_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # core/ids.py's pattern (a leaf: no core)


@dataclass(frozen=True)
class WatchFolder:
    """One watch folder as configured: None fields mean "from the file name" / the job defaults.

    `poll`: True forces polling (network shares whose events never arrive), False forbids it, None decides by
    the folder's file system. Plain data here so the window, the CLI and the watcher share one type."""

    path: str
    project_id: str | None = None
    priority: int | None = None
    output: Mapping[str, Any] = field(default_factory=dict)
    poll: bool | None = None

    def to_file(self) -> dict[str, Any]:
        """The settings file's form: only what differs from the defaults."""
        data: dict[str, Any] = {"path": self.path}
        for key in WATCH_KEYS[1:]:
            value = getattr(self, key)
            if value not in (None, {}):
                data[key] = dict(value) if key == "output" else value
        return data


def parse_watch_folder(raw: Any, name: str) -> WatchFolder:
    """A path string or an object with WATCH_KEYS; SettingsError naming the entry otherwise."""
    item = {"path": raw} if isinstance(raw, str) else raw
    if not isinstance(item, dict):
        raise SettingsError(name, f"each watch folder must be a path or an object, got {raw!r}")
    unknown = sorted(set(item) - set(WATCH_KEYS))
    if unknown:
        raise SettingsError(name, f"unknown watch folder key {unknown[0]!r} (known: {', '.join(WATCH_KEYS)})")
    path = str(item.get("path") or "").strip()
    if not path:
        raise SettingsError(name, "a watch folder needs a path")
    project = item.get("project_id")
    if project is not None and (not isinstance(project, str) or not _WATCH_PROJECT_RE.match(project)
                                or project in (".", "..")):
        raise SettingsError(name, f"project_id of {path}: must be 1-64 letters, digits, '.', '_' or '-'")
    priority = item.get("priority")
    if priority is not None:
        priority = _parse_int(f"{name}: priority of {path}", priority, 0, 10)
    output = item.get("output") or {}
    if not isinstance(output, dict):
        raise SettingsError(name, f"output of {path}: must be an object")
    poll = item.get("poll")
    if poll is not None and not isinstance(poll, bool):
        raise SettingsError(name, f"poll of {path}: must be true, false or null")
    return WatchFolder(str(Path(path).expanduser().absolute()), project, priority, dict(output), poll)


def _parse_watch(raw: Any, name: str) -> tuple[WatchFolder, ...]:
    items = raw if isinstance(raw, list) else [p for p in str(raw).split(os.pathsep) if p.strip()]
    folders = tuple(parse_watch_folder(item, name) for item in items)
    if len({f.path for f in folders}) != len(folders):
        raise SettingsError(name, "a folder is listed twice")
    return folders


def _parse_int(name: str, raw: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(raw, bool):
        raise SettingsError(name, f"must be a whole number, got {raw!r}")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(name, f"must be {bound}, got {value}")
    return value


def _parse_float(name: str, raw: Any, minimum: float) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(name, f"must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise SettingsError(name, f"must be at least {minimum}, got {raw!r}")
    return value


def _parse_value(key: str, raw: Any, name: str) -> Any:
    """Convert a raw value (str from env/CLI, JSON value from the file) for field `key`."""
    if key in ("data_dir", "job_store", "farm_storage"):
        text = str(raw).strip() if raw is not None else ""
        if not text:
            if key == "farm_storage":
                return None
            raise SettingsError(name, "must not be empty")
        if os.name != "nt" and is_windows_path(text):
            raise SettingsError(name, f"{text!r} is a Windows path; give the folder as this machine mounts it")
        return Path(text).expanduser().absolute()
    if key == "path_map":
        try:
            return parse_path_map(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(name, f"{exc} (expected FROM=TO pairs separated by ';')") from None
    if key == "render_threads":
        text = str(raw).strip().lower() if raw is not None else ""
        if text in ("", "0", "auto"):
            return None  # all cores: each library's own default
        return _parse_int(name, raw, 0, 256) or None
    if key == "media_roots":
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(os.pathsep) if p.strip()]
        return tuple(Path(str(p)).expanduser().absolute() for p in items)
    if key == "redis_url":
        text = str(raw).strip() if raw is not None else ""
        if not text:
            return None
        if not text.startswith(("redis://", "rediss://", "unix://")):
            from .logs import redact

            raise SettingsError(name, f"must start with redis://, rediss:// or unix://, got {redact(text)!r}")
        return text
    if key == "max_concurrency":
        return _parse_int(name, raw, 1, 256)
    if key == "queue_max":
        return _parse_int(name, raw, 1)
    if key == "api_port":
        return _parse_int(name, raw, 0, 65535)
    if key == "cache_max_bytes":
        return _parse_int(name, raw, 0)
    if key == "farm_cache_max_bytes":
        return _parse_int(name, raw, 1)
    if key in ("lease_seconds", "shutdown_grace", "disk_full_retry_seconds"):
        return _parse_float(name, raw, 0.5)
    if key in ("retention_days", "job_timeout", "farm_chunk_seconds", "farm_rest_minutes"):
        return _parse_float(name, raw, 0.0)
    if key == "log_level":
        level = str(raw).strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(name, f"must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
        return level
    if key == "watch":
        return _parse_watch(raw, name)
    if key == "farm_when":
        when = str(raw).strip().lower() if raw is not None else ""
        if when not in FARM_WHEN_CHOICES:
            raise SettingsError(name, f"must be always, idle or never, got {raw!r}")
        return when
    if key == "farm_idle_minutes":
        minutes = _parse_float(name, raw, 0.0)
        if not 0 < minutes <= FARM_IDLE_MINUTES_MAX:
            raise SettingsError(name, f"must be more than 0 and at most {FARM_IDLE_MINUTES_MAX:g} minutes, got {raw!r}")
        return minutes
    if key == "watch_settle_seconds":
        return _parse_float(name, raw, 0.0)
    if key == "farm_orphan_sweep_minutes":
        return _parse_float(name, raw, 0.01)
    if key == "output_defaults":
        if not isinstance(raw, dict):
            raise SettingsError(name, "must be an object")
        return dict(raw)
    text = str(raw).strip()
    if not text and key != "api_token":
        raise SettingsError(name, "must not be empty")
    return text or None


def read_settings_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"settings file {path}", f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"settings file {path}", f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path}", "must hold a JSON object")
    return data


def write_settings_file(path: Path, values: Mapping[str, Any]) -> None:
    """Persist user-chosen values (the window's settings dialog). Atomic: write a sibling, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = read_settings_file(path)
    current.update({k: (str(v) if isinstance(v, (Path, PathMap)) else v) for k, v in values.items()})
    if "media_roots" in current and isinstance(current["media_roots"], (list, tuple)):
        current["media_roots"] = [str(p) for p in current["media_roots"]]
    if "watch" in current and isinstance(current["watch"], (list, tuple)):
        current["watch"] = [w.to_file() if isinstance(w, WatchFolder) else w for w in current["watch"]]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def load_settings(
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
    settings_file: Path | None = None,
) -> Settings:
    """Build the Settings: defaults < file < environment < CLI (`cli` holds field names -> raw values)."""
    env = os.environ if env is None else env
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    file_path = settings_file or (Path(env[SETTINGS_FILE_ENV]) if env.get(SETTINGS_FILE_ENV) else None)
    file_path = file_path or default_settings_file()
    file_values = read_settings_file(file_path)

    known = {f.name for f in fields(Settings)} - {"settings_file", "forced"}
    values: dict[str, Any] = {}
    for key, raw in file_values.items():
        if key not in known:
            raise SettingsError(f"settings file {file_path}", f"unknown setting {key!r}")
        values[key] = _parse_value(key, raw, f"{key} (settings file)")
    forced: set[str] = set()
    for env_name, key in ENV_NAMES.items():
        if env_name in env and (env[env_name].strip() or key in ("redis_url", "api_token", "farm_storage",
                                                                 "path_map", "render_threads")):
            values[key] = _parse_value(key, env[env_name], env_name)
            forced.add(key)
    for key, raw in cli.items():
        values[key] = _parse_value(key, raw, f"--{key.replace('_', '-')}")
        forced.add(key)
    if "data_dir" not in values:
        values["data_dir"] = default_data_dir()
    return Settings(settings_file=file_path, forced=frozenset(forced), **values)


def prepare_data_dir(settings: Settings) -> None:
    """Create DATA_DIR and check it is writable; one clear SettingsError otherwise."""
    name = "DATA_DIR" if "data_dir" in settings.forced else "data_dir"
    for path, label in ((settings.data_dir, name), (settings.queue_dir, "DEV_JOB_STORE")):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SettingsError(label, f"{path} is not a writable folder ({reason})") from None
