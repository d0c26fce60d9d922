"""A shortcut in front of the Starlette app for the coalesced GETs (`coalesce.py`), the
calls clients poll: `GET /api/v1/jobs/{id}` with a plain id and nothing else (no query
string, no CORS `Origin`) is answered here, with the bytes, status, headers and metrics
the app would give it, without Starlette's routing, request object, middleware stack and
response objects (~a fifth of the gateway's CPU per GET). Anything else, and every
error, goes the usual way or through the same functions as the app."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import grpc
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mend_server.gateway.coalesce import Coalescer
from mend_server.gateway.errors import GatewayError, error_response, from_rpc_error
from mend_server.gateway.metrics import Metrics
from mend_server.gateway.routes import HttpRoute
from mend_server.gateway.upstream import forwarded_metadata

# Ids the shortcut takes; any other value (escapes, odd characters) goes through the app.
_PLAIN = "([A-Za-z0-9._~-]{1,128})"
_JSON_HEADERS = b"application/json"
log = logging.getLogger(__name__)


def _pattern(route: HttpRoute) -> re.Pattern[str] | None:
    """The route's path with its one variable as a group; None for other templates."""
    if len(route.path_fields) != 1:
        return None
    (name,) = route.path_fields
    head, sep, tail = route.path.partition("{" + name + "}")
    if not sep or "{" in head + tail:
        return None
    return re.compile(re.escape(head) + _PLAIN + re.escape(tail))


class FastGets:
    def __init__(
        self,
        app: ASGIApp,
        routes: list[tuple[HttpRoute, Coalescer]],
        metrics: Metrics,
        *,
        cors: bool,
    ) -> None:
        self._app = app
        self._cors = cors
        self._routes: list[tuple[re.Pattern[str], HttpRoute, Coalescer]] = []
        for route, coalescer in routes:
            pattern = _pattern(route)
            if pattern is not None and route.http_method == "GET" and not route.response_body:
                self._routes.append((pattern, route, coalescer))
        self._metrics = metrics
        self._observed: dict[str, Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("query_string")
            and not scope.get("root_path")
            and not (self._cors and any(n == b"origin" for n, _ in scope["headers"]))
        ):
            path = scope["path"]
            for pattern, route, coalescer in self._routes:
                match = pattern.fullmatch(path)
                if match is not None:
                    await self._get(route, coalescer, match.group(1), scope, receive, send)
                    return
        await self._app(scope, receive, send)

    async def _get(
        self, route: HttpRoute, coalescer: Coalescer, key: str,
        scope: Scope, receive: Receive, send: Send,
    ) -> None:
        start = time.perf_counter()
        status = 200
        try:
            try:
                # No query string here, so no `?token=`: the credential headers alone.
                metadata = forwarded_metadata(Headers(raw=scope["headers"]), {})
                body = await coalescer.fetch(key, metadata)
            except grpc.aio.AioRpcError as err:
                raise from_rpc_error(err) from None
        except GatewayError as err:
            response = error_response(err)
            status = response.status_code
            await response(scope, receive, send)
        except Exception:
            log.exception("GET %s failed", scope["path"])
            response = error_response(GatewayError(500, "internal server error", "INTERNAL"))
            status = 500
            await response(scope, receive, send)
        else:
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", _JSON_HEADERS),
                ],
            })
            await send({"type": "http.response.body", "body": body})
        finally:
            self._metrics.requests.labels("GET", route.path, str(status)).inc()
            observe = self._observed.get(route.path)
            if observe is None:
                observe = self._observed[route.path] = self._metrics.latency.labels(
                    "GET", route.path
                ).observe
            observe(time.perf_counter() - start)
