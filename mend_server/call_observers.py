"""A server interceptor that reports every call's start and end to observers (metrics,
tracing), whatever the call's shape: unary or streaming, generator or coroutine handler.
One interceptor serves them all (one wrapper per call, however many observers), and
wrapped handlers are cached, so a call costs the observers' work and little more."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc

# Handlers are cached per (method, handler); a stream-token call brings a fresh handler
# each time (see auth.py), so the cache is emptied when it grows past this.
_CACHE_LIMIT = 4096


class CallProbe(Protocol):
    """What an observer does for one method: begin() when a call starts (returns the
    call's state), end() with that state and the final status code."""

    def begin(self, context: grpc.aio.ServicerContext) -> Any: ...

    def end(self, state: Any, code: grpc.StatusCode) -> None: ...


class CallObserver(Protocol):
    def probe(self, method: str, grpc_type: str) -> CallProbe:
        """method: "/package.Service/Method"; grpc_type: unary, server_stream,
        client_stream or bidi_stream (go-grpc-prometheus' names)."""
        ...


def final_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the handler set or aborted with; CANCELLED for a
    cancelled call; UNKNOWN for any other exception, as gRPC answers it."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


class _Probes:
    """Several observers' probes as one: begun in order, ended in reverse."""

    def __init__(self, probes: list[CallProbe]) -> None:
        self._probes = probes
        self._reversed = probes[::-1]

    def begin(self, context: grpc.aio.ServicerContext) -> list[Any]:
        return [probe.begin(context) for probe in self._probes]

    def end(self, states: list[Any], code: grpc.StatusCode) -> None:
        for probe, state in zip(self._reversed, reversed(states), strict=True):
            probe.end(state, code)


class _Pair:
    """Two observers' probes as one (metrics and tracing, the usual pair): as _Probes,
    without its loops, on every call."""

    def __init__(self, first: CallProbe, second: CallProbe) -> None:
        self._first = first
        self._second = second

    def begin(self, context: grpc.aio.ServicerContext) -> tuple[Any, Any]:
        return self._first.begin(context), self._second.begin(context)

    def end(self, states: tuple[Any, Any], code: grpc.StatusCode) -> None:
        self._second.end(states[1], code)
        self._first.end(states[0], code)


class _Observers:
    def __init__(self, observers: tuple[CallObserver, ...]) -> None:
        self._observers = observers

    def probe(self, method: str, grpc_type: str) -> CallProbe:
        probes = [observer.probe(method, grpc_type) for observer in self._observers]
        if len(probes) == 1:
            return probes[0]
        return _Pair(*probes) if len(probes) == 2 else _Probes(probes)


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *observers: CallObserver) -> None:
        self._observer = _Observers(observers)
        self._wrapped: dict[tuple[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        key = (details.method, handler)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            if len(self._wrapped) >= _CACHE_LIMIT:
                self._wrapped.clear()
            wrapped = self._wrapped[key] = _observed(handler, self._observer, details.method)
        return wrapped


def _observed(
    handler: grpc.RpcMethodHandler, observer: CallObserver, method: str
) -> grpc.RpcMethodHandler:
    deserialize, serialize = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        probe = observer.probe(method, "unary")
        return grpc.unary_unary_rpc_method_handler(
            _around_coroutine(handler.unary_unary, probe), deserialize, serialize
        )
    if handler.unary_stream:
        probe = observer.probe(method, "server_stream")
        return grpc.unary_stream_rpc_method_handler(
            _around_stream(handler.unary_stream, probe), deserialize, serialize
        )
    if handler.stream_unary:
        probe = observer.probe(method, "client_stream")
        return grpc.stream_unary_rpc_method_handler(
            _around_coroutine(handler.stream_unary, probe), deserialize, serialize
        )
    probe = observer.probe(method, "bidi_stream")
    return grpc.stream_stream_rpc_method_handler(
        _around_stream(handler.stream_stream, probe), deserialize, serialize
    )


def _around_coroutine(inner: Callable[..., Any], probe: CallProbe) -> Callable[..., Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        state = probe.begin(context)
        error: BaseException | None = None
        try:
            return await inner(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            probe.end(state, final_code(context, error))

    return call


def _around_stream(inner: Callable[..., Any], probe: CallProbe) -> Callable[..., Any]:
    # A streaming handler is an async generator, or a coroutine that writes with
    # context.write() (grpc_health's Watch): wrap each as what it is.
    if not inspect.isasyncgenfunction(inner):
        return _around_coroutine(inner, probe)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        state = probe.begin(context)
        error: BaseException | None = None
        try:
            async for item in inner(request, context):
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            probe.end(state, final_code(context, error))

    return stream
