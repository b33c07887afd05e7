"""Workstation mode: this node takes farm jobs only while its user is away (PREVIEW_FARM_WHEN=idle).

`decide` is the policy, pure: the mode, the threshold and the last idle reading give a NodeState and its reason.
`Lending` applies it: it reads the operating system's idle clock (presence/idle.py) every `poll_s` on a thread of
its own (an X server round trip must never stall the event loop, nor a render thread), and tells its listeners, on
the loop, when the decision changes. The farm's fetch loops take jobs only while it is open (a FetchGate,
farm/fetching.py); the farm member hands running farm renders back to the queue when it closes.

A node that cannot read its user's idle time does not lend itself in idle mode: lending a computer to the farm
while someone works at it is the one thing workstation mode promises not to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..core.farm_status import NodeState
from ..settings import FARM_WHEN_CHOICES
from .idle import IdleClock, IdleUnavailable, open_idle_clock

log = logging.getLogger("preview_desktop.farm")

ALWAYS, IDLE, NEVER = "always", "idle", "never"
WHEN_CHOICES = FARM_WHEN_CHOICES


@dataclass(frozen=True)
class Decision:
    state: str  # NodeState
    reason: str

    @property
    def lends(self) -> bool:
        return self.state == NodeState.LENDING


def minutes_text(minutes: float) -> str:
    if minutes >= 1 and float(minutes).is_integer():
        return f"{int(minutes)} min"
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:g} min"


def decide(when: str, idle_minutes: float, idle_s: float | None, unavailable: str | None = None) -> Decision:
    """The lending decision. Reasons are stable while the state holds (they do not count seconds), so a change
    of decision is a change worth telling."""
    if when == ALWAYS:
        return Decision(NodeState.LENDING, "lent to the farm at all times")
    if when == NEVER:
        return Decision(NodeState.NEVER, "never takes farm jobs (farm setting: never)")
    away = minutes_text(idle_minutes)
    if idle_s is None:
        return Decision(NodeState.IDLE_ONLY_UNKNOWN,
                        f"cannot tell whether you are away ({unavailable or 'no idle clock'}), so it is not lent")
    if idle_s >= idle_minutes * 60:
        return Decision(NodeState.LENDING, f"lent while you are away (no input for {away} or more)")
    return Decision(NodeState.IDLE_ONLY_ACTIVE, f"you are active; lent once you are away for {away}")


class Lending:
    """The lending policy, live. Methods are called on the event loop; the clock is read on its own thread."""

    def __init__(self, when: str, idle_minutes: float, *, clock: Callable[[], IdleClock] = open_idle_clock,
                 poll_s: float = 0.5, retry_s: float = 10.0) -> None:
        self._when = when
        self._minutes = idle_minutes
        self._open_clock = clock
        self.poll_s = poll_s
        self._retry_s = retry_s
        self._clock: IdleClock | None = None
        self._unavailable: str | None = None  # why the clock cannot be read (said once in the log)
        self._said_clock = False
        self._next_open = 0.0  # loop time of the next attempt to open the clock
        self._listeners: list[Callable[[], None]] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idle-clock")  # one thread: Xlib
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._wake = asyncio.Event()
        initial = None if when == IDLE else 0.0
        self.decision = decide(when, idle_minutes, initial, "not read yet")
        self.idle_s: float | None = None  # the last reading (None: none, or unavailable)

    # ------------------------------------------------------------------ FetchGate (farm/fetching.py)
    def open(self) -> bool:
        return self.decision.lends

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    @property
    def state(self) -> str:
        return self.decision.state

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def when(self) -> str:
        return self._when

    @property
    def idle_minutes(self) -> float:
        return self._minutes

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Reads once before returning, so the farm starts with the right decision."""
        await self.poll_once()
        self._task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        closing = asyncio.wrap_future(self._thread.submit(self._close_clock))  # after any reading under way
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(closing, 2.0)  # a hung X server must not hold up the node's stop
        self._thread.shutdown(wait=False)

    def _close_clock(self) -> None:
        clock, self._clock = self._clock, None
        if clock is not None:
            with contextlib.suppress(Exception):
                clock.close()

    def configure(self, when: str, idle_minutes: float) -> None:
        """The window's settings dialog: applies at the next poll (woken now)."""
        if when not in WHEN_CHOICES:
            raise ValueError(f"farm lending must be one of {', '.join(WHEN_CHOICES)}, got {when!r}")
        self._when, self._minutes = when, idle_minutes
        if when != IDLE or self.idle_s is not None or self._unavailable is not None:
            self._apply(decide(when, idle_minutes, self.idle_s if when == IDLE else 0.0, self._unavailable))
        # else: never read yet; the decision holds until the reading the poller makes now (no needless hand-back)
        self._wake.set()

    # ------------------------------------------------------------------ polling
    async def _poll_loop(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the loop die: the decision keeps its last value
                log.exception("farm: reading the idle time failed")

    async def poll_once(self) -> Decision:
        if self._when == IDLE:
            loop = asyncio.get_running_loop()
            now = loop.time()
            retry = self._clock is None and now >= self._next_open
            if retry:
                self._next_open = now + self._retry_s
            idle_s, unavailable = await loop.run_in_executor(self._thread, self._read, retry)
            self.idle_s = idle_s
            self._say(unavailable)
        self._apply(decide(self._when, self._minutes, self.idle_s if self._when == IDLE else 0.0, self._unavailable))
        return self.decision

    def _read(self, may_open: bool) -> tuple[float | None, str | None]:
        """On the clock's thread: (idle seconds, None) or (None, why not)."""
        if self._clock is None:
            if not may_open:
                return None, self._unavailable
            try:
                self._clock = self._open_clock()
            except IdleUnavailable as exc:
                return None, str(exc)
        try:
            return self._clock.idle_seconds(), None
        except IdleUnavailable as exc:
            clock, self._clock = self._clock, None
            with contextlib.suppress(Exception):
                clock.close()
            return None, str(exc)

    def _say(self, unavailable: str | None) -> None:
        """The clock's state in the log, once per change (not once per poll)."""
        if unavailable is not None and unavailable != self._unavailable:
            log.warning("farm: workstation mode cannot tell whether the user is away (%s); this computer takes no "
                        "farm jobs until it can", unavailable)
        elif unavailable is None and self._clock is not None and not self._said_clock:
            log.info("farm: workstation mode reads the user's idle time through the %s", self._clock.method)
        self._said_clock = unavailable is None
        self._unavailable = unavailable

    def _apply(self, decision: Decision) -> None:
        if decision == self.decision:
            return
        self.decision = decision
        log.info("farm: %s: %s", "lending this computer" if decision.lends else "not lending this computer",
                 decision.reason)
        for callback in list(self._listeners):
            callback()
