"""`preview-desktop --worker` as a process: ready line, logs, clean stop on signals, never hangs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from preview_desktop.logs import LOG_FILE_NAME
from tests.support.cli import start_worker, wait_ready, worker_stderr


def test_ready_line_and_clean_stop_on_sigterm(data_dir: Path) -> None:
    proc = start_worker(env={"QT_QPA_PLATFORM": "", "DISPLAY": "", "REDIS_URL": ""})
    try:
        line = wait_ready(proc)
        assert "worker ready" in line and str(data_dir) in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = (data_dir / "logs" / LOG_FILE_NAME).read_text().splitlines()
    assert logs and all(json.loads(line)["time"] for line in logs)
    assert any("stopping" in json.loads(line)["message"] for line in logs)


def test_redis_password_never_logged(data_dir: Path) -> None:
    secrets = {"REDIS_URL": "redis://:hunter2-secret@127.0.0.1:1/0", "PREVIEW_API_TOKEN": "tok-123456789"}
    proc = start_worker(env=secrets)
    try:
        wait_ready(proc, timeout=30)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = worker_stderr(proc)
    stdout = proc.stdout.read() if proc.stdout else ""
    text = stderr + stdout + "".join(p.read_text() for p in (data_dir / "logs").glob("*"))
    assert "hunter2-secret" not in text and "tok-123456789" not in text
