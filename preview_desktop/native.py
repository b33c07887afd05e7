"""Process-wide settings for the libraries under the renderer, applied once at start-up: before numpy loads and
before any thread starts (a value the user set in the environment always wins); and one for the interpreter's
exit.

- OpenBLAS (numpy's, and OpenCV's own copy) starts a thread per core at import, for matrix maths we never do;
  they cost ~2 % of a render's CPU (perf). One thread.
- glibc gives every thread that allocates its own malloc arena. A render's stage threads (decode-ahead, encoder,
  audio) each pass frames to another thread, so each arena keeps freed pictures of its own: one arena holds
  ~5 MB less at the peak of a 1080p render (163–164 MB → 158–159 MB, whole process, measured with
  `tests/bench/bench_render.py`). Allocation here is a few calls per frame, so the shared lock costs nothing
  measurable.
- pydantic looks for plugins in the entry points of every installed distribution when it builds the first model
  (~20 ms of start-up in a virtual environment). We use none, and a stray one must not change how specs validate.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def tune() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        _one_malloc_arena()


def _one_malloc_arena() -> None:
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc (musl has no arenas to cap): nothing to do
        pass


def skip_exit_collections() -> None:
    """Call once the process is about to end. Python's shutdown runs full garbage collections over every object
    left, and the imported libraries (pydantic's schemas, OTIO, numpy) leave ~10^5 of them: ~0.2 s of wall and CPU
    after a CLI render has finished, on one core. Frozen objects are never collected; files and handlers still
    close as usual (refcounting and atexit are untouched). Measured with `tests/bench/bench_render.py`."""
    gc.freeze()
