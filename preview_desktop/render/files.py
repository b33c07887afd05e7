"""File and digest helpers shared by the renderer and the output cache.

Standard library only: the CLI's output-cache hit path imports this and must not pull in numpy, av or cv2.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_hex(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB blocks (previews and timelines can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """"sha256:<hex>": a timeline's digest in preview.json and in the output cache's keys."""
    return "sha256:" + sha256_hex(path)


def json_digest(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces, ASCII): the same data gives the same key anywhere."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_preview_json(folder: Path, document: Any) -> None:
    """preview.json written beside, then renamed over: a reader never sees half a file."""
    tmp = folder / "preview.json.tmp"
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / "preview.json")
