"""The one way Mend opens Redis, so every process uses the same timeouts and understands
the same MEND_REDIS_URL forms:

    redis://[user:password@]host[:port][/db][?option=value...]       one Redis
    rediss://...                                                     one Redis over TLS
    unix://[user:password@]/path/to/redis.sock[?db=N]                one Redis, Unix socket
    redis+cluster://[user:password@]host:port[,host:port...][?...]   a Redis Cluster
    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?...]
                                                                     the master Sentinel names

`rediss+cluster://` and `rediss+sentinel://` speak TLS to the Redis servers (and to the
sentinels). Query options are redis-py's (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
`ssl_cert_reqs`, `socket_timeout`, ...). A cluster client routes each command by its key's
slot and follows the cluster through failovers; a Sentinel client asks the sentinels for
the master again when its connection breaks or the master turns replica."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.asyncio.connection import parse_url
from redis.connection import SSLConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

# Longer than any blocking command Mend issues (BLPOP waits at most a few seconds, the
# change feed reads pub/sub with a short timeout), so a timeout means Redis is unwell.
SOCKET_TIMEOUT_SECONDS = 30.0
# A burst of concurrent calls (hundreds of WatchJob streams waking at once) waits for a
# pooled connection instead of failing with "Too many connections" past this many.
MAX_CONNECTIONS = 100
SETTING = "MEND_REDIS_URL"
# What a call may raise while Redis is unreachable or failing over (a cluster's slots or
# a Sentinel master's role moving): worth retrying after a pause, not a bug.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
)
_DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}


class RedisUrlError(ValueError):
    """MEND_REDIS_URL is not one of the forms Mend understands; the message says why."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"{SETTING}={_redacted(url)!r}: {problem}")


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hosts}"


@dataclass(frozen=True)
class RedisTarget:
    """What MEND_REDIS_URL names. kind "redis": one server at `url`; "cluster": the
    startup `nodes` of a cluster; "sentinel": the sentinels' `nodes` and the `service`
    they watch. `options`: connection settings from the URL (credentials, db, TLS)."""

    kind: Literal["redis", "cluster", "sentinel"]
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    tls: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    """Raises RedisUrlError (naming MEND_REDIS_URL) for anything but the forms above."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise RedisUrlError(url, "not a URL (expected e.g. redis://host:6379/0)")
    base, _, kind = scheme.lower().partition("+")
    if base not in ("redis", "rediss", "unix") or kind not in ("", "cluster", "sentinel"):
        raise RedisUrlError(
            url,
            f"unknown scheme {scheme!r}; use redis://, rediss://, unix://, "
            "redis+cluster:// or redis+sentinel:// (rediss+... for TLS)",
        )
    if base == "unix" and kind:
        raise RedisUrlError(url, "a cluster or Sentinel is reached over TCP, not unix://")
    if not kind:
        try:
            parse_url(url)
            urlsplit(url).port  # noqa: B018  (raises on a port that is no number)
        except ValueError as exc:
            raise RedisUrlError(url, str(exc)) from None
        return RedisTarget("redis", url, tls=base == "rediss")
    parts = re.fullmatch(r"(?P<netloc>[^/?]*)(?P<path>/[^?]*)?(?:\?(?P<query>.*))?", rest)
    assert parts is not None  # every string matches
    netloc, path, query = parts["netloc"], parts["path"] or "", parts["query"] or ""
    userinfo, at, hosts = netloc.rpartition("@")
    nodes = tuple(_node(url, h, _DEFAULT_PORT[kind]) for h in hosts.split(","))
    segments = [s for s in path.split("/") if s]
    service, db = "", "0"
    if kind == "sentinel":
        if not segments:
            raise RedisUrlError(url, "name the service after the sentinels: .../mymaster")
        service, *rest_path = segments
        db = rest_path[0] if rest_path else "0"
        extra = rest_path[1:]
    else:
        db, *extra = segments or ["0"]
        if db != "0":
            raise RedisUrlError(url, "a Redis Cluster has only database 0")
    if extra or not db.isdigit():
        raise RedisUrlError(url, f"unexpected path {path!r}")
    # redis-py reads the credentials and options as it would for one server.
    single = f"{base}://{userinfo}{at}{hosts.split(',')[0]}/{db}" + (f"?{query}" if query else "")
    try:
        options = dict(parse_url(single))
    except ValueError as exc:
        raise RedisUrlError(url, str(exc)) from None
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    return RedisTarget(kind, url, nodes, service, options, tls=base == "rediss")  # type: ignore[arg-type]


def _node(url: str, address: str, default_port: int) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        raise RedisUrlError(url, f"{address!r} is not host:port")
    return host, port or default_port


def _options(timeout: float) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": min(5.0, timeout),
        "socket_keepalive": True,
        "health_check_interval": 15,
        # RESP2 whatever the redis-py version's default (8.x speaks RESP3): Mend reads raw
        # replies (pipelined commands, WITHSCORES pairs, script results) in their RESP2 shape.
        "protocol": 2,
    }


def connect(url: str, *, shared: bool = True, timeout: float = SOCKET_TIMEOUT_SECONDS) -> Redis:
    """shared: for processes with many concurrent callers (the server), a bounded pool
    that makes callers wait. A worker makes a handful of calls at a time and takes the
    plain pool, which costs less per command.

    For a cluster URL the client is a redis.asyncio.RedisCluster, which has the same
    command methods as Redis (typed as Redis for its callers) but no pubsub() and no
    cross-slot transactions: Mend's scripts and pipelines keep each call in one slot,
    and mend_core.pubsub subscribes on the right node."""
    target = parse_redis_url(url)
    options = _options(timeout)
    if target.kind == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes]
        options.pop("health_check_interval")
        client = redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, **options, **_cluster_options(target)
        )
        return cast(Redis, client)
    if target.kind == "sentinel":
        sentinel = redis.asyncio.sentinel.Sentinel(
            target.nodes,
            sentinel_kwargs=_sentinel_options(target, options, AsyncSSLConnection),
            **options,
        )
        master = sentinel.master_for(
            target.service, redis_class=_SentinelMaster, **_pool_options(target)
        )
        master.sentinel = sentinel
        return cast(Redis, master)
    if not shared:
        return Redis.from_pool(ConnectionPool.from_url(url, **options))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, **options
    )
    return Redis.from_pool(pool)


def connect_sync(url: str, *, timeout: float) -> redis.Redis:
    """A synchronous client, for code that runs outside the event loop (the metrics
    endpoint's thread); same forms as connect()."""
    target = parse_redis_url(url)
    options = _options(timeout)
    if target.kind == "cluster":
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.nodes]
        options.pop("health_check_interval")
        client = redis.cluster.RedisCluster(
            startup_nodes=nodes, **options, **_cluster_options(target)
        )
        return cast(redis.Redis, client)
    if target.kind == "sentinel":
        sentinel = redis.sentinel.Sentinel(
            target.nodes,
            sentinel_kwargs=_sentinel_options(target, options, SSLConnection),
            **options,
        )
        return cast(redis.Redis, sentinel.master_for(target.service, **_pool_options(target)))
    return redis.Redis.from_url(url, **options)


