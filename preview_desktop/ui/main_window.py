"""The main window: toolbar with filters, the job table, the detail pane, the metrics dock, menus, tray."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QItemSelection, QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QToolButton,
    QWidget,
)

from .. import APP_NAME
from ..core.events import EngineStatus
from ..core.job import Job
from ..settings import Settings
from .about_dialog import show_about
from .actions import JobActions
from .adapter import EngineAdapter, SubmitOptions
from .detail_pane import DetailPane
from .farm_view import FarmStatusButton, FarmView
from .icons import app_icon
from .job_model import COLUMNS, STATE_FILTERS, TIMELINE_COLUMN, JobFilterProxy, JobTableModel
from .job_table import EmptyState, JobTable
from .metrics_dock import MetricsDock
from .node_notice import NodeNoticeLabel
from .prefs import window_prefs
from .queue_dialog import FILE_FILTER, QueueDialog, accepted
from .settings_dialog import SettingsDialog
from .tray import Tray
from .watch_notice import WatchNotice


class MainWindow(QMainWindow):
    quitRequested = Signal(bool)  # True: stop running jobs (they go back to the queue)
    painted = Signal()  # first paint after the jobs arrived (the --screenshot path waits for it)

    def __init__(self, adapter: EngineAdapter, settings: Settings) -> None:
        super().__init__()
        self.adapter = adapter
        self.settings = settings
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.loaded = False
        self._quitting = False

        self.model = JobTableModel(adapter.worker_id, self)
        self.proxy = JobFilterProxy(self.model, self)
        self.table = JobTable(self)
        self.table.setModel(self.proxy)
        for i, column in enumerate(COLUMNS):
            self.table.setColumnWidth(i, column.width)
        # The timeline name takes what is left; the other columns keep widths that fit their content.
        self.table.horizontalHeader().setSectionResizeMode(TIMELINE_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSortIndicator(self.model.sort_column, self.model.sort_order)
        self.empty = EmptyState(self.table.viewport())
        self.table.viewport().installEventFilter(self)

        self.actions_ = JobActions(adapter, self.selected_jobs, self)
        self.actions_.add.triggered.connect(lambda: self.add_files())
        self.detail = DetailPane(adapter, self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([1080, 360])
        self.setCentralWidget(self.splitter)

        self.metrics = MetricsDock(adapter, self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.metrics)
        self._build_filters()
        self._build_toolbar()
        self._build_menus()
        self._build_status()
        self.tray = Tray(adapter, self, self.actions_.pause)
        self.tray.showWindow.connect(self.bring_to_front)
        self.tray.quitRequested.connect(lambda: self.request_quit(stop_jobs=True))
        self.tray.notified.connect(lambda title, text: self.statusBar().showMessage(f"{title}: {text}", 10000))
        self.watch_notice = WatchNotice(adapter, self.tray)

        adapter.jobsChanged.connect(self._jobs_changed)
        adapter.jobProgress.connect(self.model.set_progress)
        adapter.statusChanged.connect(self._status_changed)
        adapter.countsChanged.connect(self._counts_changed)
        adapter.error.connect(self._error)
        adapter.info.connect(lambda text: self.statusBar().showMessage(text, 5000))
        adapter.ready.connect(self._ready)
        sel = self.table.selectionModel()
        sel.selectionChanged.connect(self._selection_changed)
        sel.currentRowChanged.connect(self._current_changed)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(lambda index: self.actions_.do_open())
        self.proxy.modelReset.connect(self._update_empty)
        self.proxy.rowsInserted.connect(self._update_empty)
        self.proxy.rowsRemoved.connect(self._update_empty)
        self.proxy.layoutChanged.connect(self._update_empty)
        self.empty.add_button.clicked.connect(lambda: self.add_files())
        self.empty.demo_button.clicked.connect(lambda: self.adapter.render_demo())
        self.empty.clear_button.clicked.connect(self.clear_filter)
        self.model.apply(list(adapter.jobs().values()))
        self._restore()
        self._update_empty()
        if not self.restored:
            self._default_size()

    # ------------------------------------------------------------------ building
    def _build_filters(self) -> None:
        self.state_filter = QComboBox(self)
        self.state_filter.addItems(list(STATE_FILTERS))
        self.state_filter.setToolTip("Show jobs in these states")
        self.state_filter.currentTextChanged.connect(lambda t: self.proxy.set_states(STATE_FILTERS[t]))
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Filter: project, timeline, job id, error…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(260)
        self.search.textChanged.connect(self.proxy.set_text)
        find = QAction("Find", self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(self._focus_search)
        self.addAction(find)

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _build_toolbar(self) -> None:
        bar = QToolBar("Jobs", self)
        bar.setObjectName("jobsToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        a = self.actions_
        bar.addAction(a.add)
        bar.addSeparator()
        for action in (a.cancel, a.retry, a.raise_priority, a.lower_priority):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(a.pause)
        bar.addAction(a.remove)
        bar.addSeparator()
        bar.addAction(a.open_preview)
        spacer = QWidget(self)
        spacer.setSizePolicy(spacer.sizePolicy().Policy.Expanding, spacer.sizePolicy().Policy.Preferred)
        bar.addWidget(spacer)
        bar.addWidget(self.state_filter)
        bar.addWidget(self.search)
        for action in (a.raise_priority, a.lower_priority):  # icons only: the tooltip names them
            button = bar.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addToolBar(bar)
        self.toolbar = bar

    def _build_menus(self) -> None:
        a = self.actions_
        file = self.menuBar().addMenu("&File")
        file.addAction(a.add)
        demo = file.addAction("Render the demo project")
        demo.triggered.connect(lambda: self.adapter.render_demo())
        file.addSeparator()
        settings = file.addAction("Settings…")
        settings.setShortcut(QKeySequence.StandardKey.Preferences)
        if settings.shortcut().isEmpty():
            settings.setShortcut(QKeySequence("Ctrl+,"))
        settings.triggered.connect(self.open_settings)
        file.addSeparator()
        quit_action = file.addAction("Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        jobs = self.menuBar().addMenu("&Jobs")
        for action in (a.open_preview, a.reveal, a.copy_id, None, a.cancel, a.retry, a.raise_priority,
                       a.lower_priority, None, a.pause, a.remove):
            jobs.addSeparator() if action is None else jobs.addAction(action)
        self.view_menu = self.menuBar().addMenu("&View")
        toggle = self.metrics.toggleViewAction()
        toggle.setShortcut(QKeySequence("Ctrl+M"))
        self.view_menu.addAction(toggle)
        detail = QAction("Detail pane", self, checkable=True, checked=True)
        detail.setShortcut(QKeySequence("Ctrl+D"))
        detail.toggled.connect(self.detail.setVisible)
        self.view_menu.addAction(detail)
        self.view_menu.addSeparator()  # docks added with add_view() (e.g. the farm view) go below
        self._add_farm_view()
        help_menu = self.menuBar().addMenu("&Help")
        about = help_menu.addAction(f"About {APP_NAME}")
        about.triggered.connect(lambda: show_about(self, self.settings.data_dir))

    def add_view(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, shortcut: str = "") -> QDockWidget:
        """Where more views plug in (the farm view): a dock with an entry in the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        toggle = dock.toggleViewAction()
        if shortcut:
            toggle.setShortcut(QKeySequence(shortcut))
        self.view_menu.addAction(toggle)
        return dock

    def _default_size(self) -> None:
        """1440x860, or 90% of a smaller screen's free area, so the first window never spills off screen.
        (The offscreen platform's 800x600 "screen" is no screen: screenshots keep the full size.)"""
        screen = self.screen()
        width, height = 1440, 860
        if screen is not None and QGuiApplication.platformName() != "offscreen":
            free = screen.availableGeometry()
            width, height = min(width, int(free.width() * 0.9)), min(height, int(free.height() * 0.9))
        self.resize(width, height)

    def _add_farm_view(self) -> None:
        view = FarmView(self.adapter, self.selected_jobs)
        self.farm_dock = self.add_view("Farm", view, Qt.DockWidgetArea.RightDockWidgetArea, "Ctrl+Shift+F")
        self.farm_dock.hide()

    def _build_status(self) -> None:
        self.node_notice = NodeNoticeLabel(self.adapter, self)  # disk full, store repaired (ui/node_notice.py)
        self.statusBar().addPermanentWidget(self.node_notice)
        self.status_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.status_label)
        self.farm_button = FarmStatusButton(self.adapter, self.farm_dock.toggleViewAction(), self)
        self.statusBar().addPermanentWidget(self.farm_button)
        self._status_changed(self.adapter.status)

    # ------------------------------------------------------------------ state
    def selected_jobs(self) -> list[Job]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return [self.proxy.job_at(index.row()) for index in rows]

    def _jobs_changed(self, updated: list[Job], removed: list[str]) -> None:
        self.model.apply(updated, removed)
        self.actions_.update_enabled()

    def _ready(self) -> None:
        self.loaded = True
        self._update_empty()
        self.table.viewport().update()

    def _selection_changed(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        self.actions_.update_enabled()

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.detail.set_job(self.proxy.job_at(current.row()) if current.isValid() else None)

    def _status_changed(self, status: EngineStatus) -> None:
        self._render_status()

    def _counts_changed(self, counts: dict[str, int]) -> None:
        self._render_status()

    def _render_status(self) -> None:
        s, c = self.adapter.status, self.adapter.counts
        parts = []
        waiting = c.get("queued", 0) + c.get("retrying", 0)
        if c:
            parts.append(f"{c.get('running', 0)} rendering")
            parts.append(f"{waiting} waiting")
            parts.append(f"{c.get('succeeded', 0)} done")
            if c.get("failed"):
                parts.append(f"{c['failed']} failed")
        parts.append(f"{s.running}/{s.capacity} slots on this computer")
        if s.paused:
            parts.append("queue paused")
        api = self.adapter.api_url()
        if api:
            parts.append(f"API {api}")
        self.status_label.setText("   ·   ".join(parts))

    def _update_empty(self, *args: object) -> None:
        empty = self.proxy.rowCount() == 0
        if empty:
            self.empty.show_first_run() if self.model.rowCount() == 0 else self.empty.show_filtered()
            self.empty.setGeometry(self.table.viewport().rect())
        self.empty.setVisible(empty)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport():
            if event.type() == QEvent.Type.Resize:
                self.empty.setGeometry(self.table.viewport().rect())
            elif event.type() == QEvent.Type.Paint and self.loaded and not getattr(self, "_painted", False):
                self._painted = True
                self.painted.emit()
        return super().eventFilter(watched, event)

    def select_showcase_job(self) -> None:
        """For --screenshot: select a finished preview (or else the first row) so the detail pane has content."""
        rows = self.proxy.rowCount()
        pick = next((r for r in range(min(rows, 200)) if self.proxy.job_at(r).state.value == "succeeded"), 0)
        if rows:
            self.table.selectRow(pick)

    def clear_filter(self) -> None:
        self.search.clear()
        self.state_filter.setCurrentIndex(0)

    def _context_menu(self, pos: QPoint) -> None:
        self.actions_.context_menu(self).exec(self.table.viewport().mapToGlobal(pos))

    def _error(self, title: str, message: str) -> None:
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)
        if self.isVisible() and not self._quitting:
            box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.WindowModal)
            box.open()

    def bring_to_front(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    # ------------------------------------------------------------------ adding jobs
    def add_files(self, paths: Sequence[Path] | None = None) -> None:
        if paths is None:
            chosen, _ = QFileDialog.getOpenFileNames(self, "Add timeline", str(Path.home()), FILE_FILTER)
            paths = [Path(p) for p in chosen]
        if not paths:
            return
        dialog = QueueDialog(paths, self.settings, self)
        if dialog.exec() == QueueDialog.DialogCode.Accepted:
            self.queue(paths, dialog.options())
            if dialog.remember.isChecked():
                self.settings = self.settings.with_overrides(output_defaults=dialog.output.value())

    def queue(self, paths: Sequence[Path], options: SubmitOptions) -> None:
        self.adapter.submit_files(list(paths), options)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if any(u.isLocalFile() and accepted(Path(u.toLocalFile())) for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        paths = [p for p in paths if accepted(p)]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_files(paths)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self, tokens=self.adapter, watch_status=self.adapter.watch_status())
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        self.settings = dialog.updated_settings()
        if "max_concurrency" in dialog.saved and dialog.saved["max_concurrency"] != self.adapter.status.capacity:
            self.adapter.set_concurrency(dialog.saved["max_concurrency"])
        if "farm_when" in dialog.saved or "farm_idle_minutes" in dialog.saved:
            self.adapter.set_lending(self.settings.farm_when_for(window=True), self.settings.farm_idle_minutes)
        if "watch" in dialog.saved or "output_defaults" in dialog.saved:
            self.adapter.set_watch_folders(self.settings.watch, dict(self.settings.output_defaults))
        message = "Settings saved" + ("; some apply after a restart" if dialog.restart_needed() else "")
        self.statusBar().showMessage(message, 8000)

    # ------------------------------------------------------------------ closing
    def _save(self) -> None:
        prefs = window_prefs(self.settings)
        prefs.setValue("window/geometry", self.saveGeometry())
        prefs.setValue("window/state", self.saveState())
        prefs.setValue("window/header", self.table.horizontalHeader().saveState())
        prefs.setValue("window/splitter", self.splitter.saveState())
        prefs.sync()

    def _restore(self) -> None:
        prefs = window_prefs(self.settings)
        geometry = prefs.value("window/geometry")
        self.restored = bool(geometry) and self.restoreGeometry(geometry)
        for key, fn in (("window/state", self.restoreState), ("window/splitter", self.splitter.restoreState),
                        ("window/header", self.table.horizontalHeader().restoreState)):
            value = prefs.value(key)
            if value:
                fn(value)

    def busy(self) -> bool:
        return self.adapter.status.running > 0 and not self.adapter.stopping

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._quitting:
            event.accept()
            return
        if self.busy():
            choice = self.ask_keep_rendering()
            if choice == "cancel":
                event.ignore()
                return
            if choice == "tray":
                event.ignore()
                self.hide()
                self.tray.notify(APP_NAME, "Still rendering. Click the tray icon to open the window.")
                return
        event.ignore()
        self.request_quit(stop_jobs=True)

    def ask_keep_rendering(self) -> str:
        """'tray', 'stop' or 'cancel'. Without a tray there is nowhere to keep rendering: stop or stay."""
        n = self.adapter.status.running
        box = QMessageBox(QMessageBox.Icon.Question, APP_NAME, f"{n} preview(s) are rendering.", parent=self)
        box.setInformativeText("Keep rendering in the tray, or stop? Stopped jobs go back to the queue and "
                               "continue the next time Preview Desktop runs.")
        keep = box.addButton("Keep rendering in the tray", QMessageBox.ButtonRole.AcceptRole) \
            if self.tray.available else None
        stop = box.addButton("Stop and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep or stop)
        box.exec()
        clicked = box.clickedButton()
        return "tray" if keep is not None and clicked is keep else "stop" if clicked is stop else "cancel"

    def request_quit(self, stop_jobs: bool) -> None:
        self._quitting = True
        self._save()
        self.hide()
        self.quitRequested.emit(stop_jobs)
