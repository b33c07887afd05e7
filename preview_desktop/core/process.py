"""Who this process is and whether another one on this computer still lives (Qt-free, no heavy imports).

Worker ids are `host:pid:random` so that a store's reaper can tell a dead worker on this host from one that is
merely slow; the API server uses `pid_alive` to decide whether another process's api.json is still current.
"""

from __future__ import annotations

import os
import secrets
import socket

HOSTNAME = socket.gethostname()


def make_worker_id() -> str:
    return f"{HOSTNAME}:{os.getpid()}:{secrets.token_hex(2)}"


def pid_alive(pid: int) -> bool:
    """POSIX only; elsewhere we cannot ask cheaply and safely, so assume alive and wait for the deadline."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead_here(worker: str) -> bool:
    """True when `worker` (a `make_worker_id` id) ran on this host in a process that no longer exists."""
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    return host == HOSTNAME and pid_text.isdigit() and not pid_alive(int(pid_text))
