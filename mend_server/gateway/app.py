"""Builds the gateway's ASGI app: one route per google.api.http binding of
mend.v1.JobService, plus health, metrics and the OpenAPI document."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mend.v1 import jobs_pb2
from mend_core.redis_client import connect
from mend_core.settings import Settings
from mend_core.telemetry.tracing import TRACING_OFF, Tracing
from mend_server.gateway import compat
from mend_server.gateway.dashboard import Dashboard
from mend_server.gateway.errors import GatewayError, error_response
from mend_server.gateway.fast_path import FastGets
from mend_server.gateway.handlers import UnaryEndpoints
from mend_server.gateway.health import CHECK_TIMEOUT_SECONDS, Health
from mend_server.gateway.metrics import Metrics
from mend_server.gateway.openapi import build_openapi
from mend_server.gateway.routes import HttpRoute, routes_from_service
from mend_server.gateway.sse import JobStreams
from mend_server.gateway.tracing import TraceContextInjector, traced
from mend_server.gateway.upstream import Upstream, grpc_target
from mend_server.tls import upstream_credentials, upstream_options

SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobService"]
OPENAPI_PATH = "/api/v1/openapi.json"
_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _health_paths() -> dict[str, Any]:
    def json_op(op_id: str, statuses: dict[str, str]) -> dict[str, Any]:
        content = {"application/json": {"schema": {"type": "object"}}}
        return {
            "get": {
                "operationId": op_id,
                "security": [],
                "responses": {
                    status: {"description": text, "content": content}
                    for status, text in statuses.items()
                },
            }
        }

    return {
        "/health": json_op("Health", {"200": "healthy or degraded", "503": "unhealthy"}),
        "/health/live": json_op("Live", {"200": "the process runs"}),
        "/health/ready": json_op("Ready", {"200": "ready", "503": "Redis or gRPC down"}),
        "/metrics": {
            "get": {
                "operationId": "Metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


class Gateway:
    """The REST gateway: owns its gRPC channel, Redis client (for health) and metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        sse_keepalive_seconds: float = 15.0,
        grpc_timeout_seconds: float = 30.0,
        tracing: Tracing = TRACING_OFF,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tracing = tracing
        self.upstream = Upstream(
            grpc_target(settings.grpc_host, settings.grpc_port),
            timeout_seconds=grpc_timeout_seconds,
            credentials=upstream_credentials(settings),
            options=upstream_options(settings),
            interceptors=[TraceContextInjector(tracing)] if tracing.enabled else (),
        )
        self.redis: Redis | None = None
        self.health: Health | None = None
        self.routes = routes_from_service(SERVICE)
        self.unary = UnaryEndpoints(
            self.upstream,
            style=compat.STYLE,
            adapt=compat.adapt_request,
            success_status=compat.success_status,
            max_body_bytes=settings.max_request_bytes,
            metrics=self.metrics,
        )
        self.streams = JobStreams(
            self.upstream,
            style=compat.STYLE,
            keepalive_seconds=sse_keepalive_seconds,
            metrics=self.metrics,
            max_body_bytes=settings.max_request_bytes,
        )
        self.openapi = build_openapi(
            self.routes,
            compat.STYLE,
            title="Mend REST API",
            version="1",
            success_status=compat.success_status,
            extra_parameters={
                "WatchJob": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this event id (a job version).",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "description": "A token from POST /api/v1/jobs/{id}/stream-token, "
                        "instead of a key (EventSource cannot send headers).",
                        "schema": {"type": "string"},
                    },
                ]
            },
            extra_paths=_health_paths(),
        )
        self.app = self._build()

    def _endpoint(self, route: HttpRoute) -> Any:
        if route.streaming:
            if route.method.name != "WatchJob":
                raise ValueError(f"no SSE bridge for streaming method {route.method.full_name}")
            return self.streams.endpoint(route)
        return self.unary.endpoint(route)

    def _build(self) -> Starlette:
        routes = [
            Route(r.path, self._endpoint(r), methods=[r.http_method], name=r.method.name)
            for r in self.routes
        ]
        routes += [
            Route("/health", self._health, methods=["GET"]),
            Route("/health/live", self._live, methods=["GET"]),
            Route("/health/ready", self._ready, methods=["GET"]),
            Route("/metrics", self.metrics.endpoint, methods=["GET"]),
            Route(OPENAPI_PATH, self._openapi, methods=["GET"]),
            *Dashboard().routes(),
        ]
        origins = [o.strip() for o in self.settings.cors_origins.split(",") if o.strip()]
        middleware = []
        if not self.tracing.enabled:
            # Outermost: the polled GETs skip the rest (fast_path.py); traced requests
            # take the full path, whose middleware makes their spans.
            coalesced = [(r, c) for r in self.routes if (c := self.unary.coalescer(r)) is not None]
            middleware.append(
                Middleware(
                    FastGets,  # type: ignore[arg-type]
                    routes=coalesced,
                    metrics=self.metrics,
                    cors=bool(origins),
                )
            )
        middleware.append(Middleware(self.metrics.middleware))  # type: ignore[arg-type]
        if self.tracing.enabled:
            middleware.append(Middleware(traced, tracing=self.tracing))  # type: ignore[arg-type]
        if origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,  # type: ignore[arg-type]
                    allow_origins=origins,
                    allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                    allow_headers=["X-API-Key", "Authorization", "Content-Type", "Last-Event-ID"],
                    max_age=600,
                )
            )
        return Starlette(
            routes=routes,
            middleware=middleware,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error, Exception: self._crash},
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.upstream.start()
        self.redis = connect(self.settings.redis_url, shared=False, timeout=CHECK_TIMEOUT_SECONDS)
        self.health = Health(self.settings, self.redis, self.upstream.channel)
        try:
            yield
        finally:
            self.streams.stop_all()
            self.health.close()
            await self.redis.aclose()
            await self.upstream.close()

    def begin_shutdown(self) -> None:
        """Ends open SSE streams so that the HTTP server can drain quickly."""
        self.streams.stop_all()

    async def _health(self, request: Request) -> Response:
        assert self.health is not None
        return await self.health.health(request)

    async def _live(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def _ready(self, request: Request) -> Response:
        assert self.health is not None
        return await self.health.ready(request)

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(self.openapi)

    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _CODES.get(exc.status_code, "HTTP_ERROR")
        err = GatewayError(exc.status_code, str(exc.detail), code, headers=dict(exc.headers or {}))
        return error_response(err)

    @staticmethod
    async def _crash(request: Request, exc: Exception) -> Response:
        return error_response(GatewayError(500, "internal server error", "INTERNAL"))
