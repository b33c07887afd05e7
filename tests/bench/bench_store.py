"""Local store benchmark (run on demand): `python -m pytest tests/bench/bench_store.py -s`.

1. lease + complete per second through LocalStore, against a bare diskcache Deque append + popleft measured in
   the same run (the floor any diskcache queue pays) and against the target of 2,000/s; MemoryStore's rate too
   (what the rules cost without a disk).
2. submit -> running latency on an idle `--worker` subprocess: p50 target <= 20 ms.
Medians of several rounds, because this machine is noisy.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import diskcache

from preview_desktop.core.job import JobState
from preview_desktop.queue.base import JobStore
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.memory import MemoryStore
from tests.support.cli import start_worker, wait_ready
from tests.support.jobs import make_spec

N = 2000
ROUNDS = 5


def _deque_rate(directory: Path) -> float:
    deque = diskcache.Deque(directory=str(directory))
    t0 = time.perf_counter()
    for i in range(N):
        deque.append(i)
    for _ in range(N):
        deque.popleft()
    return N / (time.perf_counter() - t0)


def _store_rate(directory: Path | None) -> float:
    """LocalStore in `directory`; None: MemoryStore (for comparison: what the rules alone cost)."""
    store: JobStore = LocalStore(directory, queue_max=N * 2) if directory else MemoryStore(queue_max=N * 2)
    # One timeline each: N jobs of one supersede group would make each submit scan the group (N² in all).
    for i in range(N):
        store.submit(make_spec(timeline=f"/bench/{i}.otio"))
    t0 = time.perf_counter()
    for _ in range(N):
        lease = store.lease("bench", 30)
        assert lease is not None
        store.complete(lease.job.id, lease.token, {})
    rate = N / (time.perf_counter() - t0)
    store.close()
    return rate


def test_lease_complete_throughput(tmp_path: Path) -> None:
    ours, ref, memory = [], [], []
    for r in range(ROUNDS):
        ref.append(_deque_rate(tmp_path / f"deque{r}"))
        ours.append(_store_rate(tmp_path / f"store{r}"))
        memory.append(_store_rate(None))
    m_ours, m_ref = statistics.median(ours), statistics.median(ref)
    print(f"\nlease+complete: median {m_ours:,.0f}/s over {ROUNDS} rounds of {N} "
          f"(bare Deque append+popleft {m_ref:,.0f}/s; ratio {m_ours / m_ref:.2f}x); "
          f"target 2,000/s -> {m_ours / 2000:.2f}x target; MemoryStore {statistics.median(memory):,.0f}/s")


def test_submit_to_running_latency(data_dir: Path) -> None:
    proc = start_worker(env={"PREVIEW_MAX_CONCURRENCY": "1"})
    store = LocalStore(data_dir / "queue", queue_max=1000)
    latencies = []
    try:
        wait_ready(proc)
        for i in range(30):
            time.sleep(0.3)  # idle worker
            job = store.submit(make_spec(timeline=f"/nowhere/{i}.otio", attempts=1, dryRun=True))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                current = store.get(job.id)
                if current.state is not JobState.QUEUED and current.started_at is not None:
                    latencies.append(current.started_at - current.created_at)
                    break
                time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p90 = latencies[int(len(latencies) * 0.9)] * 1000
    print(f"\nsubmit->running on an idle worker: p50 {p50:.1f} ms, p90 {p90:.1f} ms over {len(latencies)} jobs; "
          f"target p50 <= 20 ms -> {p50 / 20:.2f}x of the budget")
    assert len(latencies) == 30
