"""A small real file system for disk-full tests: a tmpfs mounted for the test and unmounted after it.

Mounting needs root. Outside CI a test without it is skipped with the reason; under CI=true it fails instead, so
the disk-full tests cannot vanish silently from a CI run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MB = 1024 * 1024


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"disk-full tests need a tmpfs mount, and CI must run them: {reason}")
    pytest.skip(f"disk-full tests need a tmpfs mount: {reason}")


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int, *, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of `size_mb` MB at `path` (created), yield it, always unmount."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _unavailable("they run as root (mount -t tmpfs)")
    if shutil.which("mount") is None:
        _unavailable("no `mount` program")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}m" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        _unavailable(f"mount failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system holding `folder` with a ballast file until only `leave_bytes` stay free."""
    ballast = folder / "ballast.bin"
    free = shutil.disk_usage(folder).free
    size = max(0, free - leave_bytes)
    with open(ballast, "ab") as out:
        block = b"\0" * MB
        while size > 0:
            try:
                out.write(block[: min(size, MB)])
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            size -= min(size, MB)
    return ballast
