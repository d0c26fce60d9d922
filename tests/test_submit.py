"""Submitting jobs over gRPC: the three submit RPCs, durability in Redis, idempotency."""

from __future__ import annotations

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from tests.conftest import AUTH, OTHER_AUTH
from tests.helpers import (
    PUBLIC_WEBHOOK_URL,
    bad_request,
    batch_key,
    is_queued,
    is_uuid4,
    job_fields,
    queued,
    resize_params,
    resize_request,
    submit_request,
    turns,
    violated_fields,
)


async def test_submit_job_nested_parameters(stub, redis_client) -> None:
    request = submit_request(
        params=resize_params(width=320, height=240, quality=70, fit=pb.FIT_MODE_COVER,
                             format=pb.IMAGE_FORMAT_WEBP),
        options=pb.SubmitOptions(priority=7, max_attempts=2, timeout_seconds=60),
    )
    response = await stub.SubmitJob(request, metadata=AUTH)

    assert is_uuid4(response.job_id)
    assert response.status == pb.JOB_STATUS_PENDING
    assert response.message == "Job queued for processing"

    job = await stub.GetJob(pb.GetJobRequest(id=response.job_id), metadata=AUTH)
    assert job.id == response.job_id
    assert job.type == pb.JOB_TYPE_IMAGE_RESIZE
    assert job.status == pb.JOB_STATUS_PENDING
    assert (job.source_bucket, job.source_key) == ("my-bucket", "images/input.jpg")
    assert (job.dest_bucket, job.dest_key) == ("my-bucket", "images/output.jpg")
    resize = job.parameters.image_resize
    assert (resize.width, resize.height, resize.quality) == (320, 240, 70)
    assert resize.fit == pb.FIT_MODE_COVER
    assert resize.format == pb.IMAGE_FORMAT_WEBP
    assert (job.priority, job.max_attempts, job.timeout_seconds) == (7, 2, 60)
    assert job.version >= 1
    assert job.created_at.seconds > 0


async def test_submit_image_resize_flat(stub) -> None:
    response = await stub.SubmitImageResize(
        resize_request(width=100, height=None, quality=90, priority=2), metadata=AUTH
    )
    assert is_uuid4(response.job_id)
    assert response.status == pb.JOB_STATUS_PENDING

    job = await stub.GetJob(pb.GetJobRequest(id=response.job_id), metadata=AUTH)
    assert job.parameters.image_resize.width == 100
    assert job.parameters.image_resize.height == 0
    assert job.parameters.image_resize.quality == 90
    assert job.priority == 2
    # Server defaults fill what the client left out.
    assert (job.max_attempts, job.timeout_seconds) == (3, 300)


async def test_submit_defaults_priority_five(stub) -> None:
    response = await stub.SubmitImageResize(resize_request(), metadata=AUTH)
    job = await stub.GetJob(pb.GetJobRequest(id=response.job_id), metadata=AUTH)
    assert job.priority == 5


async def test_accepted_job_is_durable_in_redis(stub, redis_client) -> None:
    response = await stub.SubmitJob(submit_request(), metadata=AUTH)

    # Read Redis right after the RPC returned: nothing may still be in flight.
    fields = job_fields(redis_client, response.job_id)
    assert fields["status"] == "pending"
    assert fields["tenant"] == "acme"
    assert fields["source_key"] == "images/input.jpg"
    assert is_queued(redis_client, response.job_id)


async def test_job_ids_are_distinct_uuid4(stub) -> None:
    ids = {
        (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id for _ in range(5)
    }
    assert len(ids) == 5
    assert all(is_uuid4(i) for i in ids)


async def test_submit_batch(stub, redis_client) -> None:
    jobs = [submit_request(dest_key=f"out/{i}.jpg") for i in range(3)]
    response = await stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH)

    assert is_uuid4(response.batch_id)
    assert response.total_jobs == 3
    assert response.status == "queued"
    assert len(set(response.job_ids)) == 3
    assert queued(redis_client) == set(response.job_ids)
    for i, job_id in enumerate(response.job_ids):
        job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
        assert job.batch_id == response.batch_id
        assert job.dest_key == f"out/{i}.jpg"
        assert job.status == pb.JOB_STATUS_PENDING


