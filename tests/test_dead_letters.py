"""Dead letters: RetryJob runs a failed or cancelled job again under the same id,
DeleteJob removes a finished job and every trace of it, PurgeJobs removes finished jobs by
filter, a page at a time. Real Redis, the gRPC server in process, real `mend-worker`
processes where a job must run, the REST gateway and the `mend` command over the wire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.jobstate.queue import WorkQueue
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, make_settings
from tests.helpers import (
    batch_key,
    events_key,
    job_key,
    request_key,
    resize_request,
    submit_request,
    violated_fields,
)
from tests.images import encode
from tests.test_cli import env_for, mend
from tests.test_gateway_support import gateway_settings, start_gateway
from tests.test_work_queue import RESULT
from tests.workers import get_job, statuses, submit, wait_terminal, watch_until, worker_pool

ADMIN_KEY = "ops-key"
ADMIN_AUTH = (("x-api-key", ADMIN_KEY),)
FINISHED = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED)


def reason(err: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, err
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return err.code(), info.reason, dict(info.metadata)
    raise AssertionError(f"no ErrorInfo in {status}")


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def cancelled_job(stub, metadata=AUTH, **overrides) -> str:
    job_id = await submit(stub, resize_request(**overrides), metadata)
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=metadata)
    return job_id


async def worked_job(stub, work: WorkQueue, *, fail: str = "", **overrides) -> str:
    """A job moved to completed (or, with `fail`, failed) as a worker would."""
    job_id = await submit(stub, resize_request(**overrides))
    lease = await work.claim("w-test")
    assert lease is not None and lease.job_id == job_id
    assert await (work.fail(lease, fail) if fail else work.complete(lease, RESULT))
    return job_id


def storage_env(root: Path) -> dict[str, str]:
    return {"MEND_STORAGE": "file", "MEND_STORAGE_ROOT": str(root)}


def completed_or_failed(job: pb.Job) -> bool:
    return job.status in (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED)


# --------------------------------------------------------------------------- RetryJob


async def test_a_failed_job_retried_runs_to_completion_with_the_same_id(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    (root / "my-bucket").mkdir(parents=True)
    async with worker_pool(redis_server.url, **storage_env(root)) as workers:
        workers.start()
        job_id = await submit(stub, resize_request(source_key="late/input.jpg"))
        failed = await wait_terminal(stub, job_id)
        assert failed.status == pb.JOB_STATUS_FAILED, workers.outputs()
        assert "not found" in failed.error and failed.attempt == 1
        # Failed jobs expire with their retention; a retried one is kept until it ends again.
        assert redis_client.ttl(job_key(job_id)) > 0

        # The source turns up; the operator sends the dead letter back.
        source = root / "my-bucket" / "late" / "input.jpg"
        source.parent.mkdir()
        source.write_bytes(encode(photo(400, 300), "JPEG"))
        retried = await stub.RetryJob(pb.RetryJobRequest(id=job_id), metadata=AUTH)
        assert (retried.id, retried.status, retried.attempt) == (job_id, pb.JOB_STATUS_PENDING, 0)
        assert retried.version > failed.version
        assert retried.error == "" and not retried.HasField("result")
        assert not retried.HasField("completed_at") and not retried.HasField("started_at")
        assert redis_client.ttl(job_key(job_id)) == -1

        # A watch resumed after the failed state it last saw follows the new run.
        seen = await watch_until(
            stub, job_id, lambda j: j.status in FINISHED, from_version=failed.version
        )
        assert statuses(seen) == ["pending", "processing", "completed"], workers.outputs()
        done = seen[-1]
        assert done.id == job_id and done.attempt == 1 and done.error == ""
        assert (root / "my-bucket" / "images" / "output.jpg").stat().st_size > 0

    # The whole life is in the event log. A stream ends at the first terminal state it
    # sends, so reading it from the start stops at the failure; resuming goes on.
    first = await watch_until(stub, job_id, lambda j: j.status in FINISHED, from_version=0)
    assert statuses(first) == ["pending", "processing", "failed"]
    second = await watch_until(
        stub, job_id, lambda j: j.status in FINISHED, from_version=first[-1].version
    )
    assert statuses(second) == ["pending", "processing", "completed"]
    versions = [j.version for j in first + second]
    assert versions == list(range(1, len(versions) + 1))
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert (stats.totals.failed, stats.totals.completed, stats.totals.pending) == (0, 1, 0)


async def test_a_cancelled_job_retried_runs_to_completion(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    source = root / "my-bucket" / "images" / "input.jpg"
    source.parent.mkdir(parents=True)
    source.write_bytes(encode(photo(400, 300), "JPEG"))
    job_id = await cancelled_job(stub)  # before any worker ran
    retried = await stub.RetryJob(pb.RetryJobRequest(id=job_id), metadata=AUTH)
    assert retried.status == pb.JOB_STATUS_PENDING and retried.queue_position == 1
    async with worker_pool(redis_server.url, **storage_env(root)) as workers:
        workers.start()
        done = await wait_terminal(stub, job_id)
        assert done.status == pb.JOB_STATUS_COMPLETED, (done.error, workers.outputs())
        assert done.id == job_id and done.attempt == 1


async def test_retry_is_refused_unless_failed_or_cancelled(stub, work: WorkQueue) -> None:
    completed = await worked_job(stub, work)
    err = await refused(stub.RetryJob(pb.RetryJobRequest(id=completed), metadata=AUTH))
    want = {"job_id": completed, "status": "completed"}
    assert reason(err) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_RETRYABLE", want)
    assert "only a failed or cancelled job can be retried" in (err.details() or "")

    # Another tenant's failed job is not found, as in GetJob.
    failed = await worked_job(stub, work, fail="broken")
    err = await refused(stub.RetryJob(pb.RetryJobRequest(id=failed), metadata=OTHER_AUTH))
    assert reason(err)[:2] == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    assert (await get_job(stub, failed)).status == pb.JOB_STATUS_FAILED
    err = await refused(stub.RetryJob(pb.RetryJobRequest(id="nope"), metadata=AUTH))
    assert violated_fields(err) == ["id"]

    pending = await submit(stub, resize_request())
    err = await refused(stub.RetryJob(pb.RetryJobRequest(id=pending), metadata=AUTH))
    want = {"job_id": pending, "status": "pending"}
    assert reason(err) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_RETRYABLE", want)
    assert (await get_job(stub, pending)).version == 1  # untouched


async def test_a_retried_batch_job_counts_in_its_batch_again(
    stub, work: WorkQueue, redis_client
) -> None:
    request = pb.SubmitBatchRequest(batch_id="b-retry", jobs=[submit_request()] * 2)
    batch = await stub.SubmitBatch(request, metadata=AUTH)
    first, second = batch.job_ids
    for fail in ("broken", ""):
        lease = await work.claim("w-test")
        assert lease is not None
        assert await (work.fail(lease, fail) if fail else work.complete(lease, RESULT))
    await stub.RetryJob(pb.RetryJobRequest(id=first), metadata=AUTH)
    lease = await work.claim("w-test")
    assert lease is not None and lease.job_id == first and lease.job.attempt == 1
    assert await work.complete(lease, RESULT)
    assert (await get_job(stub, second)).status == pb.JOB_STATUS_COMPLETED
    counts = redis_client.hgetall(batch_key("acme", "b-retry"))
    assert (counts["remaining"], counts["failed"], counts["completed"]) == ("0", "0", "2")


# -------------------------------------------------------------------------- DeleteJob


async def test_delete_removes_a_finished_job_and_every_trace_of_it(
    stub, work: WorkQueue, redis_client
) -> None:
    job_id = await worked_job(stub, work, request_id="order-7")
    before = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert before.totals.completed == 1
    traces = (job_key(job_id), events_key(job_id), request_key("acme", "order-7"))
    assert redis_client.exists(*traces) == 3

    assert await stub.DeleteJob(pb.DeleteJobRequest(id=job_id), metadata=AUTH) is not None
    err = await refused(stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=AUTH)
    assert [j.id for j in listed.jobs] == []
    after = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert after.totals.completed == 0 and after.by_type["image_resize"].completed == 0
    assert not redis_client.exists(*traces)
    # Its request_id is free again: a different request with it makes a new job.
    again = await submit(stub, resize_request(request_id="order-7", width=10))
    assert again != job_id

    err = await refused(stub.DeleteJob(pb.DeleteJobRequest(id=job_id), metadata=AUTH))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_is_refused_for_unfinished_and_foreign_jobs(stub, work: WorkQueue) -> None:
    pending = await submit(stub, resize_request())
    err = await refused(stub.DeleteJob(pb.DeleteJobRequest(id=pending), metadata=AUTH))
    want = {"job_id": pending, "status": "pending"}
    assert reason(err) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_FINISHED", want)
    lease = await work.claim("w-test")
    assert lease is not None
    err = await refused(stub.DeleteJob(pb.DeleteJobRequest(id=pending), metadata=AUTH))
    assert reason(err)[2]["status"] == "processing"
    assert (await get_job(stub, pending)).status == pb.JOB_STATUS_PROCESSING

    cancelled = await cancelled_job(stub)
    err = await refused(stub.DeleteJob(pb.DeleteJobRequest(id=cancelled), metadata=OTHER_AUTH))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (await get_job(stub, cancelled)).status == pb.JOB_STATUS_CANCELLED


# -------------------------------------------------------------------------- PurgeJobs


def timestamp_now() -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(int(time.time() * 1000))
    return ts


async def purge_all(stub, metadata=AUTH, **fields) -> tuple[list[str], int]:
    """Every page of a purge: the ids, and how many calls it took."""
    ids, calls, token = [], 0, ""
    while True:
        request = pb.PurgeJobsRequest(page_token=token, **fields)
        response = await stub.PurgeJobs(request, metadata=metadata)
        assert response.deleted == len(response.job_ids)
        ids += response.job_ids
        calls += 1
        token = response.next_page_token
        if not token:
            return ids, calls


async def test_purge_by_status_type_and_time_in_pages(stub, work: WorkQueue) -> None:
    cancelled = [await cancelled_job(stub) for _ in range(3)]
    await asyncio.sleep(0.01)
    cutoff = timestamp_now()
    await asyncio.sleep(0.01)
    failed = [await worked_job(stub, work, fail="broken") for _ in range(2)]
    completed = await worked_job(stub, work)
    colors = await stub.SubmitJob(
        submit_request(parameters=pb.JobParameters(image_colors=pb.ImageColorsParameters())),
        metadata=AUTH,
    )
    await stub.CancelJob(pb.CancelJobRequest(id=colors.job_id), metadata=AUTH)
    pending = await submit(stub, resize_request())
    foreign = await cancelled_job(stub, OTHER_AUTH)

    # A dry run names what would go, oldest first, and deletes nothing.
    ids, _ = await purge_all(stub, status=pb.JOB_STATUS_CANCELLED, dry_run=True)
    assert ids == [*cancelled, colors.job_id]
    assert (await get_job(stub, cancelled[0])).status == pb.JOB_STATUS_CANCELLED

    # Finished before the cutoff: the first three cancelled jobs only.
    ids, _ = await purge_all(stub, finished_before=cutoff)
    assert ids == cancelled
    # By type.
    ids, _ = await purge_all(stub, type=pb.JOB_TYPE_IMAGE_COLORS)
    assert ids == [colors.job_id]
    # One job looked at per call: a call for each failed job, and one that finds no more.
    ids, calls = await purge_all(stub, status=pb.JOB_STATUS_FAILED, page_size=1)
    assert ids == failed and calls == 3
    # Two per call: the completed and the pending job (kept), then nothing more.
    ids, calls = await purge_all(stub, page_size=2)
    assert ids == [completed] and calls == 2

    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=AUTH)
    assert [j.id for j in listed.jobs] == [pending]
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert (stats.totals.cancelled, stats.totals.failed, stats.totals.completed) == (0, 0, 0)
    # The other tenant's jobs are not the caller's to purge.
    other = await stub.GetJob(pb.GetJobRequest(id=foreign), metadata=OTHER_AUTH)
    assert other.status == pb.JOB_STATUS_CANCELLED


async def test_purge_refuses_bad_filters_and_all_tenants_without_an_admin_key(stub) -> None:
    for fields, field in [
        ({"status": pb.JOB_STATUS_PENDING}, "status"),
        ({"status": 42}, "status"),
        ({"type": 99}, "type"),
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
    ]:
        err = await refused(stub.PurgeJobs(pb.PurgeJobsRequest(**fields), metadata=AUTH))
        assert violated_fields(err) == [field], fields
    err = await refused(stub.PurgeJobs(pb.PurgeJobsRequest(all_tenants=True), metadata=AUTH))
    assert reason(err)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_KEY_REQUIRED")


@pytest.fixture
async def admin_stub(redis_server: RedisServer, redis_client) -> AsyncIterator:
    settings = make_settings(
        redis_server.url,
        api_keys="acme=test-key,globex=other-key",
        admin_keys=f"ops={ADMIN_KEY}",
        tenant_buckets="acme=*,globex=*,ops=*",
    )
    server = MendServer(settings)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)
    await server.stop(grace=0)


async def test_an_admin_purges_every_tenants_jobs_in_pages(admin_stub) -> None:
    mine = [await cancelled_job(admin_stub) for _ in range(2)]
    theirs = [await cancelled_job(admin_stub, OTHER_AUTH) for _ in range(2)]
    pending = await submit(admin_stub, resize_request(), OTHER_AUTH)
    ids, calls = await purge_all(admin_stub, ADMIN_AUTH, all_tenants=True, page_size=1)
    # Oldest first across tenants and partitions; a call for each job, pending one included.
    assert ids == mine + theirs and calls == 6
    # Without all_tenants, an admin purges its own tenant's jobs (it has none).
    assert await purge_all(admin_stub, ADMIN_AUTH) == ([], 1)
    job = await admin_stub.GetJob(pb.GetJobRequest(id=pending), metadata=OTHER_AUTH)
    assert job.status == pb.JOB_STATUS_PENDING


# ---------------------------------------------------------------- REST and the CLI


async def test_rest_routes_for_retry_delete_and_purge(
    mend_server: MendServer, stub, tmp_path: Path
) -> None:
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(
            base_url=running.url, headers={"X-API-Key": API_KEY}
        ) as http:
            job_id = await cancelled_job(stub)
            response = await http.post(f"/api/v1/jobs/{job_id}/retry")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "pending" and response.json()["id"] == job_id
            response = await http.post(f"/api/v1/jobs/{job_id}/retry")
            assert response.status_code == 409
            assert response.json()["reason"] == "JOB_NOT_RETRYABLE"
            response = await http.delete(f"/api/v1/jobs/{job_id}")
            assert (response.status_code, response.json()["reason"]) == (409, "JOB_NOT_FINISHED")

            await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
            response = await http.delete(f"/api/v1/jobs/{job_id}")
            assert (response.status_code, response.json()) == (200, {})
            assert (await http.get(f"/api/v1/jobs/{job_id}")).status_code == 404

            other = await cancelled_job(stub)
            body = {"status": "cancelled", "dry_run": True}
            response = await http.post("/api/v1/jobs:purge", json=body)
            assert response.status_code == 200, response.text
            assert response.json() == {"deleted": 1, "next_page_token": "", "job_ids": [other]}
            response = await http.post("/api/v1/jobs:purge", json={"status": "pending"})
            assert response.status_code == 400 and "status" in response.text
    finally:
        await running.stop()


async def test_cli_retry_delete_and_purge(mend_server: MendServer, stub, work: WorkQueue) -> None:
    env = env_for(mend_server)
    failed = await worked_job(stub, work, fail="broken")
    run = await mend("retry", failed, env=env)
    assert (run.code, run.out.strip()) == (0, f"{failed}  pending"), run.err
    run = await mend("retry", failed, env=env)
    assert run.code == 3 and "only a failed or cancelled job can be retried" in run.err

    cancelled = await cancelled_job(stub)
    run = await mend("purge", "--status", "cancelled", "--dry-run", env=env)
    assert run.code == 0 and run.out.splitlines() == [cancelled, "would delete 1 jobs"]
    run = await mend("purge", "--before", "2000-01-01", "--json", env=env)
    assert run.json_lines() == [{"deleted": 0, "job_ids": []}]
    run = await mend("delete", cancelled, env=env)
    assert (run.code, run.out.strip()) == (0, f"{cancelled}  deleted"), run.err
    run = await mend("delete", failed, env=env)  # pending again, after the retry
    assert run.code == 3 and "only a finished job can be deleted" in run.err
    run = await mend("purge", "--status", "pending", env=env)
    assert run.code == 64  # not a choice
