"""State icons and the application icon, drawn with QPainter so they stay crisp at any scale and ship no files."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

# One palette for the table, the detail pane, the tray and the metrics dock, so a colour means one thing.
STATE_COLORS: dict[str, str] = {
    "queued": "#8a94a6",
    "running": "#3b82f6",
    "cancelling": "#3b82f6",
    "retrying": "#f59e0b",
    "succeeded": "#22a55b",
    "failed": "#e5484d",
    "cancelled": "#9ca3af",
    "superseded": "#a78bfa",
}
OUTCOME_COLORS = {"success": "#22a55b", "failure": "#e5484d", "retry": "#f59e0b", "cancelled": "#9ca3af"}


def _pen(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def _draw_state(p: QPainter, state: str, size: float) -> None:
    color = QColor(STATE_COLORS.get(state, "#8a94a6"))
    s = size
    r = QRectF(1, 1, s - 2, s - 2)
    white = QColor("#ffffff")
    if state == "queued":
        p.setPen(_pen(color, s * 0.11))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(r.adjusted(s * 0.05, s * 0.05, -s * 0.05, -s * 0.05))
        c = r.center()
        p.drawLine(c, QPointF(c.x(), c.y() - s * 0.25))
        p.drawLine(c, QPointF(c.x() + s * 0.18, c.y()))
        return
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    p.drawEllipse(r)
    p.setPen(_pen(white, s * 0.12))
    p.setBrush(Qt.BrushStyle.NoBrush)
    c = r.center()
    if state in ("running", "cancelling"):
        tri = QPainterPath()
        tri.moveTo(c.x() - s * 0.13, c.y() - s * 0.2)
        tri.lineTo(c.x() + s * 0.22, c.y())
        tri.lineTo(c.x() - s * 0.13, c.y() + s * 0.2)
        tri.closeSubpath()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(white)
        p.drawPath(tri)
    elif state == "retrying":
        arc = r.adjusted(s * 0.27, s * 0.27, -s * 0.27, -s * 0.27)
        p.drawArc(arc, 60 * 16, 270 * 16)
        p.drawLine(QPointF(arc.right(), arc.top() - s * 0.02), QPointF(arc.right(), arc.top() + s * 0.16))
    elif state == "succeeded":
        path = QPainterPath()
        path.moveTo(c.x() - s * 0.2, c.y())
        path.lineTo(c.x() - s * 0.05, c.y() + s * 0.15)
        path.lineTo(c.x() + s * 0.22, c.y() - s * 0.14)
        p.drawPath(path)
    elif state == "failed":
        d = s * 0.16
        p.drawLine(QPointF(c.x() - d, c.y() - d), QPointF(c.x() + d, c.y() + d))
        p.drawLine(QPointF(c.x() + d, c.y() - d), QPointF(c.x() - d, c.y() + d))
    elif state == "superseded":
        p.drawLine(QPointF(c.x() - s * 0.2, c.y()), QPointF(c.x() + s * 0.18, c.y()))
        p.drawLine(QPointF(c.x() + s * 0.05, c.y() - s * 0.13), QPointF(c.x() + s * 0.2, c.y()))
        p.drawLine(QPointF(c.x() + s * 0.05, c.y() + s * 0.13), QPointF(c.x() + s * 0.2, c.y()))
    else:  # cancelled
        p.drawLine(QPointF(c.x() - s * 0.2, c.y()), QPointF(c.x() + s * 0.2, c.y()))


def _render(draw: object, state: str, logical: int = 16, scale: int = 2) -> QPixmap:
    pix = QPixmap(logical * scale, logical * scale)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    _draw_state(p, state, logical * scale)
    p.end()
    pix.setDevicePixelRatio(scale)
    return pix


@cache
def state_icon(state: str) -> QIcon:
    """Cached: the table asks for an icon on every paint of every visible row."""
    icon = QIcon()
    for logical in (16, 24, 32):
        icon.addPixmap(_render(_draw_state, state, logical))
    return icon


def app_icon(fraction: float | None = None, paused: bool = False) -> QIcon:
    """A film frame with a play mark; with `fraction`, a progress ring around it (the tray shows overall progress)."""
    size = 64
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    frame = QRectF(10, 14, 44, 36)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1f2937"))
    p.drawRoundedRect(frame, 7, 7)
    tri = QPainterPath()
    tri.moveTo(27, 23)
    tri.lineTo(42, 32)
    tri.lineTo(27, 41)
    tri.closeSubpath()
    p.setBrush(QColor("#f59e0b" if paused else "#3b82f6"))
    p.drawPath(tri)
    if fraction is not None:
        ring = QRectF(3, 3, size - 6, size - 6)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(_pen(QColor(0, 0, 0, 50), 5))
        p.drawEllipse(ring)
        p.setPen(_pen(QColor("#22a55b"), 5))
        p.drawArc(ring, 90 * 16, -int(360 * 16 * max(0.0, min(1.0, fraction))))
    p.end()
    return QIcon(pix)
