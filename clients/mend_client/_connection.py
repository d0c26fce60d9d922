"""Channel settings and call metadata shared by both clients."""

from __future__ import annotations

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Deadline of each unary call unless the call or the client says otherwise.
DEFAULT_TIMEOUT_SECONDS = 10.0

Metadata = tuple[tuple[str, str], ...]

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    # Reconnect quickly after a server restart instead of gRPC's default backoff
    # (1 s growing to 120 s), so that watches resume within seconds.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # Notice a dead peer on long, quiet WatchJob streams.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def auth_metadata(api_key: str | None) -> Metadata:
    return (("x-api-key", api_key),) if api_key else ()
