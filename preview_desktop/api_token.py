"""The API token: load, generate once, regenerate. Shared by the API server and the window's settings.

The token is a bearer secret for every /v1 route. It comes from PREVIEW_API_TOKEN or is generated once into
DATA_DIR/api-token with mode 0600, so a script on the same machine and account can read it and nobody else can.
It lives outside api/ so the window can show it without importing the API package.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from .core.layout import Layout
from .logs import add_secret
from .settings import Settings

log = logging.getLogger(__name__)

TOKEN_BYTES = 32


def _write_private(path: Path, text: str) -> None:
    """Write `text` atomically into a file only its owner can read (mode 0600 from creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_token_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); restricting it to 0600", path, mode)
            path.chmod(0o600)
    return text or None


def load_or_create_token(settings: Settings, layout: Layout) -> str:
    """The effective API token: PREVIEW_API_TOKEN if set, else DATA_DIR/api-token, created on first use.

    Registers the token with the log redactor so it can never reach a log line.
    """
    token = settings.api_token or _read_token_file(layout.api_token)
    if token is None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        try:
            # O_EXCL through a link: if another process created the file meanwhile, use theirs.
            fd = os.open(layout.api_token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            token = _read_token_file(layout.api_token) or token
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(token + "\n")
            log.info("generated a new API token in %s", layout.api_token)
    add_secret(token)
    return token


def regenerate_token(layout: Layout) -> str:
    """Replace DATA_DIR/api-token with a fresh token (the settings dialog's "Regenerate"). Returns it.

    Clients holding the old token, and every signed URL handed out so far, stop working.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    _write_private(layout.api_token, token)
    add_secret(token)
    log.info("regenerated the API token in %s", layout.api_token)
    return token


class TokenFile:
    """The token as the window shows it when no API of its own runs (the settings dialog's fallback)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._layout = Layout(settings.data_dir)

    def api_token(self) -> str:
        try:
            return load_or_create_token(self._settings, self._layout)
        except OSError:  # DATA_DIR not writable or gone: nothing to show
            return self._settings.api_token or ""

    def regenerate_api_token(self) -> str | None:
        """None when the token cannot be replaced (set by PREVIEW_API_TOKEN, or DATA_DIR not writable)."""
        if self._settings.api_token:
            return None
        try:
            return regenerate_token(self._layout)
        except OSError:
            return None
