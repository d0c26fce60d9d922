"""One generic endpoint for every unary route: HTTP request -> request message -> gRPC
call (credentials passed through as metadata) -> JSON response or JSON error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.descriptor import MethodDescriptor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mend_server.gateway.errors import GatewayError, error_response, from_rpc_error
from mend_server.gateway.metrics import Metrics
from mend_server.gateway.protojson import JsonStyle, message_to_json
from mend_server.gateway.routes import HttpRoute
from mend_server.gateway.transcode import Adapter, request_message
from mend_server.gateway.upstream import Upstream, forwarded_metadata

Endpoint = Callable[[Request], Awaitable[Response]]


class UnaryEndpoints:
    def __init__(
        self,
        upstream: Upstream,
        *,
        style: JsonStyle,
        adapt: Adapter,
        success_status: Callable[[MethodDescriptor], int],
        max_body_bytes: int,
        metrics: Metrics,
    ) -> None:
        self._upstream = upstream
        self._style = style
        self._adapt = adapt
        self._success_status = success_status
        self._max_body_bytes = max_body_bytes
        self._metrics = metrics

    def endpoint(self, route: HttpRoute) -> Endpoint:
        call = self._upstream.unary(route.method)
        status = self._success_status(route.method)

        async def handle(request: Request) -> Response:
            try:
                message, rename = await request_message(
                    route,
                    request,
                    style=self._style,
                    adapt=self._adapt,
                    max_body_bytes=self._max_body_bytes,
                )
                try:
                    response = await call(
                        message,
                        metadata=forwarded_metadata(request.headers, request.query_params),
                        timeout=self._upstream.timeout,
                    )
                except grpc.aio.AioRpcError as err:
                    self._metrics.rpc(route.method.name, err.code().name)
                    raise from_rpc_error(err, rename) from None
            except GatewayError as err:
                return error_response(err)
            self._metrics.rpc(route.method.name, grpc.StatusCode.OK.name)
            body = message_to_json(response, self._style)
            if route.response_body:
                body = body.get(route.response_body)
            return JSONResponse(body, status_code=status)

        handle.__name__ = route.method.name
        return handle
