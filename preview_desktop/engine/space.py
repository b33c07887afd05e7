"""A full disk seen by the engine: said once (a log line and a NodeNotice for the window), cleared once.

Store writes that meet a full disk (DiskFull from the store) are not lost: `patiently` runs them again every
`pause` seconds until they land, so the record of a finished attempt reaches the store once space is back, and
the engine's loops live through the outage instead of dying with their task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..core.events import EventHub, NodeNotice
from ..errors import DiskFull

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_RETRY_SECONDS = 2.0  # between two tries of a store write that met a full disk


class SpaceWatch:
    def __init__(self, events: EventHub, pause: float = STORE_RETRY_SECONDS) -> None:
        self.events = events
        self.pause = pause
        self.full: str | None = None  # the last "disk full: ..." reason while the disk is full

    def saw_full(self, reason: str) -> None:
        """A write failed for space (a render or a store write). Says so once per outage."""
        first = self.full is None
        self.full = reason
        if first:
            log.warning("%s; jobs wait for space and run again by themselves", reason)
        text = "Disk full: " + reason.removeprefix("disk full: ") + " (jobs wait and run again by themselves)"
        self.events.emit(NodeNotice("disk_full", text))

    def saw_space(self) -> None:
        """A write went through: if the disk was full, it is not any more."""
        if self.full is not None:
            self.full = None
            log.info("disk space is back: jobs run again")
            self.events.emit(NodeNotice("disk_ok", "Disk space is back"))

    async def patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a store write until it lands: DiskFull waits `pause` seconds and tries again."""
        failed = False
        while True:
            try:
                result = await call()
            except DiskFull as exc:
                failed = True
                self.saw_full(str(exc))
                await asyncio.sleep(self.pause)
                continue
            if failed:
                self.saw_space()
            return result
