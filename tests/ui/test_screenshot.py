"""`preview-desktop --screenshot PNG`: the real program, in a subprocess, writes a real picture and exits 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from preview_desktop.queue.local import LocalStore
from tests.support.cli import run_cli
from tests.ui.populate import populate


def distinct_colours(image: QImage, step: int = 7) -> int:
    seen = set()
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            seen.add(image.pixel(x, y))
    return len(seen)


def test_screenshot_of_a_populated_data_dir(data_dir: Path, tmp_path: Path, qapp: Any) -> None:
    populate(data_dir)
    store = LocalStore(data_dir / "queue")
    before = {j.id: j.state for j in store.list_jobs()}
    store.close()
    out = tmp_path / "shots" / "window.png"
    result = run_cli("--screenshot", str(out), env={"QT_QPA_PLATFORM": "offscreen"}, timeout=90)
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert not image.isNull() and image.width() >= 1000 and image.height() >= 600
    assert distinct_colours(image) > 200, "the picture is (nearly) blank"
    store = LocalStore(data_dir / "queue")
    after = {j.id: j.state for j in store.list_jobs()}
    store.close()
    assert after == before  # looking does not render, reap or change anything


def test_screenshot_of_an_empty_data_dir(tmp_path: Path, qapp: Any) -> None:
    out = tmp_path / "empty.png"
    result = run_cli("--screenshot", str(out), env={"QT_QPA_PLATFORM": "offscreen"}, timeout=90)
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert not image.isNull() and distinct_colours(image) > 20
