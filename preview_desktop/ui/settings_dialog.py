"""Settings: DATA_DIR, concurrency (applied live), queue limit, media roots, farm, API, output defaults.

Values set by environment variables or command-line flags (`settings.forced`) are shown but not editable, with
the variable named, because the file would not win over them anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..api_token import TokenFile
from ..core.pathmap import parse_path_map
from ..settings import FARM_IDLE_MINUTES_MAX, FIELD_ENV, Settings, write_settings_file
from .ports import TokenKeeper
from .queue_dialog import OutputFields
from .watch_folders import WatchFoldersBox

RESTART_FIELDS = ("data_dir", "queue_max", "media_roots", "redis_url", "api_port", "path_map")
FARM_WHEN_LABELS = {"idle": "Only while I am away", "always": "Always", "never": "Never"}


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None, tokens: TokenKeeper | None = None,
                 watch_status: Mapping[str, str] | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.tokens: TokenKeeper = tokens if tokens is not None else TokenFile(settings)
        self.saved: dict[str, Any] = {}
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        forced = settings.forced

        def lock(widget: QWidget, key: str, form: QFormLayout, label: str) -> None:
            form.addRow(label, widget)
            if key in forced:
                widget.setEnabled(False)
                widget.setToolTip(f"set by {FIELD_ENV.get(key, 'a command-line flag')}")
                note = QLabel(f"<i>set by {FIELD_ENV.get(key, 'a command-line flag')}</i>")
                note.setStyleSheet("color: palette(placeholder-text);")
                form.addRow("", note)

        queue = QGroupBox("Queue")
        qf = QFormLayout(queue)
        self.data_dir = QLineEdit(str(settings.data_dir))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_data_dir)
        row = QWidget()
        rl = QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.data_dir, 1)
        rl.addWidget(browse)
        lock(row, "data_dir", qf, "Data folder")
        self.concurrency = QSpinBox()
        self.concurrency.setRange(1, 256)
        self.concurrency.setValue(settings.max_concurrency)
        self.concurrency.setSuffix(" at once")
        lock(self.concurrency, "max_concurrency", qf, "Renders")
        self.queue_max = QSpinBox()
        self.queue_max.setRange(1, 10_000_000)
        self.queue_max.setValue(settings.queue_max)
        self.queue_max.setSuffix(" waiting jobs")
        lock(self.queue_max, "queue_max", qf, "Queue limit")
        self.media_roots = QPlainTextEdit("\n".join(str(p) for p in settings.media_roots))
        self.media_roots.setPlaceholderText("\n".join(str(p) for p in settings.effective_media_roots)
                                            + "\n(one folder per line; empty = these defaults)")
        self.media_roots.setFixedHeight(72)
        lock(self.media_roots, "media_roots", qf, "Media folders")

        farm = QGroupBox("Farm and API")
        ff = QFormLayout(farm)
        self.farm_on = QCheckBox("Join the render farm")
        self.farm_on.setChecked(bool(settings.redis_url))
        self.redis = QLineEdit(settings.redis_url or "")
        self.redis.setPlaceholderText("redis://host:6379/0")
        self.farm_on.toggled.connect(self.redis.setEnabled)
        self.redis.setEnabled(bool(settings.redis_url))
        lock(self.farm_on, "redis_url", ff, "")
        lock(self.redis, "redis_url", ff, "Redis URL")
        self.path_map = QPlainTextEdit("\n".join(f"{pair.source}={pair.target}" for pair in settings.path_map.pairs))
        self.path_map.setPlaceholderText("Z:\\media=/mnt/media\n(paths written on other machines, one FROM=TO a line)")
        self.path_map.setFixedHeight(56)
        self.path_map.setToolTip("Media and timeline paths from other platforms, mapped to this computer's "
                                 "(PREVIEW_PATH_MAP). Media folders still apply after mapping.")
        lock(self.path_map, "path_map", ff, "Path mapping")
        self.farm_when = QComboBox()
        for when, label in FARM_WHEN_LABELS.items():
            self.farm_when.addItem(label, when)
        self.farm_when.setCurrentIndex(self.farm_when.findData(settings.farm_when_for(window=True)))
        self.farm_when.setToolTip("When this computer takes farm jobs (PREVIEW_FARM_WHEN). Away: no keyboard or mouse "
                                  "input for the time below; farm renders go back to the queue when you return.")
        lock(self.farm_when, "farm_when", ff, "Lend this computer")
        self.idle_minutes = QDoubleSpinBox()
        self.idle_minutes.setRange(0.05, FARM_IDLE_MINUTES_MAX)
        self.idle_minutes.setDecimals(2)
        self.idle_minutes.setValue(settings.farm_idle_minutes)
        self.idle_minutes.setSuffix(" min")
        self.idle_minutes.setToolTip("How long without input counts as away (PREVIEW_FARM_IDLE_MINUTES)")
        lock(self.idle_minutes, "farm_idle_minutes", ff, "Away after")
        self.api_port = QSpinBox()
        self.api_port.setRange(0, 65535)
        self.api_port.setValue(settings.api_port)
        self.api_port.setSpecialValueText("any free port")
        lock(self.api_port, "api_port", ff, "API port")
        self.token = QLineEdit(self.tokens.api_token())
        self.token.setReadOnly(True)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.show_token = QPushButton("Show")
        self.show_token.setCheckable(True)
        self.show_token.toggled.connect(self._toggle_token)
        self.regenerate = QPushButton("Regenerate")
        self.regenerate.clicked.connect(self._regenerate)
        token_row = QWidget()
        tl = QHBoxLayout(token_row)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.token, 1)
        tl.addWidget(self.show_token)
        tl.addWidget(self.regenerate)
        ff.addRow("API token", token_row)
        if "api_token" in forced:
            self.regenerate.setEnabled(False)
            self.regenerate.setToolTip("set by PREVIEW_API_TOKEN")

        output = QGroupBox("Output defaults for new jobs")
        of = QFormLayout(output)
        self.output = OutputFields(of, dict(settings.output_defaults), self)

        self.watch = WatchFoldersBox(settings.watch, settings.output_defaults, status=watch_status,
                                     locked_by=FIELD_ENV["watch"] if "watch" in forced else "")

        note = QLabel("Renders, lending and watch folders apply at once. Data folder, queue limit, media folders, "
                      "farm and API port apply the next time Preview Desktop starts.")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(placeholder-text);")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for part in (queue, farm, output, self.watch, note, buttons):
            layout.addWidget(part)

    def _choose_data_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_dir.text())
        if folder:
            self.data_dir.setText(folder)

    def _toggle_token(self, shown: bool) -> None:
        self.token.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.show_token.setText("Hide" if shown else "Show")

    def _regenerate(self) -> None:
        token = self.tokens.regenerate_api_token()
        if token is None:
            self.regenerate.setEnabled(False)
            self.regenerate.setToolTip("the token is set by PREVIEW_API_TOKEN or cannot be written")
            return
        self.token.setText(token)

    def values(self) -> dict[str, Any]:
        """What the user may change (forced fields left out: the file would not win over them)."""
        roots = [line.strip() for line in self.media_roots.toPlainText().splitlines() if line.strip()]
        values: dict[str, Any] = {
            "data_dir": str(Path(self.data_dir.text().strip() or self.settings.data_dir).expanduser()),
            "max_concurrency": self.concurrency.value(),
            "queue_max": self.queue_max.value(),
            "media_roots": roots,
            "redis_url": self.redis.text().strip() if self.farm_on.isChecked() else "",
            "api_port": self.api_port.value(),
            "output_defaults": self.output.value(),
            "watch": self.watch.folders(),
            "path_map": self._path_map_lines(),
            "farm_idle_minutes": round(self.idle_minutes.value(), 2),
        }
        when = str(self.farm_when.currentData())
        if self.settings.farm_when is not None or when != self.settings.farm_when_for(window=True):
            values["farm_when"] = when  # only once chosen: a --worker reading the same file keeps its own default
        return {k: v for k, v in values.items() if k not in self.settings.forced}

    def _path_map_lines(self) -> list[str]:
        return [line.strip() for line in self.path_map.toPlainText().splitlines() if line.strip()]

    def accept(self) -> None:
        if "path_map" not in self.settings.forced:
            try:
                parse_path_map(self._path_map_lines())
            except ValueError as exc:
                QMessageBox.warning(self, "Path mapping", f"Not saved: {exc}")
                return
        values = self.values()
        if self.settings.settings_file is not None:
            write_settings_file(self.settings.settings_file, values)
        self.saved = values
        super().accept()

    def updated_settings(self) -> Settings:
        """The running window's view of the new values (only the live ones matter until a restart)."""
        changes: dict[str, Any] = {}
        if "max_concurrency" in self.saved:
            changes["max_concurrency"] = self.saved["max_concurrency"]
        if "output_defaults" in self.saved:
            changes["output_defaults"] = self.saved["output_defaults"]
        if "watch" in self.saved:
            changes["watch"] = tuple(self.saved["watch"])
        for key in ("farm_when", "farm_idle_minutes"):
            if key in self.saved:
                changes[key] = self.saved[key]
        return self.settings.with_overrides(**changes)

    def restart_needed(self) -> bool:
        current = {"data_dir": str(self.settings.data_dir), "queue_max": self.settings.queue_max,
                   "media_roots": [str(p) for p in self.settings.media_roots],
                   "redis_url": self.settings.redis_url or "", "api_port": self.settings.api_port,
                   "path_map": [f"{pair.source}={pair.target}" for pair in self.settings.path_map.pairs]}
        return any(k in self.saved and self.saved[k] != current[k] for k in RESTART_FIELDS)


