"""The transitions: one Lua script each, run atomically in Redis, called by name."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from mend_core.jobstate.keys import Keys, lua_prelude
from mend_core.redis_client import is_cluster

_DIR = Path(__file__).with_name("lua")

# Every change the state machine makes, by script (lua/<name>.lua; its header names its
# ARGV after the key prefix). Each runs after the key names (keys.lua_prelude) and
# lua/_lib.lua, whose named functions the scripts share: commit (version, event log,
# change feed), settle (webhook, batch, fail_fast), cancel, schedule, promote_due, remove,
# claim_next and read_job. Only the worker registry (WorkQueue.register_worker) and index cleanup
# (JobStore) write outside them.
TRANSITIONS: dict[str, str] = {
    "submit": "new -> pending: store, index, enqueue jobs (all or none); idempotent by request_id",
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
    "webhook_delivered": "delivery -> gone (acknowledged and deleted)",
    "webhook_retry": "delivery -> waiting in the retry schedule",
    "webhook_promote": "waiting -> delivery (due)",
    "webhook_dead": "delivery -> dead letter",
    "webhook_replay": "dead letter -> delivery (a new attempt budget)",
}


@functools.cache
def _sources() -> dict[str, tuple[str, str]]:
    """name -> (source, SHA1)"""
    head = lua_prelude() + (_DIR / "_lib.lua").read_text()
    sources = {name: head + "\n" + (_DIR / f"{name}.lua").read_text() for name in TRANSITIONS}
    return {name: (s, hashlib.sha1(s.encode()).hexdigest()) for name, s in sources.items()}


class Scripts:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._prefix = keys.prefix
        # Every script's KEYS[1]: a key of the slot all keys share, so cluster clients
        # route the call.
        self._routing_key = keys.turns
        self._source = {name: source for name, (source, _) in _sources().items()}
        self._sha = {name: sha for name, (_, sha) in _sources().items()}

    async def replicated(
        self, name: str, args: tuple[Any, ...], *, replicas: int, timeout_ms: int
    ) -> tuple[Any, int]:
        """Runs the script, then WAITs for `replicas` replicas to acknowledge it (at most
        timeout_ms): the reply and how many did. WAIT counts the writes of the connection
        it runs on, so both go in one pipeline, which uses one connection per node; on a
        cluster the WAIT is sent to the node the script's key routes to."""
        call = (self._sha[name], 1, self._routing_key, self._prefix, *args)
        target = {}
        if is_cluster(self._redis):
            await self._redis.initialize()  # type: ignore[attr-defined]  # (once: the slot map)
            node = self._redis.get_node_from_key(self._routing_key)  # type: ignore[attr-defined]
            target = {"target_nodes": node}
        for _ in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.execute_command("EVALSHA", *call)  # (cluster pipelines block evalsha())
                pipe.execute_command("WAIT", replicas, timeout_ms, **target)
                try:
                    reply, acknowledged = await pipe.execute()
                except NoScriptError:  # the script ran nowhere: load it, then again
                    await self._redis.script_load(self._source[name])  # type: ignore[misc]
                    continue
            return reply, int(acknowledged)
        raise NoScriptError(f"script {name} vanished again after loading it")

    async def __call__(self, name: str, *args: Any) -> Any:
        # Every script takes the key prefix as ARGV[1] and builds its keys from it.
        # EVALSHA directly rather than through redis-py's Script objects, whose call
        # costs a few µs more (an import and a Protocol isinstance check per call).
        call = (self._sha[name], 1, self._routing_key, self._prefix, *args)
        try:
            return await self._redis.evalsha(*call)  # type: ignore[misc]
        except NoScriptError:  # a restarted or flushed Redis: load the script again
            await self._redis.script_load(self._source[name])  # type: ignore[misc]
            return await self._redis.evalsha(*call)  # type: ignore[misc]
