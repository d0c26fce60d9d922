"""The transitions: one Lua script each, run atomically in Redis, called by name."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError, TryAgainError

from mend_core.jobstate.encoding import EVENTS_MAXLEN, EVENTS_SNAPSHOT_EVERY, lua_fields
from mend_core.jobstate.keys import Keys, lua_prelude
from mend_core.jobstate.partitions import WAKE_MAXLEN
from mend_core.redis_client import is_cluster, on_key_node

if TYPE_CHECKING:
    from mend_core.jobstate.coalesce import RoundTrips

_DIR = Path(__file__).with_name("lua")

# Every change the state machine makes, by script (lua/<name>.lua; its header names its
# ARGV after the key prefix). Each runs after the key names (keys.lua_prelude) and
# lua/_lib.lua, whose named functions the scripts share: commit (version, event log,
# change feed), settle (webhook, batch, fail_fast), cancel, schedule, promote_due, remove,
# claim_next and read_job. Only the worker registry and wake lists (global keys, see
# partitions.py) and index cleanup (JobStore) are written outside them. A script touches
# the keys of one partition only (its Scripts is that partition's), but on a single Redis
# (partitions.single_node) submit also pushes the wake tokens and get also reads the other
# partitions' queue lengths, given as extra KEYS: a round trip, or a pipeline, fewer.
TRANSITIONS: dict[str, str] = {
    "submit": "new -> pending: store, index, enqueue jobs (all or none); idempotent by request_id",
    "submit_rate": "takes (or gives back) a tenant's submit tokens, before a submit",
    "claim": "pending -> processing: lease the first queued job (fence token + 1)",
    "heartbeat": "processing: extend the lease, while the fence token matches",
    "progress": "processing: record progress, while the fence token matches",
    "complete": "processing -> completed, then optionally claim the next job",
    "fail": "processing -> failed",
    "retry": "processing -> pending, in the retry schedule until its backoff elapses",
    "release": "processing -> pending, queued at once with the attempt given back",
    "cancel": "pending | processing -> cancelled",
    "requeue": "failed | cancelled -> pending with a fresh attempt budget (RetryJob)",
    "delete": "completed | failed | cancelled -> gone (DeleteJob)",
    "purge": "completed | failed | cancelled -> gone, for those matching a filter (PurgeJobs)",
    "reap": "processing -> pending or failed (lease expired); scheduled -> queued (due)",
    "get": "reads a job, and for a pending one its queue estimate (changes nothing)",
    "events": "reads a job's states after a version, from its event log (changes nothing)",
    "webhook_delivered": "delivery -> gone (acknowledged and deleted)",
    "webhook_retry": "delivery -> waiting in the retry schedule",
    "webhook_promote": "waiting -> delivery (due)",
    "webhook_dead": "delivery -> dead letter",
    "webhook_replay": "dead letter -> delivery (a new attempt budget)",
}


@functools.cache
def _sources() -> dict[str, tuple[str, str]]:
    """name -> (source, SHA1)"""
    constants = (
        f"local EVENTS_SNAPSHOT_EVERY = {EVENTS_SNAPSHOT_EVERY}\n"
        f"local EVENTS_MAXLEN = {EVENTS_MAXLEN}\n"
        f"local WAKE_MAXLEN = {WAKE_MAXLEN}\n"
    )
    head = lua_prelude() + lua_fields() + constants + (_DIR / "_lib.lua").read_text()
    sources = {name: head + "\n" + (_DIR / f"{name}.lua").read_text() for name in TRANSITIONS}
    return {name: (s, hashlib.sha1(s.encode()).hexdigest()) for name, s in sources.items()}


class Scripts:
    def __init__(self, redis: Redis, keys: Keys, round_trips: RoundTrips | None = None) -> None:
        """round_trips: calls go through it, sharing round trips with concurrent callers."""
        self._redis = redis
        self._round_trips = round_trips
        self._cluster = is_cluster(redis)
        self._prefix = keys.prefix
        # Every script's KEYS[1]: a key of the slot all keys share, so cluster clients
        # route the call.
        self._routing_key = keys.turns
        self._barrier = keys.barrier
        self._source = {name: source for name, (source, _) in _sources().items()}
        self._sha = {name: sha for name, (_, sha) in _sources().items()}

    def command(self, name: str, *args: Any, keys: Sequence[str] = ()) -> tuple[Any, ...]:
        """The EVALSHA command line, for a pipeline (see `pipelined`). `keys`: keys outside
        the partition, after the routing key (only on a single Redis; see
        partitions.single_node)."""
        return ("EVALSHA", self._sha[name], 1 + len(keys), self._routing_key, *keys,
                self._prefix, *args)

    async def load(self, name: str) -> None:
        await self._redis.script_load(self._source[name])  # type: ignore[misc]

    async def replicated(
        self,
        name: str,
        args: tuple[Any, ...],
        *,
        replicas: int,
        timeout_ms: int,
        keys: Sequence[str] = (),
    ) -> tuple[Any, int]:
        """Runs the script, then WAITs for `replicas` replicas to acknowledge it (at most
        timeout_ms): the reply and how many did. WAIT covers the writes made on the
        connection it runs on, up to its last: so all three commands go down one
        connection to the master the keys route to, and a write to the barrier key comes
        last. A reply that wrote nothing (a replayed request_id, a job already cancelled)
        reports what an earlier write made, maybe on another connection: the barrier,
        written after it, makes the WAIT cover it too."""
        commands = [
            self.command(name, *args, keys=keys),
            ("INCR", self._barrier),
            ("WAIT", replicas, timeout_ms),
        ]
        for _ in range(2):
            try:
                reply, _, acknowledged = await self._on_one_connection(commands)
            except NoScriptError:  # the script ran nowhere: load it, then again
                await self._redis.script_load(self._source[name])  # type: ignore[misc]
                continue
            return reply, int(acknowledged)
        raise NoScriptError(f"script {name} vanished again after loading it")

    async def _on_one_connection(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if not self._cluster:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return await pipe.execute()  # type: ignore[no-any-return]
        # Not a cluster pipeline: after a connection error it sends the commands again,
        # the WAIT (which has no key) to whichever node it likes.
        return await on_key_node(self._redis, self._routing_key, commands)

    async def __call__(self, name: str, *args: Any, keys: Sequence[str] = ()) -> Any:
        # Every script takes the key prefix as ARGV[1] and builds its keys from it.
        # EVALSHA directly rather than through redis-py's Script objects, whose call
        # costs a few µs more (an import and a Protocol isinstance check per call).
        if self._round_trips is not None and not self._cluster:
            [out] = await self._round_trips.pipelined(
                [self.command(name, *args, keys=keys)], [(self, name)]
            )
            return out
        if self._cluster:
            # Straight down a connection of the partition's node; after a moved slot or a
            # broken connection, through the cluster client, which follows the cluster.
            command = [self.command(name, *args, keys=keys)]
            try:
                if self._round_trips is not None:  # sharing the node's round trips
                    [out] = await self._round_trips.on_node(self._routing_key, command)
                else:
                    [out] = await on_key_node(self._redis, self._routing_key, command)
                return out
            except NoScriptError:
                await self._redis.script_load(self._source[name])  # type: ignore[misc]
            except (TryAgainError, ConnectionError, TimeoutError):
                pass
        call = (self._sha[name], 1 + len(keys), self._routing_key, *keys, self._prefix, *args)
        try:
            return await self._redis.evalsha(*call)  # type: ignore[misc]
        except NoScriptError:  # a restarted or flushed Redis: load the script again
            await self._redis.script_load(self._source[name])  # type: ignore[misc]
            return await self._redis.evalsha(*call)  # type: ignore[misc]


async def pipelined(
    redis: Redis, commands: list[tuple[Any, ...]], scripts: Sequence[tuple[Scripts, str]] = ()
) -> list[Any]:
    """Runs commands in one pipeline (one round trip per node): their replies, or the
    first error among them. A script Redis lacks (a restarted or flushed Redis) is loaded
    from `scripts` (those the commands call by EVALSHA), and only the commands that failed
    for it run again."""
    out = await pipelined_replies(redis, commands, scripts)
    for reply in out:
        if isinstance(reply, Exception):
            raise reply
    return out


async def pipelined_replies(
    redis: Redis, commands: list[tuple[Any, ...]], scripts: Sequence[tuple[Scripts, str]] = ()
) -> list[Any]:
    """`pipelined`, with each command's error in place of its reply."""
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        out: list[Any] = await pipe.execute(raise_on_error=False)
    missing = [i for i, reply in enumerate(out) if isinstance(reply, NoScriptError)]
    if missing:
        for script, name in scripts:
            await script.load(name)
        async with redis.pipeline(transaction=False) as pipe:
            for i in missing:
                pipe.execute_command(*commands[i])
            for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                out[i] = reply
    return out
