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
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from mend_core.jobstate.coalesce import Coalescer as BatchLane
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
Outcome = bytes | BaseException  # the rendered result, or the call's AioRpcError


class Coalescer:
    """`fetch(key, metadata)`: the rendered result of Get(key) for that caller, or the
    Get's grpc.aio.AioRpcError. Each caller with GETs in flight has a lane of its own:
    mend_core's Coalescer (the store's, for Redis round trips) over `_many`."""

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
        # A caller with GETs in flight -> its lane and how many GETs it has in flight
        # (the lane goes with the last of them: credentials are the client's to vary).
        self._lanes: dict[Metadata, tuple[BatchLane[str, bytes], int]] = {}

    @property
    def field(self) -> str:
        return self._pair.field

    async def fetch(self, key: str, metadata: Metadata) -> bytes:
        lane, busy = self._lanes.get(metadata) or (
            BatchLane(functools.partial(self._many, metadata), max_batch=self._max_batch),
            0,
        )
        self._lanes[metadata] = (lane, busy + 1)
        try:
            return await lane(key)
        finally:
            lane, busy = self._lanes[metadata]
            if busy == 1:
                del self._lanes[metadata]
            else:
                self._lanes[metadata] = (lane, busy - 1)

    async def _many(self, metadata: Metadata, keys: list[str]) -> list[Outcome]:
        """Each key's outcome: one Get for one distinct key, else one BatchGet (the
        keys asked again alone if it fails on something one key can cause)."""
        distinct = list(dict.fromkeys(keys))  # GETs of one id share its answer
        if len(distinct) == 1:
            return [await self._one(distinct[0], metadata)] * len(keys)
        request = self._batch_request(**{self._pair.batch_field: distinct})
        try:
            response = await self._batch(request, metadata=metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            self._on_call(self._pair.batch.name, err.code())
            if err.code() in _WHOLE_BATCH:
                return [err] * len(keys)
            # All or nothing: let each GET have the Get's own answer.
            outcomes = await asyncio.gather(*(self._one(k, metadata) for k in distinct))
        else:
            self._on_call(self._pair.batch.name, grpc.StatusCode.OK)
            results: Any = getattr(response, self._pair.results)
            outcomes = [self._render(result) for result in results]
        by_key = dict(zip(distinct, outcomes, strict=True))
        return [by_key[key] for key in keys]

    async def _one(self, key: str, metadata: Metadata) -> Outcome:
        try:
            response = await self._get(
                self._get_request(**{self._pair.field: key}),
                metadata=metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            self._on_call(self._pair.get.name, err.code())
            return err
        self._on_call(self._pair.get.name, grpc.StatusCode.OK)
        return self._render(response)
