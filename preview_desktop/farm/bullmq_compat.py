"""Where the farm reaches past bullmq's public API: all of it is here, each item with why. Nothing else in farm/
touches a bullmq attribute that is not public.

Checked with bullmq 3.4.4 (pinned in pyproject.toml). bullmq for Python is alpha and reshapes its insides between
releases: when the pin moves, re-read each item below against the new worker.py, job.py, lock_manager.py and
backends/redis_backend.py, then run tests/integration/farm and the farm benchmark.

Why reach in at all (docs/farm.md, "Slots shared with local work"): `Worker.run()` keeps `concurrency` fetches in
flight whatever else the node does, so it would lock farm jobs this node cannot start while local renders hold
the slots. The farm drives fetching itself (farm/fetching.py) and leaves the rest to the Worker — locks and their
renewal, the stalled-job check, completing, failing, retries and backoff — starting those parts by hand, as
`run()` would have.

The rest of farm/ sees a bullmq job only as `BullJob` and the worker only as `FarmWorker`; `Any` stays in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from .connection import FarmConfig
from .registry import FarmKeys

if TYPE_CHECKING:
    from redis.asyncio import Redis


class BullJob(Protocol):
    """The public attributes of a `bullmq.Job` the farm reads."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> object: ...  # JSON from whichever producer added the job
    @property
    def opts(self) -> dict[str, Any]: ...  # JSON: the producer's options (attempts, backoff, priority, ...)
    @property
    def attemptsMade(self) -> int: ...
    @property
    def timestamp(self) -> int: ...  # unix ms when it was added
    @property
    def priority(self) -> int: ...  # BullMQ's, as the job's hash holds it now (changePriority writes it there)
    def updateProgress(self, progress: dict[str, float]) -> Awaitable[object]: ...


Processor = Callable[[BullJob, str], Awaitable[dict[str, Any]]]
ErrorHandler = Callable[..., None]  # bullmq emits ("error", err) and sometimes ("error", err, job)


class NextJobs(Protocol):
    """The fetching side of a completion that also takes this node's next job (farm/fetching.py)."""

    def claim_next(self) -> bool:
        """Before a completion: True if it should take the next job; that holds a claim on a free slot."""
        ...

    def release_claim(self) -> None: ...

    async def take_next(self, finished: str, token: str,
                        following: Callable[[], Awaitable[BullJob | None]]) -> None:
        """After the completion: `following()` gives the job it took (or None); start it or give it back."""
        ...


def default_retry(job: BullJob, attempts: int, backoff_ms: int) -> None:
    """Give a job whose producer set no `attempts` this many, with exponential backoff from `backoff_ms`.

    Why it works: bullmq decides retry-or-fail in `Job.moveToFailed`, from `job.opts` as they are then — after our
    processor has raised — so options set on the job in the processor apply to this failure. Checked with bullmq
    3.4.4.
    """
    if job.opts.get("attempts"):
        return
    job.opts["attempts"] = attempts
    if not job.opts.get("backoff"):
        job.opts["backoff"] = {"type": "exponential", "delay": backoff_ms}


async def move_back(job: BullJob, token: str, delay_s: float = 0.0) -> None:
    """Return a job this node holds (locked by `token`) to the queue, at once or after `delay_s`, without using
    one of its attempts.

    `Job.moveToDelayed(now + delay)`: bullmq passes skipAttempt, and a delay of 0 makes the job wait again at once.
    Called by a processor, it must raise `DelayedError` afterwards (Job.moveToDelayed's contract); for a fetched job
    that never reached `processJob` nothing else is needed. Checked with bullmq 3.4.4.
    """
    bull: Any = job  # moveToDelayed is public, but only valid in the cases above: kept out of BullJob
    await bull.moveToDelayed(int((time.time() + max(0.0, delay_s)) * 1000), token)


async def add_job_log(job: BullJob, line: str) -> None:
    """One line in the job's BullMQ log (`Queue.getJobLogs`), where a backend reads why a job waits."""
    bull: Any = job  # Job.log is public in bullmq 3.4.4; kept out of BullJob, which producers' jobs also satisfy
    await bull.log(line)