def is_cluster(client: object) -> bool:
    return isinstance(client, (redis.asyncio.cluster.RedisCluster, redis.cluster.RedisCluster))


async def on_key_node(cluster: Any, key: str, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Sends `commands` down one connection of the cluster master `key`'s slot routes to,
    in one write, and reads their replies: far cheaper in redis-py than a cluster pipeline
    (which also resends after a connection error, maybe to another node). The first error
    reply is raised (a moved slot's as TryAgainError: see on_node_replies)."""
    await cluster.initialize()  # (once: the slot map)
    replies = await on_node_replies(cluster, cluster.get_node_from_key(key), commands)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def on_node_replies(cluster: Any, node: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """`commands` down one connection of a cluster node, in one write: their replies, an
    error reply in its command's place. A MOVED or ASK reply (the slot moved: a failover,
    a reshard; that command did not run) becomes a TryAgainError, once the slot map is
    read again. After a connection error the slot map is read again too, and the error
    raised: the commands may have run."""
    connection = node.acquire_connection()
    try:
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        await connection.disconnect()
        await cluster.nodes_manager.initialize()
        raise
    finally:
        node.release(connection)
    if any(isinstance(reply, (MovedError, AskError)) for reply in replies):
        await cluster.nodes_manager.initialize()
        replies = [
            TryAgainError(f"slot moved: {reply}")
            if isinstance(reply, (MovedError, AskError)) else reply
            for reply in replies
        ]
    return replies


def _cluster_options(target: RedisTarget) -> dict[str, Any]:
    options = dict(target.options)
    options.pop("db", None)
    return {**options, "ssl": True} if target.tls else options


def _pool_options(target: RedisTarget) -> dict[str, Any]:
    return {**target.options, "ssl": True} if target.tls else dict(target.options)


def _sentinel_options(
    target: RedisTarget, options: dict[str, Any], tls_class: type
) -> dict[str, Any]:
    """The sentinels take the timeouts and TLS settings, not the data nodes' credentials
    or database."""
    tls = {k: v for k, v in target.options.items() if k.startswith("ssl_")}
    sentinel = {k: v for k, v in options.items() if k.startswith("socket_")}
    if target.tls:
        sentinel.update(tls, connection_class=tls_class)
    return sentinel


class _SentinelMaster(Redis):
    """The master's client; closing it also closes its connections to the sentinels."""

    sentinel: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()

