"""The job model: what a client submits (JobSpec) and what Mend tracks (Job).

Jobs live in Redis as flat hashes of strings; `to_fields`/`from_fields` are the only
places that know that encoding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mend_core.operations import operation, params_to_dict
from mend_core.results import JobResult


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


WEBHOOK_STYLES = ("default", "discord")
DEFAULT_PRIORITY = 5


@dataclass(frozen=True)
class JobSpec:
    """A validated request for one job."""

    type: str  # a registered operation (mend_core.operations)
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    params: Any  # that operation's parameters dataclass
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = 3
    timeout_seconds: int = 300
    request_id: str = ""
    webhook_url: str = ""
    webhook_style: str = ""
    batch_id: str = ""

    def buckets(self) -> list[tuple[str, str]]:
        """Every (field, bucket) the job reads or writes: what the tenant must be granted."""
        pairs = [("source_bucket", self.source_bucket)]
        if self.dest_bucket:  # optional for some operations
            pairs.append(("dest_bucket", self.dest_bucket))
        return pairs + [(i.field, i.bucket) for i in operation(self.type).inputs(self.params)]

    def fingerprint(self) -> str:
        """What makes a resubmission with the same request_id "the same request" (AIP-155):
        every setting of the job, defaults applied."""
        fields = self.to_fields("", "")
        fields.pop("batch_id", None)
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def to_fields(self, job_id: str, tenant: str) -> dict[str, str]:
        fields = {
            "id": job_id,
            "tenant": tenant,
            "type": self.type,
            "source_bucket": self.source_bucket,
            "source_key": self.source_key,
            "dest_bucket": self.dest_bucket,
            "dest_key": self.dest_key,
            "params": _params_json(self.params),
            "priority": str(self.priority),
            "max_attempts": str(self.max_attempts),
            "timeout_seconds": str(self.timeout_seconds),
            "request_id": self.request_id,
            "webhook_url": self.webhook_url,
            "webhook_style": self.webhook_style,
            "batch_id": self.batch_id,
        }
        return {k: v for k, v in fields.items() if v != ""}


@dataclass(frozen=True)
class Batch:
    """Jobs submitted together: a batch.completed webhook when all have finished, and
    with fail_fast, the first failure cancels the batch's jobs that have not started."""

    id: str
    fail_fast: bool = False
    webhook_url: str = ""
    webhook_style: str = ""


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    spec: JobSpec
    status: JobStatus
    version: int
    attempt: int
    created_at_ms: int
    updated_at_ms: int
    started_at_ms: int | None = None
    completed_at_ms: int | None = None
    duration_seconds: float | None = None
    result: JobResult | None = None
    error: str = ""
    progress_percent: int = 0
    progress_message: str = ""
    fence: int = 0
    # Only for pending jobs, computed when read.
    queue_position: int | None = None
    estimated_wait_seconds: float | None = None

    @classmethod
    def from_fields(
        cls,
        f: dict[str, str],
        *,
        queue_position: int | None = None,
        estimated_wait_seconds: float | None = None,
    ) -> Job:
        get = f.get
        started, completed = get("started_at"), get("completed_at")
        duration, result = get("duration_seconds"), get("result")
        spec = JobSpec(
            type=f["type"],
            source_bucket=f["source_bucket"],
            source_key=f["source_key"],
            dest_bucket=get("dest_bucket", ""),  # optional for some operations
            dest_key=get("dest_key", ""),
            params=_params(f["type"], get("params") or "{}"),
            priority=int(get("priority", DEFAULT_PRIORITY)),
            max_attempts=int(get("max_attempts", 3)),
            timeout_seconds=int(get("timeout_seconds", 300)),
            request_id=get("request_id", ""),
            webhook_url=get("webhook_url", ""),
            webhook_style=get("webhook_style", ""),
            batch_id=get("batch_id", ""),
        )
        return cls(
            id=f["id"],
            tenant=f["tenant"],
            spec=spec,
            status=_JOB_STATUSES.get(f["status"]) or JobStatus(f["status"]),
            version=int(get("version", 0)),
            attempt=int(get("attempt", 0)),
            created_at_ms=int(f["created_at"]),
            updated_at_ms=int(get("updated_at") or f["created_at"]),
            started_at_ms=int(started) if started else None,
            completed_at_ms=int(completed) if completed else None,
            duration_seconds=float(duration) if duration else None,
            result=JobResult.from_json(result) if result else None,
            error=get("error", ""),
            progress_percent=int(get("progress_percent", 0)),
            progress_message=get("progress_message", ""),
            fence=int(get("fence", 0)),
            queue_position=queue_position,
            estimated_wait_seconds=estimated_wait_seconds,
        )


# Read on every GetJob: a dict lookup costs less than an Enum's constructor, and jobs
# share a handful of parameter sets, each parsed once (parameters are immutable).
_JOB_STATUSES = {s.value: s for s in JobStatus}


@functools.lru_cache(maxsize=1024)
def _params(job_type: str, raw: str) -> Any:
    return operation(job_type).params_from_dict(json.loads(raw))


@functools.lru_cache(maxsize=1024)
def _params_json(params: Any) -> str:
    return json.dumps(params_to_dict(params), separators=(",", ":"))
