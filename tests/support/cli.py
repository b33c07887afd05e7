"""Running the real `preview-desktop` program in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)  # the isolated_env fixture has set DATA_DIR, PREVIEW_SETTINGS, PREVIEW_MEDIA_ROOTS
    env.update(extra or {})
    return env


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preview_desktop", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_worker(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "preview_desktop", "--worker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
    )


def wait_ready(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """Read the worker's stdout until its ready line."""
    import selectors
    import time

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        if sel.select(timeout=0.1):
            line = proc.stdout.readline()
            if "ready" in line:
                return line
    raise AssertionError("worker never printed its ready line")
