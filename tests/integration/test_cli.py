"""The command line as a user meets it: exit codes, messages, --json, and nothing queued on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli


@pytest.fixture
def timeline(tmp_path: Path) -> Path:
    path = tmp_path / "Promo v3.otio"
    path.write_text("{}")
    return path


def _jobs() -> list[dict[str, object]]:
    result = run_cli("list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_list_status_cancel_retry(timeline: Path, tmp_path: Path) -> None:
    result = run_cli("submit", str(timeline), "--priority", "8", "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["projectId"] == "Promo_v3" and job["priority"] == 8 and job["state"] == "queued"
    assert job["spec"]["timeline"] == str(timeline)

    listing = run_cli("list")
    assert job["id"] in listing.stdout and "queued" in listing.stdout

    status = run_cli("status", job["id"], "--json")
    assert json.loads(status.stdout)["id"] == job["id"]

    cancel = run_cli("cancel", job["id"])
    assert cancel.returncode == 0 and f"{job['id']}: cancelled" in cancel.stdout
    again = run_cli("cancel", job["id"])
    assert again.returncode == 2 and "cannot cancel" in again.stderr
    retry = run_cli("retry", job["id"], "--json")
    assert retry.returncode == 0 and json.loads(retry.stdout)[0]["state"] == "queued"


def test_relative_paths_resolve_against_the_current_folder(timeline: Path) -> None:
    result = run_cli("submit", timeline.name, "--project", "p1", "--json", cwd=timeline.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["timeline"] == str(timeline)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "{tmp}/missing.otio"], "timeline: file not found"),
        (["submit", "{timeline}", "--project", "../evil"], "projectId:"),
        (["submit", "{timeline}", "--priority", "-1"], "priority:"),
        (["submit", "{tmp}/bad.json"], "spec: is not valid JSON"),
        (["submit", "{tmp}/unknown.json"], "surprise: unknown field"),
        (["submit", "/etc/hostname"], "outside PREVIEW_MEDIA_ROOTS"),
        (["submit", "C:\\cuts\\a.otio"], "Windows drive path"),
        (["submit", "{timeline}", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_exits_2_and_queues_nothing(
    args: list[str], message: str, tmp_path: Path, timeline: Path, data_dir: Path
) -> None:
    (tmp_path / "bad.json").write_text("{ nope")
    (tmp_path / "unknown.json").write_text(json.dumps({"projectId": "p", "timeline": "x.otio", "surprise": 1}))
    argv = [a.format(tmp=tmp_path, timeline=timeline) for a in args]
    result = run_cli(*argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # one clear line (plus usage for argparse errors)
    assert _jobs() == []
    assert not (data_dir / "previews").exists() or not any((data_dir / "previews").iterdir())


def test_queue_full_exits_3(timeline: Path, tmp_path: Path) -> None:
    env = {"PREVIEW_QUEUE_MAX": "2"}
    for i in range(2):
        assert run_cli("submit", str(timeline), "--project", f"p{i}", env=env).returncode == 0
    result = run_cli("submit", str(timeline), "--project", "p9", env=env)
    assert result.returncode == 3 and "queue is full" in result.stderr
    assert len(_jobs()) == 2


def test_not_found_exits_4() -> None:
    result = run_cli("status", "20260101-000000-deadbeef")
    assert result.returncode == 4 and "no job with id" in result.stderr
    assert run_cli("cancel", "20260101-000000-deadbeef").returncode == 4


def test_bad_settings_stop_at_start_with_one_line() -> None:
    for env, text in (({"PREVIEW_MAX_CONCURRENCY": "0"}, "PREVIEW_MAX_CONCURRENCY"),
                      ({"PREVIEW_MAX_CONCURRENCY": "abc"}, "PREVIEW_MAX_CONCURRENCY"),
                      ({"DATA_DIR": "/proc/version/x"}, "DATA_DIR")):
        result = run_cli("list", env=env)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and text in result.stderr


def test_supersede_from_the_cli(timeline: Path) -> None:
    first = json.loads(run_cli("submit", str(timeline), "--json").stdout)
    second = json.loads(run_cli("submit", str(timeline), "--json").stdout)
    status = json.loads(run_cli("status", first["id"], "--json").stdout)
    assert status["state"] == "cancelled" and status["supersededBy"] == second["id"]
    assert "superseded" in run_cli("list").stdout


def test_a_reader_that_leaves_early_gets_no_traceback(data_dir: Path) -> None:
    """`preview-desktop list --json | head`: the pipe closes; the command stops quietly (exit 141, like a shell)."""
    import os
    import subprocess
    import sys

    from preview_desktop.core.spec import parse_spec
    from preview_desktop.queue.local import LocalStore

    store = LocalStore(data_dir / "queue", queue_max=10_000)
    for i in range(600):  # far more JSON than a pipe buffer holds
        store.submit(parse_spec({"projectId": f"p{i}", "timeline": "/media/cut.otio"}))
    store.close()
    proc = subprocess.Popen([sys.executable, "-m", "preview_desktop", "list", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ), stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
