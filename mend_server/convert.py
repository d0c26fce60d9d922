"""Protobuf <-> domain translation. The only module of the server that knows both sides."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from mend.v1 import jobs_pb2 as pb
from mend_client.rest_json import short_names
from mend_core.job import Job, JobStatus, JobType
from mend_core.store import Counts, Stats
from mend_core.validation import JobDraft

# Enum names come from the descriptors (FIT_MODE_COVER -> "cover"), as in the REST JSON;
# the domain's names (mend_core.job) are the same words.
# Typed loosely: the stubs want each enum's own type, the tables hold plain numbers.
STATUS_TO_PB: dict[JobStatus, Any] = {
    JobStatus(name): n for n, name in short_names(pb.JobStatus.DESCRIPTOR).items()
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
TYPE_TO_PB: dict[JobType, Any] = {
    JobType(name): n for n, name in short_names(pb.JobType.DESCRIPTOR).items()
}
TYPE_FROM_PB = {v: k for k, v in TYPE_TO_PB.items()}
_FIT = short_names(pb.FitMode.DESCRIPTOR)
_FORMAT = short_names(pb.ImageFormat.DESCRIPTOR)
_STYLE = short_names(pb.WebhookStyle.DESCRIPTOR)
_FIT_TO_PB: dict[str, Any] = {v: k for k, v in _FIT.items()}
_FORMAT_TO_PB: dict[str, Any] = {v: k for k, v in _FORMAT.items()}
_STYLE_TO_PB: dict[str, Any] = {v: k for k, v in _STYLE.items()}


def _enum_name(table: dict[int, str], value: int) -> str:
    """ "" for unset, the domain name when known, a marker the validator rejects otherwise."""
    if value == 0:
        return ""
    return table.get(value, f"enum value {value}")


def webhook_style_name(value: int) -> str:
    return _enum_name(_STYLE, value)


def _optional(message: Message, field: str) -> int | None:
    return getattr(message, field) if message.HasField(field) else None


def _draft(
    req: pb.SubmitJobRequest | pb.SubmitImageResizeRequest,
    job_type: str,
    resize: pb.ImageResizeParameters | pb.SubmitImageResizeRequest,
    opts: pb.SubmitOptions | pb.SubmitImageResizeRequest,
    batch_id: str = "",
) -> JobDraft:
    """The flat resize request and the nested SubmitJobRequest name their fields alike,
    so one translation serves both: `resize` and `opts` are the request itself when flat."""
    return JobDraft(
        type=job_type,
        source_bucket=req.source_bucket,
        source_key=req.source_key,
        dest_bucket=req.dest_bucket,
        dest_key=req.dest_key,
        width=resize.width,
        height=resize.height,
        quality=_optional(resize, "quality"),
        fit=_enum_name(_FIT, resize.fit),
        format=_enum_name(_FORMAT, resize.format),
        priority=_optional(opts, "priority"),
        request_id=opts.request_id,
        webhook_url=opts.webhook_url,
        webhook_style=_enum_name(_STYLE, opts.webhook_style),
        max_attempts=_optional(opts, "max_attempts"),
        timeout_seconds=_optional(opts, "timeout_seconds"),
        batch_id=batch_id,
    )


def draft_from_submit(req: pb.SubmitJobRequest, batch_id: str = "") -> JobDraft:
    op = req.parameters.WhichOneof("operation")
    job_type = JobType.IMAGE_RESIZE.value if op == "image_resize" else ""
    return _draft(req, job_type, req.parameters.image_resize, req.options, batch_id)


# Where each draft field lives in SubmitJobRequest (SubmitImageResizeRequest is flat).
SUBMIT_FIELD_PATHS = {
    "type": "parameters",
    **{f: f"parameters.image_resize.{f}" for f in ("width", "height", "quality", "fit", "format")},
    **{
        f: f"options.{f}"
        for f in (
            "priority",
            "request_id",
            "webhook_url",
            "webhook_style",
            "max_attempts",
            "timeout_seconds",
        )
    },
}


def draft_from_resize(req: pb.SubmitImageResizeRequest) -> JobDraft:
    return _draft(req, JobType.IMAGE_RESIZE.value, req, req)


def job_to_pb(job: Job) -> pb.Job:
    # Built in place (sub-messages set through the parent, no intermediate messages to
    # copy): GetJob runs this on every call, and this way costs half as much.
    spec, params = job.spec, job.spec.params
    msg = pb.Job(
        id=job.id,
        type=TYPE_TO_PB[spec.type],
        status=STATUS_TO_PB[job.status],
        source_bucket=spec.source_bucket,
        source_key=spec.source_key,
        dest_bucket=spec.dest_bucket,
        dest_key=spec.dest_key,
        error=job.error,
        duration_seconds=job.duration_seconds or 0.0,
        priority=spec.priority,
        attempt=job.attempt,
        max_attempts=spec.max_attempts,
        version=job.version,
        queue_position=job.queue_position,
        estimated_wait_seconds=job.estimated_wait_seconds,
        request_id=spec.request_id,
        batch_id=spec.batch_id,
        timeout_seconds=spec.timeout_seconds,
        webhook_url=spec.webhook_url,
        webhook_style=_STYLE_TO_PB.get(spec.webhook_style, 0),
    )
    resize = msg.parameters.image_resize  # present once a field is set, even to 0
    resize.width = params.width
    resize.height = params.height
    if params.quality is not None:
        resize.quality = params.quality
    if params.fit:
        resize.fit = _FIT_TO_PB.get(params.fit, 0)
    if params.format:
        resize.format = _FORMAT_TO_PB.get(params.format, 0)
    _set_time(msg.created_at, job.created_at_ms)
    _set_time(msg.updated_at, job.updated_at_ms)
    if job.started_at_ms is not None:
        _set_time(msg.started_at, job.started_at_ms)
    if job.completed_at_ms is not None:
        _set_time(msg.completed_at, job.completed_at_ms)
    if job.progress_percent or job.progress_message:
        msg.progress.percent = job.progress_percent
        msg.progress.message = job.progress_message
    if job.result is not None:
        r, out = job.result, msg.result
        out.output_url = r.output_url
        out.file_size = r.file_size
        out.duration = r.duration
        out.metadata.width = r.metadata.width
        out.metadata.height = r.metadata.height
        out.metadata.format = r.metadata.format
    return msg


def _set_time(ts: Timestamp, ms: int) -> None:
    # Timestamp.FromMilliseconds without its overhead; setting a field marks ts present.
    ts.seconds = ms // 1000
    ts.nanos = ms % 1000 * 1_000_000


def _counts(c: Counts) -> pb.JobCounts:
    return pb.JobCounts(
        pending=c.pending,
        processing=c.processing,
        completed=c.completed,
        failed=c.failed,
        cancelled=c.cancelled,
    )


def stats_to_pb(stats: Stats) -> pb.QueueStats:
    return pb.QueueStats(
        totals=_counts(stats.totals),
        by_type={name: _counts(c) for name, c in stats.by_type.items()},
        workers=stats.workers,
        scheduled=stats.scheduled,
        by_tenant={name: _counts(c) for name, c in stats.by_tenant.items()},
    )
