"""Entry point: parse arguments, build Settings once, wire the parts, pick the mode.

Heavy modules (Qt, av, cv2, OTIO) are imported only by the commands that need them, so `submit`, `list` and
`status` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, native
from .errors import EXIT_INVALID, PreviewError, SettingsError
from .settings import Settings, load_settings, prepare_data_dir


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, as our other input errors
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="preview-desktop", description="Low-resolution previews of edit timelines.")
    parser.add_argument("--version", action="version", version=f"preview-desktop {__version__}")
    parser.add_argument("--worker", action="store_true", help="run headless: render queued jobs, no window")
    parser.add_argument("--screenshot", metavar="PNG", help="open the window, save a picture of it, exit")
    parser.add_argument("--data-dir", metavar="DIR", help="root of all data (env DATA_DIR)")
    parser.add_argument("--redis", metavar="URL", help="join the farm on this Redis (env REDIS_URL)")
    parser.add_argument("--concurrency", metavar="N", help="renders at once (env PREVIEW_MAX_CONCURRENCY)")
    parser.add_argument("--api-port", metavar="PORT", help="local HTTP API port, 0 = any (env PREVIEW_API_PORT)")
    parser.add_argument("--settings", metavar="FILE", help="settings file (env PREVIEW_SETTINGS)")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("submit", help="queue a preview of a timeline or a spec file")
    p.add_argument("source", metavar="TIMELINE|SPEC.json")
    p.add_argument("--project", metavar="ID", help="projectId (default: from the file name)")
    p.add_argument("--priority", type=int, metavar="N", help="0-10, higher runs first (default 5)")
    p.add_argument("--dry-run", action="store_true", help="validate and plan only, no video")
    p.add_argument("--wait", action="store_true", help="follow the job to its end; exit 1 if it fails")
    p.add_argument("--farm", action="store_true",
                   help="queue on the render farm (REDIS_URL); queued here instead while the farm is unreachable")
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = sub.add_parser("list", help="list jobs")
    p.add_argument("--state", choices=["queued", "running", "retrying", "succeeded", "failed", "cancelled"])
    p.add_argument("--project", metavar="ID")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="show one job")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--json", action="store_true")

    for name, text in (("cancel", "cancel jobs (running ones stop at their next frame)"),
                       ("retry", "queue failed or cancelled jobs again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        p.add_argument("--json", action="store_true")

    p = sub.add_parser("render", help="render now, in the foreground, without the queue")
    p.add_argument("source", metavar="TIMELINE|SPEC.json")
    p.add_argument("--out", required=True, metavar="DIR", help="folder that receives the artifacts")
    p.add_argument("--project", metavar="ID")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("watch", help="queue every timeline exported into these folders, until Ctrl+C")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="default: the watch folders of the settings")
    p.add_argument("--project", metavar="ID", help="projectId for every export (default: from the file name)")
    p.add_argument("--priority", type=int, metavar="N", help="0-10, higher runs first (default 5)")
    p.add_argument("--poll", action="store_true", help="poll instead of file events (network shares)")
    p.add_argument("--settle", type=float, metavar="SECONDS", help="unchanged this long before queueing (2)")
    p.add_argument("--json", action="store_true", help="one JSON object per line for each thing done")

    p = sub.add_parser("demo", help="make demo media and a demo timeline under DATA_DIR/media")
    p.add_argument("--json", action="store_true")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    cli = {
        "data_dir": args.data_dir,
        "redis_url": args.redis,
        "max_concurrency": args.concurrency,
        "api_port": args.api_port,
        "log_level": args.log_level,
    }
    return load_settings(cli=cli, settings_file=Path(args.settings) if args.settings else None)


def _print_error(error: BaseException) -> None:
    from .logs import redact

    print(f"preview-desktop: error: {redact(str(error))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The process's entry (console script, `python -m preview_desktop`, the frozen build): the process ends when
    this returns."""
    native.tune()  # before numpy loads and any thread starts
    try:
        return _main(argv)
    finally:
        native.skip_exit_collections()


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        prepare_data_dir(settings)
    except SettingsError as exc:
        _print_error(exc)
        return EXIT_INVALID
    try:
        return _dispatch(args, settings)
    except PreviewError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `preview-desktop list | head`: the reader left; stop quietly like other tools
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from .logs import add_secret, setup_logging

    add_secret(settings.api_token)
    command = args.command
    if command is None:
        headless = args.worker
        setup_logging(settings.data_dir / "logs", settings.log_level, stderr=headless or bool(args.screenshot))
        if headless:
            from .worker import run_worker

            return run_worker(settings)
        from .ui.app import run_window

        return run_window(settings, screenshot=Path(args.screenshot) if args.screenshot else None)
    setup_logging(None, "WARNING")
    from . import commands

    return commands.COMMANDS[command](args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
