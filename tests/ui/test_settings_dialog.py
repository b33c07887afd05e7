"""The settings dialog persists values, shows forced ones read-only, applies concurrency live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QDialog

from preview_desktop.core.layout import Layout
from preview_desktop.settings import load_settings
from preview_desktop.ui.settings_dialog import SettingsDialog
from tests.ui.conftest import wait_until


def test_values_persist_and_load_back(tmp_path: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREVIEW_MEDIA_ROOTS")
    monkeypatch.delenv("PREVIEW_API_PORT")
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.concurrency.setValue(3)
    dialog.queue_max.setValue(250)
    dialog.media_roots.setPlainText(f"{tmp_path}/a\n{tmp_path}/b\n")
    dialog.farm_on.setChecked(True)
    dialog.redis.setText("redis://farm:6379/0")
    dialog.api_port.setValue(9876)
    dialog.output.timecode.setChecked(False)
    dialog.accept()
    written = json.loads(Path(settings.settings_file or "").read_text())
    assert "data_dir" not in written  # DATA_DIR comes from the environment here: never written
    again = load_settings()
    assert again.max_concurrency == 3 and again.queue_max == 250 and again.api_port == 9876
    assert again.media_roots == (tmp_path / "a", tmp_path / "b")
    assert again.redis_url == "redis://farm:6379/0"
    assert again.output_defaults["burnIn"]["timecode"] is False
    assert dialog.restart_needed()


def test_forced_values_are_read_only_and_named(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEW_MAX_CONCURRENCY", "4")
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert not dialog.concurrency.isEnabled() and "PREVIEW_MAX_CONCURRENCY" in dialog.concurrency.toolTip()
    assert not dialog.media_roots.isEnabled() and not dialog.api_port.isEnabled()
    assert dialog.queue_max.isEnabled()
    assert "max_concurrency" not in dialog.values() and "data_dir" not in dialog.values()


def test_the_token_is_hidden_until_shown(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEW_API_TOKEN", "s3cret-token-value")
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    assert dialog.token.text() == "s3cret-token-value"
    assert dialog.token.echoMode() == dialog.token.EchoMode.Password
    dialog.show_token.setChecked(True)
    assert dialog.token.echoMode() == dialog.token.EchoMode.Normal
    assert not dialog.regenerate.isEnabled()  # forced by the environment


def test_regenerate_writes_a_new_token(qtbot: Any) -> None:
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    before = dialog.token.text()
    dialog.regenerate.click()
    assert dialog.token.text() and dialog.token.text() != before
    token_file = Layout(settings.data_dir).api_token
    assert token_file.read_text(encoding="utf-8").strip() == dialog.token.text()  # what the API will check
    assert token_file.stat().st_mode & 0o077 == 0


def test_concurrency_applies_live(window: Any, node: Any, qloop: asyncio.AbstractEventLoop,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def exec_(self: SettingsDialog) -> int:
        self.concurrency.setValue(5)
        self.accept()
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(SettingsDialog, "exec", exec_)
    window.open_settings()
    wait_until(qloop, lambda: node.engine.status().capacity == 5, what="capacity 5")
    assert load_settings().max_concurrency == 5


def test_path_mapping_is_a_window_setting(tmp_path: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PREVIEW_PATH_MAP's twin in the window: one FROM=TO a line, checked before saving, applied at restart."""
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.path_map.setPlainText("Z:\\media=/mnt/media\n/Volumes/media=/mnt/media\n")
    dialog.accept()
    again = load_settings()
    assert again.path_map.apply("Z:\\media\\A001.mov") == "/mnt/media/A001.mov"
    assert again.path_map.apply("/Volumes/media/b.mov") == "/mnt/media/b.mov"
    assert dialog.restart_needed()

    monkeypatch.setattr("preview_desktop.ui.settings_dialog.QMessageBox.warning", lambda *args: None)
    bad = SettingsDialog(again)
    qtbot.addWidget(bad)
    bad.path_map.setPlainText("no equals sign here")
    bad.accept()  # refused: the file keeps the good map
    assert bad.result() != QDialog.DialogCode.Accepted
    assert load_settings().path_map.apply("Z:\\media\\A001.mov") == "/mnt/media/A001.mov"

    monkeypatch.setenv("PREVIEW_PATH_MAP", "Y:\\=/srv")
    forced = SettingsDialog(load_settings())
    qtbot.addWidget(forced)
    assert not forced.path_map.isEnabled() and "PREVIEW_PATH_MAP" in forced.path_map.toolTip()


def test_farm_lending_is_a_window_setting(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shown as the window's default (idle) and written only once chosen, so a --worker reading the same settings
    file keeps its own default (always); the minutes are written with it."""
    monkeypatch.delenv("PREVIEW_FARM_WHEN", raising=False)
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.farm_when.currentData() == "idle" and dialog.idle_minutes.value() == 10
    assert "farm_when" not in dialog.values()
    dialog.farm_when.setCurrentIndex(dialog.farm_when.findData("never"))
    dialog.idle_minutes.setValue(2.5)
    dialog.accept()
    again = load_settings()
    assert again.farm_when == "never" and again.farm_idle_minutes == 2.5
    assert dialog.updated_settings().farm_when_for(window=True) == "never"
    monkeypatch.setenv("PREVIEW_FARM_WHEN", "always")
    forced = SettingsDialog(load_settings())
    qtbot.addWidget(forced)
    assert not forced.farm_when.isEnabled() and "PREVIEW_FARM_WHEN" in forced.farm_when.toolTip()
    assert forced.farm_when.currentData() == "always" and "farm_when" not in forced.values()
