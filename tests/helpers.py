"""Request builders and error helpers shared by the gRPC API tests."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mend.v1 import jobs_pb2 as pb
from mend_core.jobstate.partitions import Partitions
from tests.conftest import PARTITIONS

# The queue of tenant acme (tests.conftest.AUTH's tenant); TURNS_KEY has one entry per
# queued job of every tenant. Both with one partition (tests.conftest.PARTITIONS).
QUEUE_KEY = "mend:{jobs}:queue:acme"
TURNS_KEY = "mend:{jobs}:turns"
# A webhook target on a public address literal: accepted at submit without a DNS lookup
# (tests use no DNS names but localhost). No test completes a job that has it.
PUBLIC_WEBHOOK_URL = "https://8.8.8.8/hook"


def job_key(job_id: str) -> str:
    """The hash of a job, in its partition (the fixtures' partition count)."""
    return Partitions(PARTITIONS).job_keys(job_id).job(job_id)


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
