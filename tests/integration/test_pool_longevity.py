"""A long-lived node runs many thousands of jobs through its render pool without dying or leaking.

PySide6 6.12.0 drops a reference to None on every Python QRunnable.run; after ~4,000 runs the interpreter aborts
("none_dealloc"). pyproject.toml pins PySide6 below 6.12; this test keeps it that way. It runs in a subprocess
because the failure is an abort of the whole interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(180)

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from preview_desktop.engine.event_loop import make_event_loop
    from PySide6.QtCore import QCoreApplication
    from preview_desktop.engine.pool import RenderPool

    app = QCoreApplication([])
    loop = make_event_loop(app)
    pool = RenderPool(2, loop)

    async def main():
        import gc
        for _ in range(100):
            await asyncio.gather(pool.submit(lambda: 1), pool.submit(lambda: 2))
        gc.collect()
        before, objects = sys.getrefcount(None), len(gc.get_objects())
        for _ in range(3000):
            await asyncio.gather(pool.submit(lambda: 1), pool.submit(lambda: 2))
        gc.collect()
        print("drift", sys.getrefcount(None) - before, "objects", len(gc.get_objects()) - objects)

    with loop:
        loop.run_until_complete(main())
    """
)


def test_six_thousand_pool_runs_keep_the_interpreter_alive() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, f"the pool crashed the interpreter: {result.stderr[-2000:]}"
    words = result.stdout.split()
    drift, objects = int(words[1]), int(words[3])
    assert drift > -3000, f"None lost {-drift} references over 6,000 runs: a PySide6 refcount bug is back"
    assert objects < 3000, f"{objects} objects left behind by 6,000 runs: the pool leaks"
