"""Subscriber: Redis pub/sub subscriptions that survive reconnects and failovers, on one
Redis, a Sentinel-managed master or a Redis Cluster.

redis-py's asyncio cluster client has no pub/sub before 8.x and its plain PubSub knows no
sharded channels before 8.x either, so this speaks the protocol itself: one dedicated
connection per Redis node, made from the client's own connection settings. A channel is
subscribed on the node that owns its slot (SSUBSCRIBE must go there; a plain SUBSCRIBE
may go to any node, which receives every PUBLISH in the cluster). When a connection
breaks, or the node answers MOVED, the subscriber asks the cluster for its slot map
again and subscribes on the new owner.

A subscriber yields a Delivery per message, and one with `data=None` each time Redis
confirms a subscription (at first, and after every reconnect): what was published while
it was not subscribed is lost, so a reader that keeps state elsewhere re-reads it then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, RedisError

from mend_core.redis_client import is_cluster
from mend_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
# A read that sees nothing this long pings the node, so a connection a dead node left
# open is noticed within twice this.
IDLE_SECONDS = 5.0
# The pause before reconnecting, doubled after each failed try up to the maximum (a
# cluster's failover takes a few seconds; a restarted Redis is back at once).
RECONNECT_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 2.0


@dataclass(frozen=True)
class Delivery:
    channel: str
    data: str | None  # None: Redis (re)confirmed the subscription to `channel`


class Subscriber:
    """subscribe()/unsubscribe() any time; messages() yields what arrives on the channels
    subscribed to. sharded: SSUBSCRIBE (Redis 7 sharded pub/sub, for SPUBLISH), else
    SUBSCRIBE."""

    def __init__(self, redis: Redis, *, sharded: bool = False) -> None:
        self._redis = redis
        self._cluster = is_cluster(redis)
        self._verbs = ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._links: dict[str, _Link] = {}  # node name -> its connection
        self._where: dict[str, str] = {}  # channel -> node name
        self._closed = False

    @property
    def channels(self) -> set[str]:
        return set(self._where)

    async def subscribe(self, *channels: str) -> None:
        if self._cluster:  # the slot map, before the first command has fetched it
            await self._redis.initialize()  # type: ignore[attr-defined]
        for channel in channels:
            if channel not in self._where:
                self._place(channel)

    async def unsubscribe(self, *channels: str) -> None:
        for channel in channels:
            node = self._where.pop(channel, None)
            if node is not None:
                self._links[node].drop(channel)

    async def messages(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self._inbox.get()

    async def aclose(self) -> None:
        self._closed = True
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.aclose()

    def _place(self, channel: str) -> None:
        name, connect = self._node_of(channel)
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = _Link(self, name, connect)
        self._where[channel] = name
        link.add(channel)

    def _node_of(self, channel: str) -> tuple[str, Any]:
        """(node name, a function making a new connection to it)."""
        if self._cluster:
            node = self._redis.get_node_from_key(channel)  # type: ignore[attr-defined]
            return node.name, lambda: _dedicated(node.connection_class, node.connection_kwargs)
        pool = self._redis.connection_pool
        return "redis", lambda: _dedicated(pool.connection_class, pool.connection_kwargs)

    async def _lost(self, link: _Link, channels: set[str]) -> None:
        """The link's node is gone or no longer owns these channels: find their owners
        again (a cluster's slot map changes on failover) and subscribe there."""
        if self._closed:
            return
        if self._cluster:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.nodes_manager.initialize()  # type: ignore[attr-defined]
        for channel in channels:
            if self._where.get(channel) == link.name:
                del self._where[channel]
                link.drop(channel)
                self._place(channel)


def _dedicated(connection_class: type[AbstractConnection], kwargs: dict[str, Any]) -> Any:
    # Its own connection, never returned to a pool; no health checks, whose PING the
    # subscribed connection would answer in pub/sub form (the link pings by itself).
    # RESP2 (redis-py 8 speaks RESP3 by default): its pub/sub messages are replies that
    # read_response() returns, not RESP3 pushes that go to a push handler.
    return connection_class(**{**kwargs, "health_check_interval": 0, "protocol": 2})


class _Link:
    """One node's connection and the channels subscribed on it; a task reads it."""

    def __init__(self, owner: Subscriber, name: str, connect: Any) -> None:
        self.owner = owner
        self.name = name
        self._connect = connect
        self._channels: set[str] = set()
        self._conn: AbstractConnection | None = None
        self._task = asyncio.create_task(self._run(), name=f"subscriber-{name}")

    def add(self, channel: str) -> None:
        self._channels.add(channel)
        self._send(self.owner._verbs[0], channel)

    def drop(self, channel: str) -> None:
        self._channels.discard(channel)
        self._send(self.owner._verbs[1], channel)

    def _send(self, *command: str) -> None:
        conn = self._conn
        if conn is not None:  # else _run subscribes once it has connected
            # In the background: the reader task owns the replies.
            task = asyncio.ensure_future(conn.send_command(*command))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    async def _run(self) -> None:
        pause = RECONNECT_SECONDS
        while True:
            moved: set[str] = set()
            try:
                conn = self._connect()
                await conn.connect()
                # Set first: a channel add()ed from now on is subscribed by add() itself
                # (one subscribed twice is confirmed twice, which is harmless).
                self._conn = conn
                # One channel per command: on a cluster, sharded channels of different
                # slots in one SSUBSCRIBE are a CROSSSLOT error, even on one node.
                for channel in sorted(self._channels):
                    await conn.send_command(self.owner._verbs[0], channel)
                pause = RECONNECT_SECONDS
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # A broken connection, or MOVED: the node no longer owns a channel's slot
                # (which one, the error does not say). Either way, every channel's owner
                # is looked up again.
                log.warning("pub/sub connection to %s lost (%s); resubscribing", self.name, exc)
                moved = set(self._channels)
            await self._disconnect()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_SECONDS)
            if moved:
                await self.owner._lost(self, moved)
            if not self._channels and self.owner._links.get(self.name) is self:
                del self.owner._links[self.name]  # all moved elsewhere: retire
                return

    async def _read(self, conn: AbstractConnection) -> None:
        pinged = False
        while True:
            reply = await conn.read_response(timeout=IDLE_SECONDS)
            if reply is None:
                if pinged:
                    raise ConnectionError(f"{self.name} does not answer")
                await conn.send_command("PING")
                pinged = True
                continue
            pinged = False
            kind, channel, data = (_text(part) for part in [*reply, "", ""][:3])
            if kind in ("message", "smessage") and channel in self._channels:
                self.owner._inbox.put_nowait(Delivery(channel, data))
            elif kind in ("subscribe", "ssubscribe") and channel in self._channels:
                self.owner._inbox.put_nowait(Delivery(channel, None))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
