"""The environment a bench runs `preview-desktop` in: the caller's, as a user's installed program sees it.

An installed program runs from compiled bytecode (pip compiles at install time; the frozen bundle ships .pyc).
A development shell that sets PYTHONDONTWRITEBYTECODE makes every run compile our modules from source again
(~0.1 s of CPU per process, measured): not what a user times, so the benches drop it and let the warm-up run
write the bytecode.
"""

from __future__ import annotations

import os


def user_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env
