"""The operation registry and the proto agree: every operation the proto declares is
registered, and everything the server, the gateway and the CLI derive from them exists."""

from __future__ import annotations

import dataclasses

import pytest

from mend.v1 import jobs_pb2 as pb
from mend_client import OPERATIONS as CLIENT_OPERATIONS
from mend_client.cli import build_parser
from mend_core.job import Job, JobStatus
from mend_core.operations import OPERATIONS, OperationLimits, params_to_dict
from mend_core.validation import Limits, validate
from mend_server.convert import draft_from_submit, job_to_pb

_ONEOF = pb.JobParameters.DESCRIPTOR.oneofs_by_name["operation"]
_SERVICE = pb.DESCRIPTOR.services_by_name["JobService"]
_LOCATION = ("source_bucket", "source_key", "dest_bucket", "dest_key")
LIMITS = Limits(3, 10, 300, 3600, OperationLimits(10_000, 100_000_000, 1 << 20))


def test_every_operation_of_the_proto_is_registered_and_only_those() -> None:
    assert set(OPERATIONS) == {f.name for f in _ONEOF.fields} == set(CLIENT_OPERATIONS)
    for job_type in OPERATIONS:
        assert pb.JobType.Value(f"JOB_TYPE_{job_type.upper()}") > 0


@pytest.mark.parametrize("job_type", sorted(OPERATIONS))
def test_parameters_are_the_proto_message_fields(job_type: str) -> None:
    op = OPERATIONS[job_type]
    message = _ONEOF.fields[[f.name for f in _ONEOF.fields].index(job_type)].message_type
    assert [f.name for f in dataclasses.fields(op.params)] == [f.name for f in message.fields]


@pytest.mark.parametrize("job_type", sorted(OPERATIONS))
def test_each_operation_has_its_flat_submit_rpc(job_type: str) -> None:
    """The flat request holds the locations, every parameter and every option."""
    op = OPERATIONS[job_type]
    method = _SERVICE.methods_by_name[op.flat_rpc]
    flat = set(method.input_type.fields_by_name)
    params = {f.name for f in dataclasses.fields(op.params)}
    options = set(pb.SubmitOptions.DESCRIPTOR.fields_by_name)
    assert {*_LOCATION, *params, *options, "validate_only"} <= flat


@pytest.mark.parametrize("job_type", sorted(OPERATIONS))
def test_each_operation_is_a_cli_submit_command(job_type: str) -> None:
    command = CLIENT_OPERATIONS[job_type].command
    args = build_parser().parse_args(["submit", command, "b/in.jpg", "b/out.jpg"])
    assert args.job_type == job_type


def test_parameters_survive_proto_domain_proto() -> None:
    request = pb.SubmitJobRequest(
        source_bucket="my-bucket",
        source_key="in.jpg",
        dest_bucket="my-bucket",
        dest_key="out.webp",
        parameters=pb.JobParameters(
            image_resize=pb.ImageResizeParameters(
                width=80, height=60, quality=70, fit=pb.FIT_MODE_COVER, format=pb.IMAGE_FORMAT_WEBP
            )
        ),
    )
    spec = validate(draft_from_submit(request), LIMITS)
    assert params_to_dict(spec.params) == {
        "width": 80, "height": 60, "quality": 70, "fit": "cover", "format": "webp"
    }
    job = Job("id", "acme", spec, JobStatus.PENDING, 1, 0, 0, 0)
    assert job_to_pb(job).parameters == request.parameters
