"""The node's trouble in the status bar: "Disk full: ..." until space is back, "Job store repaired: ..." after a
damaged store was set aside. It stays until it is over (a passing status message would be gone in seconds)."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from .adapter import EngineAdapter

SPACE_BACK_SECONDS = 10.0  # how long "Disk space is back" stays


class NodeNoticeLabel(QLabel):
    def __init__(self, adapter: EngineAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nodeNotice")
        self.setWordWrap(False)
        self.hide()
        self._clear = QTimer(self)
        self._clear.setSingleShot(True)
        self._clear.timeout.connect(self.hide)
        adapter.notice.connect(self.show_notice)
        if adapter.last_notice is not None and adapter.last_notice[0] != "disk_ok":  # said before we existed
            self.show_notice(*adapter.last_notice)

    def show_notice(self, kind: str, text: str) -> None:
        self._clear.stop()
        warning = kind in ("disk_full", "store_recovered")
        self.setStyleSheet("QLabel#nodeNotice { color: #b00020; font-weight: bold; }" if warning else "")
        self.setText(text)
        self.setToolTip(text)
        self.show()
        if not warning:
            self._clear.start(int(SPACE_BACK_SECONDS * 1000))
