"""Watch folders wired into the program: the node's Component (with the real renderer, so a timeline that does not
parse fails with its reason) and `preview-desktop watch` as a user runs it, stopped with Ctrl+C."""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from preview_desktop.core.job import JobState
from preview_desktop.node import Node
from preview_desktop.settings import WatchFolder, load_settings
from tests.support.cli import cli_env, run_cli
from tests.support.qtloop import run


def test_the_node_watches_its_folders_and_a_timeline_that_does_not_parse_fails_clearly(
        qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    settings = load_settings().with_overrides(watch=(WatchFolder(str(folder), project_id="promo"),),
                                              watch_settle_seconds=0.3, max_concurrency=1)
    node = Node(settings, qloop, with_api=False, with_farm=False)
    run(qloop, node.start())
    try:
        assert node.watch is not None and node.watch in node.components
        assert node.watch.looked.wait(10)
        (folder / "broken.otio").write_text("this is not OTIO")

        async def failed() -> str:
            while True:
                jobs = await node.jobs.list_jobs()
                if jobs and jobs[0].state is JobState.FAILED:
                    return jobs[0].error or ""
                await asyncio.sleep(0.05)

        error = run(qloop, failed(), timeout=30)
        assert "broken.otio" in error and "cannot be read as OTIO" in error
        job = run(qloop, node.jobs.list_jobs())[0]
        assert job.attempts_made == 1 and job.spec["watchFolder"] == str(folder)  # not retried: input is input
    finally:
        run(qloop, node.stop(grace=1, interrupt=True))


def _read_line(proc: subprocess.Popen[str], want: str, timeout: float = 20) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.1):
            line = proc.stdout.readline()
            if want in line:
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no line with {want!r}; exit {proc.poll()}")


def _inherit_ignored_sigint() -> None:
    """As when started by a launcher that ignores SIGINT (a background job of a script; a test runner's worker
    seen doing so in CI): Python then installs no KeyboardInterrupt handler, so the watch must handle Ctrl+C itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_watch_command_queues_exports_until_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "preview_desktop", "watch", str(folder), "--settle", "0.3",
                             "--priority", "8", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), stdin=subprocess.DEVNULL, preexec_fn=_inherit_ignored_sigint)
    try:
        assert json.loads(_read_line(proc, '"watching"'))["folder"] == str(folder)
        (folder / "Cut v2.otio.part").write_text("{}")
        (folder / "Cut v2.otio.part").rename(folder / "Cut v2.otio")
        queued = json.loads(_read_line(proc, '"queued"'))
        assert queued["file"] == "Cut v2.otio" and queued["message"] == "Cut_v2"
        listing = json.loads(run_cli("list", "--json").stdout)
        assert [j["id"] for j in listing] == [queued["job_id"]]
        assert listing[0]["priority"] == 8 and listing[0]["spec"]["watchFolder"] == str(folder)
        proc.send_signal(signal.SIGINT)
        try:  # a clean stop takes a second or two; the limit only catches a hang, whatever the machine's load
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGQUIT)  # faulthandler is not on: kill, then show what it said
            proc.kill()
            raise AssertionError(f"watch did not stop on Ctrl+C: {proc.communicate()[1][-3000:]}") from None
        assert code == 0
        assert proc.stderr is not None and "stopped watching" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_watch_command_refuses_what_it_cannot_watch(tmp_path: Path) -> None:
    missing = run_cli("watch", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    outside = run_cli("watch", "/", env={"PREVIEW_MEDIA_ROOTS": str(tmp_path)})
    assert outside.returncode == 2 and "watch folder" in outside.stderr
    nothing = run_cli("watch")
    assert nothing.returncode == 2 and "PREVIEW_WATCH" in nothing.stderr


def test_a_headless_worker_watches_the_folders_of_preview_watch(tmp_path: Path) -> None:
    from tests.support.cli import start_worker, wait_ready, worker_stderr

    folder = tmp_path / "exports"
    folder.mkdir()
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"watch_settle_seconds": 0.3}))
    proc = start_worker(env={"PREVIEW_WATCH": str(folder), "PREVIEW_SETTINGS": str(settings_file)})
    try:
        assert "watching 1 folder(s)" in wait_ready(proc)
        (folder / "broken.edl").write_text("not an EDL at all\n")
        deadline = time.monotonic() + 30
        jobs: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            jobs = json.loads(run_cli("list", "--json").stdout)
            if jobs and jobs[0]["state"] == "failed":
                break
            time.sleep(0.2)
        assert jobs and jobs[0]["state"] == "failed", (jobs, worker_stderr(proc))
        spec = jobs[0]["spec"]
        assert "broken.edl" in str(jobs[0]["error"]) and isinstance(spec, dict) and spec["watchFolder"] == str(folder)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
