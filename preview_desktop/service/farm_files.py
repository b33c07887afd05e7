"""Getting a farm render's files into this node's DATA_DIR/previews/{projectId}/{localJobId}/.

A farm job's result says where its files are (`artifacts`: the rendering node, its folder, signed links). When
that folder is readable here (the same machine, or storage every node mounts) the files are hard-linked, or
copied across file systems; otherwise they come over the signed links from the rendering node's API. Either way
they land in a staging folder that is renamed into place whole (Layout.publish), so the window, the API and a
second tracker sharing this store see the preview complete or not at all.

Blocking (file copies, HTTP): the tracker runs `fetch_preview` on a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.layout import ARTIFACT_NAMES, Layout
from ..errors import PreviewError

REQUIRED = ("preview.mp4",)  # without it there is nothing to play; the others are a poster, thumbnails, summary
CHUNK = 1 << 20
HTTP_TIMEOUT_S = 30.0


class FetchFailed(PreviewError):
    """A farm render's files could not be brought here: the record fails with this message."""

    retryable = False


@dataclass(frozen=True)
class Fetched:
    how: str  # "path" (linked or copied from a folder readable here) or "url" (downloaded over signed links)
    files: tuple[str, ...]
    folder: Path

    def to_wire(self) -> dict[str, Any]:
        return {"how": self.how, "files": list(self.files)}


def signed_links(artifacts: dict[str, Any]) -> dict[str, str]:
    """{file name: signed URL}. Nodes list every file in `files`; older ones signed only preview.mp4 (`url`)."""
    links: dict[str, str] = {}
    files = artifacts.get("files")
    if isinstance(files, dict):
        links.update({str(k): v for k, v in files.items() if isinstance(v, str)})
    url = artifacts.get("url")
    if isinstance(url, str) and "preview.mp4" not in links:
        links["preview.mp4"] = url
    return {name: url for name, url in links.items() if name in ARTIFACT_NAMES and url.startswith(("http://",
                                                                                                       "https://"))}


def readable_folder(artifacts: dict[str, Any]) -> Path | None:
    """The rendering node's folder, when it can be read from here and holds the video."""
    path = artifacts.get("path")
    if not isinstance(path, str) or not path:
        return None
    folder = Path(path)
    try:
        return folder if (folder / "preview.mp4").is_file() else None
    except OSError:
        return None


def fetch_preview(layout: Layout, project_id: str, job_id: str, result: dict[str, Any],
                  use_paths: bool = True) -> Fetched:
    """Bring the files of a completed farm job here and publish them; FetchFailed says why not."""
    artifacts = result.get("artifacts")
    if not isinstance(artifacts, dict):
        raise FetchFailed("the farm's result names no artifacts")
    folder = readable_folder(artifacts) if use_paths else None
    links = signed_links(artifacts)
    if folder is None and not links:
        where = artifacts.get("path") or "its DATA_DIR"
        raise FetchFailed(f"node {artifacts.get('host') or artifacts.get('nodeId')} rendered it, but {where} is "
                          "not readable here and its API gives no signed link (it listens on loopback only: set "
                          "PREVIEW_API_HOST there, or PREVIEW_FARM_STORAGE on every node)")
    staging = layout.staging_dir(project_id, job_id)
    try:
        if folder is not None:
            how, files = "path", _link_all(folder, staging)
        else:
            how, files = "url", _download_all(links, staging)
        if "preview.json" not in files:  # an older node signs preview.mp4 only; the result holds preview.json
            summary = {k: v for k, v in result.items() if k != "artifacts"}
            (staging / "preview.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
            files = (*files, "preview.json")
        final = layout.publish(staging, project_id, job_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Fetched(how, files, final)


def _link_all(folder: Path, staging: Path) -> tuple[str, ...]:
    """Hard links where the file system allows (instant, no space), copies elsewhere."""
    done = []
    for name in ARTIFACT_NAMES:
        source = folder / name
        if not source.is_file():
            continue
        try:
            os.link(source, staging / name)
        except OSError:
            try:
                shutil.copyfile(source, staging / name)
            except OSError as exc:
                raise FetchFailed(f"{name} could not be copied from {folder}: {exc}") from None
        done.append(name)
    return tuple(done)


def _download_all(links: dict[str, str], staging: Path) -> tuple[str, ...]:
    done = []
    for name in ARTIFACT_NAMES:
        url = links.get(name)
        if url is None:
            continue
        if _download(url, staging / name, required=name in REQUIRED):
            done.append(name)
    missing = [n for n in REQUIRED if n not in done]
    if missing:
        raise FetchFailed(f"the rendering node gave no link to {', '.join(missing)}")
    return tuple(done)


def _download(url: str, target: Path, required: bool) -> bool:
    """True when written; False for an optional file the node does not have (404). FetchFailed otherwise."""
    shown = url.split("?", 1)[0]  # never the signature
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response, target.open("wb") as out:
            expected = response.headers.get("Content-Length")
            written = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                written += len(chunk)
        if expected is not None and expected.isdigit() and int(expected) != written:
            raise FetchFailed(f"{shown}: {written} of {expected} bytes arrived")
        return True
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        if exc.code == 404 and not required:
            return False
        raise FetchFailed(f"{shown}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise FetchFailed(f"{shown}: {reason}") from None
