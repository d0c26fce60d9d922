"""ChangeFeed: one Redis pub/sub subscription per server process, shared by every watcher.

Workers publish "<job id>:<version>" after each change is recorded in the job's event
log. The feed only wakes the watchers of that job; they then read the log, so a lost
message (or a dropped subscription) can delay a watcher but never make it miss a state.
Watchers of one job woken by the same change share one read of the log (Watch.shared),
so a change reaching a thousand watchers costs one Redis read, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

from redis.asyncio import Redis

from mend_core.pubsub import Subscriber
from mend_core.tasks import cancel_and_wait

T = TypeVar("T")


class _Watched:
    """The watchers of one job, and the reads of the job's log started since it was last
    woken (keyed by what they read)."""

    __slots__ = ("watches", "reads")

    def __init__(self) -> None:
        self.watches: set[Watch] = set()
        self.reads: dict[Hashable, asyncio.Future[Any]] = {}

    def settled(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        """A failed read is not shared again (its error is marked seen: its watchers may
        all have gone)."""
        failed = future.cancelled() or future.exception() is not None
        if failed and self.reads.get(key) is future:
            del self.reads[key]

    def wake(self) -> None:
        # A read started before this wake may miss the change: nobody may join it now.
        self.reads.clear()
        for watch in self.watches:
            watch.changed.set()


class Watch:
    """One watcher's registration. `changed` is set whenever the job may have changed."""

    __slots__ = ("changed", "_watched")

    def __init__(self, watched: _Watched) -> None:
        self.changed = asyncio.Event()
        self._watched = watched

    def clear(self) -> None:
        """Call before each read of the job's state: a change after it sets `changed`."""
        self.changed.clear()

    async def shared(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """read(), or the result of the same read (same key) that a watcher of this job
        started since the job's last wake. Every change this watcher has cleared was
        recorded before that wake, so such a read sees them all, just as a read of its
        own would; later changes set `changed` again."""
        reads = self._watched.reads
        future = reads.get(key)
        if future is None:
            future = reads[key] = asyncio.ensure_future(read())
            future.add_done_callback(functools.partial(self._watched.settled, key))
        # Shielded: a watcher that goes away does not cancel the read of the others.
        return await asyncio.shield(future)


class ChangeFeed:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._jobs: dict[str, _Watched] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)

    @property
    def watcher_count(self) -> int:
        return sum(len(w.watches) for w in self._jobs.values())

    @property
    def watched_jobs(self) -> int:
        return len(self._jobs)

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[Watch]:
        """Registers a watcher of the job. Register before reading the job's state, clear
        before each read: no change can then slip between the two."""
        watched = self._jobs.get(job_id)
        if watched is None:
            watched = self._jobs[job_id] = _Watched()
        watch = Watch(watched)
        watched.watches.add(watch)
        try:
            yield watch
        finally:
            watched.watches.discard(watch)
            if not watched.watches and self._jobs.get(job_id) is watched:
                del self._jobs[job_id]

    def _wake(self, job_id: str) -> None:
        watched = self._jobs.get(job_id)
        if watched is not None:
            watched.wake()

    def _wake_all(self) -> None:
        for watched in self._jobs.values():
            watched.wake()

    async def _run(self) -> None:
        # The subscriber reconnects (and follows a cluster's failovers) by itself.
        subscriber = Subscriber(self._redis)
        try:
            await subscriber.subscribe(self._channel)
            async for delivery in subscriber.messages():
                if delivery.data is None:
                    # Redis confirmed the subscription (at start, or after a reconnect):
                    # every later change reaches us, and those made while we were not
                    # subscribed are in the logs, so every watcher re-reads. Waking
                    # before the confirmation could miss one.
                    self._wake_all()
                else:
                    self._wake(delivery.data.rpartition(":")[0])
        finally:
            await subscriber.aclose()
