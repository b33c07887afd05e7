"""The third-party notices: present, packaged with the app, and naming the obligations that matter.

A missing or stale notices file is a licence problem in every release, so it is checked with the unit tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from preview_desktop import __version__
from preview_desktop.about import NOTICES_FILE, notices_text, version_info

ROOT = Path(__file__).resolve().parents[2]


def test_notices_file_exists_and_is_read() -> None:
    assert NOTICES_FILE.is_file()
    text = notices_text()
    assert text.startswith("Preview Desktop ")
    assert len(text) > 10_000


def test_notices_are_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    package_data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"resources/*"' in package_data
    assert NOTICES_FILE.parent == ROOT / "preview_desktop" / "resources"


def test_notices_name_the_licence_obligations() -> None:
    text = notices_text()
    for needle in ("Qt", "PySide6", "LGPL-3.0", "GNU LESSER GENERAL PUBLIC LICENSE", "x264", "x265",
                   "GPL-2.0-or-later", "GNU GENERAL PUBLIC LICENSE", "OpenCV", "Apache", "FFmpeg",
                   "pyqtgraph", "OpenTimelineIO", "numpy"):
        assert needle in text, needle
    # the GPL consequence is stated plainly, not buried
    assert "THIS BUNDLE AS A WHOLE IS DISTRIBUTED UNDER GPL-COMPATIBLE TERMS" in text
    # ... and the program's own licence comes first
    assert "Preview Desktop itself is licensed under the GNU General Public License" in text.split("\n1. ", 1)[0]


def test_the_program_is_gpl_3_or_later() -> None:
    """The owner's decision: GPL-3.0-or-later, source and bundles. pyproject, LICENSE, AppStream and About agree."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "GPL-3.0-or-later"' in pyproject and 'license-files = ["LICENSE"]' in pyproject
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 3, 29 June 2007" in licence
    assert "<project_license>GPL-3.0-or-later</project_license>" in (
        ROOT / "resources" / "com.previewdesktop.PreviewDesktop.metainfo.xml").read_text(encoding="utf-8")
    assert version_info()["licence"] == "GPL-3.0-or-later"
    from preview_desktop.about import LICENCE_SUMMARY

    assert "GPL-3.0-or-later" in LICENCE_SUMMARY and "Proprietary" not in pyproject


def test_notices_list_the_runtime_dependencies() -> None:
    text = notices_text()
    for name in ("redis", "bullmq", "aiohttp", "prometheus_client", "diskcache", "platformdirs", "pydantic",
                 "qasync", "opencv-python-headless", "otio-cmx3600-adapter"):
        assert f"- {name} " in text, name


def test_version_info() -> None:
    info = version_info()
    assert info["version"] == __version__
    assert info["name"] == "Preview Desktop"
    assert "av" in info["libraries"]
    assert info["frozen"] is False


def test_about_module_imports_nothing_heavy() -> None:
    """The CLI may show these facts: reading them must not cost the half-second of Qt/av/cv2 imports."""
    code = ("import sys; from preview_desktop.about import version_info, notices_text; version_info(); "
            "notices_text(); print(sorted(m for m in ('av', 'cv2', 'numpy', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_about_dialog_shows_version_and_notices(qtbot: Any) -> None:
    from preview_desktop.ui.about_dialog import AboutDialog

    dialog = AboutDialog(None, ROOT / "data")
    qtbot.addWidget(dialog)
    from PySide6.QtWidgets import QLabel

    labels = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert f"Preview Desktop {__version__}" in labels
    assert "Licence: GPL-3.0-or-later" in labels and "GNU General Public License, version 3" in labels
    text = dialog.notices.toPlainText()
    assert "x264" in text and "LGPL-3.0" in text
    assert dialog.notices.isReadOnly()
