"""The one way Mend opens Redis, so every process uses the same timeouts."""

from __future__ import annotations

from redis.asyncio import Redis

# Longer than any blocking command Mend issues (BLPOP waits at most a few seconds, the
# change feed reads pub/sub with a short timeout), so a timeout means Redis is unwell.
SOCKET_TIMEOUT_SECONDS = 30.0


def connect(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=15,
    )
