"""One generic endpoint for every unary route: HTTP request -> request message -> gRPC
call (credentials passed through as metadata) -> JSON response or JSON error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mend_client.rest_json import message_to_json
from mend_core.errors import Violation
from mend_server.gateway.coalesce import Coalescer, batch_pair
from mend_server.gateway.errors import GatewayError, error_response, from_rpc_error, invalid
from mend_server.gateway.metrics import Metrics
from mend_server.gateway.protojson import JsonStyle
from mend_server.gateway.routes import HttpRoute
from mend_server.gateway.transcode import Adapter, Transcoded, request_message
from mend_server.gateway.upstream import Metadata, Upstream, forwarded_metadata

Endpoint = Callable[[Request], Awaitable[Response]]
UnaryCall = Callable[..., grpc.aio.UnaryUnaryCall]
RENDERED_CACHE = 2048  # rendered answers kept (a few MB at most)


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
        # Coalesced Get methods (coalesce.py), by name: one coalescer for all their routes.
        self.coalescers: dict[str, Coalescer] = {}
        self._rendered: dict[bytes, bytes] = {}  # message bytes -> JSON, see render()

    def coalescer(self, route: HttpRoute) -> Coalescer | None:
        """The coalescer of a Get route whose service has its AIP-231 BatchGet."""
        if route.response_body:
            return None
        found = self.coalescers.get(route.method.name)
        if found is None:
            pair = batch_pair(route.method)
            if pair is None:
                return None
            found = Coalescer(pair, self._upstream, self.render, on_call=self._metrics.rpc_code)
            self.coalescers[route.method.name] = found
        return found

    def render(self, message: Message) -> bytes:
        """A response message as JSONResponse would send it. The JSON is a function of
        the message's bytes alone: a polled job that has not changed since its last
        answer (most polls) is serialized (~2 µs) instead of rendered again (~40 µs)."""
        wire = message.SerializeToString(deterministic=True)
        body = self._rendered.get(wire)
        if body is None:
            body = bytes(JSONResponse(message_to_json(message, self._style)).body)
            if len(self._rendered) >= RENDERED_CACHE:
                del self._rendered[next(iter(self._rendered))]  # the oldest
            self._rendered[wire] = body
        return body

    def endpoint(self, route: HttpRoute) -> Endpoint:
        call = self._upstream.unary(route.method)
        status = self._success_status(route.method)
        coalescer = self.coalescer(route)

        async def handle(request: Request) -> Response:
            try:
                transcoded = await request_message(
                    route,
                    request,
                    style=self._style,
                    adapt=self._adapt,
                    max_body_bytes=self._max_body_bytes,
                )
                metadata = forwarded_metadata(request.headers, request.query_params)
                if transcoded.violations:
                    raise await self._every_problem(call, transcoded, metadata)
                if coalescer is not None:
                    return await self._coalesced(coalescer, transcoded, metadata, status)
                try:
                    response = await call(
                        transcoded.message, metadata=metadata, timeout=self._upstream.timeout
                    )
                except grpc.aio.AioRpcError as err:
                    self._metrics.rpc(route.method.name, err.code().name)
                    raise from_rpc_error(err, transcoded.rename) from None
            except GatewayError as err:
                return error_response(err)
            self._metrics.rpc(route.method.name, grpc.StatusCode.OK.name)
            body = message_to_json(response, self._style)
            if route.response_body:
                body = body.get(route.response_body)
            return JSONResponse(body, status_code=status)

        handle.__name__ = route.method.name
        return handle

    @staticmethod
    async def _coalesced(
        coalescer: Coalescer, transcoded: Transcoded, metadata: Metadata, status: int
    ) -> Response:
        key = getattr(transcoded.message, coalescer.field)
        try:
            body = await coalescer.fetch(key, metadata)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, transcoded.rename) from None
        return Response(body, status_code=status, media_type="application/json")

    async def _every_problem(
        self, call: UnaryCall, transcoded: Transcoded, metadata: Metadata
    ) -> GatewayError:
        """A 400 naming the gateway's problems with a request and, where the method can
        check a request without acting on it (AIP-163 `validate_only`), the server's
        problems with the rest of it: one answer names every bad field."""
        rename = transcoded.rename
        problems = [Violation(rename(v.field), v.description) for v in transcoded.violations]
        message = transcoded.message
        if "validate_only" in message.DESCRIPTOR.fields_by_name:
            message.validate_only = True  # type: ignore[attr-defined]
            try:
                await call(message, metadata=metadata, timeout=self._upstream.timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() is grpc.StatusCode.INVALID_ARGUMENT:
                    named = [v.field for v in problems]
                    problems += [
                        v
                        for v in from_rpc_error(err, rename).details
                        if not any(_within(v.field, n) for n in named)
                    ]
        return invalid(problems)


def _within(path: str, named: str) -> bool:
    """`path` is the field `named` or inside it (the gateway left it out of the message,
    so the server's complaint about it says nothing new)."""
    return path == named or path.startswith((named + ".", named + "["))
