"""Coalescing: concurrent calls that each need a Redis round trip share one.

Per-command client cost dominates a server's CPU per call (redis-py spends ~60 µs on a
command sent alone, ~9 µs on one in a pipeline: bench/results/redispy.md), so the store
sends what concurrent calls need together. A call that finds no round trip in flight goes
at once, alone: nothing waits at low load. Calls arriving while one is in flight wait for
it and then go together, as one pipeline.

Each caller's commands are exactly those it would send alone, in its order, and each
caller gets exactly its own replies, or the first error among them (a script's refusal,
a NOSCRIPT reloaded and retried as `pipelined` does): one caller's error never touches
another's. A failure of the round trip itself (Redis unreachable, a broken connection)
reaches every caller of it, so no caller waits forever and none is told of a write that
Redis did not answer. A pipeline is not a transaction: the commands of different callers
interleave as they would on separate connections, and each script stays atomic."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from mend_core.jobstate.scripts import Scripts, pipelined, pipelined_replies
from mend_core.redis_client import is_cluster, on_node_replies

T = TypeVar("T")
R = TypeVar("R")

# Callers sent in one round trip at most; the rest go in the next.
MAX_CALLERS = 256


class Coalescer(Generic[T, R]):
    """`await coalescer(item)`: `many([item, ...])`'s outcome for that item, where `many`
    answers a list of items at once (a result or an exception for each, in order). An item
    arriving while a call of `many` is in flight waits for the next, with the others that
    arrived meanwhile."""

    def __init__(
        self,
        many: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        *,
        max_batch: int = MAX_CALLERS,
    ) -> None:
        self._many = many
        self._max_batch = max_batch
        # None: nothing in flight; else the items waiting for the next call.
        self._waiting: list[tuple[T, asyncio.Future[R]]] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self.calls = 0  # calls of `many` made (what tests and profiles look at)

    async def __call__(self, item: T) -> R:
        if self._waiting is not None:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, future))
            return await future
        self._waiting = []
        try:
            self.calls += 1
            [out] = await self._many([item])
        finally:
            if self._waiting:
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            else:
                self._waiting = None
        if isinstance(out, BaseException):
            raise out
        return out

    async def _drain(self) -> None:
        waiting = self._waiting
        assert waiting is not None
        try:
            while waiting:
                taken = waiting[: self._max_batch]
                del waiting[: self._max_batch]
                # A caller that left meanwhile (cancelled) sends nothing.
                batch = [(item, future) for item, future in taken if not future.done()]
                if not batch:
                    continue
                self.calls += 1
                try:
                    outs = await self._many([item for item, _ in batch])
                except Exception as exc:  # the round trip failed: every caller of it hears
                    outs = [exc] * len(batch)
                for (_, future), out in zip(batch, outs, strict=True):
                    if future.done():
                        continue
                    if isinstance(out, BaseException):
                        future.set_exception(out)
                    else:
                        future.set_result(out)
        except BaseException as exc:  # cancelled (the process stopping): nobody waits on
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self._waiting = None
            self._drainer = None


Commands = list[tuple[Any, ...]]
_Call = tuple[Commands, Sequence[tuple[Scripts, str]]]


class RoundTrips:
    """`pipelined` (mend_core/jobstate/scripts.py) for concurrent callers, who share round
    trips (see the module docstring). On a cluster each caller's pipeline goes alone: a
    cluster pipeline splits by node anyway, and retries what failed on its own terms; but
    the calls whose commands all go to one node (`on_node`: a script, a wake push) share
    that node's round trips."""

    def __init__(self, redis: Redis, *, max_callers: int = MAX_CALLERS) -> None:
        self._redis = redis
        self._alone = is_cluster(redis)
        self._max_callers = max_callers
        self._lane: Coalescer[_Call, list[Any]] = Coalescer(self._send, max_batch=max_callers)
        # On a cluster: node name -> (its ClusterNode, the lane of its round trips).
        self._nodes: dict[str, tuple[Any, Coalescer[Commands, list[Any]]]] = {}

    async def on_node(self, key: str, commands: Commands) -> list[Any]:
        """On a cluster: the replies to `commands`, every one for the master `key`'s slot
        routes to, sent with the other callers' of that node down one connection (see
        redis_client.on_key_node): the first error among them raised, a moved slot as
        TryAgainError (nothing ran; the caller may go through the cluster client)."""
        cluster: Any = self._redis
        await cluster.initialize()  # (once: the slot map)
        node = cluster.get_node_from_key(key)
        known = self._nodes.get(node.name)
        if known is None or known[0] is not node:  # new, or replaced after a failover
            lane: Coalescer[Commands, list[Any]] = Coalescer(
                functools.partial(self._send_to, node), max_batch=self._max_callers
            )
            known = self._nodes[node.name] = (node, lane)
        return await known[1](commands)

    async def _send_to(self, node: Any, calls: list[Commands]) -> list[list[Any] | BaseException]:
        replies = await on_node_replies(self._redis, node, [c for cs in calls for c in cs])
        return _by_caller(replies, calls)

    @property
    def trips(self) -> int:
        """Round trips made so far."""
        return self._lane.calls

    async def pipelined(
        self, commands: Commands, scripts: Sequence[tuple[Scripts, str]] = ()
    ) -> list[Any]:
        """The replies to `commands`, or the first error among them. `scripts`: those the
        commands call by EVALSHA, loaded if Redis lacks them."""
        if not commands:
            return []
        if self._alone:
            return await pipelined(self._redis, commands, scripts)
        return await self._lane((commands, scripts))

    async def _send(self, calls: list[_Call]) -> list[list[Any] | BaseException]:
        scripts = list(dict.fromkeys(s for _, needed in calls for s in needed))
        replies = await pipelined_replies(
            self._redis, [c for commands, _ in calls for c in commands], scripts
        )
        return _by_caller(replies, [commands for commands, _ in calls])


def _by_caller(replies: list[Any], calls: list[Commands]) -> list[list[Any] | BaseException]:
    """The replies of one round trip split among its callers: each caller's own, or the
    first error among them."""
    out: list[list[Any] | BaseException] = []
    start = 0
    for commands in calls:
        mine = replies[start : start + len(commands)]
        start += len(commands)
        error = next((r for r in mine if isinstance(r, Exception)), None)
        out.append(mine if error is None else error)
    return out
