"""Headless processes run on QtCore alone: `--worker` (with the farm), `render`, `submit` and the other commands
never import QtGui, QtWidgets or pyqtgraph, and never map the system's libGL, libEGL or libxcb.

Render boxes often lack those libraries; with them loaded, `--worker` stopped at start with
`ImportError: libGL.so.1`. Each process here starts with those modules blocked in `sys.modules` (an import of
them raises), so a stray import anywhere on the path fails the test with the importing module in the traceback.
The frozen build is checked the same way with the libraries really absent (packaging/smoke).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli_env
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

BLOCKED = ("PySide6.QtGui", "PySide6.QtWidgets", "PySide6.QtOpenGL", "PySide6.QtMultimedia", "pyqtgraph")
# System GUI libraries (PyAV's wheel carries private, renamed copies of libxcb in av.libs/: those travel with it).
GUI_LIBRARY = re.compile(
    r"^(?!.*\.libs/).*/(libGL|libEGL|libGLX|libOpenGL|libxcb|libX11|libQt6Gui|libQt6Widgets)[.-][^/]*$")

# Block the GUI modules, report (on stderr, at exit) any GUI library mapped into the process, run the CLI.
_HEADLESS = f"""
import atexit, re, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None
def _report():
    with open("/proc/self/maps", encoding="utf-8") as maps:
        found = sorted({{line.split()[-1] for line in maps if re.search({GUI_LIBRARY.pattern!r}, line.strip())}})
    print("GUI-LIBRARIES:" + ",".join(found), file=sys.stderr, flush=True)
atexit.register(_report)
from preview_desktop.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", _HEADLESS, *args]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(_cmd(*args), capture_output=True, text=True, env=cli_env(env), timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "GUI-LIBRARIES:\n" in result.stderr, result.stderr[-2000:]  # ran to exit, and mapped none
    return result


def _gui_libraries(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8").splitlines()
    return {line.split()[-1] for line in maps if GUI_LIBRARY.search(line.strip())}


def test_the_guard_catches_a_gui_import() -> None:
    """The blocking itself works: importing QtWidgets in such a process fails (else the tests below prove nothing)."""
    code = _HEADLESS.replace("from preview_desktop.cli import main", "import PySide6.QtWidgets")
    result = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "PySide6.QtWidgets" in result.stderr


def test_cli_commands_run_without_qtgui(tmp_path: Path) -> None:
    demo = json.loads(_run("demo", "--json").stdout)
    timeline = demo["timeline"]
    rendered = json.loads(_run("render", timeline, "--out", str(tmp_path / "out"), "--json").stdout)
    assert rendered["status"] == "succeeded" and (tmp_path / "out" / "preview.mp4").stat().st_size > 0
    job = json.loads(_run("submit", timeline, "--dry-run", "--json").stdout)
    job_id = job.get("id") or job.get("jobId")
    assert job_id
    assert any((j.get("id") or j.get("jobId")) == job_id for j in json.loads(_run("list", "--json").stdout))
    _run("status", job_id, "--json")
    _run("cancel", job_id)


@pytest.mark.redis
def test_worker_with_the_farm_runs_a_job_without_qtgui(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    timeline = json.loads(_run("demo", "--json").stdout)["timeline"]
    env = {"REDIS_URL": redis_server.url, "QT_QPA_PLATFORM": "", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    err = (tmp_path / "worker.err").open("w+", encoding="utf-8")
    proc = subprocess.Popen(_cmd("--worker"), stdout=subprocess.PIPE, stderr=err, text=True, env=cli_env(env),
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert "worker ready" in ready and "farm queue" in ready, (ready, err.seek(0), err.read())
        done = _run("submit", timeline, "--wait", "--json")  # the worker renders it (local queue)
        assert json.loads(done.stdout)["state"] == "succeeded", done.stdout
        assert _gui_libraries(proc.pid) == set()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err.seek(0)
    log = err.read()
    assert "Traceback" not in log and "GUI-LIBRARIES:\n" in log, log[-3000:]
