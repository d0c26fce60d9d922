"""API keys on every JobService call, open health and reflection, and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mend.v1 import jobs_pb2 as pb
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, OTHER_KEY
from tests.helpers import queued, resize_request, submit_request


@pytest.fixture
async def channel(mend_server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mend_server.port}") as ch:
        yield ch


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def stream_code(call) -> grpc.StatusCode:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


BAD_CREDENTIALS = [
    pytest.param((), id="no key"),
    pytest.param((("x-api-key", "wrong-key"),), id="wrong x-api-key"),
    # Near misses of the key that the test has just used successfully (and that the
    # server now remembers as accepted).
    pytest.param((("x-api-key", API_KEY + "x"),), id="key with a character more"),
    pytest.param((("x-api-key", API_KEY[:-1]),), id="key with a character less"),
    pytest.param((("x-api-key", API_KEY.upper()),), id="key in upper case"),
    pytest.param((("x-api-key", ""),), id="empty x-api-key"),
    pytest.param((("authorization", "Bearer wrong-key"),), id="wrong bearer"),
    pytest.param((("authorization", f"Basic {API_KEY}"),), id="basic scheme"),
    pytest.param((("authorization", "Bearer "),), id="bearer without token"),
    pytest.param((("authorization", API_KEY),), id="bare authorization"),
]


@pytest.mark.parametrize("metadata", BAD_CREDENTIALS)
async def test_every_rpc_refuses_bad_credentials(stub, redis_client, metadata) -> None:
    job_id = (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    calls = [
        stub.SubmitJob(submit_request(), metadata=metadata),
        stub.SubmitImageResize(resize_request(), metadata=metadata),
        stub.SubmitBatch(pb.SubmitBatchRequest(jobs=[submit_request()]), metadata=metadata),
        stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata),
        stub.ListJobs(pb.ListJobsRequest(), metadata=metadata),
        stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=metadata),
        stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=metadata),
    ]
    for call in calls:
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED
    watch = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=metadata)
    assert await stream_code(watch) == grpc.StatusCode.UNAUTHENTICATED
    # Nothing the refused calls carried was stored or changed.
    assert queued(redis_client) == {job_id}
    job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert job.status == pb.JOB_STATUS_PENDING


async def test_unauthenticated_message_says_how_to_authenticate(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListJobs(pb.ListJobsRequest())
    assert "x-api-key" in (info.value.details() or "")


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((("x-api-key", API_KEY),), id="x-api-key"),
        pytest.param((("authorization", f"Bearer {API_KEY}"),), id="bearer"),
        pytest.param((("authorization", f"bearer {API_KEY}"),), id="bearer lowercase"),
    ],
)
async def test_accepted_key_forms(stub, metadata) -> None:
    job_id = (await stub.SubmitImageResize(resize_request(), metadata=metadata)).job_id
    # Either header form is the same tenant: the job is visible through the other form.
    job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert job.id == job_id
    bearer = (("authorization", f"Bearer {API_KEY}"),)
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer)
    assert [j.id for j in listed.jobs] == [job_id]


async def test_health_check_needs_no_key(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "mend.v1.JobService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_of_unknown_service_is_not_found(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_services_without_key(channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    response = await call.read()
    await call.done_writing()
    names = {s.name for s in response.list_services_response.service}
    assert {"mend.v1.JobService", "grpc.health.v1.Health"} <= names

    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol="mend.v1.Job"))
    response = await call.read()
    await call.done_writing()
    assert response.file_descriptor_response.file_descriptor_proto


async def submit_for_acme(stub) -> str:
    return (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id


async def test_other_tenant_cannot_get_job(stub) -> None:
    job_id = await submit_for_acme(stub)
    assert await code_of(
        stub.GetJob(pb.GetJobRequest(id=job_id), metadata=OTHER_AUTH)
    ) == grpc.StatusCode.NOT_FOUND


async def test_other_tenant_cannot_cancel_job(stub) -> None:
    job_id = await submit_for_acme(stub)
    assert await code_of(
        stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=OTHER_AUTH)
    ) == grpc.StatusCode.NOT_FOUND
    # The owner's job was not touched.
    job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert job.status == pb.JOB_STATUS_PENDING


async def test_other_tenant_cannot_watch_job(stub) -> None:
    job_id = await submit_for_acme(stub)
    watch = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=OTHER_AUTH)
    assert await stream_code(watch) == grpc.StatusCode.NOT_FOUND
    resumed = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=0), metadata=OTHER_AUTH)
    assert await stream_code(resumed) == grpc.StatusCode.NOT_FOUND


async def test_not_found_is_the_same_for_foreign_and_missing_jobs(stub) -> None:
    # A foreign job must look exactly like one that does not exist.
    job_id = await submit_for_acme(stub)
    missing_id = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=OTHER_AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetJob(pb.GetJobRequest(id=missing_id), metadata=OTHER_AUTH)
    assert foreign.value.code() == missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (foreign.value.details() or "").replace(job_id, "ID") == (
        missing.value.details() or ""
    ).replace(missing_id, "ID")


async def test_list_jobs_shows_only_own_jobs(stub) -> None:
    mine = [await submit_for_acme(stub) for _ in range(3)]
    theirs = (
        await stub.SubmitImageResize(resize_request(), metadata=(("x-api-key", OTHER_KEY),))
    ).job_id

    own = await stub.ListJobs(pb.ListJobsRequest(), metadata=AUTH)
    assert [j.id for j in own.jobs] == mine[::-1]
    other = await stub.ListJobs(pb.ListJobsRequest(), metadata=OTHER_AUTH)
    assert [j.id for j in other.jobs] == [theirs]
    filtered = await stub.ListJobs(
        pb.ListJobsRequest(status=pb.JOB_STATUS_PENDING, type=pb.JOB_TYPE_IMAGE_RESIZE),
        metadata=OTHER_AUTH,
    )
    assert [j.id for j in filtered.jobs] == [theirs]