# BullMQ states of a job that still waits for a node: a priority change still decides when it runs
WAITING_STATES = frozenset({"wait", "waiting", "paused", "prioritized", "delayed"})
_CHANGE_PRIORITY_KEYS = ["wait", "paused", "meta", "prioritized", "active", "pc", "marker"]


async def change_priority_if_waiting(queue: Any, redis: Redis, job_id: str, priority: int, tries: int = 5) -> str:
    """Give a job a new BullMQ priority only while it waits; returns the state it was found in (changed if that is
    one of WAITING_STATES, else untouched), or "busy" when its hash changed under every try (never seen: nothing
    writes the hash of a waiting job).

    Why not `Job.changePriority` alone: its script (changePriority-7.lua, the one Node's BullMQ runs) moves a waiting
    job to its new place but writes the priority into the job's hash in any state, so on a job a node took a moment
    earlier it would change only what a later retry gets, and the caller could not tell. So the same script runs in
    a MULTI under WATCH of the job's hash, after the state is read: a node taking the job (moveToActive writes
    `processedOn` there), its completion or its removal in between abort the transaction and the state is read
    again. `Scripts.changePriority` takes no pipeline, so its keys and arguments are repeated from bullmq 3.4.4's
    scripts.py (bullmq's own add passes `client=pipe` to its scripts the same way)."""
    from redis.exceptions import WatchError

    scripts = queue.scripts
    job_key = scripts.toKey(job_id)
    for _ in range(tries):
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(job_key)
            state = str(await queue.getJobState(job_id))
            if state not in WAITING_STATES:
                return state
            pipe.multi()
            await scripts.commands["changePriority"](keys=scripts.getKeys(_CHANGE_PRIORITY_KEYS),
                                                     args=[priority, scripts.keys[""], job_id, 0], client=pipe)
            try:
                result = await pipe.execute()
            except WatchError:
                continue
            return state if list(result) == [0] else "unknown"
    return "busy"


