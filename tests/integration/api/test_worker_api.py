"""The API as the program wires it: `preview-desktop --worker` serves it, prints it and cleans up after itself."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from preview_desktop.core.layout import Layout
from tests.support import cli as cli_support
from tests.support.cli import start_worker, wait_ready

from .harness import TOKEN, copy_tree_text

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_worker_serves_the_api_and_removes_api_json(data_dir: Path) -> None:
    proc = start_worker(env={"PREVIEW_API_TOKEN": TOKEN, "PREVIEW_API_PORT": "0", "PREVIEW_LOG_LEVEL": "DEBUG"})
    try:
        line = wait_ready(proc)
        layout = Layout(data_dir)
        info = json.loads(layout.api_json.read_text(encoding="utf-8"))
        assert info["pid"] == proc.pid and f"API {info['url']}" in line
        assert fetch(info["url"] + "/healthz")[0] == 200
        assert fetch(info["url"] + "/v1/jobs")[0] == 401
        assert fetch(info["url"] + "/v1/jobs", "nope")[0] == 403
        status, body = fetch(info["url"] + "/v1/jobs", TOKEN)
        assert status == 200 and json.loads(body)["jobs"] == []
        status, body = fetch(info["url"] + "/metrics")
        assert status == 200 and b'preview_worker_queue_size{queue="local"} 0.0' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    out = out or ""
    if err is None:  # the helper may send stderr to a file rather than a pipe
        err = cli_support.worker_stderr(proc) if hasattr(cli_support, "worker_stderr") else ""
    assert proc.returncode == 0, err
    assert not layout.api_json.exists()
    logs = copy_tree_text(layout.logs)
    assert "API listening on" in logs
    for text in (out, err, logs):
        assert TOKEN not in text
