"""native.tune: one OpenBLAS thread and one glibc malloc arena, unless the environment says otherwise."""

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
print(os.environ.get("OPENBLAS_NUM_THREADS"), flush=True)
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")


def _run(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "OPENBLAS_NUM_THREADS")}
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
    assert (blas, arenas) == ("1", 1)


@linux_only
def test_the_environment_wins() -> None:
    blas, arenas = _run("tune", MALLOC_ARENA_MAX="3", OPENBLAS_NUM_THREADS="2")
    assert blas == "2"
    assert arenas > 1
