"""The X11 idle clock (presence/idle.py) on a real X server (Xvfb), with input simulated by xdotool."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from preview_desktop.presence.idle import open_idle_clock
from tests.support.xvfb import Xvfb, xvfb  # noqa: F401  (the fixture)

PROBE = """
import sys
from preview_desktop.presence.idle import IdleUnavailable, open_idle_clock
clock = open_idle_clock()
print("open", clock.idle_seconds(), flush=True)
sys.stdin.readline()  # the test kills the X server now
for _ in range(2):
    try:
        print("idle", clock.idle_seconds(), flush=True)
    except IdleUnavailable as exc:
        print("unavailable", exc, flush=True)
clock.close()
print("alive", flush=True)
"""


def test_the_idle_time_grows_and_input_resets_it(xvfb: Xvfb) -> None:  # noqa: F811
    clock = open_idle_clock(env={"DISPLAY": xvfb.display}, platform="linux")
    try:
        assert clock.method == "X11 screen saver extension"
        first = clock.idle_seconds()
        time.sleep(1.2)
        later = clock.idle_seconds()
        assert later >= first + 1.0, (first, later)
        xvfb.input()
        after_input = clock.idle_seconds()
        assert after_input < 0.5 <= later, (later, after_input)
        time.sleep(0.6)
        assert clock.idle_seconds() >= after_input + 0.4  # counting again from the input
    finally:
        clock.close()


def test_a_lost_x_server_is_an_error_not_an_exit(xvfb: Xvfb) -> None:  # noqa: F811
    """Xlib's default on a lost connection is exit(): a node must instead learn that it cannot tell."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "DISPLAY": xvfb.display})
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().startswith("open ")
    xvfb.stop()
    proc.stdin.write("\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=30)
    lines = out.splitlines()
    assert proc.returncode == 0, (out, err)
    assert [line.split()[0] for line in lines] == ["unavailable", "unavailable", "alive"], lines
