"""The soak's two phases (see soak_day.py): the chaotic day, and one worker's memory over a long quiet run."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from preview_desktop.core.submission import WireSource
from preview_desktop.farm.client import FarmClient
from preview_desktop.queue.local import LocalStore
from preview_desktop.service.jobs import JobService
from preview_desktop.settings import load_settings
from tests.bench.soak_checks import Verdict
from tests.bench.soak_cluster import QUEUE, Media, Proc, farm_node, local_worker
from tests.support.redis_server import RedisServer, redis_server_binary

T = TypeVar("T")
LOCAL_PROJECT, FARM_PROJECT = "soak-local", "soak-farm"


@dataclass
class Planned:
    key: str  # the farm job id too (a producer's own id: a retried add is idempotent)
    side: str  # "local" | "farm"
    spec: dict[str, Any]
    frames: int
    chunked: bool = False


@dataclass
class Finished:
    key: str
    side: str
    state: str  # "done" | "failed" | "cancelled" | ...
    reason: str | None
    folder: Path | None


@dataclass
class ChaosOutcome:
    keys: list[str]
    local: int
    farm: int
    chunked: int
    submitted: int = 0
    finished: dict[str, Finished] = field(default_factory=dict)
    expected: dict[Path, int] = field(default_factory=dict)
    roots: list[Path] = field(default_factory=list)
    caches: list[Path] = field(default_factory=list)
    kills_local: int = 0
    kills_farm: int = 0
    redis_restarts: int = 0
    redis_down: float = 0.0
    crashes: list[str] = field(default_factory=list)
    wall: float = 0.0
    orphans_removed: int = 0  # farm previews of killed nodes that their orphan sweep removed (farm/orphans.py)
    verdict: Verdict = field(default_factory=Verdict)


@dataclass
class RssOutcome:
    jobs: int
    warmup: int
    done: int = 0
    rss_warm: float = 0.0
    rss_end: float = 0.0
    rss_peak: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # the worker's CPU seconds (user + system) over the run
    samples: list[tuple[int, int]] = field(default_factory=list)


def spec_for(project: str, label: str, sources: list[Path]) -> dict[str, Any]:
    """A tiny real render; the label makes every job's pixels (and so its output-cache key) its own."""
    return {"projectId": project, "supersede": False,
            "timeline": {"fps": 25, "clips": [{"source": str(s)} for s in sources]},
            "output": {"width": 160, "height": 90, "burnIn": {"label": label}}}


def plan_jobs(count: int, farm_share: float, chunked_share: float, media: Media, rng: random.Random) -> list[Planned]:
    farm_count = round(count * farm_share)
    sides = ["farm"] * farm_count + ["local"] * (count - farm_count)
    rng.shuffle(sides)
    plan = []
    for i, side in enumerate(sides):
        key = f"{side[0].upper()}{i:05d}"
        if side == "farm" and rng.random() < chunked_share:
            sources = [media.clips[-1], media.clips[-1]]
            plan.append(Planned(key, side, spec_for(FARM_PROJECT, f"SOAK {key}", sources),
                                2 * media.frames[media.clips[-1]], chunked=True))
            continue
        clip = rng.choice(media.clips)
        project = FARM_PROJECT if side == "farm" else LOCAL_PROJECT
        plan.append(Planned(key, side, spec_for(project, f"SOAK {key}", [clip]), media.frames[clip]))
    return plan


def tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n    ".join(text.splitlines()[-lines:])


class Local:
    """The local queue, reached as the CLI and the window do: the job service over the shared store."""

    def __init__(self, data_dir: Path, media: Path, work: Path, queue_max: int) -> None:
        settings = load_settings(env={"DATA_DIR": str(data_dir), "PREVIEW_MEDIA_ROOTS": str(media),
                                      "PREVIEW_SETTINGS": str(work / "bench-settings.json")})
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="soak-store")
        self.store = LocalStore(settings.queue_dir, queue_max=queue_max)
        self.service = JobService(self.store, settings.effective_media_roots, self._run)
        self.previews = data_dir / "previews"

    def _run(self, fn: Callable[[], T], /) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def submit(self, spec: dict[str, Any]) -> str:
        return (await self.service.submit(WireSource(spec))).id

    async def counts(self) -> dict[str, int]:
        return await self._run(self.store.counts)

    async def finished(self, ids: dict[str, str]) -> list[Finished]:
        """Finished jobs among ids (job id → key)."""
        jobs = await self._run(lambda: self.store.list_jobs(project_id=LOCAL_PROJECT))
        out = []
        for job in jobs:
            key = ids.get(job.id)
            if key is not None and job.state.finished:
                state = "done" if job.state.value == "succeeded" else job.state.value
                out.append(Finished(key, "local", state, job.error, self.previews / LOCAL_PROJECT / job.id))
        return out

    def close(self) -> None:
        self.store.close()
        self._executor.shutdown()


