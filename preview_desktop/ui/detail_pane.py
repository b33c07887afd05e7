"""The selected job in detail: poster, a thumbnail strip to scrub, in-app playback, the preview.json summary and
warnings, the job's own log lines, and the error with its traceback.

Files are read on a worker thread (adapter.read_in_worker) when the selection changes; a generation counter
drops results that arrive after the user has moved on.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontDatabase, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.job import Job, JobState, iso
from ..logs import LOG_FILE_NAME
from .adapter import EngineAdapter
from .icons import STATE_COLORS
from .job_model import fmt_duration, job_duration
from .player import Player, make_player

LOG_TAIL_BYTES = 4 * 1024 * 1024
_XYWH = re.compile(r"#xywh=(\d+),(\d+),(\d+),(\d+)")


@dataclass
class Artifacts:
    folder: Path | None
    poster: bytes | None = None
    sprite: bytes | None = None
    cues: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h per thumbnail
    summary: dict[str, Any] | None = None
    video: Path | None = None
    log_lines: list[str] = field(default_factory=list)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def parse_vtt(text: str) -> list[tuple[int, int, int, int]]:
    return [tuple(int(v) for v in m.groups()) for m in _XYWH.finditer(text)]  # type: ignore[misc]


def job_log_lines(log_file: Path, job_id: str, limit: int = 400) -> list[str]:
    """The job's lines from the JSON log (its tail, and the rotated file before it): 'HH:MM:SS level message'."""
    lines: list[str] = []
    needle = f'"job_id": "{job_id}"'
    for path in (log_file.with_name(log_file.name + ".1"), log_file):
        try:
            with path.open("rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - LOG_TAIL_BYTES))
                chunk = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for raw in chunk.splitlines():
            if needle not in raw:
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            stamp = str(entry.get("time", ""))[11:19]
            text = f"{stamp}  {entry.get('level', ''):<7} {entry.get('message', '')}"
            if entry.get("exception"):
                text += "\n" + str(entry["exception"])
            lines.append(text)
    return lines[-limit:]


def load_artifacts(folder: Path | None, log_file: Path, job_id: str) -> Artifacts:
    """Runs on a worker thread."""
    art = Artifacts(folder, log_lines=job_log_lines(log_file, job_id))
    if folder is None or not folder.is_dir():
        return art
    art.poster = _read(folder / "poster.jpg")
    art.sprite = _read(folder / "thumbs.jpg")
    vtt = _read(folder / "thumbs.vtt")
    if vtt:
        art.cues = parse_vtt(vtt.decode("utf-8", "replace"))
    raw = _read(folder / "preview.json")
    if raw:
        try:
            art.summary = json.loads(raw)
        except ValueError:
            art.summary = None
    if (folder / "preview.mp4").is_file():
        art.video = folder / "preview.mp4"
    return art


class ScaledImage(QLabel):
    """Keeps the aspect ratio of its pixmap at any size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(QSize(160, 90))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #111827; color: #9ca3af; border-radius: 6px;")

    def set_image(self, pixmap: QPixmap | None, empty_text: str = "") -> None:
        self._pixmap = pixmap
        if pixmap is None:
            self.clear()
            self.setText(empty_text)
        else:
            self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def heightForWidth(self, width: int) -> int:
        return width * 9 // 16


class DetailPane(QWidget):
    def __init__(self, adapter: EngineAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.job: Job | None = None
        self.artifacts: Artifacts | None = None
        self._generation = 0
        self.loading = False
        self._sprite: QImage | None = None
        self._poster: QPixmap | None = None
        self.player: Player | None = None
        self.setMinimumWidth(320)

        self.title = QLabel("No job selected")
        title_font = self.title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.35)
        title_font.setWeight(QFont.Weight.DemiBold)
        self.title.setFont(title_font)
        self.subtitle = QLabel("Select a job to see its preview, log and errors.")
        self.subtitle.setWordWrap(True)
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.subtitle.setStyleSheet("color: palette(placeholder-text);")
        self.state = QLabel()

        self.image = ScaledImage()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.image)
        self.scrub = QSlider(Qt.Orientation.Horizontal)
        self.scrub.setToolTip("Scrub the thumbnail strip")
        self.scrub.valueChanged.connect(self._show_thumb)
        self.play_button = QPushButton("Play here")
        self.play_button.setIcon(self.style().standardIcon(self.style().StandardPixmap.SP_MediaPlay))
        self.play_button.clicked.connect(self.play)
        self.scrub_label = QLabel()
        self.scrub_label.setStyleSheet("color: palette(placeholder-text);")
        row = QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.scrub, 1)
        row.addWidget(self.scrub_label)
        preview = QWidget()
        pl = QVBoxLayout(preview)
        pl.setContentsMargins(0, 8, 0, 0)
        pl.addWidget(self.stack, 1)
        pl.addLayout(row)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(False)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setFont(mono)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.error_view = QPlainTextEdit()
        self.error_view.setReadOnly(True)
        self.error_view.setFont(mono)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(preview, "Preview")
        self.tabs.addTab(self.summary, "Summary")
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(self.error_view, "Error")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.state)
        layout.addSpacing(6)
        layout.addWidget(self.tabs, 1)
        adapter.jobsChanged.connect(self._jobs_changed)
        self.set_job(None)

    # ------------------------------------------------------------------ selection
    def set_job(self, job: Job | None) -> None:
        same = job is not None and self.job is not None and job.id == self.job.id
        previous_state = self.job.state if self.job is not None else None
        self.job = job
        self._header()
        if same and job is not None and job.state is previous_state:
            return
        self._stop_player()
        self._generation += 1
        enabled = job is not None
        for i in range(1, self.tabs.count()):
            self.tabs.setTabEnabled(i, enabled)
        if job is None:
            self.image.set_image(None, "")
            self.summary.clear()
            self.log_view.clear()
            self.error_view.clear()
            self.scrub.setEnabled(False)
            self.play_button.setEnabled(False)
            self.scrub_label.clear()
            return
        self._show_error(job)
        self.image.set_image(None, self._placeholder(job))
        self.loading = True
        self.adapter.spawn(self._load(job, self._generation), "loading the job's files")

    def _jobs_changed(self, updated: list[Job], removed: list[str]) -> None:
        if self.job is None:
            return
        if self.job.id in removed:
            self.set_job(None)
            return
        for job in updated:
            if job.id == self.job.id:
                self.set_job(job)
                return

    def _placeholder(self, job: Job) -> str:
        if job.farm_id is not None and job.state is JobState.QUEUED:
            return "Waiting for a farm node"
        if job.farm_id is not None and job.state is JobState.RUNNING:
            return "Rendering on the farm…"
        return {
            JobState.QUEUED: "Waiting for a render slot",
            JobState.RUNNING: "Rendering…",
            JobState.RETRYING: "Waiting to retry",
            JobState.FAILED: "The render failed — see Error",
            JobState.CANCELLED: "Cancelled",
        }.get(job.state, "No poster")

    def _header(self) -> None:
        job = self.job
        if job is None:
            self.title.setText("No job selected")
            self.subtitle.setText("Select a job to see its preview, log and errors.")
            self.state.clear()
            return
        self.title.setText(job.project_id)
        self.subtitle.setText(f"{job.label}\n{job.id}")
        state = job.display_state
        color = STATE_COLORS.get(state, "#6b7280")
        bits = [f"attempt {job.attempts_made}/{job.attempts_allowed}", f"priority {job.priority}"]
        duration = job_duration(job)
        if duration is not None:
            bits.append(fmt_duration(duration))
        if job.superseded_by:
            bits.append(f"superseded by {job.superseded_by}")
        if job.farm_id is not None:
            bits.append(f"farm job {job.farm_id}" + (f" on {job.worker.partition(':')[0]}" if job.worker else ""))
        self.state.setText(
            f"<span style='background:{color}; color:white; border-radius:4px; padding:1px 6px;'>"
            f"&nbsp;{html.escape(state)}&nbsp;</span>&nbsp;&nbsp;"
            f"<span style='color:#6b7280'>{html.escape(' · '.join(bits))}</span>"
        )

    def _show_error(self, job: Job) -> None:
        text = ""
        if job.error:
            text = job.error + ("\n\n" + job.traceback if job.traceback else "")
        self.error_view.setPlainText(text or "No error.")
        self.tabs.setTabEnabled(3, bool(job.error))
        self.tabs.setTabText(3, "Error ●" if job.state is JobState.FAILED else "Error")
        if job.state is JobState.FAILED and self.tabs.currentIndex() == 0:
            self.tabs.setCurrentIndex(3)

    async def _load(self, job: Job, generation: int) -> None:
        folder = self.adapter.preview_dir(job)
        log_file = self.adapter.layout.logs / LOG_FILE_NAME
        art: Artifacts = await self.adapter.read_in_worker(load_artifacts, folder, log_file, job.id)
        if generation != self._generation:
            return  # the user moved on
        self.loading = False
        self.artifacts = art
        self._poster = None
        if art.poster:
            pix = QPixmap()
            if pix.loadFromData(art.poster):
                self._poster = pix
        self._sprite = None
        if art.sprite and art.cues:
            image = QImage.fromData(art.sprite)
            self._sprite = None if image.isNull() else image
        self.image.set_image(self._poster, self._placeholder(job))
        has_thumbs = self._sprite is not None
        self.scrub.setEnabled(has_thumbs)
        self.scrub.blockSignals(True)
        self.scrub.setRange(0, max(0, len(art.cues) - 1))
        self.scrub.setValue(0)
        self.scrub.blockSignals(False)
        self.scrub_label.setText(f"{len(art.cues)} thumbnails" if has_thumbs else "")
        self.play_button.setEnabled(art.video is not None)
        self.summary.setHtml(summary_html(job, art.summary))
        self.log_view.setPlainText("\n".join(art.log_lines) or "No log lines for this job yet.")
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())

    def _show_thumb(self, value: int) -> None:
        art = self.artifacts
        if self._sprite is None or art is None or not (0 <= value < len(art.cues)):
            return
        self._stop_player()
        x, y, w, h = art.cues[value]
        self.image.set_image(QPixmap.fromImage(self._sprite.copy(QRect(x, y, w, h))))
        self.scrub_label.setText(f"{value + 1}/{len(art.cues)}")

    # ------------------------------------------------------------------ playback
    def play(self) -> None:
        art = self.artifacts
        if art is None or art.video is None:
            return
        if self.player is None:
            self.player = make_player(self)
            if self.player is None:
                self.adapter.error.emit("In-app playback is not available",
                                        "QtMultimedia has no backend here; use Open preview instead.")
                return
            self.player.failed.connect(lambda text: self.adapter.error.emit("Playback failed", text))
            self.stack.addWidget(self.player)
        self.stack.setCurrentWidget(self.player)
        self.player.load(art.video)

    def _stop_player(self) -> None:
        if self.player is not None:
            self.player.stop()
        self.stack.setCurrentWidget(self.image)


def summary_html(job: Job, summary: dict[str, Any] | None) -> str:
    """preview.json as a short table an editor can read, warnings first."""
    esc = html.escape
    rows: list[tuple[str, str]] = [("Job", job.id), ("Project", job.project_id), ("Timeline", job.label),
                                   ("Created", iso(job.created_at) or ""), ("Finished", iso(job.finished_at) or "—")]
    if isinstance(job.spec.get("watchFolder"), str):
        rows.insert(3, ("Watch folder", job.spec["watchFolder"]))
    warnings: list[str] = []
    if summary:
        video = summary.get("video") or {}
        timeline = summary.get("timeline") or {}
        if video:
            rows.append(("Video", f"{video.get('width')}×{video.get('height')} {video.get('codec', '')} "
                                  f"@ {video.get('fps')} fps, {video.get('frames')} frames"))
            rows.append(("Length", fmt_duration(video.get("durationSeconds"))))
            if video.get("bytes"):
                rows.append(("Size", f"{video['bytes'] / 1e6:.1f} MB"))
            rows.append(("Audio", str(video.get("audio") or "none")))
        if timeline:
            rows.append(("Format", f"{timeline.get('format', '')}, {timeline.get('clips', '?')} clips"))
        if summary.get("renderSeconds") is not None:
            rows.append(("Render time", f"{summary['renderSeconds']:.1f} s"))
        warnings = [str(w) for w in summary.get("warnings") or []]
    elif job.state is JobState.SUCCEEDED:
        rows.append(("preview.json", "not found"))
    parts = []
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        parts.append(f"<p style='color:#b45309'><b>{len(warnings)} warning(s)</b></p><ul>{items}</ul>")
    table = "".join(f"<tr><td style='color:#6b7280; padding-right:12px'>{esc(k)}</td><td>{esc(str(v))}</td></tr>"
                    for k, v in rows)
    parts.append(f"<table cellspacing='2'>{table}</table>")
    return "".join(parts)
