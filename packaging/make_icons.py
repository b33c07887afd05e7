#!/usr/bin/env python3
"""Render resources/icons/preview-desktop.svg into the PNG sizes, the Windows .ico and the macOS .icns.

Uses PySide6's QSvgRenderer (already a dependency) so no image library is added. The .ico and .icns containers
are written by hand: both simply hold PNG images behind a small header, which every supported OS version reads.
On a Mac, `iconutil -c icns preview-desktop.iconset` makes an equivalent .icns from the same PNGs.

    python packaging/make_icons.py          # rewrites resources/icons/*.png, .ico, .icns
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
SOURCE = ICONS / "preview-desktop.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# icns element types that take PNG data: (type, pixel size)
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512),
    (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512),
)


def render_png(size: int) -> bytes:
    """The SVG at `size` x `size` pixels, as PNG bytes (transparent background, antialiased)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SOURCE}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stub wants bytes, the binding a str
    buffer.close()
    return bytes(data.data())


def write_ico(path: Path, images: dict[int, bytes]) -> None:
    """ICONDIR + one ICONDIRENTRY per size + the PNG payloads (PNG-in-ICO, Windows Vista and later)."""
    sizes = sorted(images)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, payload = b"", b""
    for size in sizes:
        png = images[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in the ICO format
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset + len(payload))
        payload += png
    path.write_bytes(header + entries + payload)


def write_icns(path: Path, images: dict[int, bytes]) -> None:
    """'icns' + total length, then (type, length, PNG) elements; lengths include their 8-byte headers."""
    body = b""
    for kind, size in ICNS_TYPES:
        pixels = size * 2 if kind in (b"ic11", b"ic12", b"ic13", b"ic14") else size
        png = images[pixels]
        body += kind + struct.pack(">I", len(png) + 8) + png
    path.write_bytes(b"icns" + struct.pack(">I", len(body) + 8) + body)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    needed = set(PNG_SIZES) | set(ICO_SIZES) | {1024} | {size for _kind, size in ICNS_TYPES}
    images = {size: render_png(size) for size in sorted(needed | {size * 2 for _k, size in ICNS_TYPES if size <= 512})}
    for size in PNG_SIZES:
        (ICONS / f"preview-desktop-{size}.png").write_bytes(images[size])
    write_ico(ICONS / "preview-desktop.ico", {size: images[size] for size in ICO_SIZES})
    write_icns(ICONS / "preview-desktop.icns", images)
    # The packaged copy the window uses for its window icon (package data travels with the wheel and the bundle).
    package_icon = ROOT / "preview_desktop" / "resources" / "preview-desktop.png"
    package_icon.write_bytes(images[256])
    for name in sorted(p.name for p in ICONS.iterdir()):
        print(f"{name:32} {(ICONS / name).stat().st_size:>8} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
