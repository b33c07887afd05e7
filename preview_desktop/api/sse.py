"""GET /v1/events: server-sent events of job state changes and throttled progress.

State events (`job`, `removed`, `outcome`, `status`) carry an id `{epoch}-{seq}` and are kept in a ring buffer,
so a client that reconnects with `Last-Event-ID` receives what it missed. When that id is from another server
run (other epoch) or older than the buffer, the client gets one `resync` event instead and should re-read
GET /v1/jobs. `progress` events carry no id: they are live only (the next one supersedes a missed one), so they
neither fill the buffer nor move the client's Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..core.events import EngineStatus, Event, JobOutcome, JobProgress, JobRemoved, JobUpdated

log = logging.getLogger(__name__)

BUFFER_SIZE = 2000
PROGRESS_INTERVAL = 0.5  # seconds between progress events per job (the final frame always goes out)
KEEPALIVE_SECONDS = 15.0
CLIENT_QUEUE_MAX = 5000
RETRY_MS = 2000


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: dict[str, Any]
    seq: int | None = None  # None: live-only (progress, resync)

    def encode(self, epoch: str) -> bytes:
        lines = [f"event: {self.event}"]
        if self.seq is not None:
            lines.append(f"id: {epoch}-{self.seq}")
        lines.append("data: " + json.dumps(self.data, ensure_ascii=False, separators=(",", ":")))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


_CLOSE = SseMessage("close", {})


class _Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[SseMessage] = asyncio.Queue()
        self.overflowed = False

    def put(self, message: SseMessage) -> None:
        if self.queue.qsize() >= CLIENT_QUEUE_MAX:
            self.overflowed = True  # a stalled client: it gets a resync once it reads again
            return
        self.queue.put_nowait(message)


class EventBroker:
    """Subscribes to one engine's EventHub; fans events out to SSE clients with a replay buffer."""

    def __init__(self, buffer_size: int = BUFFER_SIZE, progress_interval: float = PROGRESS_INTERVAL) -> None:
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._buffer: deque[SseMessage] = deque(maxlen=buffer_size)
        self._clients: set[_Client] = set()
        self._progress_sent: dict[str, float] = {}
        self._progress_interval = progress_interval
        self._closed = False

    @property
    def last_event_id(self) -> str:
        return f"{self.epoch}-{self._seq}"

    # ------------------------------------------------------------------ producing (loop thread)
    def observe(self, event: Event) -> None:
        """EventHub subscriber: translate an engine event into an SSE message."""
        if isinstance(event, (JobProgress, JobOutcome)) and event.origin != "local":
            return  # a farm job rendering here: its id names no local job; the farm's own record is in Redis
        if isinstance(event, JobUpdated):
            self._publish("job", event.job.to_wire())
            if event.job.state.finished:
                self._progress_sent.pop(event.job.id, None)
        elif isinstance(event, JobRemoved):
            self._publish("removed", {"id": event.job_id})
        elif isinstance(event, JobOutcome):
            self._publish("outcome", {"id": event.job_id, "outcome": event.outcome,
                                      "seconds": round(event.seconds, 3), "frames": event.frames})
        elif isinstance(event, EngineStatus):
            self._publish("status", {"running": event.running, "capacity": event.capacity,
                                     "paused": event.paused, "stopping": event.stopping})
        elif isinstance(event, JobProgress):
            now = time.monotonic()
            last = self._progress_sent.get(event.job_id, 0.0)
            if now - last < self._progress_interval and event.frame < event.frames:
                return
            self._progress_sent[event.job_id] = now
            data = {"id": event.job_id, "frame": event.frame, "frames": event.frames,
                    "fraction": round(event.fraction, 4), "fps": round(event.fps, 2)}
            self._fan_out(SseMessage("progress", data))

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        self._seq += 1
        message = SseMessage(name, data, self._seq)
        self._buffer.append(message)
        self._fan_out(message)

    def _fan_out(self, message: SseMessage) -> None:
        for client in self._clients:
            client.put(message)

    def close(self) -> None:
        """End every open stream (server shutdown), so the runner does not wait on them."""
        self._closed = True
        for client in self._clients:
            client.queue.put_nowait(_CLOSE)

    # ------------------------------------------------------------------ replay
    def _missed_since(self, last_id: str) -> list[SseMessage] | None:
        """Buffered messages after `last_id`, or None when the gap cannot be filled (then: resync)."""
        epoch, _, seq_text = last_id.strip().rpartition("-")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self._seq:
            return None
        oldest = self._buffer[0].seq if self._buffer else self._seq + 1
        assert oldest is not None
        if seq < oldest - 1:
            return None
        return [m for m in self._buffer if m.seq is not None and m.seq > seq]

    def _resync(self, reason: str) -> SseMessage:
        return SseMessage("resync", {"reason": reason, "lastEventId": self.last_event_id})

    # ------------------------------------------------------------------ serving
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The SSE stream. Subscribes before replaying, with no await in between, so nothing falls in a gap."""
        client = _Client()
        self._clients.add(client)
        last_id = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
        backlog: list[SseMessage] = []
        if last_id:
            missed = self._missed_since(last_id)
            backlog = missed if missed is not None else [self._resync("Last-Event-ID is unknown or too old")]
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n: connected {self.last_event_id}\n\n".encode())
            for message in backlog:
                await response.write(message.encode(self.epoch))
            while not self._closed:
                try:
                    message = await asyncio.wait_for(client.queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if message is _CLOSE:
                    break
                if client.overflowed:
                    client.overflowed = False
                    client.queue = asyncio.Queue()
                    await response.write(self._resync("this client fell too far behind").encode(self.epoch))
                    continue
                await response.write(message.encode(self.epoch))
        except ConnectionResetError:
            return response  # the client went away: the normal end of a stream
        finally:
            self._clients.discard(client)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response
