#!/usr/bin/env python3
"""Copy the Debian/Ubuntu copyright files of the system libraries a Linux bundle carries.

PyInstaller copies some libraries from the build machine (libxcb-*, libxkbcommon, glib, fontconfig ...) because
the Qt plugins need them. Their licences (mostly MIT and LGPL) require shipping their notices, which live in
/usr/share/doc/PACKAGE/copyright. Usage (build-tarball.sh runs it):

    collect_system_licences.py dist/preview-desktop build/preview-desktop

writes dist/preview-desktop/_internal/licenses/system/PACKAGE.copyright and an index.txt mapping each library to
its package. On a machine without dpkg it prints a note and exits 0: record the licences another way there.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path


def system_libraries(workdir: Path) -> list[tuple[str, str]]:
    """(bundle name, source path) of every collected binary that came from outside any Python environment."""
    toc = ast.literal_eval((workdir / "COLLECT-00.toc").read_text(encoding="utf-8"))
    entries = toc[0] if isinstance(toc, tuple) else toc
    result = []
    for dest, src, kind in entries:
        if kind != "BINARY" or "site-packages" in src or os.path.basename(src).startswith("libpython"):
            continue
        if src.startswith(("/lib", "/usr/lib", "/usr/local/lib")):
            result.append((dest, src))
    return sorted(result)


def owning_package(path: str) -> str | None:
    candidates = [path, os.path.realpath(path)]
    if path.startswith("/lib/"):  # merged /usr: dpkg may know the file under /usr/lib only
        candidates.append("/usr" + path)
    for candidate in candidates:
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, check=False)
        if out.returncode == 0 and ":" in out.stdout:
            return out.stdout.split(":", 1)[0].strip()
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bundle, workdir = Path(argv[0]), Path(argv[1])
    if not shutil.which("dpkg"):
        print("collect_system_licences: no dpkg here; system library licences not collected", file=sys.stderr)
        return 0
    target = bundle / "_internal" / "licenses" / "system"
    target.mkdir(parents=True, exist_ok=True)
    index: list[str] = []
    missing = 0
    for dest, src in system_libraries(workdir):
        package = owning_package(src)
        name = package.split(":")[0] if package else ""
        copyright_file = Path(f"/usr/share/doc/{name}/copyright")
        if name and copyright_file.is_file():
            shutil.copyfile(copyright_file, target / f"{name}.copyright")
            index.append(f"{dest}\t{package}")
        else:
            index.append(f"{dest}\t{package or 'unknown package'}\t(no copyright file found)")
            missing += 1
    (target / "index.txt").write_text(
        "Shared libraries copied from the build system, and the Debian package each came from.\n"
        "Each package's copyright file is in this folder as PACKAGE.copyright.\n\n" + "\n".join(index) + "\n",
        encoding="utf-8",
    )
    print(f"collect_system_licences: {len(index)} libraries, {missing} without a copyright file -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
