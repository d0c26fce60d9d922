"""Storage that fails for a while, jobs over their timeout, and cancellation of a running
job — with real worker processes and S3 (moto) behind the fault-injecting proxy."""

from __future__ import annotations

import inspect

from mend.v1 import jobs_pb2 as pb
from mend_core.storage import S3Storage
from mend_devkit.redis_server import RedisServer
from tests.conftest import AUTH, SOURCE_KEY
from tests.faulty_s3 import S3Service
from tests.helpers import resize_request
from tests.images import decode
from tests.workers import (
    eventually,
    get_job,
    history,
    is_running,
    statuses,
    submit,
    wait_terminal,
    worker_pool,
)

# One job attempt makes this many tries of a failing S3 call (botocore's own retry)
# before the worker sees the error; the proxy's fault counts are in tries.
S3_TRIES: int = inspect.signature(S3Storage).parameters["max_attempts"].default
SOURCE = SOURCE_KEY


def request(bucket: str, dest_key: str = "out/photo.jpg", **overrides: object):
    return resize_request(
        source_bucket=bucket,
        source_key=SOURCE,
        dest_bucket=bucket,
        dest_key=dest_key,
        width=200,
        height=150,
        **overrides,
    )


def versions_are_consecutive(states: list[pb.Job]) -> bool:
    return [s.version for s in states] == list(range(1, len(states) + 1))


async def test_transient_storage_errors_are_retried_until_the_job_completes(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    # S3 answers 503 SlowDown to every read of the first two attempts.
    s3.proxy.fail_reads(2 * S3_TRIES, status=503, code="SlowDown", key=SOURCE)
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        workers.start()
        job_id = await submit(stub, request(bucket))
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    assert job.attempt == 3
    assert s3.proxy.faults_served == 2 * S3_TRIES
    assert decode(s3.get(bucket, "out/photo.jpg")[0]).size == (200, 150)

    states = await history(stub, job_id)
    assert versions_are_consecutive(states)
    assert statuses(states) == [
        "pending",
        "processing",
        "pending",
        "processing",
        "pending",
        "processing",
        "completed",
    ]
    retries = [s for s in states[1:] if s.status == pb.JOB_STATUS_PENDING]
    assert [r.attempt for r in retries] == [1, 2]
    for retry in retries:
        assert f"s3://{bucket}/{SOURCE}" in retry.error, retry.error
    assert job.error == ""


async def test_connection_resets_are_retried(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    s3.proxy.reset_reads(S3_TRIES, key=SOURCE)
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        workers.start()
        job_id = await submit(stub, request(bucket))
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    assert job.attempt == 2
    states = await history(stub, job_id)
    (retry,) = [s for s in states[1:] if s.status == pb.JOB_STATUS_PENDING]
    assert "S3 connection error" in retry.error, retry.error


async def test_storage_failing_on_every_attempt_fails_the_job_after_max_attempts(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    s3.proxy.fail_reads(None, status=503, code="SlowDown", key=SOURCE)
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        workers.start()
        job_id = await submit(stub, request(bucket, max_attempts=2))
        job = await wait_terminal(stub, job_id)
    assert job.status == pb.JOB_STATUS_FAILED
    assert job.attempt == 2
    assert f"s3://{bucket}/{SOURCE}" in job.error
    assert job.error.endswith("(gave up after 2 attempts)"), job.error
    assert not s3.exists(bucket, "out/photo.jpg")
    states = await history(stub, job_id)
    assert versions_are_consecutive(states)
    assert statuses(states) == ["pending", "processing", "pending", "processing", "failed"]


async def test_job_over_its_timeout_is_stopped_and_the_worker_goes_on(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        worker = workers.start()
        # A first job starts the worker's executor child, so the next job's one second is
        # spent downloading, not starting Python.
        warm_up = await wait_terminal(stub, await submit(stub, request(bucket, "warm.jpg")))
        assert warm_up.status == pb.JOB_STATUS_COMPLETED, (warm_up.error, workers.outputs())

        s3.proxy.delay_reads(5, key=SOURCE)
        job_id = await submit(stub, request(bucket, timeout_seconds=1, max_attempts=2))
        await eventually(lambda: s3.proxy.held, "the first attempt to start its download")
        first_executor = await worker.running_executor()

        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_FAILED, job
        assert job.error == "timed out after 1s (gave up after 2 attempts)"
        assert job.attempt == 2
        states = await history(stub, job_id)
        assert statuses(states) == ["pending", "processing", "pending", "processing", "failed"]
        (retry,) = [s for s in states[1:] if s.status == pb.JOB_STATUS_PENDING]
        assert retry.error == "timed out after 1s"
        # Stopped for real: the process running the attempt is gone, the worker is not.
        assert not is_running(first_executor)
        assert worker.alive
        assert not s3.exists(bucket, "out/photo.jpg")

        # The same worker process runs the next job.
        s3.proxy.heal()
        job = await wait_terminal(stub, await submit(stub, request(bucket, dest_key="next.jpg")))
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert worker.alive and workers.started == [worker]
        assert first_executor not in worker.executors()


async def test_cancelling_a_running_job_stops_it_and_writes_nothing(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    s3.proxy.hold_reads(key=SOURCE)
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        worker = workers.start()
        job_id = await submit(stub, request(bucket, dest_key="cancelled.jpg"))
        await eventually(lambda: s3.proxy.held, "the job to start its download")
        assert (await get_job(stub, job_id)).status == pb.JOB_STATUS_PROCESSING
        executor = await worker.running_executor()

        cancelled = await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
        assert cancelled.status == pb.JOB_STATUS_CANCELLED
        # The worker notices on its next heartbeat and kills the process running the job.
        await eventually(
            lambda: not is_running(executor), "the worker to stop the cancelled job", within=10
        )
        assert worker.alive

        # Let the stuck download go: nobody is left to use it.
        s3.proxy.release()
        job = await wait_terminal(stub, await submit(stub, request(bucket, dest_key="next.jpg")))
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert workers.started == [worker] and worker.alive

    assert not s3.exists(bucket, "cancelled.jpg")
    job = await get_job(stub, job_id)
    assert job.status == pb.JOB_STATUS_CANCELLED
    assert not job.HasField("result")
    assert statuses(await history(stub, job_id)) == ["pending", "processing", "cancelled"]
