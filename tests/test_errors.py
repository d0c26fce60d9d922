"""One error vocabulary (issue 9, item 4): every domain error (mend_core.errors) answers
with its gRPC code and google.rpc details (ErrorInfo always; BadRequest naming fields;
RetryInfo where a retry helps), through a real gRPC server; the REST gateway in front of
it answers with the HTTP status of its one table; the client library raises the typed
exception with the violations, the reason and the retry delay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import mend_client
from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core import errors
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_server import status
from mend_server.auth import STREAM_TOKEN_METADATA
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, OTHER_KEY, make_settings
from tests.helpers import resize_request
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway

Stub = jobs_pb2_grpc.JobServiceStub


@dataclass
class Env:
    stub: Stub
    http: httpx.AsyncClient  # the gateway, with acme's key
    client: mend_client.AsyncClient  # acme's
    address: str
    channel: grpc.aio.Channel


@pytest.fixture
async def env(redis_server: RedisServer, redis_client: Any, tmp_path: Path) -> AsyncIterator[Env]:
    # acme may use any bucket, globex only its own: globex's my-bucket is refused.
    settings = make_settings(redis_server.url, tenant_buckets="acme=*,globex=globex-bucket")
    server = MendServer(settings)
    await server.start()
    gateway = await start_gateway(gateway_settings(settings, server.port, tmp_path))
    address = f"127.0.0.1:{server.port}"
    try:
        async with (
            grpc.aio.insecure_channel(address) as channel,
            httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as http,
            mend_client.AsyncClient(address, api_key=API_KEY) as client,
        ):
            yield Env(Stub(channel), http, client, address, channel)
    finally:
        await gateway.stop()
        await server.stop(grace=0)


@dataclass(frozen=True)
class Refused:
    code: grpc.StatusCode
    reason: str
    http: int
    client: type[mend_client.MendError]
    fields: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    message: str = ""


def rich(err: grpc.aio.AioRpcError) -> dict[str, Message]:
    """The call's google.rpc details by type name."""
    found = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert found is not None, f"no rich status on {err.code()}: {err.details()}"
    out: dict[str, Message] = {}
    for detail in found.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            message = kind()
            if detail.Unpack(message):
                out[kind.DESCRIPTOR.name] = message
    return out


async def grpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def check_grpc(err: grpc.aio.AioRpcError, want: Refused) -> None:
    assert err.code() == want.code, err.details()
    if want.message:
        assert err.details() == want.message
    details = rich(err)
    info = details["ErrorInfo"]
    assert (info.reason, info.domain) == (want.reason, "mend.v1")
    assert dict(info.metadata) == want.metadata
    fields = [v.field for v in details["BadRequest"].field_violations] if want.fields else []
    assert fields == want.fields
    assert ("BadRequest" in details) == bool(want.fields)


async def finished_job(stub: Stub) -> str:
    job_id = (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    return job_id


async def test_invalid_fields(env: Env) -> None:
    want = Refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELDS",
        400,
        mend_client.InvalidArgument,
        fields=["width"],
    )
    err = await grpc_error(env.stub.SubmitImageResize(resize_request(width=-1), metadata=AUTH))
    check_grpc(err, want)
    response = await env.http.post("/api/v1/jobs/image/resize", json={**SEED_BODY, "width": -1})
    assert response.status_code == 400
    assert response.json()["reason"] == "INVALID_FIELDS"
    assert [d["field"] for d in response.json()["details"]] == ["width"]
    with pytest.raises(mend_client.InvalidArgument) as raised:
        await env.client.resize(
            source_bucket="my-bucket", source_key="a.jpg", dest_bucket="my-bucket",
            dest_key="b.jpg", width=-1,
        )  # fmt: skip
    assert raised.value.reason == "INVALID_FIELDS"
    assert [f for f, _ in raised.value.violations] == ["parameters.image_resize.width"]
    assert raised.value.retry_after is None


async def test_malformed_request_bytes(env: Env) -> None:
    call = env.channel.unary_unary(
        "/mend.v1.JobService/GetJob",
        request_serializer=lambda b: b,
        response_deserializer=pb.Job.FromString,
    )
    err = await grpc_error(call(b"\x0a\x05ab", metadata=AUTH))  # a string cut short
    check_grpc(err, Refused(err.code(), "MALFORMED_REQUEST", 400, mend_client.InvalidArgument))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("malformed request message:")


