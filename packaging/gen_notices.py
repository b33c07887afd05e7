#!/usr/bin/env python3
"""Write preview_desktop/resources/THIRD_PARTY_NOTICES.txt from the installed distributions' metadata.

Why generated: the bundle holds whatever versions the build environment had, and their licence files change with
them. The hand-written part (the sections below for Qt, FFmpeg, OpenCV ...) explains the obligations that the
metadata cannot: what LGPL relinking means here, and what the GPL x264/x265 inside PyAV means for the bundle.

    python packaging/gen_notices.py            # rewrite the file
    python packaging/gen_notices.py --check    # exit 1 if the file is out of date (release workflow)

The PyInstaller spec imports `bundled_distributions()` from here, so the metadata it copies into the bundle and
the list in the notices are the same set.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import re
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "preview_desktop" / "resources" / "THIRD_PARTY_NOTICES.txt"
APP_DIST = "preview-desktop"
LICENSE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.I)
# Licence files that are code or build noise, not notices.
SKIP_FILE = re.compile(r"\.(py|pyc)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _app_requirements() -> list[str]:
    """The app's runtime requirements: from its installed metadata, else from pyproject.toml."""
    try:
        return list(md.requires(APP_DIST) or [])
    except md.PackageNotFoundError:
        import tomllib

        data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        return list(data["project"]["dependencies"])


def bundled_distributions() -> list[str]:
    """Normalised names of every distribution the bundle holds: the closure of the app's runtime requirements.

    Extras and requirements whose environment markers do not apply here are left out, as pip leaves them out.
    """
    from packaging.requirements import Requirement  # PyInstaller and pip both bring `packaging`

    seen: set[str] = {APP_DIST}
    todo = _app_requirements()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # not installed here: not bundled either
        seen.add(name)
        todo.extend(requires)
    return sorted(seen)


def _field(dist: md.Distribution, key: str) -> str:
    """One metadata field, '' when absent (PackageMetadata's `get` is not in every Python's typing)."""
    values = dist.metadata.get_all(key)
    return str(values[0]) if values else ""


def _licence_name(dist: md.Distribution) -> str:
    meta = dist.metadata
    expression = _field(dist, "License-Expression")
    if expression:
        return expression
    text = _field(dist, "License").strip()
    if text and "\n" not in text and len(text) < 80:
        return text
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return " / ".join(classifiers)
    return "see the licence text below" if text else "not stated in the package metadata"


def _homepage(dist: md.Distribution) -> str:
    """The project's source repository when declared (stabler than home pages, which may be a download page)."""
    urls: dict[str, str] = {}
    for url in dist.metadata.get_all("Project-URL") or []:
        label, _, link = url.partition(",")
        urls.setdefault(label.strip().lower(), link.strip())
    for label in ("source", "source code", "repository", "homepage", "home"):
        if urls.get(label):
            return urls[label]
    return _field(dist, "Home-page")


def _licence_files(dist: md.Distribution) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for item in dist.files or []:
        path = str(item)
        if ".dist-info/" not in path or not LICENSE_FILE.search(path) or SKIP_FILE.search(path):
            continue
        located = Path(str(item.locate()))
        if located.is_file():
            files.append((path.split(".dist-info/", 1)[1], located.read_text(encoding="utf-8", errors="replace")))
    return files


