"""Paints the Progress column: a slim rounded bar with the percentage and ETA beside it.

A delegate, not a QProgressBar per row: 10,000 rows must cost nothing until they are on screen.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from .icons import STATE_COLORS
from .job_model import ProgressRole, StateRole

BAR_WIDTH = 72


class ProgressDelegate(QStyledItemDelegate):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        fraction, text = index.data(ProgressRole) or (None, "")
        state = index.data(StateRole) or ""
        style = option.widget.style() if option.widget is not None else None
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        if style is not None:  # background and selection as every other cell
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, option.widget)
        rect = option.rect.adjusted(8, 0, -6, 0)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_left = rect.left()
        if fraction is not None:
            bar = QRectF(rect.left(), rect.center().y() - 3, min(BAR_WIDTH, rect.width() * 0.45), 6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(128, 128, 128, 60))
            painter.drawRoundedRect(bar, 3, 3)
            if fraction > 0:
                done = QRectF(bar.left(), bar.top(), max(6.0, bar.width() * min(1.0, fraction)), bar.height())
                painter.setBrush(QColor(STATE_COLORS.get(state, STATE_COLORS["running"])))
                painter.drawRoundedRect(done, 3, 3)
            text_left = int(bar.right()) + 8
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        color = option.palette.color(role)
        if state in ("queued", "retrying") and not selected:
            color = option.palette.color(QPalette.ColorRole.PlaceholderText)
        painter.setPen(color)
        painter.setFont(option.font)
        text_rect = rect.adjusted(text_left - rect.left(), 0, 0, 0)
        shown = option.fontMetrics.elidedText(text, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)
        painter.restore()
