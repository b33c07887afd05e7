"""requirements/release.lock (what release builds install, with hashes) stays in step with pyproject.toml.

Offline and fast: every requirement of the app, of its `package` extra and of its build system must be pinned in
the lock at a version the requirement allows, and every pin must carry hashes. Change a dependency in
pyproject.toml without running packaging/update-lock and this fails, naming the requirement.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "release.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked_versions(lock_text: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in lock_text.splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def unhashed_pins(lock_text: str) -> list[str]:
    """Pins not followed by at least one `--hash=sha256:` line (pip's --require-hashes would refuse them)."""
    lines = lock_text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match and not (i + 1 < len(lines) and lines[i + 1].strip().startswith("--hash=sha256:")):
            bad.append(match.group(1))
    return bad


def release_requirements(pyproject_text: str, build_in_text: str) -> list[Requirement]:
    data = tomllib.loads(pyproject_text)
    names = list(data["project"]["dependencies"]) + list(data["project"]["optional-dependencies"]["package"])
    names += list(data["build-system"]["requires"])
    names += [line.split("#")[0].strip() for line in build_in_text.splitlines() if line.split("#")[0].strip()]
    return [Requirement(name) for name in names]


def lock_problems(pyproject_text: str, build_in_text: str, lock_text: str) -> list[str]:
    pins = locked_versions(lock_text)
    problems = []
    for req in release_requirements(pyproject_text, build_in_text):
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req} does not allow the locked {req.name}=={pinned}")
    return problems


def _inputs() -> tuple[str, str, str]:
    return ((ROOT / "pyproject.toml").read_text(encoding="utf-8"),
            (ROOT / "requirements" / "build.in").read_text(encoding="utf-8"), LOCK.read_text(encoding="utf-8"))


def test_the_lock_pins_every_release_requirement() -> None:
    problems = lock_problems(*_inputs())
    assert not problems, "requirements/release.lock is stale; run packaging/update-lock:\n" + "\n".join(problems)


def test_every_pin_has_hashes() -> None:
    lock = _inputs()[2]
    assert len(locked_versions(lock)) > 30
    assert unhashed_pins(lock) == []


def test_the_check_notices_a_dependency_change() -> None:
    """The check itself: a new dependency, or a range that excludes the locked version, is reported."""
    pyproject, build_in, lock = _inputs()
    added = pyproject.replace('"pydantic>=2.6,<3",', '"pydantic>=2.6,<3",\n    "rich>=13",', 1)
    narrowed = re.sub(r'"av>=[^"]*"', '"av>=99"', pyproject, count=1)
    assert added != pyproject and narrowed != pyproject
    assert lock_problems(added, build_in, lock) == ["rich>=13 is not in the lock"]
    assert [p for p in lock_problems(narrowed, build_in, lock) if p.startswith("av>=99")]


def test_the_committed_notices_list_the_locked_versions() -> None:
    """The tracked notices (what a source checkout's About shows) name the versions a release bundles, so a
    release build's generated notices and the committed ones agree on Linux (rerun packaging/gen_notices.py in an
    environment installed from the lock when this fails)."""
    notices = (ROOT / "preview_desktop" / "resources" / "THIRD_PARTY_NOTICES.txt").read_text(encoding="utf-8")
    section = notices.split("BUNDLED PYTHON DISTRIBUTIONS", 1)[1].split("LICENCE TEXTS", 1)[0]
    listed = dict(re.findall(r"^- (\S+) (\S+): ", section, flags=re.M))
    assert len(listed) > 30
    pins = locked_versions(_inputs()[2])
    wrong = {name: (version, str(pins.get(canonicalize_name(name)))) for name, version in listed.items()
             if Version(version) != pins.get(canonicalize_name(name))}
    assert not wrong, f"notices version != locked version: {wrong}"
