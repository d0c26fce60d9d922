"""The gateway's part of a trace (installed only when tracing is on): a span per HTTP
request (continuing a `traceparent` header), and that span's context sent to the gRPC
server as `traceparent` metadata on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mend_core.telemetry.tracing import PROPAGATED, Tracing

# ASGI header names are lower-case bytes: the trace context ones are picked out before
# decoding, rather than decoding every header of every request.
_PROPAGATED = tuple(name.encode("latin-1") for name in PROPAGATED)


def traced(app: ASGIApp, tracing: Tracing) -> ASGIApp:
    async def trace(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        parent = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _PROPAGATED
        }
        method = scope["method"]
        span = tracing.start(
            f"{method} {scope['path']}",
            kind="server",
            parent=parent,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            route = scope.get("route")
            if isinstance(route, Route):  # the template, as OpenTelemetry names server spans
                span.update_name(f"{method} {route.path}")
                span.set_attribute("http.route", route.path)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.fail(f"HTTP {status}")
            span.end()

    return trace


class TraceContextInjector(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
):
    """Adds the current span's traceparent to each call's metadata."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    def _with_context(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        carrier: dict[str, str] = {}
        self._tracing.inject(carrier)
        if not carrier:
            return details
        metadata = [*(details.metadata or ()), *carrier.items()]
        return details._replace(metadata=grpc.aio.Metadata(*metadata))  # type: ignore[attr-defined]

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_context(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_context(client_call_details), request)
