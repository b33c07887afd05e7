"""`preview-desktop watch FOLDER...`: the watcher in the foreground, one line per export, Ctrl+C stops.

It only queues (like `submit`): a `--worker` or the window renders. Store calls run inline on this process's
loop, which has nothing else to do; the watcher's own thread waits for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..core.layout import contain
from ..errors import EXIT_OK, InvalidInput
from ..settings import Settings, WatchFolder, parse_watch_folder
from .watcher import Watcher, WatchJobs, WatchReport


def folders_from_args(args: argparse.Namespace, settings: Settings) -> list[WatchFolder]:
    """Named folders must exist and lie inside the media roots (else every export would fail); without names,
    the settings' folders, which may be a share not mounted yet (the watcher waits for it)."""
    if not args.folders:
        if not settings.watch:
            raise InvalidInput("no folder to watch: name one, or set PREVIEW_WATCH or the settings file's `watch`")
        return list(settings.watch)
    folders = []
    for raw in args.folders:
        folder = parse_watch_folder({"path": raw, "project_id": args.project, "priority": args.priority,
                                     "poll": True if args.poll else None}, "FOLDER")
        if not os.path.isdir(folder.path):
            raise InvalidInput(f"not a folder: {folder.path}")
        contain(Path(folder.path), settings.effective_media_roots, "watch folder")
        folders.append(folder)
    return folders


def run_watch(args: argparse.Namespace, settings: Settings, jobs: WatchJobs) -> int:
    folders = folders_from_args(args, settings)
    watcher = Watcher(jobs, folders, settings.data_dir / "watch",
                      settle_seconds=args.settle if args.settle is not None else settings.watch_settle_seconds,
                      output_defaults=settings.output_defaults, report=_printer(args.json))
    print(f"watching {len(folders)} folder(s); Ctrl+C stops", file=sys.stderr, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        if sys.platform != "win32":  # Ctrl+C too: a launcher that ignores SIGINT leaves Python no handler of its own
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await watcher.start()
        try:
            await stop.wait()
        finally:
            await watcher.stop()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C on Windows: asyncio.run cancelled main(), which stopped it
        asyncio.run(main())
    print("stopped watching", file=sys.stderr, flush=True)
    return EXIT_OK


def _printer(as_json: bool) -> Callable[[WatchReport], None]:
    def report(r: WatchReport) -> None:  # the watcher's thread
        if as_json:
            print(json.dumps(asdict(r)), flush=True)
        elif r.outcome in ("queued", "failed"):
            print(f"{r.outcome} {r.job_id} {r.file}: {r.message}", flush=True)
        else:
            print(f"{r.outcome} {r.folder} ({r.message})", flush=True)

    return report
