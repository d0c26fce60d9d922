"""The job model: what a client submits (JobSpec) and what Mend tracks (Job).

How a job is stored in Redis is mend_core.jobstate.encoding's business.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mend_core.operations import operation
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
    # When to run (at most one is set): at run_at_ms (epoch ms; a past time is now), or
    # delay_ms after the job is stored. Neither: queued at once.
    run_at_ms: int | None = None
    delay_ms: int | None = None

    def buckets(self) -> list[tuple[str, str]]:
        """Every (field, bucket) the job reads or writes: what the tenant must be granted."""
        pairs = [("source_bucket", self.source_bucket)]
        if self.dest_bucket:  # optional for some operations
            pairs.append(("dest_bucket", self.dest_bucket))
        return pairs + [(i.field, i.bucket) for i in operation(self.type).inputs(self.params)]


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
    # While a delayed job waits: when it is due (epoch ms).
    scheduled_at_ms: int | None = None
    # The submitter's trace context (W3C traceparent), "" when it was not traced.
    trace_parent: str = ""
    # Only for pending jobs, computed when read.
    queue_position: int | None = None
    estimated_wait_seconds: float | None = None
