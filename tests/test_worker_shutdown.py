"""Graceful shutdown: on SIGTERM a worker stops claiming, lets its running job finish
within MEND_SHUTDOWN_GRACE_SECONDS, or else hands it back at once (its attempt not
counted) so that another worker does it."""

from __future__ import annotations

import asyncio
import signal

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer
from tests.conftest import SOURCE_KEY
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

SOURCE = SOURCE_KEY
# Time for the worker to take in a signal before the test goes on. Waiting longer
# would not change the outcome; a shorter wait could only make the test prove less.
SIGNAL_SETTLE_SECONDS = 0.5


def request(bucket: str, dest_key: str):
    return resize_request(
        source_bucket=bucket,
        source_key=SOURCE,
        dest_bucket=bucket,
        dest_key=dest_key,
        width=200,
        height=150,
    )


async def test_sigterm_lets_the_running_job_finish_within_the_grace_period(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    s3.proxy.hold_reads(key=SOURCE)
    async with worker_pool(
        redis_server.url, MEND_SHUTDOWN_GRACE_SECONDS="20", **s3.env()
    ) as workers:
        worker = workers.start()
        running = await submit(stub, request(bucket, "first.jpg"))
        await eventually(lambda: s3.proxy.held, "the job to start its download")
        waiting = await submit(stub, request(bucket, "second.jpg"))

        worker.signal(signal.SIGTERM)
        await asyncio.sleep(SIGNAL_SETTLE_SECONDS)
        assert worker.alive
        s3.proxy.release()

        job = await wait_terminal(stub, running)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert job.attempt == 1
        assert decode(s3.get(bucket, "first.jpg")[0]).size == (200, 150)
        assert await worker.wait_exit() == 0
        # A stopping worker claims nothing new.
        second = await get_job(stub, waiting)
        assert (second.status, second.attempt) == (pb.JOB_STATUS_PENDING, 0)


async def test_sigterm_releases_a_job_that_cannot_finish_within_the_grace_period(
    stub, redis_server: RedisServer, s3: S3Service, bucket: str
) -> None:
    s3.proxy.hold_reads(key=SOURCE)
    async with worker_pool(
        redis_server.url, MEND_SHUTDOWN_GRACE_SECONDS="1", **s3.env()
    ) as workers:
        leaving = workers.start()
        job_id = await submit(stub, request(bucket, "out.jpg"))
        await eventually(lambda: s3.proxy.held, "the job to start its download")
        executor = await leaving.running_executor()

        leaving.signal(signal.SIGTERM)
        assert await leaving.wait_exit() == 0
        assert not is_running(executor)
        # Back in the queue at once, its attempt not counted: stopping was not its fault.
        job = await get_job(stub, job_id)
        assert (job.status, job.attempt) == (pb.JOB_STATUS_PENDING, 0)
        assert job.HasField("queue_position")

        s3.proxy.release()
        workers.start()
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert job.attempt == 1
    assert statuses(await history(stub, job_id)) == [
        "pending",
        "processing",
        "pending",
        "processing",
        "completed",
    ]
    assert decode(s3.get(bucket, "out.jpg")[0]).size == (200, 150)
