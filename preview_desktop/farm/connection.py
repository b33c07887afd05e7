"""Redis connections for the farm, and the outage state machine that keeps a lost Redis to one log line.

Why our own clients instead of handing bullmq a URL: bullmq builds clients with a retry policy of 20 attempts
and up to 20 s between them, so during an outage every call hangs for minutes and the node cannot tell the
window the farm is down. Ours fail fast (one quick retry) and the farm's loops back off on their own.

socket_timeout must stay well above the worker's drainDelay: with both at 5 s (redis-py's default vs bullmq's)
the blocking BZPOPMIN of an idle worker timed out and a new job waited 10 s (the idle wake-up bug).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..logs import add_secret, redact

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("preview_desktop.farm")


@dataclass(frozen=True)
class FarmConfig:
    """Timing of the farm. Defaults meet the issue's numbers; docs/farm.md explains each one.

    Recovery of a job whose node died ~ lock_duration + stalled_interval (worst case ~11 s, target 15 s).
    A render never loses its lock while the loop runs: locks are renewed every 1-2 s and renders run off-loop.
    """

    lock_duration_ms: int = 8000
    lock_renew_ms: int = 2000  # bullmq wakes every renew/2 and renews locks older than renew/2
    stalled_interval_ms: int = 3000
    # A job whose node died more than 5 times fails ("job stalled more than allowable limit"), as the local queue
    # does (queue/rules.py MAX_STALLS). It was 1: the soak (tests/bench/soak_day.py) lost jobs whose nodes were
    # killed twice during their few seconds of render, which a studio's flaky node can do to any job.
    max_stalled_count: int = 5
    drain_delay_s: float = 5.0  # BZPOPMIN block time of an idle worker (a new job wakes it at once)
    socket_timeout_s: float = 15.0  # > drain_delay_s, see the module docstring
    connect_timeout_s: float = 3.0
    heartbeat_s: float = 2.0
    node_ttl_s: float = 10.0  # a node that stops heartbeating disappears from the registry after this
    cancel_poll_s: float = 0.25  # a cancel request is seen within this (plus one round trip)
    progress_interval_s: float = 0.25  # at most this often per job to Redis
    backoff_min_s: float = 0.25
    backoff_max_s: float = 5.0
    default_backoff_ms: int = 1000  # exponential base when a job came without `backoff` in its opts
    keep_completed: int = 1000
    keep_failed: int = 5000

    def worker_opts(self) -> dict[str, Any]:
        return {
            "lockDuration": self.lock_duration_ms,
            "lockRenewTime": self.lock_renew_ms,
            "stalledInterval": self.stalled_interval_ms,
            "maxStalledCount": self.max_stalled_count,
            "drainDelay": self.drain_delay_s,
            "runRetryDelay": int(self.backoff_max_s * 1000),
        }


def register_url_secret(url: str) -> None:
    """Make the URL's password a registered secret, so it is masked even where it appears without the URL."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        add_secret(password)
        add_secret(unquote(password))


def make_client(url: str, config: FarmConfig, name: str | None = None) -> Redis:
    """A redis.asyncio client that fails fast: the farm's own loops do the retrying, with backoff."""
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    register_url_secret(url)
    return aredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=config.socket_timeout_s,
        socket_connect_timeout=config.connect_timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        client_name=name,
    )


def describe_error(exc: BaseException) -> str:
    """One short, redacted line for an error (no traceback, no password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def is_connection_error(exc: BaseException) -> bool:
    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    if isinstance(exc, (ConnectionError, TimeoutError, BusyLoadingError, OSError, asyncio.TimeoutError)):
        return True
    # the server's reply when it restarts without its data loaded yet, or is read-only after a failover
    message = str(exc)
    return "LOADING" in message or "READONLY" in message


def backoff_delays(config: FarmConfig) -> Iterator[float]:
    """Retry delays after Redis trouble: backoff_min_s doubling up to backoff_max_s (a fresh one after success)."""
    delay = config.backoff_min_s
    while True:
        yield delay
        delay = min(config.backoff_max_s, delay * 2)


class Link:
    """Up/down state of the node's Redis link: one log line per transition, never a traceback per retry."""

    def __init__(self, url: str) -> None:
        self.url = redact(url)
        self.connected = False
        self.error: str | None = None
        self.since = time.time()
        self.ever_connected = False
        self._up = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def up(self) -> None:
        if self.connected:
            return
        if self.ever_connected:
            log.info("farm: Redis %s is reachable again; resuming farm work", self.url)
        else:
            log.info("farm: connected to Redis %s", self.url)
        self.connected, self.ever_connected, self.error, self.since = True, True, None, time.time()
        self._up.set()
        self._notify()

    def down(self, exc: BaseException) -> None:
        reason = describe_error(exc)
        if not self.connected and self.error is not None:
            self.error = reason  # already reported: keep quiet, just remember the latest reason
            return
        self.connected, self.error, self.since = False, reason, time.time()
        self._up.clear()
        verb = "lost" if self.ever_connected else "unreachable"
        log.warning("farm: Redis %s %s (%s); local queue keeps running, retrying with backoff",
                    self.url, verb, reason)
        self._notify()

    async def wait_up(self, timeout: float | None = None) -> bool:
        if self.connected:
            return True
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()
