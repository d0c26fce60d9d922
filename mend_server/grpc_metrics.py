"""gRPC server metrics under the names go-grpc-prometheus made familiar:
grpc_server_started_total, grpc_server_handled_total and grpc_server_handling_seconds, by
grpc_type, grpc_service, grpc_method (and grpc_code once handled)."""

from __future__ import annotations

import time

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

# Prometheus' default buckets, as go-grpc-prometheus uses them.
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LABELS = ["grpc_type", "grpc_service", "grpc_method"]


class GrpcMetrics:
    """A CallObserver (call_observers.py) that counts and times calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            _LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status code.",
            [*_LABELS, "grpc_code"],
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to handle an RPC (to the end of a stream, for streams).",
            _LABELS,
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )

    def probe(self, method: str, grpc_type: str) -> _MethodMetrics:
        service, _, name = method.lstrip("/").rpartition("/")
        return _MethodMetrics(self, (grpc_type, service, name))


class _MethodMetrics:
    """One method's label children, resolved once rather than on every call."""

    def __init__(self, metrics: GrpcMetrics, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self._started = metrics.started.labels(*labels)
        self._handling = metrics.handling.labels(*labels)
        self._handled: dict[grpc.StatusCode, Counter] = {}

    def begin(self, context: grpc.aio.ServicerContext) -> float:
        self._started.inc()
        return time.perf_counter()

    def end(self, started: float, code: grpc.StatusCode) -> None:
        self._handling.observe(time.perf_counter() - started)
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = self._metrics.handled.labels(*self._labels, code.name)
        handled.inc()
