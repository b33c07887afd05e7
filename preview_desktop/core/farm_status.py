"""What the farm looks like from outside: its nodes, the farm jobs they run, the queue's counts.

Plain data (no Qt, no Redis objects, no secrets) so the window, the API and the job service can show it without
importing the farm package.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any


class NodeState:
    """Whether a node takes farm jobs now (`NodeInfo.state`, `FarmStatus.state`, GET /v1/farm): plain strings on
    the wire. The operator's drain wins over a rest, and both win over workstation mode's states."""

    LENDING = "lending"  # takes farm jobs
    IDLE_ONLY_ACTIVE = "idle-only-active"  # workstation mode (PREVIEW_FARM_WHEN=idle) and its user is active
    IDLE_ONLY_UNKNOWN = "idle-only-unknown"  # workstation mode, but the user's idle time cannot be read: no farm work
    NEVER = "never"  # PREVIEW_FARM_WHEN=never: a client of the farm only
    RESTING = "resting"  # failed farm jobs in a row: takes none until its cool-down ends (farm/standing.py)
    DRAINING = "draining"  # the operator's word: finishes what it runs, takes no more (farm/standing.py)

    ALL = (LENDING, IDLE_ONLY_ACTIVE, IDLE_ONLY_UNKNOWN, NEVER, RESTING, DRAINING)
    NOT_TAKING = frozenset({IDLE_ONLY_ACTIVE, IDLE_ONLY_UNKNOWN, NEVER, RESTING, DRAINING})


@dataclass
class FarmJobInfo:
    """A farm job running on a node, as the registry shows it."""

    jobId: str
    name: str
    projectId: str | None
    startedAt: float
    frame: int = 0
    frames: int = 0
    percent: float = 0.0
    attempt: int = 1


@dataclass
class NodeInfo:
    nodeId: str
    host: str
    pid: int
    version: str
    capacity: int
    running: list[FarmJobInfo] = field(default_factory=list)
    localRunning: int = 0
    api: str | None = None
    heartbeat: float = 0.0  # unix seconds
    seat: str = ""  # the node across restarts (host + DATA_DIR digest): a drain is kept for the seat
    state: str = NodeState.LENDING  # NodeState; older nodes publish none: they always lend
    stateReason: str | None = None  # why, in words (e.g. "you are active; lent once you are away for 10 min")
    restingUntil: float | None = None  # unix seconds, while resting

    @property
    def takes_jobs(self) -> bool:
        return self.state not in NodeState.NOT_TAKING

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeInfo:
        data = json.loads(text)
        running = [FarmJobInfo(**j) for j in data.pop("running", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(running=running, **known)


@dataclass
class FarmStatus:
    """What the window's Farm view and the API show. Plain data: no Qt, no Redis objects, no secrets."""

    url: str  # redacted
    queue: str
    connected: bool
    error: str | None = None
    nodes: list[NodeInfo] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    updated: float = field(default_factory=time.time)
    nodeId: str | None = None  # this node's id on the farm (None: read from outside, by a client)
    state: str | None = None  # this node's NodeState, as it is now (None: read from outside)
    stateReason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)
