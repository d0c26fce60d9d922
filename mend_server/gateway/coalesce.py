"""Concurrent GETs of one caller share one upstream call (AIP-231 batch reads).

A `Get<R>` method whose service also has `Batch<Get<R>>s` (its request a repeated
`<field>s` of the Get request's one field, its response one repeated R) is coalesced:
a GET that finds no call of its caller in flight goes out at once, alone, as the Get
(no added wait at low load); GETs of that caller arriving meanwhile wait for it and go
together in the next call, as one BatchGet (as the Get when only one waits). Callers
are told apart by the credentials forwarded as metadata, so one call never carries two
tenants' requests.

Every GET answers exactly what the Get would: the batch is all or nothing, so when it
fails on something one id can cause (a missing job, a malformed id), each GET of it is
asked again alone. A request for an id already waiting shares its result, and each
result is rendered (JSON bytes) once, however many GETs wait for it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from mend_server.gateway.upstream import Metadata, Upstream

# Failures that say nothing about any one id: every GET of the batch gets it as it is
# (asking each id again would only repeat the wait).
_WHOLE_BATCH = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


@dataclass(frozen=True)
class BatchPair:
    get: MethodDescriptor
    batch: MethodDescriptor
    field: str  # the Get request's field ("id")
    batch_field: str  # the BatchGet request's repeated field ("ids")
    results: str  # the BatchGet response's repeated field ("jobs")


def batch_pair(method: MethodDescriptor) -> BatchPair | None:
    """The AIP-231 batch sibling of a Get method, or None."""
    if not method.name.startswith("Get") or method.server_streaming:
        return None
    batch = method.containing_service.methods_by_name.get(f"Batch{method.name}s")
    if batch is None or batch.server_streaming or len(method.input_type.fields) != 1:
        return None
    field = method.input_type.fields[0]
    many = batch.input_type.fields_by_name.get(field.name + "s")
    if many is None or not many.is_repeated or many.type != field.type:
        return None
    results = [
        f for f in batch.output_type.fields
        if f.is_repeated and f.message_type is method.output_type
    ]
    if len(results) != 1:
        return None
    return BatchPair(method, batch, field.name, many.name, results[0].name)


Render = Callable[[Message], bytes]
Waiters = dict[str, list["asyncio.Future[bytes]"]]


class Coalescer:
    """`fetch(key, metadata)`: the rendered result of Get(key) for that caller, or the
    Get's grpc.aio.AioRpcError."""

    def __init__(
        self,
        pair: BatchPair,
        upstream: Upstream,
        render: Render,
        *,
        max_batch: int = 100,
        on_call: Callable[[str, grpc.StatusCode], None] = lambda method, code: None,
    ) -> None:
        self._pair = pair
        self._get = upstream.unary(pair.get)
        self._batch = upstream.unary(pair.batch)
        self._get_request = message_factory.GetMessageClass(pair.get.input_type)
        self._batch_request = message_factory.GetMessageClass(pair.batch.input_type)
        self._timeout = upstream.timeout
        self._render = render
        self._max_batch = max_batch
        self._on_call = on_call
        # A caller with a call in flight -> the GETs waiting for the next one, by key.
        self._lanes: dict[Metadata, Waiters] = {}

    @property
    def field(self) -> str:
        return self._pair.field

    async def fetch(self, key: str, metadata: Metadata) -> bytes:
        lane = self._lanes.get(metadata)
        if lane is not None:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            lane.setdefault(key, []).append(future)
            return await future
        self._lanes[metadata] = lane = {}
        try:
            return await self._one(key, metadata)
        finally:
            if lane:
                asyncio.get_running_loop().create_task(self._drain(metadata, lane))
            else:
                del self._lanes[metadata]

    async def _one(self, key: str, metadata: Metadata) -> bytes:
        try:
            response = await self._get(
                self._get_request(**{self._pair.field: key}),
                metadata=metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            self._on_call(self._pair.get.name, err.code())
            raise
        self._on_call(self._pair.get.name, grpc.StatusCode.OK)
        return self._render(response)

    async def _drain(self, metadata: Metadata, lane: Waiters) -> None:
        try:
            while lane:
                keys = list(itertools.islice(lane, self._max_batch))
                await self._answer({k: lane.pop(k) for k in keys}, metadata)
        finally:
            del self._lanes[metadata]
            for futures in lane.values():  # only if cancelled (the gateway stopping)
                _settle(futures, exc=asyncio.CancelledError())

    async def _answer(self, waiters: Waiters, metadata: Metadata) -> None:
        """Answers every waiter; never raises for them (each future gets its outcome)."""
        try:
            if len(waiters) == 1:
                ((key, futures),) = waiters.items()
                try:
                    _settle(futures, await self._one(key, metadata))
                except grpc.aio.AioRpcError as err:
                    _settle(futures, exc=err)
                return
            request = self._batch_request(**{self._pair.batch_field: list(waiters)})
            try:
                response = await self._batch(request, metadata=metadata, timeout=self._timeout)
            except grpc.aio.AioRpcError as err:
                self._on_call(self._pair.batch.name, err.code())
                if err.code() in _WHOLE_BATCH:
                    for futures in waiters.values():
                        _settle(futures, exc=err)
                    return
                # All or nothing: let each GET have the Get's own answer.
                await asyncio.gather(
                    *(self._answer({k: f}, metadata) for k, f in waiters.items())
                )
                return
            self._on_call(self._pair.batch.name, grpc.StatusCode.OK)
            results: Any = getattr(response, self._pair.results)
            for futures, result in zip(waiters.values(), results, strict=True):
                _settle(futures, self._render(result))
        except BaseException as exc:
            for futures in waiters.values():
                _settle(futures, exc=exc)
            raise


def _settle(
    futures: list[asyncio.Future[bytes]], result: bytes = b"", exc: BaseException | None = None
) -> None:
    for future in futures:
        if not future.done():  # a GET whose client left meanwhile
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)
