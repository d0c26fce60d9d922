"""Mend's errors, all in one place: why a request is refused and why a job failed.

Nothing here knows gRPC or HTTP. The server turns each refusal into a gRPC status with its
google.rpc details (one table: mend_server/status.py), and the REST gateway turns the
status into an HTTP status (mend_server/gateway/errors.py). The message of each error is
what the user reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mend_core.job import Job


@dataclass(frozen=True)
class Violation:
    """One thing wrong with a request, named by its field (its path in the request)."""

    field: str
    description: str


# ------------------------------------------------------------------------ refused requests


class RequestError(Exception):
    """A request Mend refuses. `violations` names the request's fields at fault (empty
    when no one field is); `metadata` is what a program may want to know (a job id)."""

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)

    @property
    def metadata(self) -> dict[str, str]:
        return {}


def _listed(violations: Sequence[Violation]) -> str:
    return "; ".join(f"{v.field}: {v.description}" for v in violations)


class ValidationError(RequestError):
    """Fields with values Mend does not accept."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__(_listed(violations), violations)


class MalformedRequest(RequestError):
    """The request's bytes are not a request message at all."""


@dataclass(frozen=True)
class Refusal:
    """A bucket the tenant may not use, and the field that named it."""

    field: str
    bucket: str


class AccessDenied(RequestError):
    """The tenant may not use buckets the request (or a job) names."""

    def __init__(self, tenant: str, refusals: list[Refusal]) -> None:
        names = ", ".join(f"{r.field} {r.bucket!r}" for r in refusals)
        violations = [
            Violation(r.field, f"bucket {r.bucket!r} is not granted to {tenant!r}")
            for r in refusals
        ]
        super().__init__(f"tenant {tenant!r} may not use {names}", violations)
        self.tenant = tenant
        self.refusals = refusals


class JobNotFound(RequestError):
    """No such job for this tenant (another tenant's job is not found either)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id

    @property
    def metadata(self) -> dict[str, str]:
        return {"job_id": self.job_id}


class JobFinished(RequestError):
    """The job is already in a terminal state."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is already {job.status.value}")
        self.job = job

    @property
    def metadata(self) -> dict[str, str]:
        return {"job_id": self.job.id, "status": self.job.status.value}


class JobNotRetryable(RequestError):
    """RetryJob of a job that is neither failed nor cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"job {job.id} is {job.status.value}; only a failed or cancelled job can be retried"
        )
        self.job = job

    @property
    def metadata(self) -> dict[str, str]:
        return {"job_id": self.job.id, "status": self.job.status.value}


class JobNotFinished(RequestError):
    """DeleteJob of a job that has not finished."""

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"job {job.id} is {job.status.value}; only a finished job can be deleted "
            "(cancel it first)"
        )
        self.job = job

    @property
    def metadata(self) -> dict[str, str]:
        return {"job_id": self.job.id, "status": self.job.status.value}


class AdminOnly(RequestError):
    """A request field only admin keys may use."""

    def __init__(self, field: str) -> None:
        why = "needs an admin key (MEND_ADMIN_KEYS)"
        super().__init__(f"{field} {why}", [Violation(field, why)])


class BatchExists(RequestError):
    def __init__(self, batch_id: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(f"batch {batch_id} already exists", violations)
        self.batch_id = batch_id

    @property
    def metadata(self) -> dict[str, str]:
        return {"batch_id": self.batch_id}


class RequestConflict(RequestError):
    """request_ids already used by other requests: (index of the spec, the job it made).
    The API layer names the fields (`violations`) in its request's terms."""

    def __init__(
        self, conflicts: list[tuple[int, str]], violations: Sequence[Violation] = ()
    ) -> None:
        super().__init__(", ".join(f"#{i}: job {job_id}" for i, job_id in conflicts), violations)
        self.conflicts = conflicts


class QuotaExceeded(RequestError):
    """The tenant is over one of its quotas (`quota`: "pending" or "rate"; `limit` says it
    in words). `retry_after`: seconds until the request may pass; None when it never can
    (the request alone is over the limit)."""

    def __init__(self, tenant: str, quota: str, limit: str, retry_after: float | None) -> None:
        if retry_after is None:
            advice = "this request alone exceeds it"
        else:
            advice = f"retry in {retry_after:g} s"
        super().__init__(f"tenant {tenant!r} is over its quota of {limit}; {advice}")
        self.tenant = tenant
        self.quota = quota
        self.retry_after = retry_after

    @property
    def metadata(self) -> dict[str, str]:
        return {"tenant": self.tenant, "quota": self.quota}


class VersionOutOfRange(RequestError):
    """A watch asked to resume after a version the job never had."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__(_listed(violations), violations)


class NotAuthenticated(RequestError):
    """No API key, or one that is not accepted."""


class InvalidStreamToken(NotAuthenticated):
    """The stream token is malformed, tampered with or expired (the message says which)."""


class TokenForAnotherJob(RequestError):
    """A valid stream token, presented to watch a job it was not issued for."""


class NotReplicated(Exception):
    """Redis applied a write, but fewer replicas than required acknowledged it in time: a
    failover may or may not lose it. The call is answered as unavailable; retried with the
    same request_id, a submit gives back the job it made if that survived."""

    def __init__(self, acknowledged: int, required: int, timeout_seconds: float) -> None:
        super().__init__(
            f"the job store applied the write, but only {acknowledged} of the {required} "
            f"replicas required acknowledged it within {timeout_seconds:g} s; it may or may "
            "not survive a failover: retry (a submit with the same request_id)"
        )
        self.acknowledged = acknowledged
        self.required = required


# ----------------------------------------------------------------------- webhook targets


class TargetRefused(Exception):
    """A webhook target may not be sent to; str() says why, for the user."""


class UnresolvedHost(TargetRefused):
    """The host did not resolve (perhaps for now: a delivery retries it)."""


# --------------------------------------------------------------------------- failed jobs


class JobError(Exception):
    """A job could not be done; str(error) is the user-facing message."""


class PermanentError(JobError):
    """Retrying cannot help (bad source, bad parameters): the job fails at once."""


class TransientError(JobError):
    """Retrying may help (timeouts, 5xx, connection resets): the job is retried with backoff."""


class SourceNotFound(PermanentError):
    def __init__(self, url: str) -> None:
        super().__init__(f"Source file not found: {url}")


class SourceTooLarge(PermanentError):
    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"source exceeds {limit} bytes: {url}")


class UnsupportedImage(PermanentError):
    """The source is not an image Mend can decode (or is truncated/corrupt)."""


class ImageTooLarge(PermanentError):
    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"image too large: {width}x{height} exceeds {limit} pixels")
