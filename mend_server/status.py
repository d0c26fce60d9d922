"""Domain errors -> gRPC status, in one table. Every refusal carries a google.rpc.ErrorInfo
(a stable `reason`, the domain "mend.v1", and metadata such as the job id); those that
name fields, a google.rpc.BadRequest with one violation per field, whatever the code;
those a retry may cure, a google.rpc.RetryInfo with the delay to wait.

ErrorInfo's domain is the API's proto package, "mend.v1": a name Mend owns wherever it
is deployed (no DNS name is), and the reasons are part of that API version's contract."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from mend_core.errors import (
    AccessDenied,
    AdminOnly,
    BatchExists,
    InvalidStreamToken,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    JobNotRetryable,
    MalformedRequest,
    NotAuthenticated,
    NotReplicated,
    QuotaExceeded,
    RequestConflict,
    RequestError,
    TokenForAnotherJob,
    ValidationError,
    VersionOutOfRange,
    Violation,
)
from mend_core.redis_client import UNAVAILABLE_ERRORS

ERROR_DOMAIN = "mend.v1"
Code = grpc.StatusCode


@dataclass(frozen=True)
class Rule:
    code: grpc.StatusCode
    reason: str
    # Errors that name fields say "<summary>: <field> <description>; ..." (the gRPC
    # code in words); the others say their own message.
    summary: str = ""
    # A fixed message instead of the error's own (which may describe the server).
    message: str = ""
    # Seconds to wait before retrying, for errors a retry may cure.
    retry_after: float | None = None


# gRPC clients refuse a response whose trailers pass 8 KiB (soft limit) or 16 KiB (hard)
# by default, and then read RESOURCE_EXHAUSTED instead of the error. A status naming
# hundreds of fields (a batch of bad items) names the first ones that fit, and how many
# more there were.
DETAILS_BUDGET = 3_000  # bytes of BadRequest (base64 in the trailers: ~4 KB)
MESSAGE_BUDGET = 1_000  # characters of violations in the message
TEXT_MAX = 300  # characters of one field path or description (they may quote the input)

STORE_UNAVAILABLE = Rule(
    Code.UNAVAILABLE,
    "STORE_UNAVAILABLE",
    message="job store unavailable; retry later",
    retry_after=1,
)
RULES: dict[type[Exception], Rule] = {
    ValidationError: Rule(Code.INVALID_ARGUMENT, "INVALID_FIELDS", "invalid request"),
    MalformedRequest: Rule(Code.INVALID_ARGUMENT, "MALFORMED_REQUEST"),
    AccessDenied: Rule(Code.PERMISSION_DENIED, "BUCKET_NOT_GRANTED", "permission denied"),
    AdminOnly: Rule(Code.PERMISSION_DENIED, "ADMIN_KEY_REQUIRED", "permission denied"),
    RequestConflict: Rule(Code.ALREADY_EXISTS, "REQUEST_ID_REUSED", "already exists"),
    VersionOutOfRange: Rule(Code.OUT_OF_RANGE, "VERSION_NOT_REACHED", "out of range"),
    JobNotFound: Rule(Code.NOT_FOUND, "JOB_NOT_FOUND"),
    JobFinished: Rule(Code.FAILED_PRECONDITION, "JOB_FINISHED"),
    JobNotRetryable: Rule(Code.FAILED_PRECONDITION, "JOB_NOT_RETRYABLE"),
    JobNotFinished: Rule(Code.FAILED_PRECONDITION, "JOB_NOT_FINISHED"),
    BatchExists: Rule(Code.ALREADY_EXISTS, "BATCH_EXISTS"),
    # RetryInfo from the error: when the quota lets the request pass (none if never).
    QuotaExceeded: Rule(Code.RESOURCE_EXHAUSTED, "TENANT_QUOTA_EXCEEDED"),
    NotAuthenticated: Rule(Code.UNAUTHENTICATED, "API_KEY_INVALID"),
    InvalidStreamToken: Rule(Code.UNAUTHENTICATED, "STREAM_TOKEN_INVALID"),
    TokenForAnotherJob: Rule(Code.PERMISSION_DENIED, "STREAM_TOKEN_FOR_ANOTHER_JOB"),
    NotReplicated: Rule(Code.UNAVAILABLE, "WRITE_NOT_REPLICATED", retry_after=1),
    # Redis unreachable, or a cluster or Sentinel master failing over.
    **{error: STORE_UNAVAILABLE for error in UNAVAILABLE_ERRORS},
}
# What the servicer turns into a status; anything else is a bug (UNKNOWN, logged by gRPC).
HANDLED = tuple(RULES)


def rule_for(error: Exception) -> Rule:
    for cls in type(error).__mro__:
        if (rule := RULES.get(cls)) is not None:  # type: ignore[call-overload]
            return rule
    raise LookupError(f"no status for {type(error).__name__}")


def to_status(error: Exception) -> status_pb2.Status:
    """The google.rpc.Status, with its details, that answers `error`."""
    rule = rule_for(error)
    violations = error.violations if isinstance(error, RequestError) else []
    shown = _field_violations(violations)
    message = rule.message or str(error)
    if violations and rule.summary:
        message = f"{rule.summary}: " + _listed(shown, len(violations))
    status = status_pb2.Status(code=rule.code.value[0], message=message)
    metadata = dict(error.metadata) if isinstance(error, RequestError) else {}
    if len(shown) < len(violations):
        metadata["violations_omitted"] = str(len(violations) - len(shown))
    info = error_details_pb2.ErrorInfo(reason=rule.reason, domain=ERROR_DOMAIN, metadata=metadata)
    status.details.add().Pack(info)
    if shown:
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=shown))
    retry_after = error.retry_after if isinstance(error, QuotaExceeded) else rule.retry_after
    if retry_after is not None:
        delay = Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


def _field_violations(
    violations: list[Violation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The violations, in order, that fit DETAILS_BUDGET (at least one)."""
    shown: list[error_details_pb2.BadRequest.FieldViolation] = []
    size = 0
    for v in violations:
        item = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(v.field), description=_clip(v.description)
        )
        size += item.ByteSize() + 3  # its tag and length in the list
        if shown and size > DETAILS_BUDGET:
            break
        shown.append(item)
    return shown


def _listed(shown: list[error_details_pb2.BadRequest.FieldViolation], total: int) -> str:
    """"<field> <description>; ..." within MESSAGE_BUDGET, then how many more there are."""
    parts: list[str] = []
    length = 0
    for v in shown:
        part = f"{v.field} {v.description}"
        length += len(part) + 2
        if parts and length > MESSAGE_BUDGET:
            break
        parts.append(part)
    more = total - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more else "")


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


async def abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """Ends the call with the status for `error` (raises, as context.abort does)."""
    await context.abort_with_status(rpc_status.to_status(to_status(error)))
