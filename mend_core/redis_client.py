"""The one way Mend opens Redis, so every process uses the same timeouts."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

# Longer than any blocking command Mend issues (BLPOP waits at most a few seconds, the
# change feed reads pub/sub with a short timeout), so a timeout means Redis is unwell.
SOCKET_TIMEOUT_SECONDS = 30.0
# A burst of concurrent calls (hundreds of WatchJob streams waking at once) waits for a
# pooled connection instead of failing with "Too many connections" past this many.
MAX_CONNECTIONS = 100


def connect(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT_SECONDS,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=15,
    )
    return Redis.from_pool(pool)
