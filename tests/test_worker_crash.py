"""Crashes: a worker killed with SIGKILL mid-job loses no job and leaves no process
behind; a worker whose lease expired can no longer change its job; the `mend-worker`
supervisor replaces a killed worker and stops all of them on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from mend.v1 import jobs_pb2 as pb
from mend_core.jobstate.queue import WorkQueue
from mend_core.redis_client import connect
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from tests.faulty_s3 import S3Service
from tests.helpers import PARTS, job_key, resize_request
from tests.images import decode, encode
from tests.workers import (
    children,
    cmdline,
    eventually,
    get_job,
    history,
    is_running,
    mend_workers_of,
    statuses,
    submit,
    wait_terminal,
    worker_pool,
)


async def test_sigkilled_worker_loses_no_job_and_leaves_no_process(
    stub, redis_server: RedisServer, s3: S3Service
) -> None:
    bucket = s3.new_bucket()
    s3.put(bucket, "in/photo.jpg", encode(photo(640, 480), "JPEG"))
    request = resize_request(
        source_bucket=bucket,
        source_key="in/photo.jpg",
        dest_bucket=bucket,
        dest_key="out.png",
        width=320,
        height=240,
    )
    # The first worker's download never finishes: it is mid-job when it dies.
    s3.proxy.hold_reads(key="in/photo.jpg")
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        doomed = workers.start()
        job_id = await submit(stub, request)
        await eventually(lambda: s3.proxy.held, "the worker to start downloading the source")
        running = await get_job(stub, job_id)
        assert (running.status, running.attempt) == (pb.JOB_STATUS_PROCESSING, 1)
        (executor,) = doomed.executors()

        doomed.signal(signal.SIGKILL)
        assert await doomed.wait_exit() == -signal.SIGKILL
        # The child running the job dies with its worker: nothing is left running it.
        await eventually(lambda: not is_running(executor), "the killed worker's executor to die")
        assert mend_workers_of(redis_server.url) == {}

        s3.proxy.release()
        survivor = workers.start()
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        # Run again, by the other worker, after the first one's lease expired.
        assert job.attempt == 2
        states = await history(stub, job_id)
        assert statuses(states) == [
            "pending",
            "processing",
            "pending",
            "processing",
            "completed",
        ]
        requeued = next(s for s in states[2:] if s.status == pb.JOB_STATUS_PENDING)
        assert requeued.error == "worker lost the job (lease expired) during attempt 1"
        data, content_type = s3.get(bucket, "out.png")
        assert content_type == "image/png"
        assert decode(data).size == (320, 240)
        # Only the survivor and its own executor child serve this Redis now.
        assert set(mend_workers_of(redis_server.url)) == {survivor.pid, *survivor.executors()}


RESULT = JobResult(
    output_url="s3://my-bucket/images/output.jpg",
    file_size=1234,
    duration=0.5,
    metadata=ImageMetadata(width=800, height=600, format="jpeg"),
)


async def test_worker_that_lost_its_lease_cannot_change_the_job(
    stub, redis_server: RedisServer, redis_client
) -> None:
    redis = connect(redis_server.url)
    try:
        # Worker A's lease is short; worker B's outlives the test.
        queue_a = WorkQueue(
            redis,
            PARTS,
            lease_seconds=0.2,
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
        )
        queue_b = WorkQueue(
            redis,
            PARTS,
            lease_seconds=60,
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
        )
        job_id = await submit(stub, resize_request())
        keys = PARTS.job_keys(job_id)
        lease_a = await queue_a.claim("worker-a")
        assert lease_a is not None and lease_a.job_id == job_id

        # A stalls past its lease; the reaper gives the job to B.
        await asyncio.sleep(0.5)
        assert (await queue_b.reap()).requeued == 1
        lease_b = await queue_b.claim("worker-b")
        assert lease_b is not None and lease_b.job_id == job_id
        assert lease_b.fence > lease_a.fence

        before = redis_client.hgetall(job_key(job_id))
        deadline = redis_client.zscore(keys.inflight, job_id)
        events = redis_client.llen(keys.events(job_id))
        # A wakes up and tries everything a worker can do: all refused.
        assert await queue_a.heartbeat(lease_a) is False
        assert await queue_a.progress(lease_a, 50, "half way") is False
        assert await queue_a.complete(lease_a, RESULT) is False
        assert await queue_a.fail(lease_a, "A's error") is False
        assert await queue_a.retry(lease_a, "A's retry", 0) is False
        assert await queue_a.release(lease_a) is False
        assert redis_client.hgetall(job_key(job_id)) == before
        assert redis_client.zscore(keys.inflight, job_id) == deadline
        assert redis_client.llen(keys.events(job_id)) == events
        job = await get_job(stub, job_id)
        assert (job.status, job.attempt) == (pb.JOB_STATUS_PROCESSING, 2)

        # B, the lease holder, commits.
        assert await queue_b.heartbeat(lease_b) is True
        assert await queue_b.complete(lease_b, RESULT) is True
        job = await get_job(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED
        assert job.result.output_url == RESULT.output_url
        assert job.error == ""
        # Nothing A tried shows in the job's history either.
        states = await history(stub, job_id)
        assert statuses(states) == ["pending", "processing", "pending", "processing", "completed"]
        assert not any("A's" in s.error or s.progress.message == "half way" for s in states)
        # And A cannot undo B's result.
        assert await queue_a.fail(lease_a, "A's error") is False
        assert (await get_job(stub, job_id)).status == pb.JOB_STATUS_COMPLETED
    finally:
        await redis.aclose()


async def test_supervisor_replaces_a_killed_worker_and_stops_all_on_sigterm(
    stub, redis_server: RedisServer, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    (root / "my-bucket" / "images").mkdir(parents=True)
    (root / "my-bucket" / "images" / "input.jpg").write_bytes(encode(photo(160, 120), "JPEG"))
    async with worker_pool(
        redis_server.url, MEND_STORAGE="file", MEND_STORAGE_ROOT=str(root)
    ) as workers:
        supervisor = workers.start("--processes", "2")

        def pool(without: int = 0) -> list[int] | None:
            """The two workers, once each has exec'd: until then a forked child still
            shows the supervisor's command line."""
            found = children(supervisor.pid)
            if len(found) != 2 or without in found:
                return None
            started = all("mend-worker --single" in cmdline(pid) for pid in found)
            return found if started else None

        first = await eventually(pool, "two `mend-worker --single` processes")

        victim, other = first
        os.kill(victim, signal.SIGKILL)
        replaced = await eventually(lambda: pool(without=victim), "a replacement worker")
        assert other in replaced

        # The pool still works.
        job_ids = [
            await submit(stub, resize_request(width=80, height=60, dest_key=f"out/{i}.jpg"))
            for i in range(4)
        ]
        for job_id in job_ids:
            job = await wait_terminal(stub, job_id)
            assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, supervisor.output())
        started = mend_workers_of(redis_server.url)
        assert set(replaced) | {supervisor.pid} <= set(started)

        supervisor.signal(signal.SIGTERM)
        assert await supervisor.wait_exit() == 0
        # Workers and their executor children are all gone.
        await eventually(
            lambda: not mend_workers_of(redis_server.url), "every worker process to exit"
        )
