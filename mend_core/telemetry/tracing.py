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
import contextvars
import importlib.metadata
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
# The W3C trace context fields a carrier holds (what the propagator reads).
PROPAGATED = (TRACEPARENT, "tracestate")
EXPORTER_GROUP = "opentelemetry_traces_exporter"
# gRPC codes a server span counts as an error (OpenTelemetry's RPC conventions).
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class Span:
    """What Mend's code does with a span; the no-op one does nothing."""

    # False when nothing said of the span is kept (tracing off, or not sampled).
    recording = False

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
    recording = True

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


class _Unsampled(Span):
    """A span the sampler dropped, made without the SDK: it only holds the trace's context
    (current until end()), so that what runs inside and the jobs it stores stay unsampled."""

    def __init__(self, otel_context: Any, context: Any) -> None:
        self._otel_context = otel_context
        self._token = otel_context.attach(context)

    def end(self) -> None:
        self._otel_context.detach(self._token)


class _DroppedRoot:
    """A root span the sampler dropped, current without an OTel context (which costs more
    to make than the rest of the decision): its trace id, and its traceparent, made only
    if something inside asks for it (Submit does, for its jobs; GetJob does not). The
    rule that dropped it drops every span inside it too."""

    __slots__ = ("trace_id", "header")

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.header = ""


# The dropped root current in this task, until its end(); an OTel span that is current
# was made after it, inside it (a dropped root is only made with no current span).
_DROPPED_ROOT: contextvars.ContextVar[_DroppedRoot | None] = contextvars.ContextVar(
    "mend_dropped_root", default=None
)


class _CurrentDroppedRoot(Span):
    def __init__(self, root: _DroppedRoot) -> None:
        self._token = _DROPPED_ROOT.set(root)

    def end(self) -> None:
        _DROPPED_ROOT.reset(self._token)


class _Rule(NamedTuple):
    """What a standard sampler decides, known ahead so that a dropped span needs no SDK
    call: with a parent, parent_based follows its sampled flag; otherwise (roots, and every
    span without parent_based) a trace id is sampled when its low 64 bits are below
    bound, as TraceIdRatioBased does (always_on: 2**64, always_off: 0)."""

    parent_based: bool
    bound: int


def _rule(sampler: Any) -> _Rule | None:
    """The rule of the SDK's own samplers (every OTEL_TRACES_SAMPLER value but the
    entry-point ones); None for any other, which the SDK then runs on every span."""
    from opentelemetry.sdk.trace import sampling

    def bound(root: Any) -> int | None:
        if type(root) is sampling.TraceIdRatioBased:
            return root.bound
        if isinstance(root, sampling.StaticSampler):
            dropping = root.get_description() == sampling.ALWAYS_OFF.get_description()
            return 0 if dropping else 1 << 64
        return None

    if isinstance(sampler, sampling.ParentBased):
        delegates = [
            getattr(sampler, f"_{where}_parent_{state}", None)
            for where in ("remote", "local")
            for state in ("sampled", "not_sampled")
        ]
        if delegates != [sampling.ALWAYS_ON, sampling.ALWAYS_OFF] * 2:
            return None
        root = bound(getattr(sampler, "_root", None))
        return None if root is None else _Rule(True, root)
    root = bound(sampler)
    return None if root is None else _Rule(False, root)


