"""Where a watch folder lives: is it a network share (events from other machines never arrive: poll it), and
where the watcher remembers what it queued (so a restart neither re-queues old exports nor misses new ones)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from .settle import Signature

# File systems whose changes made by other machines produce no local events.
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smbfs", "smb3", "9p", "afs", "ncpfs", "davfs", "lustre", "gpfs", "ceph", "glusterfs",
    "fuse.sshfs", "sshfs", "fuse.rclone", "fuse.davfs2", "fuse.glusterfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.smbnetfs",
})


def _mount_type_linux(path: str) -> str | None:
    """The file system type of the longest mount point containing `path` (/proc/self/mounts)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            entries = [line.split()[1:3] for line in mounts if len(line.split()) >= 3]
    except OSError:
        return None
    best, kind = "", None
    for point, fstype in entries:
        point = point.replace("\\040", " ")
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def is_network_path(path: str) -> bool:
    """True for paths on network file systems (Linux mounts, Windows UNC paths and mapped network drives)."""
    if sys.platform == "win32":
        if path.startswith(("\\\\", "//")):
            return True
        import ctypes

        root = os.path.splitdrive(os.path.abspath(path))[0] + "\\"
        return bool(ctypes.windll.kernel32.GetDriveTypeW(root) == 4)  # type: ignore[attr-defined]  # DRIVE_REMOTE
    if sys.platform.startswith("linux"):
        kind = _mount_type_linux(os.path.realpath(path))
        return kind is not None and kind.lower() in NETWORK_FS
    return False  # macOS and others: native events, and the periodic rescan catches what they miss


class HandledStore:
    """DATA_DIR/watch/<folder hash>.json: name -> signature of the last version queued (or recorded failed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, folder: str) -> Path:
        return self.directory / (hashlib.sha256(folder.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".json")

    def load(self, folder: str) -> dict[str, Signature] | None:
        """None when this folder was never watched (its existing files are then the baseline, not queued)."""
        try:
            data = json.loads(self._file(folder).read_text(encoding="utf-8"))
            return {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in data["handled"].items()}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return {}  # unreadable: start over, queueing what is there once rather than never

    def save(self, folder: str, handled: dict[str, Signature]) -> None:
        target = self._file(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"folder": folder, "handled": handled}), encoding="utf-8")
        os.replace(tmp, target)
