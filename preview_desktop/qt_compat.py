"""A guard against a reference-count bug in PySide6 6.12 on Python 3.11.

`SignalInstance.emit()` returns a reference to True (or False) without owning it, so every signal emitted from
Python — including each `loop.call_soon_threadsafe` in qasync, i.e. every progress report of a render — lowers
True's reference count by one. After a few thousand the interpreter aborts with "bool_dealloc: deallocating True
or False". True and False are static objects that are never freed; giving them a huge reference count is what
Python 3.12 does for every such object ("immortal"), and it makes the bug harmless. Call once, before threads start.
"""

from __future__ import annotations

import sys

_HEADROOM = 1 << 40


def protect_bools() -> None:
    if sys.version_info >= (3, 12):  # True and False are immortal there
        return
    import ctypes

    for obj in (True, False):
        refcount = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        if refcount.value < _HEADROOM:
            refcount.value += _HEADROOM
