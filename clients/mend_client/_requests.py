"""Builds the API's request messages from keyword arguments; shared by both clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from mend.v1 import jobs_pb2 as pb
from mend_client._operations import enum_number, parameters
from mend_client._types import (
    Fit,
    ImageFormat,
    JobStatus,
    WebhookStyle,
)

_STYLE = pb.WebhookStyle.DESCRIPTOR
_STATUS, _TYPE = pb.JobStatus.DESCRIPTOR, pb.JobType.DESCRIPTOR


def _enum(enum: EnumDescriptor, name: str | None, what: str) -> int:
    """An enum option by its short name; None or "" leaves it unset."""
    return enum_number(enum, name, what) if name else 0


def timestamp(when: datetime) -> Timestamp:
    """A datetime as a Timestamp; a naive one is taken as UTC."""
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _options(job: ResizeJob | JobRequest) -> pb.SubmitOptions:
    return pb.SubmitOptions(
        priority=job.priority,
        request_id=job.request_id or "",
        webhook_url=job.webhook_url or "",
        webhook_style=_enum(_STYLE, job.webhook_style, "webhook style"),  # type: ignore[arg-type]
        max_attempts=job.max_attempts,
        timeout_seconds=job.timeout_seconds,
        run_at=None if job.run_at is None else timestamp(job.run_at),
        delay_seconds=job.delay_seconds,
    )


def _submit_request(job: ResizeJob | JobRequest, params: pb.JobParameters) -> pb.SubmitJobRequest:
    return pb.SubmitJobRequest(
        source_bucket=job.source_bucket,
        source_key=job.source_key,
        dest_bucket=job.dest_bucket,
        dest_key=job.dest_key,
        parameters=params,
        options=_options(job),
    )


@dataclass(frozen=True)
class ResizeJob:
    """An image_resize job to submit; `Client.resize` takes the same keyword arguments.
    Unset (None) options take the server's defaults."""

    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    width: int = 0
    height: int = 0
    quality: int | None = None
    fit: Fit | None = None
    format: ImageFormat | None = None
    priority: int | None = None
    request_id: str | None = None
    webhook_url: str | None = None
    webhook_style: WebhookStyle | None = None
    max_attempts: int | None = None
    timeout_seconds: int | None = None
    # Run no earlier than run_at (naive: UTC), or delay_seconds after submission.
    run_at: datetime | None = None
    delay_seconds: float | None = None

    def to_proto(self) -> pb.SubmitJobRequest:
        # "" like None leaves an enum option unset.
        values = {
            "width": self.width,
            "height": self.height,
            "quality": self.quality,
            "fit": self.fit or None,
            "format": self.format or None,
        }
        return _submit_request(self, parameters("image_resize", values))


@dataclass(frozen=True)
class JobRequest:
    """A job of any operation the proto declares (see `mend_client.OPERATIONS`), with its
    parameters by name: `JobRequest("image_resize", "b", "in.jpg", "b", "out.jpg",
    {"width": 800, "fit": "cover"})`. Unset (None) options take the server's defaults."""

    type: str
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    priority: int | None = None
    request_id: str | None = None
    webhook_url: str | None = None
    webhook_style: WebhookStyle | None = None
    max_attempts: int | None = None
    timeout_seconds: int | None = None
    # Run no earlier than run_at (naive: UTC), or delay_seconds after submission.
    run_at: datetime | None = None
    delay_seconds: float | None = None

    def to_proto(self) -> pb.SubmitJobRequest:
        return _submit_request(self, parameters(self.type, self.params))


def batch_request(
    jobs: Sequence[ResizeJob | JobRequest],
    *,
    batch_id: str | None,
    webhook_url: str | None,
    webhook_style: WebhookStyle | None,
    fail_fast: bool,
) -> pb.SubmitBatchRequest:
    return pb.SubmitBatchRequest(
        batch_id=batch_id or "",
        jobs=[job.to_proto() for job in jobs],
        options=pb.BatchOptions(
            webhook_url=webhook_url or "",
            webhook_style=_enum(_STYLE, webhook_style, "webhook style"),  # type: ignore[arg-type]
            fail_fast=fail_fast,
        ),
    )


def list_request(
    *,
    status: JobStatus | str | None,
    type: str | None,
    page_size: int | None,
    page_token: str,
) -> pb.ListJobsRequest:
    return pb.ListJobsRequest(
        status=_enum(_STATUS, status, "status"),  # type: ignore[arg-type]
        type=_enum(_TYPE, type, "job type"),  # type: ignore[arg-type]
        page_size=page_size or 0,
        page_token=page_token,
    )


def purge_request(
    *,
    status: JobStatus | str | None,
    type: str | None,
    finished_before: datetime | None,
    dry_run: bool,
    all_tenants: bool,
    page_size: int | None,
    page_token: str,
) -> pb.PurgeJobsRequest:
    return pb.PurgeJobsRequest(
        status=_enum(_STATUS, status, "status"),  # type: ignore[arg-type]
        type=_enum(_TYPE, type, "job type"),  # type: ignore[arg-type]
        finished_before=None if finished_before is None else timestamp(finished_before),
        dry_run=dry_run,
        all_tenants=all_tenants,
        page_size=page_size or 0,
        page_token=page_token,
    )
