"""The operating system's last-input time: how long the user of this computer has been away from it.

Each system's own interface, through ctypes (no Qt, no extra package):
  X11      the screen saver extension (libXss: XScreenSaverQueryInfo) on $DISPLAY
  Windows  user32 GetLastInputInfo, against kernel32 GetTickCount
  macOS    CoreGraphics CGEventSourceSecondsSinceLastEventType
A Wayland session has no common interface for it, and XWayland's X server sees only the input that X11 programs
get: there the clock is unavailable (the caller must then assume the user is present). Every failure is one
`IdleUnavailable` with a reason a person can act on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol


class IdleUnavailable(Exception):
    """This computer's idle time cannot be read here (the message says why)."""


class IdleClock(Protocol):
    """Seconds since the user's last input (keyboard, mouse, touch)."""

    @property
    def method(self) -> str: ...  # how it is read, for the log
    def idle_seconds(self) -> float: ...  # raises IdleUnavailable once the source is gone
    def close(self) -> None: ...


def open_idle_clock(env: Mapping[str, str] | None = None, platform: str | None = None) -> IdleClock:
    """The clock for this system; IdleUnavailable with the reason when none works."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform == "win32":
        return WindowsIdleClock()
    if platform == "darwin":
        return MacIdleClock()
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        raise IdleUnavailable("a Wayland session has no common last-input interface (XWayland sees only the input "
                              "of X11 programs)")
    display = env.get("DISPLAY", "")
    if not display:
        raise IdleUnavailable("no X11 display (DISPLAY is not set)")
    return X11IdleClock(display)


# ---------------------------------------------------------------------------------------------- X11
class _XScreenSaverInfo(ctypes.Structure):
    _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int), ("kind", ctypes.c_int),
                ("til_or_since", ctypes.c_ulong), ("idle", ctypes.c_ulong), ("eventMask", ctypes.c_ulong)]


_IOExitHandler = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_IOErrorHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _XIOErrors:
    """Xlib's I/O error handler is process-wide, and libX11 1.8's default prints and calls exit(). Ours returns
    for the displays of our clocks (each one's exit handler then marks it dead) and hands any other display to
    the handler that was there before, so the rest of the process (Qt's own connection) keeps its behaviour."""

    def __init__(self) -> None:
        self.ours: set[int] = set()
        self._previous: Any = None
        self._installed: Any = None

    def install(self, x11: Any) -> None:
        if self._installed is not None:
            return
        self._installed = _IOErrorHandler(self._handle)
        x11.XSetIOErrorHandler.restype = ctypes.c_void_p
        x11.XSetIOErrorHandler.argtypes = [_IOErrorHandler]
        previous = x11.XSetIOErrorHandler(self._installed)
        self._previous = _IOErrorHandler(previous) if previous else None

    def _handle(self, display: int | None) -> int:
        if display in self.ours or self._previous is None:
            return 0
        return int(self._previous(display))


_IO_ERRORS = _XIOErrors()


def _load(names: tuple[str, ...], base: str, what: str) -> Any:
    """The first of `names` that loads, else what the system's library search finds for `base`."""
    found = ctypes.util.find_library(base) if base else None
    for name in (*names, *([found] if found else [])):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise IdleUnavailable(f"{what} is not installed")


class X11IdleClock:
    """XScreenSaverQueryInfo's `idle` (milliseconds since the last input on the display).

    A lost X server must not end the process: by default Xlib calls exit() on an I/O error. libX11 1.7+ lets a
    program replace that exit (XSetIOErrorExitHandler); ours marks the clock dead and returns. Older libX11
    without it: the default stays, as for any X11 program."""

    method = "X11 screen saver extension"

    def __init__(self, display: str) -> None:
        self._x11 = _load(("libX11.so.6",), "X11", "libX11 (the X11 client library)")
        self._xss = _load(("libXss.so.1",), "Xss", "libXss (the X11 screen saver extension library, "
                          "Debian/Ubuntu: libxss1)")
        x11, xss = self._x11, self._xss
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ctypes.c_ulong
        x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        x11.XFree.argtypes = [ctypes.c_void_p]
        xss.XScreenSaverQueryExtension.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                                   ctypes.POINTER(ctypes.c_int)]
        xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_XScreenSaverInfo)
        xss.XScreenSaverQueryInfo.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XScreenSaverInfo)]
        self._dead = False
        self._info: ctypes._Pointer[_XScreenSaverInfo] | None = None  # allocated once the extension is known
        self._exit_handler = _IOExitHandler(self._on_io_error)  # kept: Xlib holds only the C pointer
        self._display = x11.XOpenDisplay(display.encode())
        if not self._display:
            raise IdleUnavailable(f"cannot open the X11 display {display!r}")
        if hasattr(x11, "XSetIOErrorExitHandler"):
            x11.XSetIOErrorExitHandler.argtypes = [ctypes.c_void_p, _IOExitHandler, ctypes.c_void_p]
            x11.XSetIOErrorExitHandler(self._display, self._exit_handler, None)
            _IO_ERRORS.ours.add(self._display)
            _IO_ERRORS.install(x11)
        base, error = ctypes.c_int(), ctypes.c_int()
        if not xss.XScreenSaverQueryExtension(self._display, ctypes.byref(base), ctypes.byref(error)):
            self.close()
            raise IdleUnavailable(f"the X11 display {display!r} has no screen saver extension (MIT-SCREEN-SAVER)")
        self._root = x11.XDefaultRootWindow(self._display)
        self._info = xss.XScreenSaverAllocInfo()
        self._name = display

    def _on_io_error(self, _display: object, _data: object) -> None:
        self._dead = True  # returning instead of exiting; the connection is not used again

    def idle_seconds(self) -> float:
        info = self._info
        if self._dead or not self._display or info is None:
            raise IdleUnavailable(f"the X11 display {self._name!r} went away")
        if not self._xss.XScreenSaverQueryInfo(self._display, self._root, info) or self._dead:
            self._dead = True
            raise IdleUnavailable(f"the X11 display {self._name!r} does not answer")
        return float(info.contents.idle) / 1000.0

    def close(self) -> None:
        if self._info:
            self._x11.XFree(self._info)
            self._info = None
        if self._display and not self._dead:
            self._x11.XCloseDisplay(self._display)
            _IO_ERRORS.ours.discard(self._display)  # a dead one stays listed: Xlib may report it again
        self._display = None


