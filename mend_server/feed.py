"""ChangeFeed: one Redis pub/sub subscription per server process, shared by every watcher.

Workers publish "<job id>:<version>" after each change is recorded in the job's event
log. The feed only wakes the watchers of that job; they then read the log, so a lost
message (or a dropped subscription) can delay a watcher but never make it miss a state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis

log = logging.getLogger(__name__)
# Bounded reads keep the connection's health checks running while nothing is published.
READ_TIMEOUT_SECONDS = 5.0


class ChangeFeed:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        # The flag, not only the cancellation, ends the loop: a cancel that lands while a
        # read times out can surface as a Redis TimeoutError, which the loop would retry.
        self._closed = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def watcher_count(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the job may have changed. Register before reading the
        job's state, clear before each read: no change can then slip between the two."""
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def _run(self) -> None:
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Redis confirmed the subscription (at start, or after redis-py
                        # reconnected by itself): every later change reaches us, and those
                        # made while we were not subscribed are in the logs, so every
                        # watcher re-reads. Waking before the confirmation could miss one.
                        self.connected.set()
                        self._wake_all()
                    elif message["type"] == "message":
                        data = message["data"]
                        if isinstance(data, bytes):
                            data = data.decode()
                        self._wake(data.rpartition(":")[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: resubscribe after a pause
                self.connected.clear()
                log.warning("change feed lost its Redis subscription (%s); reconnecting", exc)
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
