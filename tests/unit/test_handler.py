"""JobContext.progress: a render reporting in a tight loop must not flood the event loop's thread."""

from __future__ import annotations

import time

from preview_desktop.core.handler import PROGRESS_MIN_INTERVAL, JobContext
from preview_desktop.core.job import Job


def test_reports_are_coalesced_and_the_last_frame_always_arrives() -> None:
    seen: list[tuple[int, int]] = []
    ctx = JobContext(job=Job(id="j", project_id="p", spec={}), progress_fn=lambda f, n: seen.append((f, n)))
    frames = 200_000
    started = time.monotonic()
    for frame in range(1, frames + 1):
        ctx.progress(frame, frames)
    elapsed = time.monotonic() - started
    assert seen[0] == (1, frames) and seen[-1] == (frames, frames)
    assert len(seen) <= elapsed / PROGRESS_MIN_INTERVAL + 2, f"{len(seen)} reports in {elapsed:.3f} s"


def test_slow_reports_all_arrive() -> None:
    seen: list[int] = []
    ctx = JobContext(job=Job(id="j", project_id="p", spec={}), progress_fn=lambda f, n: seen.append(f))
    for frame in range(1, 4):
        ctx.progress(frame, 10)
        time.sleep(PROGRESS_MIN_INTERVAL * 1.5)
    assert seen == [1, 2, 3]
