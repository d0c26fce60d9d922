"""Errors as JSON: `{"error": message, "code": NAME, "details": [{"field", "description"}]}`,
plus `"reason"` when the server said why in a google.rpc.ErrorInfo (`JOB_NOT_FOUND`).

gRPC status codes map to HTTP statuses here, and only here. Choices worth knowing:
- FAILED_PRECONDITION -> 409: the only one the server raises is "the job is already
  finished" (cancel), a conflict with the resource's current state, not a malformed request.
- RESOURCE_EXHAUSTED -> 429 (a tenant quota; with Retry-After when the server sent a
  google.rpc.RetryInfo), except gRPC's own "message larger than max" -> 413.
- CANCELLED -> 499 (the client went away; nginx's convention, as grpc-gateway's).
- UNKNOWN, INTERNAL, DATA_LOSS -> 500 with a generic message: the details are logged, not
  shown, since they may describe the server's internals.
- UNAVAILABLE -> 503 (with Retry-After: the server's google.rpc.RetryInfo, else 1 s),
  DEADLINE_EXCEEDED -> 504, each with a fixed message: the channel's own names the
  server's address.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from starlette.responses import JSONResponse

from mend_client import from_rpc_error as decode_rpc_error
from mend_core.errors import Violation

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_HIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE: "the job service is unavailable; retry later",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the job service did not answer in time; retry later",
}


def http_status(code: grpc.StatusCode, message: str = "") -> int:
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message:
        return 413
    return HTTP_STATUS.get(code, 500)


@dataclass
class GatewayError(Exception):
    """An error answered by the gateway itself, before or instead of calling gRPC."""

    status: int
    message: str
    code: str = "INVALID_ARGUMENT"
    details: list[Violation] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def __str__(self) -> str:
        return self.message


def invalid(violations: list[Violation]) -> GatewayError:
    text = "; ".join(f"{v.field} {v.description}" for v in violations)
    return GatewayError(400, f"invalid request: {text}", details=violations)


def error_response(err: GatewayError) -> JSONResponse:
    body = {
        "error": err.message,
        "code": err.code,
        "details": [{"field": v.field, "description": v.description} for v in err.details],
    }
    if err.reason:
        body["reason"] = err.reason
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def from_rpc_error(
    err: grpc.aio.AioRpcError, rename: Callable[[str], str] = lambda name: name
) -> GatewayError:
    """The HTTP error for a failed call; `rename` maps request field paths back to the
    names the HTTP client used."""
    code = err.code()
    message = err.details() or code.name.lower()
    if code in _HIDDEN:
        log.error("gRPC call failed with %s: %s", code.name, message)
        message = "internal server error"
    elif code in _UNREACHABLE:
        # The channel's own message names the server's address: log it, do not show it.
        log.warning("gRPC call failed with %s: %s", code.name, message)
        message = _UNREACHABLE[code]
    # The client library's decoding of the status details (BadRequest, ErrorInfo, RetryInfo).
    rich = decode_rpc_error(err)
    details = [Violation(rename(f), description) for f, description in rich.violations]
    if details:
        # The server's message names the fields in gRPC terms; say it again in ours.
        summary = code.name.lower().replace("_", " ")
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            summary = "invalid request"
        message = f"{summary}: " + "; ".join(f"{v.field} {v.description}" for v in details)
        if omitted := rich.metadata.get("violations_omitted"):  # past gRPC's trailer limits
            message += f"; and {omitted} more"
    headers = {}
    if code is grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="mend"'
    elif code is grpc.StatusCode.UNAVAILABLE or rich.retry_after is not None:
        # Whole seconds, at least 1 (RFC 9110's delay-seconds).
        headers["Retry-After"] = str(max(1, math.ceil(rich.retry_after or 1)))
    status = http_status(code, message)
    return GatewayError(status, message, code.name, details, headers, rich.reason)
