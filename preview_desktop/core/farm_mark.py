"""The mark a farm run leaves in the preview it publishes under DATA_DIR/previews: which BullMQ job it ran.

A farm node publishes a render into its own DATA_DIR/previews/{projectId}/{localId} and only then completes the
BullMQ job. Killed between the two, it leaves a whole preview that no job names while BullMQ re-runs the job
elsewhere. The mark (a small hidden file written into the staging folder, so it is published with the preview,
atomically) lets the node's orphan sweep (farm/orphans.py) ask Redis who won. Not an artifact: never listed, linked
or served (ARTIFACT_NAMES), and a local render never has one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

MARK_NAME = ".farm-job.json"


@dataclass(frozen=True)
class FarmMark:
    """The file's fields, camelCase as on the wire."""

    queue: str  # the BullMQ queue (PREVIEW_FARM_QUEUE)
    jobId: str  # the BullMQ job id
    nodeId: str  # the node that rendered it (its worker id)
    localId: str  # this folder's name: the run's local job id

    def write(self, folder: Path) -> None:
        (folder / MARK_NAME).write_text(json.dumps(asdict(self)), encoding="utf-8")


def read_mark(folder: Path) -> FarmMark | None:
    """The folder's mark; None for a local preview (no mark) or a mark that does not parse."""
    try:
        raw = json.loads((folder / MARK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw[k]
                                            for k in ("queue", "jobId", "nodeId", "localId")):
        return None
    return FarmMark(raw["queue"], raw["jobId"], raw["nodeId"], raw["localId"])
