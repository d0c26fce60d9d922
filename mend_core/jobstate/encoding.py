"""The job hash: a job in Redis is a flat hash of strings. These functions are the only
Python that knows its fields; the Lua scripts add the state fields (status, version,
seq, attempt, fence, timestamps, result, error, progress, worker) as jobs move."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from mend_core.job import DEFAULT_PRIORITY, Job, JobSpec, JobStatus
from mend_core.operations import operation, params_to_dict
from mend_core.results import ImageMetadata, JobResult

# The job hash's field names as stored: a letter or two for each (Redis keeps every name in
# every job: the full names were about half of a finished job's hash). Python and the Lua
# scripts use the full names; the scripts get this table (lua_fields) and translate where
# they read and write the hash. A job's id is its key's, not a field. Jobs stored before
# (full names, and an `id` field) read the same (full_names); a script's first change to
# one stores it under these names (lua/_lib.lua's short_names). Never reuse a short name.
FIELDS: dict[str, str] = {
    "tenant": "t",
    "type": "y",
    "status": "s",
    "version": "v",
    "seq": "q",
    "source_bucket": "sb",
    "source_key": "sk",
    "dest_bucket": "db",
    "dest_key": "dk",
    "params": "p",
    "priority": "pr",
    "max_attempts": "ma",
    "timeout_seconds": "to",
    "request_id": "r",
    "webhook_url": "wu",
    "webhook_style": "ws",
    "batch_id": "b",
    "traceparent": "tp",
    "created_at": "c",
    "updated_at": "u",
    "started_at": "sa",
    "completed_at": "ca",
    "scheduled_at": "da",
    "attempt": "a",
    "fence": "f",
    "worker": "w",
    "error": "e",
    "progress_percent": "pp",
    "progress_message": "pm",
    "duration_seconds": "d",
    "output_url": "o",
    "file_size": "fs",
    "image": "i",
    "details": "dt",
}
_FULL_NAMES = {short: name for name, short in FIELDS.items()}


def full_names(stored: dict[str, str]) -> dict[str, str]:
    """A job's fields as stored (either names) under their full names."""
    return {_FULL_NAMES.get(name, name): value for name, value in stored.items()}


def hmget_fields(names: list[str]) -> list[str]:
    """The fields to HMGET for a job's fields by full name, under either names."""
    return [FIELDS[name] for name in names] + names


def hmget_values(values: list[Any]) -> list[Any]:
    """HMGET's reply for hmget_fields: one value per full name."""
    half = len(values) // 2
    both = zip(values[:half], values[half:], strict=True)
    return [new if new is not None else old for new, old in both]


def lua_fields() -> str:
    """FIELDS for the head of every script: F (full name -> stored) and FULL_NAMES."""
    to_short = ", ".join(f"{name} = '{short}'" for name, short in FIELDS.items())
    to_full = ", ".join(f"{short} = '{name}'" for name, short in FIELDS.items())
    return f"local F = {{{to_short}}}\nlocal FULL_NAMES = {{{to_full}}}\n"


def spec_fields(spec: JobSpec, tenant: str) -> dict[str, str]:
    """The fields a submit stores (full names); empty ones are left out."""
    fields = {
        "tenant": tenant,
        "type": spec.type,
        "source_bucket": spec.source_bucket,
        "source_key": spec.source_key,
        "dest_bucket": spec.dest_bucket,
        "dest_key": spec.dest_key,
        "params": _params_json(spec.params),
        "priority": str(spec.priority),
        "max_attempts": str(spec.max_attempts),
        "timeout_seconds": str(spec.timeout_seconds),
        "request_id": spec.request_id,
        "webhook_url": spec.webhook_url,
        "webhook_style": spec.webhook_style,
        "batch_id": spec.batch_id,
    }
    return {k: v for k, v in fields.items() if v != ""}


# The submitter's W3C trace context (55 characters), so that the worker's spans join its
# trace (mend_core.telemetry.tracing). Not part of the spec: a replayed request_id with
# another trace is still the same request.
TRACE_FIELD = "traceparent"


def trace_fields(trace_parent: str) -> dict[str, str]:
    return {TRACE_FIELD: trace_parent} if trace_parent else {}


def fingerprint(spec: JobSpec) -> str:
    """What makes a resubmission with the same request_id "the same request" (AIP-155):
    every setting of the job, defaults applied."""
    fields = spec_fields(spec, "")
    fields.pop("batch_id", None)
    # When to run, as the request said it (a delay, not the time it works out to).
    if spec.run_at_ms is not None:
        fields["run_at_ms"] = str(spec.run_at_ms)
    if spec.delay_ms is not None:
        fields["delay_ms"] = str(spec.delay_ms)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# A result is kept as fields of the job of their own, each short: Redis keeps a hash
