"""GetJob, ListJobs (filters, pagination), CancelJob, WatchJob of a cancel, GetQueueStats."""

from __future__ import annotations

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_server.server import MendServer
from tests.conftest import AUTH, make_settings
from tests.helpers import is_queued, job_field, job_key, resize_request, submit_request


async def submit(stub, **overrides) -> str:
    return (await stub.SubmitImageResize(resize_request(**overrides), metadata=AUTH)).job_id


async def list_all(stub, **request_fields) -> list[pb.Job]:
    response = await stub.ListJobs(pb.ListJobsRequest(**request_fields), metadata=AUTH)
    return list(response.jobs)


async def test_get_job_of_pending_job(stub) -> None:
    job_id = await submit(stub, dest_key="thumbs/a.png", format=pb.IMAGE_FORMAT_PNG)
    job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert job.id == job_id
    assert job.status == pb.JOB_STATUS_PENDING
    assert job.dest_key == "thumbs/a.png"
    assert job.parameters.image_resize.format == pb.IMAGE_FORMAT_PNG
    assert job.attempt == 0
    assert not job.HasField("result")
    assert not job.HasField("completed_at")
    assert job.HasField("queue_position") and job.queue_position == 1
    assert job.HasField("estimated_wait_seconds") and job.estimated_wait_seconds >= 0


async def test_get_and_cancel_accept_an_upper_case_id(stub) -> None:
    # A UUID is the same in either case; jobs are stored under the lower-case form.
    job_id = await submit(stub)
    job = await stub.GetJob(pb.GetJobRequest(id=job_id.upper()), metadata=AUTH)
    assert job.id == job_id
    assert job.status == pb.JOB_STATUS_PENDING
    cancelled = await stub.CancelJob(pb.CancelJobRequest(id=job_id.upper()), metadata=AUTH)
    assert cancelled.id == job_id
    assert cancelled.status == pb.JOB_STATUS_CANCELLED


async def test_list_jobs_newest_first(stub) -> None:
    ids = [await submit(stub) for _ in range(3)]
    jobs = await list_all(stub)
    assert [j.id for j in jobs] == ids[::-1]


async def test_list_jobs_paginates_over_every_job_once(stub) -> None:
    ids = [await submit(stub, dest_key=f"out/{i}.jpg") for i in range(25)]

    seen: list[str] = []
    page_sizes = []
    token = ""
    while True:
        response = await stub.ListJobs(
            pb.ListJobsRequest(page_size=10, page_token=token), metadata=AUTH
        )
        page_sizes.append(len(response.jobs))
        seen.extend(j.id for j in response.jobs)
        token = response.next_page_token
        if not token:
            break
        assert len(page_sizes) < 10, "pagination does not end"

    assert page_sizes == [10, 10, 5]
    assert seen == ids[::-1]


async def test_list_jobs_exact_multiple_of_page_size_has_no_empty_last_page(stub) -> None:
    ids = [await submit(stub) for _ in range(4)]
    first = await stub.ListJobs(pb.ListJobsRequest(page_size=2), metadata=AUTH)
    second = await stub.ListJobs(
        pb.ListJobsRequest(page_size=2, page_token=first.next_page_token), metadata=AUTH
    )
    assert [j.id for j in [*first.jobs, *second.jobs]] == ids[::-1]
    assert second.next_page_token == ""


async def test_list_jobs_default_page_size_is_20(stub) -> None:
    response = await stub.SubmitBatch(
        pb.SubmitBatchRequest(jobs=[submit_request() for _ in range(21)]), metadata=AUTH
    )
    page = await stub.ListJobs(pb.ListJobsRequest(), metadata=AUTH)
    assert len(page.jobs) == 20
    assert page.next_page_token
    rest = await stub.ListJobs(pb.ListJobsRequest(page_token=page.next_page_token), metadata=AUTH)
    assert [j.id for j in rest.jobs] == [response.job_ids[0]]


async def test_list_jobs_filters_by_status(stub) -> None:
    ids = [await submit(stub) for _ in range(4)]
    for job_id in (ids[0], ids[2]):
        await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)

    cancelled = await list_all(stub, status=pb.JOB_STATUS_CANCELLED)
    assert [j.id for j in cancelled] == [ids[2], ids[0]]
    assert all(j.status == pb.JOB_STATUS_CANCELLED for j in cancelled)

    pending = await list_all(stub, status=pb.JOB_STATUS_PENDING)
    assert [j.id for j in pending] == [ids[3], ids[1]]

    assert await list_all(stub, status=pb.JOB_STATUS_COMPLETED) == []
    assert len(await list_all(stub)) == 4