class _PresetTraceIds:
    """The tracer's id generator, which can be told the next root trace id: the one a
    sampling decision was made on, so that the SDK decides the same."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._next = threading.local()

    def preset(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int = getattr(self._next, "trace_id", 0)
        if trace_id:
            self._next.trace_id = 0
            return trace_id
        return self._inner.generate_trace_id()  # type: ignore[no-any-return]

    def generate_span_id(self) -> int:
        return self._inner.generate_span_id()  # type: ignore[no-any-return]

    def is_trace_id_random(self) -> bool:
        return self._inner.is_trace_id_random()  # type: ignore[no-any-return]


_LOW_64 = (1 << 64) - 1


class OtelTracing(Tracing):
    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, TraceFlags
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("mend")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = {k.name.lower(): k for k in SpanKind}
        # A span the sampler will drop costs the SDK tens of µs; with a standard sampler
        # the decision is made here instead (one random number and a comparison for a
        # root span) and a dropped span is only its context.
        self._rule = _rule(provider.sampler)
        ids = self._tracer.id_generator  # type: ignore[attr-defined]
        self._ids = _PresetTraceIds(ids)
        if self._rule is not None:
            self._tracer.id_generator = self._ids  # type: ignore[attr-defined]
        # Looked up once: this runs on every call.
        self._new_trace_id = ids.generate_trace_id
        self._new_span_id = ids.generate_span_id
        self._root_flags = TraceFlags(
            TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else TraceFlags.DEFAULT
        )
        self._trace = trace
        self._context = otel_context
        self._empty_context = Context

    def _dropped_root_header(self) -> str:
        """The traceparent of the current dropped root when no OTel span was made inside
        it (as the propagator writes it; a root has no tracestate), else ""."""
        root = _DROPPED_ROOT.get()
        if root is None or self._trace.get_current_span().get_span_context().is_valid:
            return ""
        if not root.header:
            span_id = self._new_span_id()
            root.header = f"00-{root.trace_id:032x}-{span_id:016x}-{self._root_flags:02x}"
        return root.header

    def _decide(self, parent: Mapping[str, str] | None, lazy: bool = False) -> tuple[bool, Any]:
        """Whether a span continuing parent (a carrier; None: the current span) is to be
        sampled, and its context: the one to start the SDK span in when sampled (None:
        the current one), else the one to make current instead of a span (None: keep the
        current one). lazy: a dropped root may come back as a _DroppedRoot instead, when
        no OTel context is current."""
        trace = self._trace
        rule = self._rule
        if parent is None:
            context = None
            current = trace.get_current_span().get_span_context()
            if not current.is_valid and _DROPPED_ROOT.get() is not None:
                return False, None  # inside a dropped root: dropped as well
        elif TRACEPARENT in parent:
            context = self._propagator.extract(parent)
            current = trace.get_current_span(context).get_span_context()
        else:
            context, current = self._empty_context(), None
        if rule is None:
            return True, context
        if current is not None and current.is_valid:
            flags = current.trace_flags
            if rule.parent_based:
                return flags.sampled, context
            if current.trace_id & _LOW_64 < rule.bound:
                return True, context
            if not flags.sampled:
                return False, context
            # Dropped under a sampled parent (TraceIdRatioBased ignores parents): what
            # runs inside must see the trace unsampled.
            flags = trace.TraceFlags(flags & ~trace.TraceFlags.SAMPLED)
            span_context = trace.SpanContext(
                current.trace_id, self._new_span_id(), False, flags, current.trace_state
            )
            return False, trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)
        # A root span: the trace id decides.
        trace_id = self._new_trace_id()
        if trace_id & _LOW_64 < rule.bound:
            self._ids.preset(trace_id)
            return True, context
        if lazy and not self._context.get_current():
            return False, _DroppedRoot(trace_id)
        span_context = trace.SpanContext(trace_id, self._new_span_id(), False, self._root_flags)
        return False, trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def _options(
        self,
        kind: str,
        context: Any,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> dict[str, Any]:
        return {"context": context, "kind": self._kinds[kind], "attributes": attributes}

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Iterator[Span]:
        # Decided on entering, right before the SDK call a preset trace id is meant for.
        sampled, context = self._decide(parent)
        if sampled:
            options = self._options(kind, context, attributes)
            with self._tracer.start_as_current_span(name, **options) as span:
                yield _OtelSpan(span)
        elif context is None:
            yield _NO_SPAN
        else:
            token = self._context.attach(context)
            try:
                yield _NO_SPAN
            finally:
                self._context.detach(token)

    def start(
        self,
        name: str,
        *,
        kind: str = "internal",
        parent: Mapping[str, str] | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        sampled, context = self._decide(parent, lazy=True)
        if not sampled:
            if context is None:
                return _NO_SPAN
            if type(context) is _DroppedRoot:
                return _CurrentDroppedRoot(context)
            return _Unsampled(self._context, context)
        span = self._tracer.start_span(name, **self._options(kind, context, attributes))
        return _OtelSpan(span, self._context.attach(self._trace.set_span_in_context(span)))

    def traceparent(self) -> str:
        header = self._dropped_root_header()
        if header:
            return header
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get(TRACEPARENT, "")

    def inject(self, carrier: dict[str, str]) -> None:
        header = self._dropped_root_header()
        if header:
            carrier[TRACEPARENT] = header
        else:
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