async def farm_finished(client: FarmClient, keys: list[str]) -> list[Finished]:
    states = await asyncio.gather(*(client.queue.getJobState(k) for k in keys))
    out = []
    for key, state in zip(keys, states, strict=True):
        if state not in ("completed", "failed"):
            continue
        job = await client.queue.getJob(key)
        result = job.returnvalue if isinstance(job.returnvalue, dict) else {}
        path = (result.get("artifacts") or {}).get("path")
        out.append(Finished(key, "farm", "done" if state == "completed" else "failed", job.failedReason or None,
                            Path(path) if path else None))
    return out


class Chaos:
    """Feeds the plan, follows every job to its end, kills and restarts processes, restarts Redis once."""

    def __init__(self, args: argparse.Namespace, plan: list[Planned], procs: list[Proc], redis: RedisServer,
                 local: Local, client: FarmClient, out: ChaosOutcome, rng: random.Random) -> None:
        self.args, self.plan, self.procs, self.redis = args, plan, procs, redis
        self.local, self.client, self.out, self.rng = local, client, out, rng
        self.local_ids: dict[str, str] = {}  # local job id → key
        self.farm_pending: list[str] = []
        self.outstanding = {"local": 0, "farm": 0}
        self.restarting: set[str] = set()
        self.restarts: list[asyncio.Task[None]] = []
        self.done = asyncio.Event()
        self.errors: dict[str, int] = {}

    def note(self, what: str, exc: BaseException) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
        if self.errors[what] in (1, 10, 100):
            print(f"  ({what}: {type(exc).__name__}: {exc}; x{self.errors[what]})", flush=True)

    async def feed(self) -> None:
        for job in self.plan:
            while self.outstanding[job.side] >= self.args.backlog:
                await asyncio.sleep(0.1)
            while True:
                try:
                    if job.side == "local":
                        self.local_ids[await self.local.submit(job.spec)] = job.key
                    else:
                        await self.client.queue.add("render", job.spec, {"jobId": job.key})
                        self.farm_pending.append(job.key)
                    break
                except Exception as exc:  # Redis down: a backend retries (the job id makes it idempotent)
                    self.note(f"{job.side} submit", exc)
                    await asyncio.sleep(0.5)
            self.outstanding[job.side] += 1
            self.out.submitted += 1

    def record(self, finished: list[Finished]) -> None:
        for f in finished:
            if f.key not in self.out.finished:
                self.out.finished[f.key] = f
                self.outstanding[f.side] -= 1

    async def follow(self) -> None:
        last_print = 0.0
        while len(self.out.finished) < len(self.plan):
            await asyncio.sleep(1.0)
            try:
                self.record(await self.local.finished(self.local_ids))
            except Exception as exc:
                self.note("local poll", exc)
            try:
                self.record(await farm_finished(self.client, list(self.farm_pending)))
                self.farm_pending = [k for k in self.farm_pending if k not in self.out.finished]
            except Exception as exc:
                self.note("farm poll", exc)
            await self.watch_processes()
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                lost = sum(1 for f in self.out.finished.values() if f.state != "done")
                print(f"  {time.strftime('%H:%M:%S')} submitted {self.out.submitted}, finished "
                      f"{len(self.out.finished)}/{len(self.plan)} (not done {lost}), kills "
                      f"{self.out.kills_local + self.out.kills_farm}, redis restarts {self.out.redis_restarts}",
                      flush=True)
        self.done.set()

    async def watch_processes(self) -> None:
        """A process that exited without being killed crashed: record its log's tail, start it again."""
        for proc in self.procs:
            if proc.name in self.restarting or proc.alive():
                continue
            code = proc.proc.returncode if proc.proc is not None else None
            self.out.crashes.append(f"{proc.name} exited with {code}:\n    {tail(proc.log_path)}")
            await self.restart(proc)

    async def restart(self, proc: Proc) -> None:
        self.restarting.add(proc.name)
        try:
            for _ in range(3):
                proc.start()
                try:
                    await asyncio.to_thread(proc.wait_ready)
                    return
                except RuntimeError as exc:
                    self.out.crashes.append(f"{proc.name} failed to start: {exc}:\n    {tail(proc.log_path)}")
                    await asyncio.to_thread(proc.kill9)
        finally:
            self.restarting.discard(proc.name)

    async def pause(self, seconds: float) -> bool:
        """Sleep; True when the run is over."""
        try:
            await asyncio.wait_for(self.done.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def havoc(self) -> None:
        while not await self.pause(self.args.kill_every * self.rng.uniform(0.6, 1.4)):
            if self.out.redis_restarts == 0 and len(self.out.finished) >= len(self.plan) / 2:
                started = time.monotonic()
                print(f"  {time.strftime('%H:%M:%S')} kill -9 redis-server", flush=True)
                await asyncio.to_thread(self.redis.kill)
                await asyncio.sleep(self.args.redis_down)
                await asyncio.to_thread(self.redis.start)
                self.out.redis_down = time.monotonic() - started
                self.out.redis_restarts += 1
                continue
            up = [p for p in self.procs if p.name not in self.restarting]
            if not up or len(self.restarting) >= self.args.max_down:
                continue  # kills faster than start-ups would leave nobody working
            victim = self.rng.choice(up)
            self.restarting.add(victim.name)
            await asyncio.to_thread(victim.kill9)
            if victim.kind == "local":
                self.out.kills_local += 1
            else:
                self.out.kills_farm += 1
            self.restarts.append(asyncio.create_task(self.delayed_restart(victim)))
        await asyncio.gather(*self.restarts)

    async def delayed_restart(self, proc: Proc) -> None:
        await asyncio.sleep(self.rng.uniform(0.3, 1.5))  # a supervisor's restart delay
        await self.restart(proc)


async def chaos_phase(args: argparse.Namespace, media: Media, work: Path, rng: random.Random,
                      timeout: float) -> ChaosOutcome:
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    work.mkdir(parents=True)
    plan = plan_jobs(args.jobs, args.farm_share, args.chunked, media, rng)
    out = ChaosOutcome([p.key for p in plan], sum(p.side == "local" for p in plan),
                       sum(p.side == "farm" for p in plan), sum(p.chunked for p in plan))
    redis = RedisServer(binary, work / "redis")
    redis.start()
    local_dir, storage = work / "local", work / "storage"
    procs = [local_worker(work, "local1", local_dir, media.folder, 1),
             local_worker(work, "local2", local_dir, media.folder, 1),
             farm_node(work, "farm1", redis.url, storage, media.folder, 1, 2.0),
             farm_node(work, "farm2", redis.url, storage, media.folder, 1, 2.0)]
    out.roots = [local_dir / "previews", work / "farm1" / "previews", work / "farm2" / "previews",
                 storage / "previews"]
    out.caches = [storage / "cache", local_dir / "cache", work / "farm1" / "cache", work / "farm2" / "cache"]
    local = Local(local_dir, media.folder, work, args.jobs + 100)
    client = FarmClient(redis.url, QUEUE)
    try:
        for proc in procs:
            proc.start()
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready) for p in procs))
        print(f"chaos: {len(plan)} jobs ({out.local} local, {out.farm} farm, {out.chunked} split), 2 workers + "
              f"2 farm nodes up; kill -9 every ~{args.kill_every:g} s", flush=True)
        chaos = Chaos(args, plan, procs, redis, local, client, out, rng)
        started = time.monotonic()
        tasks = [asyncio.create_task(chaos.feed()), asyncio.create_task(chaos.havoc())]
        try:
            await asyncio.wait_for(chaos.follow(), timeout)
        except asyncio.TimeoutError:
            print(f"chaos: timed out after {timeout:.0f} s", flush=True)
        out.wall = time.monotonic() - started
        chaos.done.set()
        tasks[0].cancel()  # the feeder (done unless timed out); havoc ends after its current restart
        await asyncio.gather(*tasks, return_exceptions=True)
        for proc in procs:  # a clean stop must be clean
            code = await asyncio.to_thread(proc.stop)
            if code not in (0, None):
                out.crashes.append(f"{proc.name} exited with {code} on SIGTERM:\n    {tail(proc.log_path)}")
        await final_sweep([p for p in procs if p.kind == "farm"], out)
        for f in out.finished.values():
            if f.state == "done" and f.folder is not None:
                planned = next(p for p in plan if p.key == f.key)
                out.expected[f.folder] = planned.frames
            elif f.state == "done":
                f.state, f.reason = "done without a folder", "the result names no artifacts path"
        return out
    finally:
        for proc in procs:
            proc.stop(5)
        await client.close()
        local.close()
        redis.stop()


