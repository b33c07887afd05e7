#!/usr/bin/env python3
"""Does this environment hold exactly what requirements/release.lock pins, for everything the bundle carries?

    python packaging/check_env.py            # print the differences, exit 0 (a developer's build)
    python packaging/check_env.py --strict   # exit 1 on any difference (release builds)

A release installs from the lock (`pip install --require-hashes -r requirements/release.lock`), so its bundle
holds the locked versions. A developer building from their own .venv gets whatever that holds; this says how it
differs, so nobody mistakes such a build for a release.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_notices import APP_DIST, ROOT, bundled_distributions

LOCK = ROOT / "requirements" / "release.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def differences() -> list[str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[_norm(match.group(1))] = match.group(2)
    wanted = [name for name in bundled_distributions() if name != APP_DIST] + ["pyinstaller"]
    out = []
    for name in wanted:
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if pins.get(name) != have:
            out.append(f"{name}: installed {have or 'nothing'}, locked {pins.get(name, 'nothing')}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when the environment differs from the lock")
    args = parser.parse_args()
    diff = differences()
    for line in diff:
        print(f"check_env: {line}", file=sys.stderr)
    if diff:
        print("check_env: this environment differs from requirements/release.lock: the bundle is not a release build"
              " (install with: pip install --require-hashes -r requirements/release.lock)", file=sys.stderr)
        return 1 if args.strict else 0
    print("check_env: the environment matches requirements/release.lock")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
