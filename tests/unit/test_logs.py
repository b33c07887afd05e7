"""Secrets never reach a log line: URL passwords, bearer tokens and registered secrets are masked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from preview_desktop.logs import LOG_FILE_NAME, add_secret, redact, setup_logging


def test_redact() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("rediss://user:pa55word@h") == "rediss://user:***@h"
    # a literal "@" in the password (it should be %40, people type it anyway): no part of it shows
    assert redact("lost redis://:p@ss@host:6379/0, retrying") == "lost redis://:***@host:6379/0, retrying"
    assert redact("mail user@example.com, see http://h/p?a=b@c") == "mail user@example.com, see http://h/p?a=b@c"
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer ***"
    add_secret("tok-very-secret")
    assert "tok-very-secret" not in redact("token tok-very-secret here")


def test_json_log_file_is_redacted(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", stderr=False)
    add_secret("another-secret-token")
    log = logging.getLogger("preview_desktop.test")
    log.info("connecting to %s with %s", "redis://:hunter2@localhost", "another-secret-token",
             extra={"job_id": "j1"})
    try:
        raise RuntimeError("failed at redis://:hunter2@localhost")
    except RuntimeError:
        log.exception("oops")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = (tmp_path / LOG_FILE_NAME).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[0]["job_id"] == "j1" and entries[0]["level"] == "info"
    text = "\n".join(lines)
    assert "hunter2" not in text and "another-secret-token" not in text
    assert "RuntimeError" in entries[1]["exception"]
    setup_logging(None, "WARNING", stderr=False)
