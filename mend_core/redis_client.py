"""The one way Mend opens Redis, so every process uses the same timeouts."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis

# Longer than any blocking command Mend issues (BLPOP waits at most a few seconds, the
# change feed reads pub/sub with a short timeout), so a timeout means Redis is unwell.
SOCKET_TIMEOUT_SECONDS = 30.0
# A burst of concurrent calls (hundreds of WatchJob streams waking at once) waits for a
# pooled connection instead of failing with "Too many connections" past this many.
MAX_CONNECTIONS = 100


def connect(url: str, *, shared: bool = True) -> Redis:
    """shared: for processes with many concurrent callers (the server), a bounded pool
    that makes callers wait. A worker makes a handful of calls at a time and takes the
    plain pool, which costs less per command."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }
    if not shared:
        return Redis.from_pool(ConnectionPool.from_url(url, **options))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_SECONDS, **options
    )
    return Redis.from_pool(pool)
