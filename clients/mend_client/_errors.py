"""Typed exceptions for gRPC status codes, carrying the server's google.rpc.BadRequest."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.rpc import error_details_pb2, status_pb2

# The trailer in which gRPC servers send the full google.rpc.Status with its details.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class MendError(Exception):
    """A call failed. `code` is the gRPC status code, `message` the server's words."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        # (field, description) pairs, from google.rpc.BadRequest; empty for most codes.
        self.violations: list[tuple[str, str]] = list(violations)

    def __str__(self) -> str:
        return self.message


class InvalidArgument(MendError):
    """The request was malformed; `violations` names each bad field."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MendError):
    """No such job for this API key (jobs of other tenants are not found either)."""

    default_code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(MendError):
    """The API key is missing or not accepted."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MendError):
    """The key's tenant may not use a bucket the request names (`violations` says which)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class AlreadyExists(MendError):
    """The batch id, or a request_id for a different request, was used before."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(MendError):
    """The job is in a state that forbids the call, e.g. cancelling a finished job."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(MendError):
    """The server cannot be reached (down, restarting, or the network failed)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(MendError, TimeoutError):
    """The call's deadline (or `wait`'s timeout) passed before an answer."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[MendError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        Unauthenticated,
        PermissionDenied,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        DeadlineExceeded,
    )
}


def _violations(trailers: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[str, str]]:
    for key, value in trailers or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        out: list[tuple[str, str]] = []
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                out.extend((v.field, v.description) for v in bad.field_violations)
        return out
    return []


def from_rpc_error(error: grpc.RpcError) -> MendError:
    """Turns a sync or asyncio gRPC error into the matching MendError."""
    # Both grpc.Call (sync) and AioRpcError expose code(), details(), trailing_metadata().
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    trailers = error.trailing_metadata()
    cls = _BY_CODE.get(code, MendError)
    return cls(message, code=code, violations=_violations(trailers))
