"""OpenTelemetry tracing, off unless the standard OTEL_* variables ask for it.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`, or any installed
`opentelemetry_traces_exporter` entry point), or when it is unset and
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (then `otlp`);
OTEL_SDK_DISABLED=true turns it off whatever else is set. The SDK itself reads the rest:
the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), the service name and resource
(OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES; the default name is the process kind), the
batch processor (OTEL_BSP_*) and the OTLP exporter (OTEL_EXPORTER_OTLP_*). Context travels
as W3C trace context (`traceparent`).

Off, `Tracing` is a no-op: spans cost one attribute check and no SDK is imported (the SDK
and exporter are the optional `mend[tracing]` extra)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
EXPORTER_GROUP = "opentelemetry_traces_exporter"
# gRPC codes a server span counts as an error (OpenTelemetry's RPC conventions).
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class Span:
    """What Mend's code does with a span; the no-op one does nothing."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def fail(self, description: str) -> None:
        """Marks the span as failed (error status), saying why."""

    def end(self) -> None:
        """Ends a span from start(): records it, and makes its parent current again."""


_NO_SPAN = Span()
_NO_SPAN_CONTEXT = contextlib.nullcontext(_NO_SPAN)


class Tracing:
    """Tracing off: every method does nothing."""

    enabled = False

    def span(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        """A span, current within the block. parent: a carrier (`traceparent` header or
        metadata) to continue; None continues the current span. kind: internal, server,
        client, producer or consumer."""
        return _NO_SPAN_CONTEXT

    def start(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        """As span(), for code that cannot wrap a block (interceptors): current until
        its end(), which must run in the same task."""
        return _NO_SPAN

    def traceparent(self) -> str:
        """The current span as a W3C traceparent; "" when there is none (or tracing is
        off)."""
        return ""

    def inject(self, carrier: dict[str, str]) -> None:
        """Adds the current span's `traceparent` to carrier (headers, metadata)."""

    def shutdown(self) -> None:
        """Exports what is left; for the end of the process."""


TRACING_OFF = Tracing()


class _OtelSpan(Span):
    def __init__(self, span: Any, token: object | None = None) -> None:
        self._span = span
        self._token = token

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def fail(self, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, description))

    def end(self) -> None:
        from opentelemetry import context

        self._span.end()
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]


class OtelTracing(Tracing):
    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("mend")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = {k.name.lower(): k for k in SpanKind}

    def _options(
        self,
        kind: str,
        parent: Mapping[str, str] | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> dict[str, Any]:
        context = self._propagator.extract(parent) if parent is not None else None
        return {"context": context, "kind": self._kinds[kind], "attributes": attributes}

    @contextlib.contextmanager
    def _span(
        self, name: str, options: dict[str, Any]
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(name, **options) as span:
            yield _OtelSpan(span)

    def span(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        return self._span(name, self._options(kind, parent, attributes))

    def start(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        from opentelemetry import context, trace

        span = self._tracer.start_span(name, **self._options(kind, parent, attributes))
        return _OtelSpan(span, context.attach(trace.set_span_in_context(span)))

    def traceparent(self) -> str:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get(TRACEPARENT, "")

    def inject(self, carrier: dict[str, str]) -> None:
        self._propagator.inject(carrier)

    def shutdown(self) -> None:
        self._provider.shutdown()


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; none means tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(env.get(name) for name in endpoints) else []
    return [name for name in (n.strip() for n in raw.split(",")) if name and name != "none"]


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        name = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    found = importlib.metadata.entry_points(group=EXPORTER_GROUP, name=name)
    if not found:
        raise SystemExit(
            f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed "
            "(`pip install 'mend[tracing]'` brings otlp over http/protobuf and console)"
        )
    return next(iter(found)).load()()  # type: ignore[no-any-return]


def tracing_from_env(service_name: str, env: Mapping[str, str] | None = None) -> Tracing:
    """The process's tracing, as the OTEL_* variables configure it; call once, in main().
    service_name: the default service.name (OTEL_SERVICE_NAME overrides it)."""
    env = os.environ if env is None else env
    names = exporter_names(env)
    if not names:
        return TRACING_OFF
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise SystemExit(
            "OTEL_* variables ask for tracing, but the OpenTelemetry SDK is not installed: "
            "pip install 'mend[tracing]'"
        ) from None
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    return OtelTracing(provider)