async def test_list_jobs_filters_by_type(stub) -> None:
    ids = [await submit(stub) for _ in range(3)]
    await stub.CancelJob(pb.CancelJobRequest(id=ids[1]), metadata=AUTH)

    resized = await list_all(stub, type=pb.JOB_TYPE_IMAGE_RESIZE)
    assert [j.id for j in resized] == ids[::-1]
    both = await list_all(stub, type=pb.JOB_TYPE_IMAGE_RESIZE, status=pb.JOB_STATUS_CANCELLED)
    assert [j.id for j in both] == [ids[1]]


async def test_list_jobs_filtered_pagination(stub) -> None:
    ids = [await submit(stub) for _ in range(12)]
    cancelled = ids[::2]
    for job_id in cancelled:
        await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)

    seen: list[str] = []
    token = ""
    for _ in range(10):
        response = await stub.ListJobs(
            pb.ListJobsRequest(status=pb.JOB_STATUS_CANCELLED, page_size=4, page_token=token),
            metadata=AUTH,
        )
        seen.extend(j.id for j in response.jobs)
        token = response.next_page_token
        if not token:
            break
    assert seen == cancelled[::-1]


async def test_cancel_pending_job(stub, redis_client) -> None:
    job_id = await submit(stub)
    job = await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)

    assert job.id == job_id
    assert job.status == pb.JOB_STATUS_CANCELLED
    assert job.HasField("completed_at")
    assert not job.HasField("queue_position")
    # A cancelled job leaves the queue, so no worker can claim it.
    assert not is_queued(redis_client, job_id)
    assert job_field(redis_client, job_id, "status") == "cancelled"

    again = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert again.status == pb.JOB_STATUS_CANCELLED
    assert again.version > 1


async def test_cancel_twice_is_failed_precondition(stub) -> None:
    job_id = await submit(stub)
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancelled" in (info.value.details() or "")


async def test_watch_cancelled_job_ends_with_terminal_state(stub) -> None:
    job_id = await submit(stub)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    first = await call.read()
    assert first.job.status == pb.JOB_STATUS_PENDING

    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    rest = []
    while (message := await call.read()) is not grpc.aio.EOF:
        if message.HasField("job"):
            rest.append(message.job)
    assert [j.status for j in rest] == [pb.JOB_STATUS_CANCELLED]
    assert rest[-1].version > first.job.version
    assert await call.code() == grpc.StatusCode.OK


async def test_watch_resumes_from_version(stub) -> None:
    job_id = await submit(stub)
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    # From version 1 (the submit), the stream replays the cancel and ends.
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=1), metadata=AUTH)
    states = [m.job.status async for m in call if m.HasField("job")]
    assert states == [pb.JOB_STATUS_CANCELLED]


async def test_queue_stats_follow_submit_and_cancel(stub) -> None:
    empty = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert empty.totals.pending == 0
    assert empty.totals.cancelled == 0

    ids = [await submit(stub) for _ in range(3)]
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert stats.totals.pending == 3
    assert stats.by_type["image_resize"].pending == 3

    await stub.CancelJob(pb.CancelJobRequest(id=ids[0]), metadata=AUTH)
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert (stats.totals.pending, stats.totals.cancelled) == (2, 1)
    assert stats.by_type["image_resize"].cancelled == 1
    assert stats.totals.processing == 0
    assert stats.workers == 0


async def test_queue_stats_need_a_key(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetQueueStats(pb.GetQueueStatsRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_cancelled_jobs_are_kept_as_long_as_failed_ones(redis_server, redis_client) -> None:
    settings = make_settings(
        redis_server.url, retention_completed_seconds=5000, retention_failed_seconds=300
    )
    server = MendServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job_id = (await stub.SubmitJob(submit_request(), metadata=AUTH)).job_id
            assert redis_client.ttl(job_key(job_id)) == -1  # pending jobs do not expire
            await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    finally:
        await server.stop(grace=0)
    assert 290 <= redis_client.ttl(job_key(job_id)) <= 300
