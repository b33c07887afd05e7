"""The Farm view shows what FarmStatus says, and never the Redis password.

The view talks to the window's adapter only; here a stand-in with the adapter's farm surface (its signal, the
snapshot and the two actions) feeds it statuses. The real adapter and farm are exercised in test_farm_api.py."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from preview_desktop.core.farm_status import FarmJobInfo, FarmStatus, NodeInfo
from preview_desktop.logs import redact


class FarmAdapter(QObject):
    """The EngineAdapter's farm surface: farmStatusChanged, farm_status(), cancel_farm_job(), send_to_farm()."""

    farmStatusChanged = Signal(object)

    def __init__(self, status: FarmStatus | None) -> None:
        super().__init__()
        self.status = status
        self.cancelled: list[str] = []
        self.sent: list[list[str]] = []

    def farm_status(self) -> FarmStatus | None:
        return self.status

    def cancel_farm_job(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def send_to_farm(self, job_ids: list[str]) -> None:
        self.sent.append(job_ids)

    def push(self, status: FarmStatus) -> None:
        self.status = status
        self.farmStatusChanged.emit(status)


def test_farm_view_shows_nodes_jobs_counts_and_link(qtbot: Any) -> None:
    from preview_desktop.ui.farm_view import FarmView

    url = redact("redis://:hunter2-secret@farm.local:6379/0")
    job = FarmJobInfo(jobId="17", name="render", projectId="promo", startedAt=time.time(), frame=5, frames=10,
                      percent=50.0)
    node = NodeInfo(nodeId="box:1:abcd", host="box", pid=1, version="0.1.0", capacity=2, running=[job],
                    heartbeat=time.time())
    status = FarmStatus(url=url, queue="previews", connected=True, nodes=[node],
                        counts={"waiting": 3, "prioritized": 1, "active": 1, "failed": 2}, nodeId="box:1:abcd")
    farm = FarmAdapter(status)
    view = FarmView(farm, lambda: [])
    qtbot.addWidget(view)
    assert "connected" in view.status_label.text() and "hunter2" not in view.status_label.text()
    assert "waiting 4" in view.counts_label.text() and "failed 2" in view.counts_label.text()
    top = view.tree.topLevelItem(0)
    assert top is not None and "this node" in top.text(0)
    assert top.child(0).text(2).startswith("50%")
    top.child(0).setSelected(True)
    assert view.cancel_button.isEnabled()
    view.cancel_button.click()
    assert farm.cancelled == ["17"]

    down = FarmStatus(url=url, queue="previews", connected=False, error="ConnectionError: refused")
    farm.push(down)
    assert "unreachable" in view.status_label.text()
    assert not view.cancel_button.isEnabled()
    assert not view.tree.isEnabled()  # the node list is the last known one: shown greyed out
    farm.push(status)
    assert view.tree.isEnabled()


def test_farm_view_without_a_farm(qtbot: Any) -> None:
    from preview_desktop.ui.farm_view import FarmView

    view = FarmView(FarmAdapter(None), lambda: [])
    qtbot.addWidget(view)
    assert "off" in view.status_label.text()
    assert not view.send_button.isEnabled()


def test_status_bar_button_shows_the_farm_at_a_glance_and_opens_the_view(qtbot: Any) -> None:
    from PySide6.QtGui import QAction

    from preview_desktop.ui.farm_view import FarmStatusButton

    url = redact("redis://:hunter2-secret@farm.local:6379/0")
    node = NodeInfo(nodeId="box:1:abcd", host="box", pid=1, version="0.1.0", capacity=2, running=[],
                    heartbeat=time.time())
    status = FarmStatus(url=url, queue="previews", connected=True, nodes=[node, node],
                        counts={"waiting": 3, "prioritized": 1, "active": 2, "delayed": 1})
    farm = FarmAdapter(status)
    toggle = QAction("Farm", checkable=True)
    button = FarmStatusButton(farm, toggle)
    qtbot.addWidget(button)
    assert button.text() == "Farm: 2 nodes · 2 rendering · 5 waiting"
    button.click()
    assert toggle.isChecked() and toggle.text() == "Farm"

    down = FarmStatus(url=url, queue="previews", connected=False, error="ConnectionError: refused")
    farm.push(down)
    assert button.text() == "Farm: offline, reconnecting"
    assert "refused" in button.toolTip() and "hunter2" not in button.toolTip()
    assert "#b3261e" in button.styleSheet()


def test_status_bar_button_says_whether_this_computer_is_lent(qtbot: Any) -> None:
    from PySide6.QtGui import QAction

    from preview_desktop.core.farm_status import NodeState
    from preview_desktop.ui.farm_view import FarmStatusButton

    def status(state: str, reason: str) -> FarmStatus:
        return FarmStatus(url="redis://farm.local:6379/0", queue="previews", connected=True, counts={"waiting": 2},
                          state=state, stateReason=reason)

    farm = FarmAdapter(status(NodeState.LENDING, "lent while you are away (no input for 10 min or more)"))
    button = FarmStatusButton(farm, QAction("Farm"))
    qtbot.addWidget(button)
    assert button.text() == "Farm: lending this computer · 0 nodes · 0 rendering · 2 waiting"
    assert "This computer: lent while you are away" in button.toolTip()
    farm.push(status(NodeState.IDLE_ONLY_ACTIVE, "you are active; lent once you are away for 10 min"))
    assert button.text().startswith("Farm: idle-only, you are active · ")
    farm.push(status(NodeState.IDLE_ONLY_UNKNOWN, "cannot tell whether you are away (no X11 display)"))
    assert button.text().startswith("Farm: idle-only, cannot tell if you are away · ")
    assert "no X11 display" in button.toolTip()
    farm.push(status(NodeState.NEVER, "never takes farm jobs (farm setting: never)"))
    assert button.text().startswith("Farm: not lending this computer · ")
    farm.push(status("hibernating", "a newer node's state"))  # a state this window does not know shows as itself
    assert button.text().startswith("Farm: hibernating · ")


def test_status_bar_button_is_hidden_without_a_farm(qtbot: Any) -> None:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QStatusBar

    from preview_desktop.ui.farm_view import FarmStatusButton

    bar = QStatusBar()
    qtbot.addWidget(bar)
    button = FarmStatusButton(FarmAdapter(None), QAction("Farm"))
    bar.addPermanentWidget(button)  # as the window does; the status bar shows its widgets unless told not to
    bar.show()
    assert button.isHidden()
