"""native.tune: one OpenBLAS thread and one glibc malloc arena, unless the environment says otherwise; and the
entry freezing what is left before the interpreter's exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, os, sys, threading
if sys.argv[1] == "tune":
    from preview_desktop import native
    native.tune()
import numpy as np

def work():
    for _ in range(200):
        picture = np.ones(300_000, np.uint8)  # a 640x360 I420 frame's worth
        del picture

threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("PYDANTIC_DISABLE_PLUGINS"), flush=True)
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")


def _run(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "OPENBLAS_NUM_THREADS",
                                                                 "PYDANTIC_DISABLE_PLUGINS")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True,
                          text=True, check=True)
    assert "Traceback" not in done.stderr, done.stderr
    arenas = sum(line.startswith("Arena ") for line in done.stderr.splitlines())
    return done.stdout.strip(), arenas


@linux_only
def test_tune_caps_malloc_arenas_and_blas_threads() -> None:
    blas, untuned = _run("plain")
    assert untuned > 1, "threads that allocate get arenas of their own without the cap (the probe sees them)"
    blas, arenas = _run("tune")
    assert (blas, arenas) == ("1 __all__", 1)


@linux_only
def test_the_environment_wins() -> None:
    blas, arenas = _run("tune", MALLOC_ARENA_MAX="3", OPENBLAS_NUM_THREADS="2", PYDANTIC_DISABLE_PLUGINS="other")
    assert blas == "2 other"
    assert arenas > 1


EXIT_PROBE = """
import gc, sys
from preview_desktop.cli import main
rc = main(["--data-dir", sys.argv[1], "list"])
print("rc", rc, "frozen", gc.get_freeze_count(), flush=True)
"""


def test_the_entry_freezes_what_is_left_so_exit_skips_the_collections(tmp_path) -> None:
    """Python's shutdown collects every object left over (~0.2 s after a render); the entry freezes them first,
    and the command's own output still arrives whole."""
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE, str(tmp_path / "data")], capture_output=True,
                          text=True, check=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("rc 0 frozen "), done.stdout + done.stderr
    assert int(lines[-1].split()[-1]) > 10_000  # the imported modules' objects, not just a handful
