"""Typed exceptions for gRPC status codes, carrying the google.rpc details the server
sent: BadRequest's field violations, ErrorInfo's reason, RetryInfo's delay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# ErrorInfo.domain of Mend's own errors (the API's proto package).
ERROR_DOMAIN = "mend.v1"


class MendError(Exception):
    """A call failed. `code` is the gRPC status code, `message` the server's words,
    `reason` why, as a stable name to test (`JOB_NOT_FOUND`; "" when the server gave
    none), `metadata` what goes with it (`{"job_id": ...}`), and `retry_after` the
    seconds the server asks a retry to wait (None: it did not say a retry helps)."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        violations: Sequence[tuple[str, str]] = (),
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        # (field, description) pairs, from google.rpc.BadRequest; empty for most codes.
        self.violations: list[tuple[str, str]] = list(violations)
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after

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


class OutOfRange(MendError):
    """A watch asked to resume after a version the job has not reached."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class ResourceExhausted(MendError):
    """The tenant is over a quota (pending jobs, submit rate); `retry_after` says when to
    try again (None: the request alone is over the limit)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


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
        OutOfRange,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
    )
}


def _details(error: grpc.RpcError) -> dict[str, Any]:
    """MendError's keyword arguments from the call's google.rpc.Status details."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a rich status that disagrees with the call's code and message
        return {}
    out: dict[str, Any] = {}
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(bad):
            out["violations"] = [(v.field, v.description) for v in bad.field_violations]
        elif detail.Unpack(info):
            out.update(reason=info.reason, metadata=dict(info.metadata))
        elif detail.Unpack(retry):
            out["retry_after"] = retry.retry_delay.ToTimedelta().total_seconds()
    return out


def from_rpc_error(error: grpc.RpcError) -> MendError:
    """Turns a sync or asyncio gRPC error into the matching MendError."""
    # Both grpc.Call (sync) and AioRpcError expose code(), details(), trailing_metadata().
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    cls = _BY_CODE.get(code, MendError)
    return cls(message, code=code, **_details(error))
