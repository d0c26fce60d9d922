"""Prometheus metrics of the gateway: HTTP requests by route template and status, their
latency, gRPC calls by method and code, open SSE streams. One registry per app (not the
process-global one), so that several gateways can live in one process (tests)."""

from __future__ import annotations

import time

import grpc
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests that matched no route share one label, so random paths cannot blow up the
# number of time series.
UNMATCHED = "unmatched"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "mend_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mend_http_request_duration_seconds",
            "Time to answer an HTTP request (SSE streams excluded), by method and route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.rpcs = Counter(
            "mend_gateway_grpc_calls_total",
            "gRPC calls made by the gateway, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.streams = Gauge(
            "mend_sse_streams_open", "SSE streams currently open.", registry=self.registry
        )

    def rpc(self, method: str, code: str) -> None:
        self.rpcs.labels(method, code).inc()

    def rpc_code(self, method: str, code: grpc.StatusCode) -> None:
        self.rpc(method, code.name)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500
            streaming = False

            async def watch(message: Message) -> None:
                nonlocal status, streaming
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = dict(message.get("headers") or [])
                    streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
                await send(message)

            try:
                await app(scope, receive, watch)
            finally:
                route = scope.get("route")
                template = route.path if isinstance(route, Route) else UNMATCHED
                self.requests.labels(scope["method"], template, str(status)).inc()
                if not streaming:
                    self.latency.labels(scope["method"], template).observe(
                        time.perf_counter() - start
                    )

        return measured
