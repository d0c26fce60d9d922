"""Protobuf <-> domain translation. The only module of the server that knows both sides.

Operations are translated by name, through the descriptors: a parameters dataclass has
the fields of its proto message, enum values are the proto names without their prefix,
lowercased (FIT_MODE_COVER <-> "cover"). Nothing here changes when an operation is added."""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp

from mend.v1 import jobs_pb2 as pb
from mend_client.rest_json import enum_prefix, short_names
from mend_core.errors import ValidationError, Violation
from mend_core.job import Job, JobStatus
from mend_core.jobstate.store import Counts, Stats
from mend_core.operations import OPERATIONS
from mend_core.validation import JobDraft

# Enum names come from the descriptors (FIT_MODE_COVER -> "cover"), as in the REST JSON;
# the domain's names (mend_core.job) are the same words.
# Typed loosely: the stubs want each enum's own type, the tables hold plain numbers.
STATUS_TO_PB: dict[JobStatus, Any] = {
    JobStatus(name): n for n, name in short_names(pb.JobStatus.DESCRIPTOR).items()
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
_PARAMETERS = pb.JobParameters.DESCRIPTOR
_OPTIONS = pb.SubmitOptions.DESCRIPTOR
# Every registered operation is a member of JobParameters' oneof and a JobType value.
TYPE_TO_PB: dict[str, Any] = {t: pb.JobType.Value(f"JOB_TYPE_{t.upper()}") for t in OPERATIONS}
TYPE_FROM_PB = {v: k for k, v in TYPE_TO_PB.items()}


def _enum_name(enum: EnumDescriptor, number: int) -> str:
    """ "" for unset, the domain name (FIT_MODE_COVER -> "cover") when known, a marker the
    validator rejects otherwise."""
    if number == 0:
        return ""
    value = enum.values_by_number.get(number)
    if value is None:
        return f"enum value {number}"
    return value.name.removeprefix(enum_prefix(enum)).lower()


def _enum_number(enum: EnumDescriptor, name: str) -> int:
    value = enum.values_by_name.get(enum_prefix(enum) + name.upper())
    return value.number if value is not None else 0


def webhook_style_name(value: int) -> str:
    return _enum_name(pb.WebhookStyle.DESCRIPTOR, value)


def _values(message: Message, desc: Descriptor) -> dict[str, Any]:
    """The fields of `desc` read from `message` (the same message, or a flat request
    naming its fields alike): enums by domain name, unset optionals as None."""
    values: dict[str, Any] = {}
    for f in desc.fields:
        if f.has_presence and not message.HasField(f.name):
            values[f.name] = None
        elif f.enum_type is not None:
            values[f.name] = _enum_name(f.enum_type, getattr(message, f.name))
        else:
            values[f.name] = getattr(message, f.name)
    return values


def timestamp_ms(stamp: Timestamp, field: str) -> int:
    """Epoch ms, or ValidationError naming `field` for a Timestamp no JSON client could
    send (nanos outside 0-999999999, a year outside 1-9999): only raw protobuf can."""
    try:
        return stamp.ToMilliseconds()
    except ValueError:
        problem = "must be a valid timestamp: years 1 to 9999, nanos 0 to 999999999"
        raise ValidationError([Violation(field, problem)]) from None


def _draft(
    req: Message,
    job_type: str,
    params: Message | None,
    opts: Message,
    batch_id: str = "",
    opts_path: str = "",
) -> JobDraft:
    """SubmitJobRequest and the flat Submit requests name their fields alike, so one
    translation serves both: `params` and `opts` are the request itself when flat.
    `opts_path` is where the options are in the request ("options." unless flat)."""
    op = OPERATIONS.get(job_type)
    values = {}
    if op is not None and params is not None:
        values = _values(params, _PARAMETERS.fields_by_name[op.type].message_type)
    o = _values(opts, _OPTIONS)
    return JobDraft(
        type=job_type,
        source_bucket=req.source_bucket,  # type: ignore[attr-defined]
        source_key=req.source_key,  # type: ignore[attr-defined]
        dest_bucket=req.dest_bucket,  # type: ignore[attr-defined]
        dest_key=req.dest_key,  # type: ignore[attr-defined]
        params=values,
        priority=o["priority"],
        request_id=o["request_id"],
        webhook_url=o["webhook_url"],
        webhook_style=o["webhook_style"],
        max_attempts=o["max_attempts"],
        timeout_seconds=o["timeout_seconds"],
        batch_id=batch_id,
        run_at_ms=None if o["run_at"] is None else timestamp_ms(o["run_at"], opts_path + "run_at"),
        delay_seconds=o["delay_seconds"],
    )


def draft_from_submit(req: pb.SubmitJobRequest, batch_id: str = "") -> JobDraft:
    op = req.parameters.WhichOneof("operation") or ""
    params = getattr(req.parameters, op) if op else None
    return _draft(req, op, params, req.options, batch_id, "options.")


def submit_field_path(job_type: str, name: str) -> str:
    """Where a draft's field lives in SubmitJobRequest (the flat requests name it as is)."""
    if name == "type":
        return "parameters"
    if name in _OPTIONS.fields_by_name:
        return f"options.{name}"
    op = OPERATIONS.get(job_type)
    if op is not None and name in _PARAMETERS.fields_by_name[op.type].message_type.fields_by_name:
        return f"parameters.{op.type}.{name}"
    return name


def draft_from_flat(job_type: str, req: Message) -> JobDraft:
    """A flat Submit request (SubmitImageResizeRequest, ...): one message holds the
    locations, the operation's parameters and the options."""
    return _draft(req, job_type, req, req)


def job_to_pb(job: Job) -> pb.Job:
    # Built in place (sub-messages set through the parent, no intermediate messages to
    # copy): GetJob runs this on every call, and this way costs half as much.
    spec = job.spec
    msg = pb.Job(
        id=job.id,
        type=TYPE_TO_PB.get(spec.type, 0),
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
        webhook_style=_enum_number(pb.WebhookStyle.DESCRIPTOR, spec.webhook_style),  # type: ignore[arg-type]
    )
    _set_params(msg.parameters, spec.type, spec.params)
    _set_time(msg.created_at, job.created_at_ms)
    _set_time(msg.updated_at, job.updated_at_ms)
    if job.started_at_ms is not None:
        _set_time(msg.started_at, job.started_at_ms)
    if job.completed_at_ms is not None:
        _set_time(msg.completed_at, job.completed_at_ms)
    if job.scheduled_at_ms is not None:
        _set_time(msg.scheduled_at, job.scheduled_at_ms)
    if job.progress_percent or job.progress_message:
        msg.progress.percent = job.progress_percent
        msg.progress.message = job.progress_message
    if job.result is not None:
        r, out = job.result, msg.result
        out.output_url = r.output_url
        out.file_size = r.file_size
        out.duration = r.duration
        if r.metadata is not None:
            out.metadata.width = r.metadata.width
            out.metadata.height = r.metadata.height
            out.metadata.format = r.metadata.format
        if r.details:
            # An operation's own result fields, in the proto's names (mend_core.results).
            json_format.ParseDict(r.details, out, ignore_unknown_fields=True)
    return msg


@functools.lru_cache(maxsize=1024)
def _params_message(job_type: str, params: Any) -> bytes:
    """The operation's parameters message, serialized: GetJob runs this on every call and
    jobs share a handful of parameter sets (parameters are immutable)."""
    desc = _PARAMETERS.fields_by_name[job_type].message_type
    message = GetMessageClass(desc)()
    for name, value in asdict(params).items():
        f = desc.fields_by_name.get(name)
        if f is None or value is None or (value in (0, "") and not f.has_presence):
            continue
        setattr(message, name, _enum_number(f.enum_type, value) if f.enum_type else value)
    return message.SerializeToString()


def _set_params(parameters: pb.JobParameters, job_type: str, params: Any) -> None:
    if job_type in _PARAMETERS.fields_by_name:
        # Marks the oneof member present even when every field is unset.
        getattr(parameters, job_type).MergeFromString(_params_message(job_type, params))


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
    out = pb.QueueStats(
        totals=_counts(stats.totals),
        by_type={name: _counts(c) for name, c in stats.by_type.items()},
        workers=stats.workers,
        scheduled=stats.scheduled,
        by_tenant={name: _counts(c) for name, c in stats.by_tenant.items()},
    )
    for w in stats.workers_detail:
        info = out.workers_detail.add(
            worker_id=w.worker_id, job_id=w.job_id, job_type=TYPE_TO_PB.get(w.job_type, 0)
        )
        if w.started_at_ms is not None:
            _set_time(info.started_at, w.started_at_ms)
    for m in stats.throughput:
        bucket = out.throughput.add(completed=m.completed, failed=m.failed)
        _set_time(bucket.start, m.start_ms)
    return out