async def test_bucket_not_granted(env: Env) -> None:
    want = Refused(
        grpc.StatusCode.PERMISSION_DENIED,
        "BUCKET_NOT_GRANTED",
        403,
        mend_client.PermissionDenied,
        fields=["source_bucket", "dest_bucket"],
    )
    err = await grpc_error(env.stub.SubmitImageResize(resize_request(), metadata=OTHER_AUTH))
    check_grpc(err, want)
    response = await env.http.post(
        "/api/v1/jobs/image/resize", json=SEED_BODY, headers={"X-API-Key": OTHER_KEY}
    )
    assert (response.status_code, response.json()["reason"]) == (403, "BUCKET_NOT_GRANTED")
    async with mend_client.AsyncClient(env.address, api_key=OTHER_KEY) as other:
        with pytest.raises(mend_client.PermissionDenied) as raised:
            await other.submit(
                mend_client.ResizeJob("my-bucket", "a.jpg", "globex-bucket", "b", width=9)
            )
    assert raised.value.violations == [
        ("source_bucket", "bucket 'my-bucket' is not granted to 'globex'")
    ]


async def test_request_id_reused(env: Env) -> None:
    rid = f"r-{uuid.uuid4()}"
    first = resize_request(request_id=rid)
    job_id = (await env.stub.SubmitImageResize(first, metadata=AUTH)).job_id
    want = Refused(
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
        409,
        mend_client.AlreadyExists,
        fields=["request_id"],
    )
    again = resize_request(request_id=rid, width=10)
    check_grpc(await grpc_error(env.stub.SubmitImageResize(again, metadata=AUTH)), want)
    response = await env.http.post(
        "/api/v1/jobs/image/resize", json={**SEED_BODY, "request_id": rid, "width": 10}
    )
    assert (response.status_code, response.json()["reason"]) == (409, "REQUEST_ID_REUSED")
    with pytest.raises(mend_client.AlreadyExists) as raised:
        await env.client.resize(
            source_bucket="my-bucket", source_key="x.jpg", dest_bucket="my-bucket",
            dest_key="y.jpg", width=5, request_id=rid,
        )  # fmt: skip
    [(path, problem)] = raised.value.violations
    assert path == "options.request_id" and job_id in problem


async def test_batch_exists(env: Env) -> None:
    batch_id = f"b-{uuid.uuid4()}"
    item = pb.SubmitJobRequest(
        source_bucket="my-bucket", source_key="a.jpg", dest_bucket="my-bucket", dest_key="b.jpg",
        parameters=pb.JobParameters(image_resize=pb.ImageResizeParameters(width=10)),
    )  # fmt: skip
    batch = pb.SubmitBatchRequest(batch_id=batch_id, jobs=[item])
    await env.stub.SubmitBatch(batch, metadata=AUTH)
    want = Refused(
        grpc.StatusCode.ALREADY_EXISTS,
        "BATCH_EXISTS",
        409,
        mend_client.AlreadyExists,
        fields=["batch_id"],
        metadata={"batch_id": batch_id},
        message=f"batch {batch_id} already exists",
    )
    check_grpc(await grpc_error(env.stub.SubmitBatch(batch, metadata=AUTH)), want)
    body = {"batch_id": batch_id, "jobs": [{"type": "image_resize", **SEED_BODY}]}
    for key in ("width", "height"):
        body["jobs"][0].pop(key)
    body["jobs"][0]["parameters"] = {"width": 10}
    response = await env.http.post("/api/v1/jobs/batch", json=body)
    assert (response.status_code, response.json()["reason"]) == (409, "BATCH_EXISTS")
    with pytest.raises(mend_client.AlreadyExists) as raised:
        job = mend_client.ResizeJob("my-bucket", "a.jpg", "my-bucket", "b.jpg", width=10)
        await env.client.submit_batch([job], batch_id=batch_id)
    assert raised.value.reason == "BATCH_EXISTS"
    assert raised.value.metadata == {"batch_id": batch_id}


async def test_job_not_found(env: Env) -> None:
    job_id = str(uuid.uuid4())
    want = Refused(
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
        404,
        mend_client.NotFound,
        metadata={"job_id": job_id},
        message=f"job {job_id} not found",
    )
    check_grpc(await grpc_error(env.stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)), want)
    watch = env.stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    check_grpc(await grpc_error(watch.read()), want)
    response = await env.http.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json() == {
        "error": f"job {job_id} not found",
        "code": "NOT_FOUND",
        "details": [],
        "reason": "JOB_NOT_FOUND",
    }
    with pytest.raises(mend_client.NotFound) as raised:
        await env.client.get(job_id)
    assert (raised.value.reason, raised.value.metadata) == ("JOB_NOT_FOUND", {"job_id": job_id})


async def test_job_finished(env: Env) -> None:
    job_id = await finished_job(env.stub)
    want = Refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_FINISHED",
        409,
        mend_client.FailedPrecondition,
        metadata={"job_id": job_id, "status": "cancelled"},
        message=f"job {job_id} is already cancelled",
    )
    cancel = env.stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    check_grpc(await grpc_error(cancel), want)
    response = await env.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert (response.status_code, response.json()["reason"]) == (409, "JOB_FINISHED")
    with pytest.raises(mend_client.FailedPrecondition) as raised:
        await env.client.cancel(job_id)
    assert raised.value.metadata == {"job_id": job_id, "status": "cancelled"}