# compact (listpack) only while every value is at most `hash-max-listpack-value` (64
# bytes by default), and one long value (a result as JSON) made the whole job a
# hashtable, ~3x the memory. Its duration is the job's duration_seconds. lua/requeue.lua
# removes these names.
RESULT_FIELDS = ("output_url", "file_size", "image", "details")
COMPLETED_PROGRESS = (100, "Completed")


def result_fields(result: JobResult) -> dict[str, str]:
    """The fields a completed job stores for its result (complete.lua takes them as JSON)."""
    fields = {"output_url": result.output_url, "file_size": str(result.file_size)}
    if (meta := result.metadata) is not None:
        fields["image"] = f"{meta.width} {meta.height} {meta.format}"
    if result.details:
        fields["details"] = json.dumps(result.details, separators=(",", ":"))
    return fields


def _result(f: dict[str, str]) -> JobResult | None:
    if "output_url" not in f:
        legacy = f.get("result")  # stored as one JSON document before
        return _legacy_result(legacy) if legacy else None
    image = f.get("image")
    metadata = None
    if image:
        width, height, fmt = image.split(" ", 2)
        metadata = ImageMetadata(width=int(width), height=int(height), format=fmt)
    details = f.get("details")
    return JobResult(
        output_url=f["output_url"],
        file_size=int(f["file_size"]),
        duration=float(f.get("duration_seconds") or 0),
        metadata=metadata,
        details=json.loads(details) if details else {},
    )


def _legacy_result(raw: str) -> JobResult:
    data = json.loads(raw)
    metadata = data.get("metadata")
    return JobResult(
        output_url=data["output_url"],
        file_size=int(data["file_size"]),
        duration=float(data["duration"]),
        metadata=ImageMetadata(**metadata) if metadata else None,
        details=data.get("details") or {},
    )


# The event log (lua/_lib.lua's commit): a list holding the last EVENTS_MAXLEN versions,
# each entry a JSON array `[<version>, name, value, ...]` of the fields that version set
# and, under REMOVED, the names of those it removed; a log's first entry, and that of every
# version 1 + a multiple of EVENTS_SNAPSHOT_EVERY, holds the whole job instead.
EVENTS_SNAPSHOT_EVERY = 64
EVENTS_MAXLEN = 512
REMOVED = "-"
_TENANT = FIELDS["tenant"]


def log_start(after_version: int) -> int:
    """The version to read a log from to rebuild the states after after_version: that of
    the last whole-job entry at or before the first of them."""
    return after_version + 1 - after_version % EVENTS_SNAPSHOT_EVERY


def log_entry(raw: str) -> tuple[int, dict[str, str]]:
    """One entry of the log: its version and its fields."""
    version, *flat = json.loads(raw)
    return int(version), dict(zip(flat[::2], flat[1::2], strict=True))


def replay(entries: list[str], after_version: int) -> list[dict[str, str]]:
    """The job's states (its fields, as the hash held them) after after_version, from
    consecutive log entries (as stored) starting at a whole-job one. Entries before the
    first whole-job one cannot be rebuilt and are left out."""
    states, state = [], None
    for raw in entries:
        version, fields = log_entry(raw)
        if _TENANT in fields:  # the whole job: no change sets the tenant
            state = fields
        elif state is None:
            continue
        else:
            state = state | fields
            for name in state.pop(REMOVED, "").split():
                state.pop(name, None)
        state["version"] = str(version)
        if version > after_version:
            states.append(state)
    return states


def pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    """A hash as a script returns it (HGETALL's flat list) or as redis-py does (a dict)."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def job_from_fields(
    stored: dict[str, str],
    job_id: str,
    *,
    queue_position: int | None = None,
    estimated_wait_seconds: float | None = None,
) -> Job:
    """The job from its hash as stored (either names)."""
    f = full_names(stored)
    get = f.get
    started, completed, scheduled = get("started_at"), get("completed_at"), get("scheduled_at")
    duration = get("duration_seconds")
    # A completed job's progress is not stored: it is always this.
    done = COMPLETED_PROGRESS if f["status"] == "completed" else (0, "")
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
    return Job(
        id=job_id,
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
        result=_result(f),
        error=get("error", ""),
        progress_percent=int(get("progress_percent", done[0])),
        progress_message=get("progress_message", done[1]),
        fence=int(get("fence", 0)),
        scheduled_at_ms=int(scheduled) if scheduled else None,
        trace_parent=get(TRACE_FIELD, ""),
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
