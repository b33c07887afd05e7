"""Running the real `preview-desktop` program in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO


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


_STDERR: dict[int, IO[str]] = {}


def start_worker(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `--worker`. Its stderr goes to a temporary file, not a pipe: an undrained pipe fills up and blocks
    the worker's logging (read it with `worker_stderr`)."""
    err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115  (lives as long as the worker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "preview_desktop", "--worker", *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
    )
    _STDERR[proc.pid] = err
    return proc


def worker_stderr(proc: subprocess.Popen[str]) -> str:
    err = _STDERR.get(proc.pid)
    if err is None:
        return ""
    err.seek(0)
    return err.read()


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
            raise AssertionError(f"worker exited with {proc.returncode}: {worker_stderr(proc)}")
        if sel.select(timeout=0.1):
            line = proc.stdout.readline()
            if "ready" in line:
                return line
    raise AssertionError("worker never printed its ready line")
