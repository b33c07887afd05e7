"""The Farm view: the farm's connection status, its nodes and the jobs they run, the farm queue's counts.

It reads only FarmStatus snapshots from the adapter (refreshed every farm heartbeat and on every link change) and
acts through the adapter: no Redis here, and no timer of its own.
Jobs sent from this window (or queued "on the farm") stay in the job table as farm records, marked "farm" in the
Node column (service/farm_tracker.py follows them); the farm's other jobs are shown here only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.farm_status import FarmStatus, NodeInfo, NodeState
from ..core.job import Job
from .adapter import EngineAdapter

JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
# this node's state in the status bar (FarmStatus.state); an unknown state shows as itself
STATE_TEXT = {
    NodeState.LENDING: "Farm: lending this computer",
    NodeState.IDLE_ONLY_ACTIVE: "Farm: idle-only, you are active",
    NodeState.IDLE_ONLY_UNKNOWN: "Farm: idle-only, cannot tell if you are away",
    NodeState.NEVER: "Farm: not lending this computer",
    NodeState.DRAINING: "Farm: this node draining",
    NodeState.RESTING: "Farm: this node resting",
}
NODE_ID_ROLE = Qt.ItemDataRole.UserRole + 2
NODE_STATE_ROLE = Qt.ItemDataRole.UserRole + 3


def node_state_text(node: NodeInfo) -> str:
    """"draining", "resting until 14:05", "idle-only-active"..., or "" for a node that takes jobs."""
    if node.state == NodeState.RESTING and node.restingUntil:
        return f"resting until {time.strftime('%H:%M', time.localtime(node.restingUntil))}"
    return node.state if not node.takes_jobs else ""


class FarmView(QWidget):
    def __init__(self, adapter: EngineAdapter, selected_jobs: Callable[[], list[Job]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.selected_jobs = selected_jobs
        self.status: FarmStatus | None = adapter.farm_status()
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counts_label = QLabel(self)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Node / job", "Project", "Progress", "Slots"])
        self.tree.setRootIsDecorated(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # host and node id: the widest, most useful
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._update_enabled)
        self.cancel_button = QPushButton("Cancel farm job", self)
        self.cancel_button.setToolTip("Stop the selected farm job on whichever node runs it")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.send_button = QPushButton("Send selected to farm", self)
        self.send_button.setToolTip("Render the jobs selected in the job table on the farm instead of here; they stay "
                                    "in the table and their previews come back here")
        self.send_button.clicked.connect(self.send_selected)
        self.drain_button = QPushButton("Drain node", self)
        self.drain_button.setToolTip("The selected node finishes what it renders and takes no more farm jobs "
                                     "until resumed (for maintenance)")
        self.drain_button.clicked.connect(lambda: self.drain_selected(True))
        self.resume_button = QPushButton("Resume node", self)
        self.resume_button.setToolTip("The selected drained node takes farm jobs again")
        self.resume_button.clicked.connect(lambda: self.drain_selected(False))
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.drain_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addWidget(self.counts_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        if self.status is None:
            self.status_label.setText("Farm: off. Set REDIS_URL, --redis or the farm setting to join a render farm.")
            self.counts_label.hide()
        else:
            adapter.farmStatusChanged.connect(self.show_status)
            self.show_status(self.status)
        self._update_enabled()

    # ------------------------------------------------------------------ showing
    def show_status(self, status: FarmStatus) -> None:
        self.status = status
        where = f"{status.url}, queue '{status.queue}'"
        if status.connected:
            self.status_label.setText(f"Farm: connected to {where}")
        elif status.error:
            self.status_label.setText(f"Farm: Redis unreachable ({status.error}); local rendering continues. "
                                      f"{where}")
        else:
            self.status_label.setText(f"Farm: connecting to {where}")
        self.tree.setEnabled(status.connected)  # while Redis is away the list is the last known one: greyed out
        c = status.counts
        if c:
            waiting = c.get("waiting", 0) + c.get("prioritized", 0)
            self.counts_label.setText(
                f"waiting {waiting} · active {c.get('active', 0)} · delayed {c.get('delayed', 0)} · "
                f"completed {c.get('completed', 0)} · failed {c.get('failed', 0)} · nodes {len(status.nodes)}")
        selected = self._selected_job_id()
        selected_node = self._selected_node_id()
        self.tree.clear()
        now = time.time()
        for node in status.nodes:
            mine = node.nodeId == status.nodeId
            state = node_state_text(node)
            label = f"{node.host} ({node.nodeId}){' - this node' if mine else ''}{f' - {state}' if state else ''}"
            age = max(0.0, now - node.heartbeat)
            item = QTreeWidgetItem([label, f"v{node.version}", f"seen {age:.0f}s ago",
                                    f"{len(node.running)} farm + {node.localRunning} local / {node.capacity}"])
            item.setData(0, NODE_ID_ROLE, node.nodeId)
            item.setData(0, NODE_STATE_ROLE, node.state)
            self.tree.addTopLevelItem(item)
            if node.nodeId == selected_node and selected is None:
                item.setSelected(True)
            for job in node.running:
                child = QTreeWidgetItem([f"job {job.jobId} ({job.name}, attempt {job.attempt})", job.projectId or "",
                                         f"{job.percent:.0f}% ({job.frame}/{job.frames})", ""])
                child.setData(0, JOB_ID_ROLE, job.jobId)
                item.addChild(child)
                if job.jobId == selected:
                    child.setSelected(True)
            item.setExpanded(True)
        self._update_enabled()

    def _selected_job_id(self) -> str | None:
        for item in self.tree.selectedItems():
            job_id = item.data(0, JOB_ID_ROLE)
            if job_id:
                return str(job_id)
        return None

    def _selected_node_item(self) -> QTreeWidgetItem | None:
        for item in self.tree.selectedItems():
            if item.data(0, NODE_ID_ROLE):
                return item
        return None

    def _selected_node_id(self) -> str | None:
        item = self._selected_node_item()
        return str(item.data(0, NODE_ID_ROLE)) if item is not None else None

    def _update_enabled(self) -> None:
        connected = self.status is not None and self.status.connected
        self.cancel_button.setEnabled(connected and self._selected_job_id() is not None)
        self.send_button.setEnabled(connected)
        node = self._selected_node_item()
        draining = node is not None and node.data(0, NODE_STATE_ROLE) == "draining"
        self.drain_button.setEnabled(connected and node is not None and not draining)
        self.resume_button.setEnabled(connected and draining)

    # ------------------------------------------------------------------ acting
    def cancel_selected(self) -> None:
        job_id = self._selected_job_id()
        if job_id is not None:
            self.adapter.cancel_farm_job(job_id)

    def drain_selected(self, draining: bool) -> None:
        """Drain (or resume) the selected node, whichever machine it is: the request goes through Redis."""
        node_id = self._selected_node_id()
        if node_id is not None:
            self.adapter.drain_farm_node(node_id, draining)

    def send_selected(self) -> None:
        """Each selected local job that has not started goes to the farm and stays in the table as a farm record."""
        jobs = self.selected_jobs()
        if jobs:
            self.adapter.send_to_farm([job.id for job in jobs])


class FarmStatusButton(QToolButton):
    """The farm at a glance in the status bar ("Farm: 3 nodes · 5 waiting", or why it is offline); a click shows
    or hides the Farm view. Hidden when this node is not on a farm."""

    def __init__(self, adapter: EngineAdapter, toggle_view: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoRaise(True)
        self.clicked.connect(toggle_view.trigger)  # the View menu's own action: its text stays "Farm"
        status = adapter.farm_status()
        if status is None:
            self.hide()
            return
        adapter.farmStatusChanged.connect(self.show_status)
        self.show_status(status)

    def show_status(self, status: FarmStatus) -> None:
        if status.connected:
            c = status.counts
            waiting = c.get("waiting", 0) + c.get("prioritized", 0) + c.get("delayed", 0)
            nodes = len(status.nodes)
            text = f"{nodes} node{'s' if nodes != 1 else ''} · {c.get('active', 0)} rendering · {waiting} waiting"
            mine = next((n for n in status.nodes if n.nodeId == status.nodeId), None)
            state = status.state
            if mine is not None and mine.state in (NodeState.RESTING, NodeState.DRAINING):
                state = mine.state  # the registry's word, also when this window's own status has none
            if state is None:
                text = f"Farm: {text}"
            elif state in (NodeState.RESTING, NodeState.DRAINING) and mine is not None:  # says until when
                text = f"Farm: this node {node_state_text(mine)} · {text}"
            else:  # this computer first: is it lending itself?
                text = f"{STATE_TEXT.get(state, f'Farm: {state}')} · {text}"
            tip = f"Connected to {status.url}, queue '{status.queue}'. Click to show the Farm view."
            if status.stateReason:
                tip = f"This computer: {status.stateReason}. {tip}"
            color = ""
        elif status.error:
            text = "Farm: offline, reconnecting"
            tip = f"Redis unreachable ({status.error}); local rendering continues. {status.url}"
            color = "color: #b3261e;"
        else:
            text, tip, color = "Farm: connecting…", f"Connecting to {status.url}", ""
        self.setText(text)
        self.setToolTip(tip)
        self.setStyleSheet(color and f"QToolButton {{ {color} }}")
