"""Channel settings and call metadata shared by both clients."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Deadline of each unary call unless the call or the client says otherwise.
DEFAULT_TIMEOUT_SECONDS = 10.0

Metadata = tuple[tuple[str, str], ...]
PathLike = str | os.PathLike[str]

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


def _read(path: PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read the {what} {os.fspath(path)}: {err.strerror}") from None


def channel_credentials(
    credentials: grpc.ChannelCredentials | None,
    *,
    tls: bool = False,
    ca: PathLike | None = None,
    cert: PathLike | None = None,
    key: PathLike | None = None,
) -> grpc.ChannelCredentials | None:
    """The channel's credentials: `credentials` as given, or TLS from PEM files, or None
    for plaintext. `ca` or a client certificate implies TLS; without `ca` the server's
    certificate is checked against gRPC's bundled public roots."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its private key: give both cert and key")
    if not (tls or ca or cert):
        return credentials
    if credentials is not None:
        raise ValueError("give either credentials or tls/ca/cert/key, not both")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA certificate file") if ca else None,
        private_key=_read(key, "client key file") if key else None,
        certificate_chain=_read(cert, "client certificate file") if cert else None,
    )
