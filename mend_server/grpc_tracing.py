"""A span per RPC (kind server), continuing the caller's trace from the `traceparent`
metadata (the gateway sends it); installed only when tracing is on."""

from __future__ import annotations

import grpc

from mend_core.telemetry.tracing import PROPAGATED, SERVER_ERROR_CODES, Span, Tracing


class GrpcTracing:
    """A CallObserver (call_observers.py) that opens a span around each call."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    def probe(self, method: str, grpc_type: str) -> _MethodSpans:
        return _MethodSpans(self._tracing, method.lstrip("/"))


class _MethodSpans:
    def __init__(self, tracing: Tracing, method: str) -> None:
        service, _, name = method.rpartition("/")
        self._tracing = tracing
        self._name = method
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def begin(self, context: grpc.aio.ServicerContext) -> Span:
        carrier = {k: v for k, v in context.invocation_metadata() or () if k in PROPAGATED}
        return self._tracing.start(
            self._name, kind="server", parent=carrier, attributes=self._attributes
        )

    def end(self, span: Span, code: grpc.StatusCode) -> None:
        if span.recording:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code.name in SERVER_ERROR_CODES:
                span.fail(code.name)
        span.end()
