"""A clock a test moves by hand: what the job stores, the farm standing and the engine's upkeep take as `clock`."""

from __future__ import annotations


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
