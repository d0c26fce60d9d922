"""The gateway's one gRPC channel to the Mend server, and generic callables for any
method of it (built from descriptors, so no generated stub is needed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from mend_server.addresses import dial_address
from mend_server.auth import STREAM_TOKEN_METADATA

# Headers that carry the caller's credentials; passed through unchanged as metadata, so
# the gRPC server alone decides who the caller is.
FORWARDED_HEADERS = ("x-api-key", "authorization")
# The query parameter of a stream token (EventSource cannot send headers). A credential,
# not a request field: on every route it goes to the server as metadata, and the server
# accepts it for WatchJob only, so that a token opens the stream and nothing else.
TOKEN_QUERY = "token"
# Longer credentials are dropped (the server then answers UNAUTHENTICATED): gRPC refuses
# metadata past 8-16 KiB itself, as RESOURCE_EXHAUSTED (a 429) in its own words.
MAX_CREDENTIAL = 4096
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # WatchJob streams may sit idle for a long time: keep the connection warm.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


def grpc_target(host: str, port: int) -> str:
    """Where to reach a server bound to host:port (a wildcard bind is reached locally)."""
    return dial_address(host, port)


Metadata = tuple[tuple[str, str], ...]


def forwarded_metadata(
    headers: Mapping[str, str], query: Mapping[str, str]
) -> Metadata:
    """Credential headers (and a `?token=`) as gRPC metadata. A value gRPC cannot carry
    (non-ASCII or control characters, or over MAX_CREDENTIAL) is dropped: the server then
    answers UNAUTHENTICATED."""
    values = [(name, headers.get(name)) for name in FORWARDED_HEADERS]
    values.append((STREAM_TOKEN_METADATA, query.get(TOKEN_QUERY)))
    return tuple(
        (name, value)
        for name, value in values
        if value is not None
        and len(value) <= MAX_CREDENTIAL
        and value.isascii()
        and value.isprintable()
    )


class Upstream:
    """Callables are handed out before the channel exists (routes are built with the
    app); the channel is opened in `start`, inside the server's event loop."""

    def __init__(
        self,
        target: str,
        *,
        timeout_seconds: float,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout_seconds
        self.credentials = credentials  # None: plaintext
        self._options = [*_CHANNEL_OPTIONS, *options]
        self._interceptors = list(interceptors) or None
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, Any] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("the gateway's gRPC channel is not open (lifespan not run?)")
        return self._channel

    async def start(self) -> None:
        self._channel = (
            grpc.aio.secure_channel(
                self.target, self.credentials, options=self._options,
                interceptors=self._interceptors,
            )
            if self.credentials is not None
            else grpc.aio.insecure_channel(
                self.target, options=self._options, interceptors=self._interceptors
            )
        )
        self._callables.clear()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None

    def _callable(self, method: MethodDescriptor) -> Any:
        path = f"/{method.containing_service.full_name}/{method.name}"
        found = self._callables.get(path)
        if found is None:
            factory = self.channel.unary_stream if method.server_streaming else (
                self.channel.unary_unary
            )
            found = factory(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
            )
            self._callables[path] = found
        return found

    def unary(self, method: MethodDescriptor) -> Callable[..., grpc.aio.UnaryUnaryCall]:
        return lambda request, **kwargs: self._callable(method)(request, **kwargs)

    def stream(self, method: MethodDescriptor) -> Callable[..., grpc.aio.UnaryStreamCall]:
        return lambda request, **kwargs: self._callable(method)(request, **kwargs)
