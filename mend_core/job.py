"""The job model: what a client submits (JobSpec) and what Mend tracks (Job).

Jobs live in Redis as flat hashes of strings; `to_fields`/`from_fields` are the only
places that know that encoding.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobType(StrEnum):
    IMAGE_RESIZE = "image_resize"


FIT_MODES = ("inside", "cover", "fill")
IMAGE_FORMATS = ("jpeg", "png", "webp")
WEBHOOK_STYLES = ("default", "discord")
DEFAULT_PRIORITY = 5


@dataclass(frozen=True)
class ResizeParams:
    width: int = 0
    height: int = 0
    quality: int | None = None
    fit: str | None = None
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the fields the client set, as Mend's REST API shows them."""
        return {k: v for k, v in asdict(self).items() if v not in (None, 0)}


@dataclass(frozen=True)
class JobSpec:
    """A validated request for one job."""

    type: JobType
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    params: ResizeParams
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = 3
    timeout_seconds: int = 300
    request_id: str = ""
    webhook_url: str = ""
    webhook_style: str = ""
    batch_id: str = ""

    def to_fields(self, job_id: str, tenant: str) -> dict[str, str]:
        fields = {
            "id": job_id,
            "tenant": tenant,
            "type": self.type.value,
            "source_bucket": self.source_bucket,
            "source_key": self.source_key,
            "dest_bucket": self.dest_bucket,
            "dest_key": self.dest_key,
            "params": json.dumps(self.params.to_dict(), separators=(",", ":")),
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
class ImageMetadata:
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class JobResult:
    output_url: str
    file_size: int
    duration: float
    metadata: ImageMetadata

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> JobResult:
        data = json.loads(raw)
        return cls(
            output_url=data["output_url"],
            file_size=int(data["file_size"]),
            duration=float(data["duration"]),
            metadata=ImageMetadata(**data["metadata"]),
        )


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
    extra: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Job:
        def opt_int(name: str) -> int | None:
            return int(f[name]) if f.get(name) else None

        spec = JobSpec(
            type=JobType(f["type"]),
            source_bucket=f["source_bucket"],
            source_key=f["source_key"],
            dest_bucket=f["dest_bucket"],
            dest_key=f["dest_key"],
            params=ResizeParams(**json.loads(f.get("params") or "{}")),
            priority=int(f.get("priority", DEFAULT_PRIORITY)),
            max_attempts=int(f.get("max_attempts", 3)),
            timeout_seconds=int(f.get("timeout_seconds", 300)),
            request_id=f.get("request_id", ""),
            webhook_url=f.get("webhook_url", ""),
            webhook_style=f.get("webhook_style", ""),
            batch_id=f.get("batch_id", ""),
        )
        return cls(
            id=f["id"],
            tenant=f["tenant"],
            spec=spec,
            status=JobStatus(f["status"]),
            version=int(f.get("version", 0)),
            attempt=int(f.get("attempt", 0)),
            created_at_ms=int(f["created_at"]),
            updated_at_ms=int(f.get("updated_at", f["created_at"])),
            started_at_ms=opt_int("started_at"),
            completed_at_ms=opt_int("completed_at"),
            duration_seconds=float(f["duration_seconds"]) if f.get("duration_seconds") else None,
            result=JobResult.from_json(f["result"]) if f.get("result") else None,
            error=f.get("error", ""),
            progress_percent=int(f.get("progress_percent", 0)),
            progress_message=f.get("progress_message", ""),
            fence=int(f.get("fence", 0)),
        )