async def final_sweep(nodes: list[Proc], out: ChaosOutcome, timeout: float = 120.0) -> None:
    """Start the farm nodes once more and stop them after their orphan sweep at join (farm/orphans.py), as a
    studio's nodes would sweep a few minutes later: what a sweep removed (now or during the chaos) counts as cleaned
    up; what is left under a previews/ root is counted as published twice."""
    for node in nodes:
        node.start()
    await asyncio.gather(*(asyncio.to_thread(node.wait_ready) for node in nodes))
    deadline = time.monotonic() + timeout
    while not all(b"farm: orphan sweep:" in node.current_log() for node in nodes) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for node in nodes:
        code = await asyncio.to_thread(node.stop)
        if code not in (0, None):
            out.crashes.append(f"{node.name} exited with {code} on SIGTERM after its sweep:\n    {tail(node.log_path)}")
        out.orphans_removed += node.log_path.read_bytes().count(b"removed orphan preview")


async def rss_phase(args: argparse.Namespace, media: Media, work: Path, timeout: float) -> RssOutcome:
    work.mkdir(parents=True)
    out = RssOutcome(args.rss_jobs, args.rss_warmup)
    proc = local_worker(work, "rss", work / "data", media.folder, args.rss_concurrency)
    local = Local(work / "data", media.folder, work, args.rss_jobs + 100)
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready)
        assert proc.pid is not None
        ps = psutil.Process(proc.pid)
        print(f"rss: {args.rss_jobs} jobs through one worker ({args.rss_concurrency} slots), no kills", flush=True)
        started = time.monotonic()
        cpu_before = sum(ps.cpu_times()[:2])
        submitted = 0
        deadline = started + timeout
        last_print = 0.0
        while out.done < out.jobs and time.monotonic() < deadline and proc.alive():
            counts = await local.counts()
            out.done = counts.get("succeeded", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
            waiting = submitted - out.done
            while waiting < 4 * args.rss_concurrency + 4 and submitted < out.jobs:
                clip = media.clips[submitted % len(media.clips)]
                await local.submit(spec_for(LOCAL_PROJECT, f"RSS {submitted}", [clip]))
                submitted += 1
                waiting += 1
            rss = ps.memory_info().rss
            out.samples.append((out.done, rss))
            out.rss_peak = max(out.rss_peak, rss)
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                print(f"  {time.strftime('%H:%M:%S')} {out.done}/{out.jobs} done, RSS {rss / 2**20:.1f} MiB",
                      flush=True)
            await asyncio.sleep(0.5)
        out.wall = time.monotonic() - started
        times = ps.cpu_times()
        out.cpu = times.user + times.system - cpu_before
        failed = (await local.counts()).get("failed", 0)
        if failed:
            print(f"rss: {failed} job(s) failed; see {proc.log_path}")
        out.done -= failed
        window = max(10, out.jobs // 20)
        warm = [r for d, r in out.samples if out.warmup <= d < out.warmup + window]
        end = [r for d, r in out.samples if d >= out.jobs - window]
        out.rss_warm = float(statistics.median(warm)) if warm else 0.0
        out.rss_end = float(statistics.median(end)) if end else 0.0
        return out
    finally:
        proc.stop()
        local.close()
