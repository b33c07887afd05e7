"""What a submission names and what it gets back: plain data shared by the job service and its consumers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .job import Job


@dataclass(frozen=True)
class PathSource:
    """A timeline or spec file named by a user (CLI argument, dropped file), with flags that override it."""

    argument: str
    cwd: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WireSource:
    """A spec as JSON data (an HTTP body): no current folder, relative paths resolve against the first root."""

    data: object


SpecSource = PathSource | WireSource


@dataclass(frozen=True)
class QueuedLocally:
    """A farm submission that went to the local queue instead, because the farm's Redis was unreachable."""

    job: Job
    reason: str  # one redacted line: why the farm could not take it


@dataclass(frozen=True)
class FarmSubmission:
    id: str  # the BullMQ job id
    state: str | None  # BullMQ's state right after adding (None when it could not be read)
