"""ChangeFeed: one Redis pub/sub connection per server process, shared by every watcher.

The scripts publish "<job id>:<version>" on the job's partition's sharded channel
(SPUBLISH `mend:{<tag>}:changes`) after each change is recorded in the job's event log. The
feed subscribes (SSUBSCRIBE) to a partition's channel when the first watcher of one of its
jobs arrives and unsubscribes when the last leaves; each confirmed subscription wakes that
partition's watchers, which then read the logs, so a watcher registered before its
partition's subscription was confirmed misses nothing. After its last watcher leaves, a
partition stays subscribed for LINGER_SECONDS: the next watcher of one of its jobs (a client
following its jobs one after another) then finds the subscription in place and costs no
SSUBSCRIBE, confirmation and re-read, nor an SUNSUBSCRIBE when it leaves; a server nobody
watches through receives nothing once the linger is over. A message wakes only the watchers
of its job; they then read the log, so a lost message (or a dropped subscription) can delay
a watcher but never make it miss a state.
Watchers of one job woken by the same change share one read of the log (Watch.shared),
so a change reaching a thousand watchers costs one Redis read, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

from redis.asyncio import Redis

from mend_core.jobstate.partitions import Partitions
from mend_core.pubsub import Subscriber
from mend_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a partition's channel stays subscribed after its last watcher left. Meanwhile
# its changes reach this server for nothing (a lookup each); a watcher arriving saves a
# subscription round trip, its confirmation's re-read and the unsubscription.
LINGER_SECONDS = 30.0


class _Watched:
    """The watchers of one job, and the reads of the job's log started since it was last
    woken (keyed by what they read)."""

    __slots__ = ("watches", "reads", "done_at")

    def __init__(self) -> None:
        self.watches: set[Watch] = set()
        self.reads: dict[Hashable, asyncio.Future[Any]] = {}
        self.done_at: dict[Hashable, float] = {}  # when each read in `reads` finished

    def settled(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        """A failed read is not shared again (its error is marked seen: its watchers may
        all have gone)."""
        failed = future.cancelled() or future.exception() is not None
        if self.reads.get(key) is future:
            if failed:
                del self.reads[key]
            else:
                self.done_at[key] = asyncio.get_running_loop().time()

    def wake(self) -> None:
        # A read started before this wake may miss the change: nobody may join it now.
        self.reads.clear()
        self.done_at.clear()
        for watch in self.watches:
            watch.set()


class Watch:
    """One watcher's registration: `changed` whenever the job may have changed since the
    last `clear`. A plain flag and one future per wait rather than an asyncio.Event and
    asyncio.timeout: a change reaching a thousand watchers wakes each of them, so what a
    wake and a wait cost is paid a thousand times over."""

    __slots__ = ("changed", "_waiter", "_watched")

    def __init__(self, watched: _Watched) -> None:
        self.changed = False
        self._waiter: asyncio.Future[bool] | None = None
        self._watched = watched

    def clear(self) -> None:
        """Call before each read of the job's state: a change after it sets `changed`."""
        self.changed = False

    def set(self) -> None:
        self.changed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wait(self, seconds: float) -> bool:
        """True once `changed` is set (at once if it is), False after `seconds`
        without a change."""
        if self.changed:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        expiry = loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            expiry.cancel()
            self._waiter = None

    async def shared(
        self, key: Hashable, read: Callable[[], Awaitable[T]], *, max_age: float | None = None
    ) -> T:
        """read(), or the result of the same read (same key) that a watcher of this job
        started since the job's last wake (with `max_age`, only one still under way or
        finished at most that many seconds ago: for a state with values that age, such as
        a queue estimate). Every change this watcher has cleared was recorded before that
        wake, so such a read sees them all, just as a read of its own would; later changes
        set `changed` again."""
        reads = self._watched.reads
        future = reads.get(key)
        if future is not None and max_age is not None and future.done():
            done_at = self._watched.done_at.get(key, 0.0)
            if asyncio.get_running_loop().time() - done_at > max_age:
                future = None
        if future is None:
            future = reads[key] = asyncio.ensure_future(read())
            future.add_done_callback(functools.partial(self._watched.settled, key))
        if not future.done():
            # A waiter of its own: a watcher that goes away cancels it, not the read the
            # others share (asyncio.shield, with one callback less).
            waiter = asyncio.get_running_loop().create_future()
            future.add_done_callback(functools.partial(_relay, waiter))
            await waiter
        return future.result()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _relay(waiter: asyncio.Future[None], future: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ChangeFeed:
    def __init__(
        self, redis: Redis, partitions: Partitions, *, linger_seconds: float = LINGER_SECONDS
    ) -> None:
        self._redis = redis
        self._linger = linger_seconds
        # Partitions without watchers still subscribed: when each is to be unsubscribed.
        self._lingering: dict[int, asyncio.TimerHandle] = {}
        self._parts = partitions
        self._channels = {keys.changes_channel: p for p, keys in enumerate(partitions.keys)}
        self._jobs: dict[str, _Watched] = {}
        # Watched jobs by partition: its channel is subscribed while it has any.
        self._by_partition: dict[int, set[str]] = {}
        self._subscriber: Subscriber | None = None
        self._changes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The subscriber reconnects (and follows a cluster's failovers) by itself.
        self._subscriber = Subscriber(self._redis, sharded=True)
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        if self._task:
            await cancel_and_wait(self._task, *self._changes)
        if self._subscriber:
            await self._subscriber.aclose()

    @property
    def watcher_count(self) -> int:
        return sum(len(w.watches) for w in self._jobs.values())

    @property
    def watched_jobs(self) -> int:
        return len(self._jobs)

    @property
    def subscribed_partitions(self) -> set[int]:
        """The partitions whose channel is subscribed (or being subscribed) now."""
        subscriber = self._subscriber
        return {self._channels[c] for c in subscriber.channels} if subscriber else set()

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[Watch]:
        """Registers a watcher of the job. Register before reading the job's state, clear
        before each read: no change can then slip between the two."""
        watched = self._jobs.get(job_id)
        if watched is None:
            watched = self._jobs[job_id] = _Watched()
            self._watch_partition(job_id, True)
        watch = Watch(watched)
        watched.watches.add(watch)
        try:
            yield watch
        finally:
            watched.watches.discard(watch)
            if not watched.watches and self._jobs.get(job_id) is watched:
                del self._jobs[job_id]
                self._watch_partition(job_id, False)

    def _watch_partition(self, job_id: str, watching: bool) -> None:
        partition = self._parts.of_job(job_id)
        jobs = self._by_partition.setdefault(partition, set())
        before = bool(jobs)
        (jobs.add if watching else jobs.discard)(job_id)
        if bool(jobs) == before:
            return
        if jobs:
            lingering = self._lingering.pop(partition, None)
            if lingering is not None:
                lingering.cancel()  # still subscribed: nothing to send, nor to re-read
            else:
                self._subscription(partition, True)
        elif self._linger > 0 and self._subscriber is not None:
            self._lingering[partition] = asyncio.get_running_loop().call_later(
                self._linger, self._linger_over, partition
            )
        else:
            self._subscription(partition, False)

    def _linger_over(self, partition: int) -> None:
        del self._lingering[partition]
        if not self._by_partition.get(partition):
            self._subscription(partition, False)

    def _subscription(self, partition: int, on: bool) -> None:
        """(Un)subscribes the partition's channel. Sent at once, in order, by a task: the
        reading loop never waits for it."""
        subscriber = self._subscriber
        if subscriber is None:  # start() subscribes to what is watched by then
            return
        channel = self._parts[partition].changes_channel
        change = subscriber.subscribe(channel) if on else subscriber.unsubscribe(channel)
        task = asyncio.ensure_future(self._send(change))
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)

    @staticmethod
    async def _send(change: Awaitable[None]) -> None:
        try:
            await change
        except Exception as exc:  # the loop sees the lost connection and starts over
            log.warning("change feed: cannot change a subscription: %s", exc)

    def _wake(self, job_id: str) -> None:
        watched = self._jobs.get(job_id)
        if watched is not None:
            watched.wake()

    def _wake_partition(self, partition: int) -> None:
        for job_id in self._by_partition.get(partition, ()):
            self._wake(job_id)

    async def _run(self) -> None:
        subscriber = self._subscriber
        assert subscriber is not None
        watched = [self._parts[p].changes_channel for p, jobs in self._by_partition.items() if jobs]
        await subscriber.subscribe(*watched)
        async for delivery in subscriber.messages():
            if delivery.data is None:
                # Redis confirmed the subscription (when a watcher arrived, or after a
                # reconnect): every later change reaches us, and those made before are in
                # the logs, so the partition's watchers re-read. Waking before could miss one.
                self._wake_partition(self._channels[delivery.channel])
            else:
                self._wake(delivery.data.rpartition(":")[0])
