"""A real X server (Xvfb) per test, on a display number it picks itself, and simulated input with xdotool.

Xvfb and xdotool are Debian packages (scripts/setup-env.sh installs them). When one is missing the fixture fails
in CI (CI=true) and skips elsewhere, with the reason.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


class Xvfb:
    def __init__(self, proc: subprocess.Popen[bytes], display: str) -> None:
        self.proc = proc
        self.display = display  # ":N"
        self._x = 0

    def input(self) -> None:
        """The user touches the mouse: a real pointer motion on this display (a new position each time)."""
        self._x = (self._x + 37) % 600 + 10
        subprocess.run(["xdotool", "mousemove", str(self._x), str(self._x // 2 + 5)], check=True, timeout=10,
                       env={**os.environ, "DISPLAY": self.display}, capture_output=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_xvfb(timeout: float = 15.0) -> Xvfb:
    """Xvfb on a free display: `-displayfd` makes the server choose one and write its number once it listens."""
    for tool, package in (("Xvfb", "xvfb"), ("xdotool", "xdotool")):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed (apt-get install {package}); the idle-time tests need it")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    os.close(write_fd)
    text = b""
    deadline = time.monotonic() + timeout
    try:
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(0.0, left))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                proc.kill()
                proc.wait(10)
                raise AssertionError(f"Xvfb did not start within {timeout}s (exit code {proc.poll()})")
            text += chunk
    finally:
        os.close(read_fd)
    return Xvfb(proc, f":{int(text.strip())}")


@pytest.fixture
def xvfb() -> Iterator[Xvfb]:
    server = start_xvfb()
    yield server
    server.stop()