async def test_version_not_reached(env: Env) -> None:
    job_id = (await env.stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    want = Refused(
        grpc.StatusCode.OUT_OF_RANGE,
        "VERSION_NOT_REACHED",
        400,
        mend_client.OutOfRange,
        fields=["from_version"],
    )
    watch = env.stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=99), metadata=AUTH)
    check_grpc(await grpc_error(watch.read()), want)
    response = await env.http.get(f"/api/v1/jobs/{job_id}/stream?from_version=99")
    assert (response.status_code, response.json()["reason"]) == (400, "VERSION_NOT_REACHED")
    with pytest.raises(mend_client.OutOfRange) as raised:
        async for _ in env.client.watch(job_id, from_version=99):
            pass
    assert [f for f, _ in raised.value.violations] == ["from_version"]


async def test_unauthenticated(env: Env) -> None:
    want = Refused(
        grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID", 401, mend_client.Unauthenticated
    )
    stats = env.stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=(("x-api-key", "nope"),))
    check_grpc(await grpc_error(stats), want)
    response = await env.http.get("/api/v1/queue/stats", headers={"X-API-Key": "nope"})
    assert (response.status_code, response.json()["reason"]) == (401, "API_KEY_INVALID")
    async with mend_client.AsyncClient(env.address, api_key="nope") as stranger:
        with pytest.raises(mend_client.Unauthenticated) as raised:
            await stranger.stats()
    assert raised.value.reason == "API_KEY_INVALID"


async def test_stream_tokens_refused(env: Env) -> None:
    job_id = (await env.stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    bad = ((STREAM_TOKEN_METADATA, "not-a-token"),)
    watch = env.stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=bad)
    invalid = Refused(
        grpc.StatusCode.UNAUTHENTICATED, "STREAM_TOKEN_INVALID", 401, mend_client.Unauthenticated
    )
    check_grpc(await grpc_error(watch.read()), invalid)

    other_job = (await env.stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    token = await env.stub.CreateStreamToken(pb.CreateStreamTokenRequest(id=job_id), metadata=AUTH)
    metadata = ((STREAM_TOKEN_METADATA, token.token),)
    watch = env.stub.WatchJob(pb.WatchJobRequest(id=other_job), metadata=metadata)
    elsewhere = Refused(
        grpc.StatusCode.PERMISSION_DENIED,
        "STREAM_TOKEN_FOR_ANOTHER_JOB",
        403,
        mend_client.PermissionDenied,
        message="this stream token is for another job",
    )
    check_grpc(await grpc_error(watch.read()), elsewhere)
    response = await env.http.get(
        f"/api/v1/jobs/{other_job}/stream", params={"token": token.token}, headers={}
    )
    assert (response.status_code, response.json()["reason"]) == (
        403,
        "STREAM_TOKEN_FOR_ANOTHER_JOB",
    )


async def test_store_unavailable_says_when_to_retry(tmp_path: Path) -> None:
    # A server whose Redis is not there: every call that needs the store is UNAVAILABLE.
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0")
    server = MendServer(settings)
    await server.start()
    gateway = await start_gateway(gateway_settings(settings, server.port, tmp_path))
    address = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stats = Stub(channel).GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
            err = await grpc_error(stats)
        want = Refused(
            grpc.StatusCode.UNAVAILABLE,
            "STORE_UNAVAILABLE",
            503,
            mend_client.Unavailable,
            message="job store unavailable; retry later",
        )
        check_grpc(err, want)
        delay = rich(err)["RetryInfo"].retry_delay  # type: ignore[attr-defined]
        assert delay.ToTimedelta().total_seconds() == 1.0
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            response = await http.get("/api/v1/queue/stats", headers={"X-API-Key": API_KEY})
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.json()["reason"] == "STORE_UNAVAILABLE"
        async with mend_client.AsyncClient(address, api_key=API_KEY) as client:
            with pytest.raises(mend_client.Unavailable) as raised:
                await client.stats()
        assert (raised.value.reason, raised.value.retry_after) == ("STORE_UNAVAILABLE", 1.0)
    finally:
        await gateway.stop()
        await server.stop(grace=0)


def test_every_refusal_has_a_status() -> None:
    """A new error class in mend_core.errors gets a row in the status table, or this fails."""
    refusals = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.RequestError)
    ]
    assert len(refusals) > 5
    for cls in refusals:
        if cls is not errors.RequestError:
            assert cls in status.RULES, cls.__name__
    reasons = [rule.reason for cls, rule in status.RULES.items() if cls in refusals]
    assert len(set(reasons)) == len(reasons)
