"""Request bytes that are not a valid message answer INVALID_ARGUMENT, not UNKNOWN.

gRPC turns an exception in a request deserializer into `UNKNOWN: Unexpected DecodeError`.
The lenient deserializer hands the handler an Undecodable instead, and the handler wrapper
(auth.py's, which wraps every JobService handler anyway) answers with the reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from mend_core.errors import MalformedRequest
from mend_server import status


@dataclass(frozen=True)
class Undecodable:
    reason: str


def lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:  # truncated, bad wire types, invalid UTF-8 in a string
            return Undecodable(str(exc) or "malformed message")

    return parse


async def refuse(request: Undecodable, context: grpc.aio.ServicerContext) -> None:
    await status.abort(context, MalformedRequest(f"malformed request message: {request.reason}"))
