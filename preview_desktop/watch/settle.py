"""When a file in a watch folder is ready: its signature (size, mtime, inode) unchanged for the settle time.

Pure bookkeeping, no I/O: the watcher feeds it what it stats and asks which names are due. A file written in
pieces keeps changing its signature, so it is never due half-way; a file renamed into place is a new signature.
A version that was queued (or failed) is remembered, so the same bytes are never queued twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

Signature = tuple[int, int, int]  # size, mtime in ns, inode


def signature_of(stat: os.stat_result) -> Signature:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass
class _Pending:
    signature: Signature
    since: float  # when this signature was first seen (or a retry's earliest time)


class SettleTracker:
    """Per folder: name -> pending signature; name -> last handled signature."""

    def __init__(self, settle_seconds: float, handled: dict[str, Signature] | None = None) -> None:
        self.settle = settle_seconds
        self.handled: dict[str, Signature] = dict(handled or {})
        self._pending: dict[str, _Pending] = {}

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    def observe(self, name: str, signature: Signature | None, now: float) -> None:
        """What a stat found: None = gone (or not a file): nothing to queue, and a later file is new."""
        if signature is None:
            self._pending.pop(name, None)
            self.handled.pop(name, None)
            return
        if self.handled.get(name) == signature:
            self._pending.pop(name, None)
            return
        current = self._pending.get(name)
        if current is None or current.signature != signature:
            self._pending[name] = _Pending(signature, now)

    def due(self, now: float) -> list[tuple[str, Signature]]:
        """Names whose signature held for the settle time; empty files wait (exports start empty)."""
        return [(name, p.signature) for name, p in self._pending.items()
                if now - p.since >= self.settle and p.signature[0] > 0]

    def done(self, name: str, signature: Signature) -> None:
        self.handled[name] = signature
        self._pending.pop(name, None)

    def later(self, name: str, retry_at: float) -> None:
        """Try again no sooner than `retry_at` (the store was busy or full)."""
        pending = self._pending.get(name)
        if pending is not None:
            pending.since = retry_at - self.settle