SECTIONS = """\
HOW THIS BUNDLE IS LICENSED - READ THIS FIRST
=============================================

Preview Desktop itself is licensed under the GNU General Public License, version 3 or (at your option) any
later version (GPL-3.0-or-later), the source and these bundles alike, WITHOUT ANY WARRANTY. The full text is
below and in the LICENSE file of the source and of the bundle. Its source: the project's repository, at the tag
of this version.

Preview Desktop ships as one folder (or .app, or installer) that contains the program, a Python runtime and the
libraries below. Each component keeps its own licence. Three of them shape what the bundle as a whole may be:

1. FFmpeg with libx264 and libx265, inside PyAV (GPL)
   PyAV's binary wheel (`av.libs/` on Linux and Windows, `av/.dylibs/` on macOS) contains FFmpeg
   (libavcodec, libavformat, libavutil, libavfilter, libavdevice, libswscale, libswresample) built together with
   libx264 and libx265. x264 and x265 are licensed under the GNU General Public License, version 2 or later, and
   an FFmpeg built with them is itself GPL. Preview Desktop loads these libraries into its own process to encode
   H.264. Therefore THIS BUNDLE AS A WHOLE IS DISTRIBUTED UNDER GPL-COMPATIBLE TERMS: whoever redistributes it
   must do so under the GNU General Public License, version 3 (GPL-3.0 is used rather than 2.0 because several
   components are Apache-2.0, which is compatible with GPL-3.0 only), including making the corresponding source
   code of the GPL components available. The other libraries in the same wheel are LGPL or permissive
   (dav1d BSD, libvpx BSD, opus BSD, SVT-AV1 BSD, mp3lame LGPL, opencore-amr Apache-2.0, gnutls/nettle LGPL,
   libwebp BSD, libxcb MIT).
   Sources: FFmpeg https://ffmpeg.org/ (legal notes https://ffmpeg.org/legal.html), x264
   https://www.videolan.org/developers/x264.html, x265 https://www.x265.org/, and PyAV's FFmpeg build scripts
   https://github.com/PyAV-Org/pyav-ffmpeg. The corresponding source of the exact versions in this bundle is
   available from the distributor of this bundle on request (GPL-3.0, section 6); the release process keeps a
   copy for every release.

2. Qt 6 and PySide6 (LGPL-3.0)
   The window, the headless worker's event loop and in-app video playback use Qt 6 through PySide6 and Shiboken6,
   which we use under the GNU Lesser General Public License, version 3 (https://www.gnu.org/licenses/lgpl-3.0.html,
   with the GPL-3.0 it builds on). Qt's sources: https://download.qt.io/official_releases/qt/ ; PySide6's:
   https://code.qt.io/cgit/pyside/pyside-setup.git/ . Qt is NOT linked statically: every Qt and PySide6 library
   is a separate shared library in the bundle (`PySide6/Qt/lib/` on Linux, `PySide6/` on Windows,
   `Contents/Frameworks/PySide6/Qt/lib/*.framework` on macOS), loaded at run time. To use a modified Qt, build the
   same Qt version with your changes and replace those files (and the matching plugins under `Qt/plugins/`); the
   program needs no relinking. Qt Multimedia plays previews through its own FFmpeg build (the `libav*` files next
   to the Qt libraries), which is LGPL-2.1-or-later and contains no GPL parts. Qt also bundles ICU (Unicode
   licence) and other third-party code listed at https://doc.qt.io/qt-6/licenses-used-in-qt.html .

3. OpenCV (Apache-2.0)
   Frame composition (fitting, dissolves, burn-ins) uses opencv-python-headless, Apache License 2.0. Its wheel
   bundles further libraries (its own LGPL FFmpeg, OpenBLAS BSD, libpng, libaom BSD, libvpx BSD, OpenSSL);
   their licences are in OpenCV's LICENSE-3RD-PARTY.txt, reproduced below.

Also in the bundle:
- Python itself (Python Software Foundation License), reproduced below.
- PyInstaller's bootloader (GPL-2.0 with the "Bootloader Exception", which permits distributing it with
  programs under any terms), reproduced below.
- numpy (BSD-3-Clause; its wheel bundles OpenBLAS and gfortran runtime libraries, BSD / GPL-3.0 with the GCC
  Runtime Library Exception), pyqtgraph (MIT), OpenTimelineIO and its CMX 3600 / FCP XML / FCPXML adapters
  (Apache-2.0), redis-py (MIT), bullmq (MIT), aiohttp (Apache-2.0), prometheus_client (Apache-2.0), diskcache
  (Apache-2.0), platformdirs (MIT), pydantic (MIT), qasync (BSD-2-Clause), and their dependencies - all listed
  below with their licence texts.
- On Linux, shared libraries from the build system that the Qt plugins need (libxcb-*, libxkbcommon, glib,
  fontconfig, freetype ...; MIT, LGPL-2.1+, FTL/GPL-2.0). Their copyright files are collected by the Linux build
  into `licenses/system/` next to this file.

Every bundled Python distribution's own metadata, including its licence files, also ships unmodified in its
`*.dist-info` folder inside the bundle.
"""


# Licences the wheels do not carry as files (PySide6's wheels have none) but whose text must ship with the bundle.
FULL_TEXTS = [
    ("LGPL-3.0.txt", "GNU Lesser General Public License 3.0 (Qt 6, PySide6, Shiboken6)"),
    ("GPL-3.0.txt", "GNU General Public License 3.0 (the bundle as a whole; x264, x265 and the FFmpeg in PyAV; "
                    "the LGPL-3.0 builds on it)"),
    ("LGPL-2.1.txt", "GNU Lesser General Public License 2.1 (FFmpeg libraries in Qt Multimedia and OpenCV)"),
]


def _python_licence() -> str:
    path = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _bootloader_licence() -> str:
    try:
        dist = md.distribution("pyinstaller")
    except md.PackageNotFoundError:
        return ""
    texts = [text for _name, text in _licence_files(dist)]
    return texts[0] if texts else ""


def render_notices(version: str) -> str:
    """The whole notices text, deterministic for a given set of installed distributions."""
    out: list[str] = [
        f"Preview Desktop {version} - third-party notices",
        "=" * 60,
        "",
        SECTIONS,
        "",
        "BUNDLED PYTHON DISTRIBUTIONS",
        "============================",
        "",
    ]
    dists = [md.distribution(name) for name in bundled_distributions() if name != APP_DIST]
    for dist in dists:
        name = dist.metadata["Name"]
        home = _homepage(dist)
        out.append(f"- {name} {dist.version}: {_licence_name(dist)}" + (f"  <{home}>" if home else ""))
    out += ["", "", "LICENCE TEXTS", "=============", "",
            "Identical texts are printed once and referred to by the name of the first component that carries it.",
            ""]
    printed: dict[str, str] = {}

    def emit(title: str, text: str) -> None:
        text = text.replace("\r\n", "\n").strip()
        if not text:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        out.append("-" * 100)
        if digest in printed:
            out.append(f"{title}: same text as {printed[digest]} above.")
            out.append("")
            return
        printed[digest] = title
        out.append(title)
        out.append("-" * 100)
        out.append(text)
        out.append("")

    for dist in dists:
        files = _licence_files(dist)
        if not files:
            out.append("-" * 100)
            out.append(f"{dist.metadata['Name']} {dist.version}: no licence file in its package; "
                       f"licence per metadata: {_licence_name(dist)}.")
            out.append("")
        for rel, text in files:
            emit(f"{dist.metadata['Name']} {dist.version} ({rel})", text)
    for file_name, title in FULL_TEXTS:
        emit(title, (ROOT / "packaging" / "licenses" / file_name).read_text(encoding="utf-8"))
    emit(f"Python {sys.version.split()[0]} (LICENSE.txt)", _python_licence())
    emit("PyInstaller bootloader (COPYING.txt)", _bootloader_licence())
    return "\n".join(out).rstrip() + "\n"


def _app_version() -> str:
    text = (ROOT / "preview_desktop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__ = "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    args = parser.parse_args(argv)
    text = render_notices(_app_version())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date: run packaging/gen_notices.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text) // 1024} KB, {len(bundled_distributions()) - 1} distributions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