class FarmWorker:
    """A bullmq Worker whose fetching the farm drives. Built unopened; `open` makes the Worker (needs a loop)."""

    def __init__(self, queue: str, prefix: str, name: str, config: FarmConfig) -> None:
        self._queue = queue
        self._prefix = prefix
        self._name = name
        self._config = config
        self._worker: Any = None  # bullmq.Worker
        self._tokens = itertools.count(1)
        self._complete: Any = None  # bullmq's own backend.moveToCompleted
        self._next_jobs: NextJobs | None = None

    def open(self, connection: Redis, processor: Processor, on_error: ErrorHandler, next_jobs: NextJobs) -> None:
        from bullmq import Worker
        from bullmq.timer import Timer

        opts: dict[str, Any] = {
            **self._config.worker_opts(),
            "connection": connection,
            "prefix": self._prefix,
            "autorun": False,  # public option: no run() loop, we fetch (module docstring)
            "name": self._name,
        }
        worker = Worker(self._queue, processor, opts)
        worker.on("error", on_error)
        # Completion that also takes the next job. `processJob` completes through `backend.moveToCompleted` with
        # fetch_next=False always (3.4.4), so every job costs a completion and a separate fetch. Node's BullMQ
        # worker asks the same Redis script (moveToFinished) for the next job: one round trip per job instead of
        # two. We replace that one method on this worker's backend; see `_move_to_completed`.
        self._complete = worker.backend.moveToCompleted
        worker.backend.moveToCompleted = self._move_to_completed
        self._next_jobs = next_jobs
        # Lock renewal: `run()` starts the LockManager's renewal loop; without run() nobody does, and every lock
        # would lapse after lockDuration. `start()` is idempotent.
        worker.lockManager.start()
        # Stalled-job check (requeues the jobs of dead nodes): `run()` creates this timer itself, with these very
        # arguments; `close()` does not stop it, so `close` below does (as run()'s `finally` would).
        worker.stalledCheckTimer = Timer(self._config.stalled_interval_ms / 1000, worker.runStalledJobsCheck,
                                         worker.emit)
        self._worker = worker

    def new_token(self) -> str:
        """A lock token for one fetch, in the form `run()` makes them: `{worker.id}:{n}`."""
        return f"{self._worker.id}:{next(self._tokens)}"

    def blocked_fetch(self) -> asyncio.Future[Any] | None:
        """The fetch parked on an empty queue (its blocking BZPOPMIN), if one is.

        `getNextJob` blocks only if no other fetch does (`worker.waiting` holds the one that does); while one
        does, another call returns at once, empty, and a fetch loop would spin. `run()` checks `worker.waiting`
        before each fetch for the same reason; so do we.
        """
        waiting = self._worker.waiting
        return waiting if waiting is not None and not waiting.done() else None

    async def fetch(self, token: str) -> BullJob | None:
        """The next job, locked with `token`, or None. `getNextJob` is what `run()` calls (public in Node)."""
        job: BullJob | None = await self._worker.getNextJob(token)
        return job

    def process(self, job: BullJob, token: str) -> Coroutine[Any, Any, None]:
        """What `run()` does with each job it fetched: `processJob` tracks the job's lock for renewal, calls our
        processor, then completes the job (through `_move_to_completed`) or fails it (bullmq's retry and backoff);
        a `DelayedError` from the processor means the processor already moved the job."""
        coro: Coroutine[Any, Any, None] = self._worker.processJob(job, token)
        return coro

    async def close(self) -> None:
        worker = self._worker
        if worker is None:
            return
        worker.stalledCheckTimer.stop()  # see `open`: run() would stop it; close() does not
        # `close()` sets this itself, but only once its task runs; set now, a completion finishing in the same
        # loop round takes no next job (`_move_to_completed` reads it).
        worker.closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.close(force=True), 3.0)

    async def _move_to_completed(self, job: Any, result: Any, remove_on_complete: Any, token: str,
                                 fetch_next: bool = False) -> Any:
        """bullmq's completion, which also takes this node's next job in the same Redis script when a slot is free.

        Same signature as `RedisBackend.moveToCompleted` (3.4.4), whose `fetch_next` processJob always passes as
        False: ignored, the fetching side decides (it claims the slot before we await, so the fetch loops, woken
        by the same free slot, leave it alone). The reply's `result` is the next job's raw data, as `moveToActive`
        returns it; `nextJobFromJobData` turns it into a Job exactly as a fetch would, and we emit "active" as
        `getNextJob` does. The next job keeps the finished job's lock token (as in Node).
        """
        assert self._next_jobs is not None
        claim = not self._worker.closing and self._next_jobs.claim_next()
        try:
            done = await self._complete(job, result, remove_on_complete, token, fetch_next=claim)
        finally:
            if claim:
                self._next_jobs.release_claim()
        if claim:
            await self._next_jobs.take_next(str(job.id), token, partial(self._following, done, token))
        return done

    async def _following(self, done: Any, token: str) -> BullJob | None:
        job_data, job_id, limit_until, delay_until = done["result"] or (None, None, None, None)
        job: BullJob | None = await self._worker.nextJobFromJobData(job_data, job_id, limit_until or 0,
                                                                    delay_until or 0, token)
        if job is not None:
            self._worker.emit("active", job, "waiting")
        return job


# ---------------------------------------------------------------------- flows (farm/flows.py): parent and chunks
# A chunked preview is a BullMQ flow: chunk jobs added with the `parent` option and `continueParentOnFailure`, the
# parent moved to waiting-children. Python's flow scripts differ from Node's (docs/shared STACK.md): each call
# below is exercised by tests/integration/farm/test_flows.py against bullmq 3.4.4.


def parent_option(prefix: str, queue: str, parent_id: str) -> dict[str, Any]:
    """Options that make a job a child of `parent_id` in the same queue.

    `continueParentOnFailure` (not `failParentOnFailure`): a child that fails for good is recorded in the parent's
    `:failed` hash with its reason and the parent is moved to wait at once, so our processor runs and fails it
    naming the chunk and its reason (with fpof, bullmq fails the parent before any processor runs, as "child
    bull:q:7 failed", without the reason)."""
    return {"parent": {"id": parent_id, "queue": f"{prefix}:{queue}"}, "continueParentOnFailure": True}


def flow_progress(job: BullJob) -> object:
    """The progress the job had when it was fetched (`Job.progress`, JSON; 0 if never set)."""
    bull: Any = job
    return getattr(bull, "progress", 0)


