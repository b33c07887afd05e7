"""Logging: human lines on stderr, JSON lines under DATA_DIR/logs (rotated), secrets redacted everywhere.

Secrets are redacted by a filter on every handler, so a token or a Redis password cannot reach a log line
whichever module logs it. `add_secret` registers values known at run time (the API token).
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import re
import sys
import time
from pathlib import Path
from typing import Any

from .errors import SettingsError, is_disk_full

# The password runs to the last "@" before the host, so one with a literal "@" (not %40) is masked whole.
_URL_PASSWORD_RE = re.compile(r"([a-z][a-z0-9+.-]*://)([^:/@\s]*):(\S+)@(?=[^@\s/]*(?:[/\s?#]|$))", re.IGNORECASE)
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRETS: set[str] = set()
LOG_FILE_NAME = "preview-desktop.log"


def add_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Mask URL passwords, bearer tokens and registered secrets."""
    text = _URL_PASSWORD_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", text)
    text = _BEARER_RE.sub(r"\1***", text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("job_id", "project_id", "worker"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class LogFile(logging.handlers.RotatingFileHandler):
    """The JSON-lines log file. A full disk drops lines instead of printing a traceback for each (logging's
    default): it is said once on stderr, and the count of lost lines is logged once space is back."""

    dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        dropped = self.dropped
        super().emit(record)
        if dropped and self.dropped == dropped:  # this line went through: space is back
            self.dropped = 0
            note = logging.makeLogRecord({"name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                                          "msg": f"{dropped} log line(s) lost while the disk was full"})
            super().emit(note)

    def handleError(self, record: logging.LogRecord) -> None:
        if not is_disk_full(sys.exc_info()[1]):
            super().handleError(record)
            return
        if not self.dropped:
            print(f"preview-desktop: disk full: log lines to {self.baseFilename} are dropped until there is space",
                  file=sys.stderr, flush=True)
        self.dropped += 1
        if self.stream is not None:  # drop what is buffered too: the next line reopens the file
            with contextlib.suppress(OSError):
                self.stream.close()
            self.stream = None


def setup_logging(logs_dir: Path | None, level: str = "INFO", stderr: bool = True) -> None:
    """Configure the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_preview_desktop", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    redactor = RedactingFilter()
    if stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        console.addFilter(redactor)
        console._preview_desktop = True  # type: ignore[attr-defined]
        root.addHandler(console)
    if logs_dir is not None:
        try:
            logs_dir.mkdir(parents=True, exist_ok=True)
            file_handler = LogFile(logs_dir / LOG_FILE_NAME, maxBytes=5 * 1024 * 1024, backupCount=5,
                                   encoding="utf-8")
        except OSError as exc:
            raise SettingsError("DATA_DIR", f"{logs_dir} is not a writable folder ({exc.strerror or exc})") from None
        file_handler.setFormatter(JsonFormatter())
        file_handler.addFilter(redactor)
        file_handler._preview_desktop = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
    for noisy in ("aiohttp.access", "asyncio", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