async def test_submit_batch_keeps_given_batch_id_and_batch_webhook(stub, redis_client) -> None:
    request = pb.SubmitBatchRequest(
        batch_id="nightly-2024",
        jobs=[submit_request()],
        options=pb.BatchOptions(webhook_url=PUBLIC_WEBHOOK_URL, fail_fast=True),
    )
    response = await stub.SubmitBatch(request, metadata=AUTH)
    assert response.batch_id == "nightly-2024"
    job = await stub.GetJob(pb.GetJobRequest(id=response.job_ids[0]), metadata=AUTH)
    assert job.batch_id == "nightly-2024"
    # The batch's webhook is for batch.completed, not for each job.
    assert job.webhook_url == ""
    batch = redis_client.hgetall(batch_key("acme", "nightly-2024"))
    assert batch["webhook_url"] == PUBLIC_WEBHOOK_URL
    assert batch["fail_fast"] == "1"
    assert batch["total"] == "1"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.SubmitBatch(request, metadata=AUTH)
    assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_request_id_is_idempotent_per_tenant(stub, redis_client) -> None:
    request = submit_request(options=pb.SubmitOptions(request_id="order-42"))
    first = await stub.SubmitJob(request, metadata=AUTH)
    again = await stub.SubmitJob(request, metadata=AUTH)

    assert again.job_id == first.job_id
    assert queued(redis_client) == {first.job_id}

    other = await stub.SubmitJob(request, metadata=OTHER_AUTH)
    assert other.job_id != first.job_id
    assert turns(redis_client) == 2


async def test_flat_request_id_is_idempotent(stub, redis_client) -> None:
    request = resize_request(request_id="upload-7")
    first = await stub.SubmitImageResize(request, metadata=AUTH)
    again = await stub.SubmitImageResize(request, metadata=AUTH)
    assert again.job_id == first.job_id
    assert queued(redis_client) == {first.job_id}

    job = await stub.GetJob(pb.GetJobRequest(id=first.job_id), metadata=AUTH)
    assert job.request_id == "upload-7"

    other = await stub.SubmitImageResize(request, metadata=OTHER_AUTH)
    assert other.job_id != first.job_id
    assert turns(redis_client) == 2


async def test_nested_and_flat_share_request_id_space(stub) -> None:
    # Both submit paths key idempotency on (tenant, request_id).
    first = await stub.SubmitJob(
        submit_request(options=pb.SubmitOptions(request_id="shared")), metadata=AUTH
    )
    again = await stub.SubmitImageResize(resize_request(request_id="shared"), metadata=AUTH)
    assert again.job_id == first.job_id


def conflicting_fields(err: grpc.aio.AioRpcError) -> list[str]:
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, (err.code(), err.details())
    return [v.field for v in bad_request(err).field_violations]


async def test_request_id_with_a_different_request_is_a_conflict(stub, redis_client) -> None:
    first = await stub.SubmitJob(
        submit_request(options=pb.SubmitOptions(request_id="order-43")), metadata=AUTH
    )
    # The same request with its defaults spelled out is the same request.
    same = submit_request(options=pb.SubmitOptions(request_id="order-43", priority=5))
    assert (await stub.SubmitJob(same, metadata=AUTH)).job_id == first.job_id

    changed = submit_request(
        params=resize_params(width=100), options=pb.SubmitOptions(request_id="order-43")
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitJob(changed, metadata=AUTH)
    assert conflicting_fields(info.value) == ["options.request_id"]
    assert first.job_id in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as flat:
        await stub.SubmitImageResize(resize_request(request_id="order-43", width=1), metadata=AUTH)
    assert conflicting_fields(flat.value) == ["request_id"]

    assert queued(redis_client) == {first.job_id}
    job = await stub.GetJob(pb.GetJobRequest(id=first.job_id), metadata=AUTH)
    assert job.parameters.image_resize.width == 800


async def test_batch_jobs_sharing_a_request_id_are_refused(stub, redis_client) -> None:
    items = [
        submit_request(options=pb.SubmitOptions(request_id="r-1")),
        submit_request(options=pb.SubmitOptions(request_id="r-2")),
        submit_request(options=pb.SubmitOptions(request_id="r-1")),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitBatch(pb.SubmitBatchRequest(jobs=items), metadata=AUTH)
    assert violated_fields(info.value) == ["jobs[2].options.request_id"]
    assert "jobs[0]" in bad_request(info.value).field_violations[0].description
    assert queued(redis_client) == set()


async def test_batch_job_with_an_earlier_jobs_request_id_is_refused(stub, redis_client) -> None:
    earlier = await stub.SubmitJob(
        submit_request(options=pb.SubmitOptions(request_id="r-9")), metadata=AUTH
    )
    items = [
        submit_request(),
        submit_request(options=pb.SubmitOptions(request_id="r-9")),
    ]
    batch = pb.SubmitBatchRequest(batch_id="b-7", jobs=items)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitBatch(batch, metadata=AUTH)
    assert conflicting_fields(info.value) == ["jobs[1].options.request_id"]
    assert earlier.job_id in (info.value.details() or "")
    # Nothing of the batch was stored: the same batch id works once the item is fixed.
    assert queued(redis_client) == {earlier.job_id}
    batch.jobs[1].options.request_id = "r-10"
    fixed = await stub.SubmitBatch(batch, metadata=AUTH)
    assert fixed.total_jobs == 2 and earlier.job_id not in fixed.job_ids


async def test_submit_without_key_stores_nothing(stub, redis_client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitJob(submit_request())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert queued(redis_client) == set()