# ---------------------------------------------------------------------------------------------- Windows
class _LastInputInfo(ctypes.Structure):
    _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint32)]


class WindowsIdleClock:
    """GetLastInputInfo: the tick count (ms since boot, 32 bits) of the session's last input."""

    method = "Windows GetLastInputInfo"

    def __init__(self) -> None:
        windll: Any = getattr(ctypes, "windll", None)
        if windll is None:
            raise IdleUnavailable("GetLastInputInfo needs Windows")
        self._user32, self._kernel32 = windll.user32, windll.kernel32
        self._kernel32.GetTickCount.restype = ctypes.c_uint32
        self._info = _LastInputInfo(cbSize=ctypes.sizeof(_LastInputInfo))

    def idle_seconds(self) -> float:
        if not self._user32.GetLastInputInfo(ctypes.byref(self._info)):
            raise IdleUnavailable("GetLastInputInfo failed (no interactive session?)")
        return ((self._kernel32.GetTickCount() - self._info.dwTime) & 0xFFFFFFFF) / 1000.0  # wraps after 49 days

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- macOS
_CG_COMBINED_SESSION_STATE = 0  # kCGEventSourceStateCombinedSessionState
_CG_ANY_INPUT_EVENT = 0xFFFFFFFF  # kCGAnyInputEventType


class MacIdleClock:
    """CGEventSourceSecondsSinceLastEventType for any input event in the login session."""

    method = "macOS CoreGraphics event source"

    def __init__(self) -> None:
        graphics = _load(("/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics",
                          "/System/Library/Frameworks/ApplicationServices.framework/ApplicationServices"),
                         "", "CoreGraphics")
        since = graphics.CGEventSourceSecondsSinceLastEventType
        since.restype = ctypes.c_double
        since.argtypes = [ctypes.c_int32, ctypes.c_uint32]  # CGEventSourceStateID, CGEventType
        self._since: Callable[[int, int], float] = since

    def idle_seconds(self) -> float:
        return float(self._since(_CG_COMBINED_SESSION_STATE, _CG_ANY_INPUT_EVENT))

    def close(self) -> None:
        pass
