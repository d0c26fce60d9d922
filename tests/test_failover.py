"""Failover without losing accepted jobs (MEND_SUBMIT_REPLICAS: answers wait for Redis
WAIT), on one Redis, a Redis Cluster and behind Sentinel: real redis-servers, the real
gRPC server, real worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import grpc

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.redis_cluster import RedisCluster, RedisSentinel
from mend_devkit.redis_server import RedisServer
from tests.conftest import AUTH, serving
from tests.faulty_s3 import S3Service
from tests.helpers import resize_request
from tests.test_cluster import resize
from tests.test_errors import rich
from tests.workers import get_job, submit, wait_terminal, worker_pool

Stub = jobs_pb2_grpc.JobServiceStub


def streamed(bucket: str, n: int) -> pb.SubmitImageResizeRequest:
    return resize(bucket, f"out/{n}.png", request_id=f"stream-{n}")


async def test_a_write_no_replica_acknowledged_answers_unavailable(
    redis_server: RedisServer, redis_client
) -> None:
    # One Redis, no replica: MEND_SUBMIT_REPLICAS=1 can never be met.
    async with serving(
        redis_server.url, submit_replicas=1, submit_replicas_timeout_seconds=0.1
    ) as stub:
        request = resize_request(request_id="once")
        try:
            await stub.SubmitImageResize(request, metadata=AUTH)
            raise AssertionError("submitted without the replica required")
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            assert rich(err)["ErrorInfo"].reason == "WRITE_NOT_REPLICATED"  # type: ignore[attr-defined]
            assert "only 0 of the 1 replicas" in err.details()
            assert "may or may not survive a failover" in err.details()
        # The master has the job (it may or may not survive a failover). A retry with the
        # same request_id finds it, and is refused again: it is still on no replica.
        (job_id,) = redis_client.zrange("mend:{jobs}:tenant:acme:all", 0, -1)
        assert redis_client.exists(f"mend:{{jobs}}:job:{job_id}")
        try:
            await stub.SubmitImageResize(request, metadata=AUTH)
            raise AssertionError("submitted without the replica required")
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
        assert redis_client.zrange("mend:{jobs}:tenant:acme:all", 0, -1) == [job_id]
        try:
            await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
            raise AssertionError("cancelled without the replica required")
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()


async def submit_acknowledged(
    stub: Stub, request: pb.SubmitImageResizeRequest, refusals: list[str], within: float = 90
) -> str:
    """Submits until acknowledged, retrying UNAVAILABLE with the same request (and so the
    same request_id), as a careful client does; each refusal's message goes to refusals."""
    deadline = time.monotonic() + within
    while True:
        assert time.monotonic() < deadline, f"not acknowledged: {refusals[-5:]}"
        try:
            reply = await stub.SubmitImageResize(request, metadata=AUTH)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            refusals.append(err.details() or "")
            await asyncio.sleep(0.1)
            continue
        return str(reply.job_id)


class Stream:
    """Submits jobs one after another, each until it is acknowledged; remembers which
    job each acknowledgement named."""

    def __init__(self, stub: Stub, bucket: str, total: int) -> None:
        self.stub, self.bucket, self.total = stub, bucket, total
        self.acknowledged: dict[int, str] = {}
        self.refusals: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for n in range(self.total):
            request = streamed(self.bucket, n)
            self.acknowledged[n] = await submit_acknowledged(self.stub, request, self.refusals)

    async def reached(self, count: int) -> None:
        while len(self.acknowledged) < count:
            assert not self.task.done(), self.task
            await asyncio.sleep(0.02)


async def test_cluster_failover_loses_no_acknowledged_job(
    redis_cluster: RedisCluster, s3: S3Service, bucket: str
) -> None:
    redis_cluster.flushall()
    master = redis_cluster.master_of("mend:{jobs}:turns")
    (replica,) = redis_cluster.replicas_of(master)
    async with (
        serving(redis_cluster.url, submit_replicas=1, submit_replicas_timeout_seconds=0.3) as stub,
        worker_pool(redis_cluster.url, **s3.env()) as workers,
    ):
        worker = workers.start()  # it works on through the failover
        stream = Stream(stub, bucket, total=40)
        await stream.reached(10)
        # The replica falls behind (stopped, its link to the master cut), then its master
        # dies: what the master took meanwhile never reaches the replica that takes over.
        # Without WAIT, those submits were acknowledged all the same, and the failover
        # loses them.
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            with master.client() as client:
                client.client_kill_filter(_type="slave")
            await asyncio.sleep(1.0)
            master.kill()
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        await asyncio.to_thread(redis_cluster.wait_failover, [replica])
        await asyncio.sleep(0.5)
        # The new master has no replica until the old one comes back as its replica.
        await asyncio.to_thread(redis_cluster.restart, master)
        await asyncio.wait_for(stream.task, 120)

        assert any("replicas" in r for r in stream.refusals), stream.refusals
        for n, job_id in stream.acknowledged.items():
            try:
                await get_job(stub, job_id)
            except grpc.aio.AioRpcError as err:
                lost = f"acknowledged job #{n} {job_id} lost: {err.details()}"
                raise AssertionError(lost) from None
        listed = await stub.ListJobs(pb.ListJobsRequest(page_size=100), metadata=AUTH)
        assert sorted(j.id for j in listed.jobs) == sorted(stream.acknowledged.values())
        for job_id in stream.acknowledged.values():
            job = await wait_terminal(stub, job_id)
            assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert worker.alive, workers.outputs()


async def test_the_stack_follows_a_sentinel_failover(
    redis_sentinel: RedisSentinel, s3: S3Service, bucket: str
) -> None:
    """The master dies; the sentinel promotes its replica, and the server, its watchers
    and a running worker move to it by themselves. (Without MEND_SUBMIT_REPLICAS: with the
    only replica promoted, no replica would be left to acknowledge a write.)"""
    async with (
        serving(redis_sentinel.url) as stub,
        worker_pool(redis_sentinel.url, **s3.env()) as workers,
    ):
        worker = workers.start()  # it works on through the failover
        before = await submit(stub, streamed(bucket, 1))
        assert (await wait_terminal(stub, before)).status == pb.JOB_STATUS_COMPLETED
        # A job due after the master has changed, and a watcher on it.
        delayed = streamed(bucket, 2)
        delayed.delay_seconds = 3
        waiting = await submit(stub, delayed)
        watching = asyncio.create_task(wait_terminal(stub, waiting))
        await asyncio.sleep(0.2)  # (its Redis reads under way)

        await asyncio.to_thread(redis_sentinel.failover, kill=True)
        after = await submit_acknowledged(stub, streamed(bucket, 3), [])
        for job_id in (after, waiting):
            job = await wait_terminal(stub, job_id)
            assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert (await asyncio.wait_for(watching, 30)).status == pb.JOB_STATUS_COMPLETED
        assert (await get_job(stub, before)).status == pb.JOB_STATUS_COMPLETED
        assert worker.alive, workers.outputs()
