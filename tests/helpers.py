"""Request builders and error helpers shared by the gRPC API tests."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis import Redis

from mend.v1 import jobs_pb2 as pb
from mend_core.jobstate.encoding import FIELDS, REMOVED, full_names, log_entry
from mend_core.jobstate.partitions import Partitions
from tests.conftest import PARTITIONS

# The partitions of the fixtures' servers and workers (tests.conftest.PARTITIONS): tests
# that look at Redis keys find them through it, never by spelling a hash tag.
PARTS = Partitions(PARTITIONS)
# A webhook target on a public address literal: accepted at submit without a DNS lookup
# (tests use no DNS names but localhost). No test completes a job that has it.
PUBLIC_WEBHOOK_URL = "https://8.8.8.8/hook"


def job_key(job_id: str) -> str:
    """The hash of a job, in its partition."""
    return PARTS.job_keys(job_id).job(job_id)


def events_key(job_id: str) -> str:
    """The event log of a job, in its partition."""
    return PARTS.job_keys(job_id).events(job_id)


def log_entries(redis_client: Redis, job_id: str) -> list[tuple[int, dict[str, str]]]:
    """The entries of a job's event log, oldest first: (version, fields by full name, the
    names under "-" too)."""
    out = []
    for raw in redis_client.lrange(events_key(job_id), 0, -1):
        version, fields = log_entry(raw)
        if REMOVED in fields:
            fields[REMOVED] = " ".join(full_names(dict.fromkeys(fields[REMOVED].split(), "")))
        out.append((version, full_names(fields)))
    return out


def job_fields(redis_client: Redis, job_id: str) -> dict[str, str]:
    """A job's hash as stored, by full names (encoding.FIELDS)."""
    return full_names(redis_client.hgetall(job_key(job_id)))


def job_field(redis_client: Redis, job_id: str, name: str) -> str | None:
    """One field of a job's hash (its full name)."""
    return redis_client.hget(job_key(job_id), FIELDS[name])


def queued(redis_client: Redis, tenant: str = "acme") -> set[str]:
    """The ids in a tenant's queues, in every partition."""
    with redis_client.pipeline(transaction=False) as pipe:
        for keys in PARTS.keys:
            pipe.zrange(keys.queue(tenant), 0, -1)
        return {job_id for ids in pipe.execute() for job_id in ids}


def is_queued(redis_client: Redis, job_id: str, tenant: str = "acme") -> bool:
    """Whether the job is in its tenant's queue of its partition."""
    return redis_client.zscore(PARTS.job_keys(job_id).queue(tenant), job_id) is not None


def across(redis_client: Redis, command: str, key: str) -> int:
    """A count (ZCARD, XLEN, ...) of one fixed key of every partition (its `Keys` name,
    e.g. "inflight"), summed."""
    with redis_client.pipeline(transaction=False) as pipe:
        for keys in PARTS.keys:
            pipe.execute_command(command, getattr(keys, key))
        return sum(pipe.execute())


def turns(redis_client: Redis) -> int:
    """The claim turns held in every partition: one per queued job of every tenant."""
    return across(redis_client, "ZCARD", "turns")


def stored_jobs(redis_client: Redis) -> list[str]:
    """The keys of every job hash in Redis, in any partition."""
    return [key for keys in PARTS.keys for key in redis_client.keys(keys.job("*"))]


def batch_key(tenant: str, batch_id: str) -> str:
    """The hash of a batch, in the partition that holds it and all its jobs."""
    return PARTS[PARTS.of_batch(tenant, batch_id)].batch(tenant, batch_id)


def request_key(tenant: str, request_id: str) -> str:
    """The idempotency key of a request_id, in the partition its job went to."""
    return PARTS[PARTS.of_request(tenant, request_id)].request(tenant, request_id)


def resize_params(**overrides: Any) -> pb.ImageResizeParameters:
    values: dict[str, Any] = {"width": 800, "height": 600}
    values.update(overrides)
    return pb.ImageResizeParameters(**{k: v for k, v in values.items() if v is not None})


def submit_request(
    *,
    params: pb.ImageResizeParameters | None = None,
    options: pb.SubmitOptions | None = None,
    **overrides: Any,
) -> pb.SubmitJobRequest:
    """A valid nested SubmitJobRequest; keyword arguments replace top-level fields."""
    values: dict[str, Any] = {
        "source_bucket": "my-bucket",
        "source_key": "images/input.jpg",
        "dest_bucket": "my-bucket",
        "dest_key": "images/output.jpg",
        "parameters": pb.JobParameters(image_resize=params or resize_params()),
    }
    values.update(overrides)
    if options is not None:
        values["options"] = options
    return pb.SubmitJobRequest(**values)


# A valid resize, as the flat fields of SubmitImageResizeRequest (and the REST body).
RESIZE_FIELDS: dict[str, Any] = {
    "source_bucket": "my-bucket",
    "source_key": "images/input.jpg",
    "dest_bucket": "my-bucket",
    "dest_key": "images/output.jpg",
    "width": 800,
    "height": 600,
}


def resize_request(**overrides: Any) -> pb.SubmitImageResizeRequest:
    """A valid flat SubmitImageResizeRequest; None drops a field."""
    values = {**RESIZE_FIELDS, **overrides}
    return pb.SubmitImageResizeRequest(**{k: v for k, v in values.items() if v is not None})


def bad_request(err: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest:
    """The google.rpc.BadRequest carried in the error's rich status."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {err.code()}: {err.details()}"
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            out = error_details_pb2.BadRequest()
            detail.Unpack(out)
            return out
    raise AssertionError(f"no google.rpc.BadRequest in {status}")


def violated_fields(err: grpc.aio.AioRpcError) -> list[str]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    return [v.field for v in bad_request(err).field_violations]


def is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value