async def wait_for_children(job: BullJob, token: str) -> bool:
    """`Job.moveToWaitingChildren`: True if the job now waits for pending children (the processor must then raise
    `WaitingChildrenError`), False if none is pending (the job stays active and locked)."""
    bull: Any = job
    return bool(await bull.moveToWaitingChildren(token, {}))


async def children_values(job: BullJob) -> dict[str, Any]:
    """The return values of the job's completed children, by child key (`bull:previews:12`)."""
    bull: Any = job
    values: dict[str, Any] = await bull.getChildrenValues()
    return values


async def failed_children(redis: Redis, prefix: str, queue: str, job_id: str) -> dict[str, str]:
    """Children that failed for good under continueParentOnFailure: child key → failedReason. BullMQ's key
    `{prefix}:{queue}:{id}:failed` (a hash; Python has no getFailedChildrenValues in 3.4.4)."""
    raw: dict[Any, Any] = await redis.hgetall(f"{prefix}:{queue}:{job_id}:failed")
    return {_text(k): _text(v) for k, v in raw.items()}


async def pending_children(redis: Redis, prefix: str, queue: str, job_id: str) -> list[str]:
    """Ids of the children the parent still waits for: BullMQ's `{prefix}:{queue}:{id}:dependencies` set of
    child keys (`{prefix}:{queue}:{childId}`)."""
    keys: set[Any] = await redis.smembers(f"{prefix}:{queue}:{job_id}:dependencies")
    return sorted(_text(k).rsplit(":", 1)[-1] for k in keys)


def child_key_id(key: str) -> str:
    """`bull:previews:12` → `12`."""
    return key.rsplit(":", 1)[-1]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# One script: record a chunk's frames, sum the preview's, and set the parent's progress as BullMQ's updateProgress
# does (the job hash's `progress` field + a `progress` event on the queue's stream, capped like bullmq's). Separate
# calls raced: two chunk nodes each summed, and the older sum could land last (the preview ended at 60 %).
_CHUNK_PROGRESS = """
local rcall = redis.call
rcall("HSET", KEYS[1], ARGV[1], ARGV[2])
rcall("EXPIRE", KEYS[1], tonumber(ARGV[6]))
local done = 0
for _, v in ipairs(rcall("HVALS", KEYS[1])) do done = done + tonumber(v) end
local total = tonumber(ARGV[3])
if done > total then done = total end
if rcall("EXISTS", KEYS[2]) == 0 then return -1 end
local percent = 0
if total > 0 then percent = math.floor(1000 * done / total + 0.5) / 10 end
local progress = cjson.encode({frame = done, frames = total, percent = percent, chunks = tonumber(ARGV[4])})
local maxEvents = rcall("HGET", KEYS[4], "opts.maxLenEvents") or 10000
rcall("HSET", KEYS[2], "progress", progress)
rcall("XADD", KEYS[3], "MAXLEN", "~", maxEvents, "*", "event", "progress", "jobId", ARGV[5], "data", progress)
return done
"""


async def chunk_progress(redis: Redis, prefix: str, queue: str, flow_key: str, parent_id: str, index: int,
                         frame: int, total: int, chunks: int, ttl_s: int) -> int:
    """A chunk's frames → the parent's progress `{frame: sum, frames, percent, chunks}`, atomically (above).
    Keys: ours (`flow_key`, chunk index → frames) and BullMQ's job hash, `events` stream and `meta` hash, as
    updateProgress-3.lua uses them (3.4.4). Returns the preview's frames, -1 if the parent is gone."""
    base = f"{prefix}:{queue}"
    script = redis.register_script(_CHUNK_PROGRESS)
    done = await script(keys=[flow_key, f"{base}:{parent_id}", f"{base}:events", f"{base}:meta"],
                        args=[index, frame, total, chunks, parent_id, ttl_s])
    return int(done)


async def record_processed_by(redis: Redis, keys: FarmKeys, job_id: str, node_id: str) -> None:
    """Set the job hash's `pb` field (BullMQ's processedBy) to this node.

    Why: Node's BullMQ workers record their name there in moveToActive; the Python Worker (checked with bullmq
    3.4.4) never passes its name to that script, so our jobs had none, and a client following a farm job could
    learn its node only from the registry's next heartbeat. Written once per job, with its first progress report."""
    await redis.hset(f"{keys.prefix}:{keys.queue}:{job_id}", "pb", node_id)
