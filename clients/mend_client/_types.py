"""Small typed views of the API's messages. Each keeps its protobuf message in `.proto`
for fields this view leaves out, and `to_dict()` gives the message as the REST API shows
it (mend_client.rest_json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from mend.v1 import jobs_pb2 as pb
from mend_client.rest_json import message_to_json, short_names

Fit = Literal["inside", "cover", "fill"]
ImageFormat = Literal["jpeg", "png", "webp", "avif"]
WebhookStyle = Literal["default", "discord"]


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# Number -> name tables, from the descriptors (JOB_STATUS_PENDING -> "pending", as the REST
# API spells them).
STATUS_FROM_PB = {n: JobStatus(name) for n, name in short_names(pb.JobStatus.DESCRIPTOR).items()}
TYPE_FROM_PB = short_names(pb.JobType.DESCRIPTOR)


def message_to_dict(message: Message) -> dict[str, Any]:
    """The message as the REST API shows it (mend_client.rest_json)."""
    data: dict[str, Any] = message_to_json(message)
    return data


def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None


@dataclass(frozen=True)
class Progress:
    percent: int
    message: str


_RESULT_BASICS = ("output_url", "file_size", "duration", "metadata")


@dataclass(frozen=True)
class JobResult:
    output_url: str
    file_size: int
    # Seconds spent processing.
    duration: float
    # The output image's (0, 0, "" when the output is not an image).
    width: int
    height: int
    format: str
    # What the operation adds, as the REST API shows it: {"audio": {...}}, {"colors": [...]},
    # {"video": {...}}, {"optimization": {...}}.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One state of a job, as GetJob, ListJobs, CancelJob and WatchJob return it."""

    id: str
    type: str
    status: JobStatus
    # Bumped by every change; watch() resumes from it.
    version: int
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    # Only the parameters that were set, e.g. {"width": 800, "height": 600}.
    parameters: dict[str, Any]
    priority: int
    attempt: int
    max_attempts: int
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    result: JobResult | None = None
    error: str = ""
    progress: Progress | None = None
    queue_position: int | None = None
    estimated_wait_seconds: float | None = None
    request_id: str = ""
    batch_id: str = ""
    # While a delayed job waits: when it is due.
    scheduled_at: datetime | None = None
    proto: pb.Job = field(default_factory=pb.Job, repr=False, compare=False)

    @classmethod
    def from_proto(cls, msg: pb.Job) -> Job:
        # As the REST API shows them: only those set, enums by short name.
        params: dict[str, Any] = message_to_json(msg.parameters)
        result = None
        if msg.HasField("result"):
            m = msg.result.metadata
            result = JobResult(
                output_url=msg.result.output_url,
                file_size=msg.result.file_size,
                duration=msg.result.duration,
                width=m.width,
                height=m.height,
                format=m.format,
                details={
                    k: v
                    for k, v in message_to_json(msg.result).items()
                    if k not in _RESULT_BASICS
                },
            )
        return cls(
            id=msg.id,
            type=TYPE_FROM_PB.get(msg.type, str(msg.type)),
            status=STATUS_FROM_PB[msg.status],
            version=msg.version,
            source_bucket=msg.source_bucket,
            source_key=msg.source_key,
            dest_bucket=msg.dest_bucket,
            dest_key=msg.dest_key,
            parameters=params,
            priority=msg.priority,
            attempt=msg.attempt,
            max_attempts=msg.max_attempts,
            created_at=_time(msg.created_at),
            updated_at=_time(msg.updated_at),
            started_at=_time(msg.started_at),
            completed_at=_time(msg.completed_at),
            duration_seconds=msg.duration_seconds if msg.HasField("completed_at") else None,
            result=result,
            error=msg.error,
            progress=(
                Progress(msg.progress.percent, msg.progress.message)
                if msg.HasField("progress")
                else None
            ),
            queue_position=msg.queue_position if msg.HasField("queue_position") else None,
            estimated_wait_seconds=(
                msg.estimated_wait_seconds if msg.HasField("estimated_wait_seconds") else None
            ),
            request_id=msg.request_id,
            batch_id=msg.batch_id,
            scheduled_at=_time(msg.scheduled_at),
            proto=msg,
        )

    def to_dict(self) -> dict[str, Any]:
        return message_to_dict(self.proto)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    # Pass to list_page(page_token=...) for the next page; "" on the last page.
    next_page_token: str


@dataclass(frozen=True)
class Purged:
    """What purge() deleted (with dry_run: would delete)."""

    deleted: int
    job_ids: list[str]


@dataclass(frozen=True)
class Batch:
    batch_id: str
    job_ids: list[str]


@dataclass(frozen=True)
class JobCounts:
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int

    @classmethod
    def from_proto(cls, msg: pb.JobCounts) -> JobCounts:
        return cls(msg.pending, msg.processing, msg.completed, msg.failed, msg.cancelled)


@dataclass(frozen=True)
class QueueStats:
    totals: JobCounts
    # Keyed by job type, e.g. "image_resize".
    by_type: dict[str, JobCounts]
    # Workers that heartbeated recently.
    workers: int
    # Pending jobs waiting for a retry backoff or their run_at (included in totals.pending).
    scheduled: int
    proto: pb.QueueStats = field(default_factory=pb.QueueStats, repr=False, compare=False)

    @classmethod
    def from_proto(cls, msg: pb.QueueStats) -> QueueStats:
        return cls(
            totals=JobCounts.from_proto(msg.totals),
            by_type={k: JobCounts.from_proto(v) for k, v in msg.by_type.items()},
            workers=msg.workers,
            scheduled=msg.scheduled,
            proto=msg,
        )

    def to_dict(self) -> dict[str, Any]:
        return message_to_dict(self.proto)
