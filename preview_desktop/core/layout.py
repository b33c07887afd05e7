"""The DATA_DIR layout, safe joins and media-root containment.

Every path that comes from input (a projectId, a timeline path, a media reference) passes through here before
it touches the file system, so the rules live in one place.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnsafePath
from .ids import PROJECT_ID_RE
from .pathmap import PathMap, map_path

JOB_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]|^[A-Za-z]:$")
STAGING_PREFIX = ".staging-"
ARTIFACT_NAMES = ("preview.mp4", "preview.json", "poster.jpg", "thumbs.jpg", "thumbs.vtt")


def check_project_id(project_id: str) -> str:
    if not PROJECT_ID_RE.match(project_id) or project_id in (".", ".."):
        raise UnsafePath(f"projectId {project_id!r} is not a safe folder name")
    return project_id


def check_job_id(job_id: str) -> str:
    if not JOB_ID_RE.match(job_id):
        raise UnsafePath(f"job id {job_id!r} is malformed")
    return job_id


def check_path_text(text: str, what: str = "path") -> str:
    """Refuse path strings that are malformed on this platform before resolving them."""
    if "\x00" in text:
        raise UnsafePath(f"{what} contains a NUL byte")
    if not text.strip():
        raise UnsafePath(f"{what} is empty")
    if os.name != "nt":
        if text.startswith(("\\\\", "//")) and len(text) > 2 and text[2] not in "/\\":
            raise UnsafePath(f"{what} {text!r} is a Windows network (UNC) path")
        if _WINDOWS_DRIVE_RE.match(text):
            raise UnsafePath(f"{what} {text!r} is a Windows drive path")
    return text


def is_within(path: Path, roots: Iterable[Path]) -> bool:
    """True if `path`, with symlinks resolved, lies inside one of `roots` (also resolved)."""
    real = Path(os.path.realpath(path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real_root in real.parents:
            return True
    return False


def contain(path: Path, roots: Sequence[Path], what: str = "media") -> Path:
    """Resolve symlinks and insist the result lies inside the media roots."""
    real = Path(os.path.realpath(path))
    if not is_within(real, roots):
        shown = os.pathsep.join(str(r) for r in roots)
        raise UnsafePath(f"{what} {str(path)!r} is outside PREVIEW_MEDIA_ROOTS ({shown})")
    return real


def resolve_media(reference: str, base_dirs: Sequence[Path], roots: Sequence[Path], what: str = "media",
                  path_map: PathMap | None = None) -> Path:
    """Resolve a media reference: absolute as is, relative against each base dir in order (first that exists).

    A reference written on another machine (`Z:\\media\\a.mov`, `file:///Z:/media/a.mov`) is mapped through
    `path_map` first (core/pathmap.py); the roots are checked on the mapped path. Returns a path inside the
    roots (it may not exist); raises UnsafePath otherwise, and for URLs other than a local file:// one. A
    relative reference that exists nowhere resolves against the first base dir (so the caller can report it
    offline).
    """
    if "\x00" in reference:
        raise UnsafePath(f"{what} contains a NUL byte")
    if reference.startswith("file://"):
        from urllib.parse import unquote, urlparse

        parsed = urlparse(reference)
        if parsed.netloc not in ("", "localhost"):
            raise UnsafePath(f"{what} {reference!r} is a network (file://host/) URL")
        reference = map_path(unquote(parsed.path), path_map)
        check_path_text(reference, what)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", reference):
        raise UnsafePath(f"{what} {reference!r} is a URL; only local files are allowed")
    else:
        reference = map_path(reference, path_map)
        check_path_text(reference, what)
    candidate = Path(reference).expanduser()
    if candidate.is_absolute():
        return contain(candidate, roots, what)
    first: Path | None = None
    for base in base_dirs:
        joined = base / candidate
        first = first or joined
        if joined.exists():
            return contain(joined, roots, what)
    if first is None:
        raise UnsafePath(f"{what} {reference!r} is relative and there is no folder to resolve it against")
    return contain(first, roots, what)


def swap_in(staging: Path, final: Path, trash: Path) -> None:
    """Rename a complete folder into place. An existing one is renamed aside to `trash` first and removed after,
    so readers see the old folder or the new one, never a mix."""
    if final.exists():
        os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, final)


class PreviewFolders:
    """Per-job preview folders under a `previews` root: checked names, staging siblings, atomic publish.

    Shared by DATA_DIR (`Layout`) and the farm storage (`FarmLayout`), so both publish the same way."""

    @property
    def previews(self) -> Path:
        raise NotImplementedError

    @property
    def root_name(self) -> str:
        return "DATA_DIR/previews"

    def preview_path(self, project_id: str, job_id: str) -> Path:
        """previews/{projectId}/{jobId} with both names checked; no file-system calls. Enough to report where a
        finished job's files are; writing goes through `preview_dir`, which also refuses symlink escapes."""
        return self.previews / check_project_id(project_id) / self.check_job_id(job_id)

    def check_job_id(self, job_id: str) -> str:
        """A local job id (DATA_DIR's folders are named by them)."""
        return check_job_id(job_id)

    def preview_dir(self, project_id: str, job_id: str) -> Path:
        """previews/{projectId}/{jobId}, with both names checked so nothing escapes."""
        path = self.preview_path(project_id, job_id)
        if self.previews.resolve() not in path.resolve().parents:
            raise UnsafePath(f"preview folder for {project_id}/{job_id} escapes {self.root_name}")
        return path

    def staging_dir(self, project_id: str, job_id: str) -> Path:
        """A fresh temporary sibling of the preview folder; renamed into place by `publish`."""
        final = self.preview_dir(project_id, job_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f"{STAGING_PREFIX}{job_id}-{secrets.token_hex(3)}"
        staging.mkdir()
        return staging

    def publish(self, staging: Path, project_id: str, job_id: str) -> Path:
        """Atomically move a complete staging folder into place (replacing an older result of the same job)."""
        final = self.preview_dir(project_id, job_id)
        swap_in(staging, final, final.parent / f"{STAGING_PREFIX}{job_id}-old-{secrets.token_hex(3)}")
        return final

    def stale_staging_dirs(self) -> list[Path]:
        if not self.previews.is_dir():
            return []
        return [p for p in self.previews.glob(f"*/{STAGING_PREFIX}*") if p.is_dir()]

    def remove_orphan_staging(self, runs_somewhere: Callable[[str], bool]) -> None:
        """Remove staging folders of jobs that run nowhere: leftovers of killed renders, never published."""
        for path in self.stale_staging_dirs():
            if not runs_somewhere(path.name[len(STAGING_PREFIX) :][:24]):
                shutil.rmtree(path, ignore_errors=True)

    def remove_staging_for(self, job_id: str) -> None:
        """Remove leftovers of a job's interrupted attempts (a killed worker cannot clean up after itself)."""
        for path in self.stale_staging_dirs():
            if path.name.startswith(f"{STAGING_PREFIX}{job_id}-"):
                shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Layout(PreviewFolders):
    """Where everything lives under DATA_DIR."""

    data_dir: Path

    @property
    def previews(self) -> Path:
        return self.data_dir / "previews"

    @property
    def cache(self) -> Path:
        return self.data_dir / "cache"

    @property
    def media(self) -> Path:
        return self.data_dir / "media"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def api_json(self) -> Path:
        return self.data_dir / "api.json"

    @property
    def api_token(self) -> Path:
        return self.data_dir / "api-token"


@dataclass(frozen=True)
class FarmLayout(PreviewFolders):
    """Where the farm keeps shared things under PREVIEW_FARM_STORAGE (a folder every node mounts):
    `cache/` the content-addressed segment store (render/shared_store.py), `previews/{projectId}/{jobId}/`
    the farm's published previews, staged and renamed into place exactly like DATA_DIR/previews."""

    storage: Path

    @property
    def previews(self) -> Path:
        return self.storage / "previews"

    @property
    def root_name(self) -> str:
        return "PREVIEW_FARM_STORAGE/previews"

    def check_job_id(self, job_id: str) -> str:
        """Farm previews are named by their BullMQ job id (a number, or a producer's own id): any safe name."""
        return check_project_id(job_id)

    @property
    def cache(self) -> Path:
        return self.storage / "cache"
