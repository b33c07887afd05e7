"""Settings precedence (defaults < file < env < CLI) and one-line errors naming the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preview_desktop.errors import SettingsError
from preview_desktop.settings import load_settings, prepare_data_dir, write_settings_file


def test_precedence(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"max_concurrency": 3, "queue_max": 7, "farm_queue": "fromfile"}))
    env = {"PREVIEW_MAX_CONCURRENCY": "4", "DATA_DIR": str(tmp_path / "d")}
    s = load_settings(env=env, cli={"max_concurrency": "5"}, settings_file=file)
    assert s.max_concurrency == 5 and s.queue_max == 7 and s.farm_queue == "fromfile"
    assert s.data_dir == tmp_path / "d"
    assert {"max_concurrency", "data_dir"} <= s.forced and "queue_max" not in s.forced
    s = load_settings(env=env, settings_file=file)
    assert s.max_concurrency == 4


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=tmp_path / "none.json")
    assert s.max_concurrency >= 1 and s.queue_max == 1000 and s.api_port == 8765 and s.api_host == "127.0.0.1"
    assert s.queue_dir == tmp_path / "queue"
    assert s.effective_media_roots == (Path.home(), tmp_path / "media")
    assert s.redis_url is None and s.farm_queue == "previews"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PREVIEW_MAX_CONCURRENCY": "0"}, "PREVIEW_MAX_CONCURRENCY: must be between 1 and 256, got 0"),
        ({"PREVIEW_MAX_CONCURRENCY": "abc"}, "PREVIEW_MAX_CONCURRENCY: must be a whole number, got 'abc'"),
        ({"PREVIEW_QUEUE_MAX": "-3"}, "PREVIEW_QUEUE_MAX: must be at least 1"),
        ({"PREVIEW_API_PORT": "70000"}, "PREVIEW_API_PORT: must be between 0 and 65535"),
        ({"REDIS_URL": "http://user:hunter2@x"}, "REDIS_URL: must start with redis://"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"DATA_DIR": str(tmp_path), **env}, settings_file=tmp_path / "none.json")
    assert str(info.value).startswith(message)
    assert "hunter2" not in str(info.value)


def test_bad_settings_file(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text("{oops")
    with pytest.raises(SettingsError, match="is not valid JSON"):
        load_settings(env={}, settings_file=file)
    file.write_text(json.dumps({"nonsense": 1}))
    with pytest.raises(SettingsError, match="unknown setting 'nonsense'"):
        load_settings(env={}, settings_file=file)


def test_write_settings_file_round_trips(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "s.json"
    write_settings_file(file, {"max_concurrency": 2, "media_roots": [tmp_path]})
    s = load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=file)
    assert s.max_concurrency == 2 and s.media_roots == (tmp_path,)


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    s = load_settings(env={"DATA_DIR": str(blocker / "data")}, settings_file=tmp_path / "none.json")
    with pytest.raises(SettingsError, match=r"^DATA_DIR: .* is not a writable folder"):
        prepare_data_dir(s)


def test_farm_storage_path_map_and_render_threads(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"path_map": {"Z:\\media": "/mnt/media"}, "render_threads": 2,
                                "farm_storage": str(tmp_path / "fromfile")}))
    env = {"DATA_DIR": str(tmp_path), "PREVIEW_FARM_STORAGE": str(tmp_path / "farm"),
           "PREVIEW_FARM_CACHE_MAX_BYTES": "1000000", "PREVIEW_RENDER_THREADS": "3"}
    s = load_settings(env=env, settings_file=file)
    assert s.farm_storage == tmp_path / "farm" and s.farm_cache_max_bytes == 1_000_000 and s.render_threads == 3
    assert s.path_map.apply("Z:\\media\\a.mov") == "/mnt/media/a.mov"
    assert s.redacted()["path_map"] == "Z:\\media=/mnt/media"
    s = load_settings(env={**env, "PREVIEW_PATH_MAP": "/Volumes/m=/mnt/m", "PREVIEW_RENDER_THREADS": "auto",
                           "PREVIEW_FARM_STORAGE": ""}, settings_file=file)
    assert s.path_map.apply("Z:\\media\\a.mov") == "Z:\\media\\a.mov" and s.path_map.apply("/Volumes/m/a") == "/mnt/m/a"
    assert s.render_threads is None and s.farm_storage is None  # set but empty: unset, over the file
    s = load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=tmp_path / "none.json")
    assert s.farm_storage is None and not s.path_map and s.render_threads is None
    assert s.farm_cache_max_bytes == 50 * 1024**3
    write_settings_file(file, {"path_map": s.path_map, "farm_storage": tmp_path})
    assert json.loads(file.read_text())["path_map"] == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PREVIEW_PATH_MAP": "Z:\\media"}, "PREVIEW_PATH_MAP: 'Z:\\\\media' is not FROM=TO"),
        ({"PREVIEW_PATH_MAP": "media=/mnt"}, "PREVIEW_PATH_MAP: FROM 'media' is not an absolute path"),
        ({"PREVIEW_RENDER_THREADS": "-1"}, "PREVIEW_RENDER_THREADS: must be between 0 and 256, got -1"),
        ({"PREVIEW_RENDER_THREADS": "many"}, "PREVIEW_RENDER_THREADS: must be a whole number, got 'many'"),
        ({"PREVIEW_FARM_CACHE_MAX_BYTES": "0"}, "PREVIEW_FARM_CACHE_MAX_BYTES: must be at least 1, got 0"),
        ({"PREVIEW_FARM_STORAGE": "Z:\\farm"}, "PREVIEW_FARM_STORAGE: 'Z:\\\\farm' is a Windows path"),
    ],
)
def test_bad_farm_values_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"DATA_DIR": str(tmp_path), **env}, settings_file=tmp_path / "none.json")
    assert str(info.value).startswith(message), str(info.value)
