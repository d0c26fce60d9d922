"""Mend on a Redis Cluster (3 masters + 3 replicas, tests/conftest.py's redis_cluster):
the real gRPC server and real worker processes with MEND_REDIS_URL=redis+cluster://...
Today every key carries the `{jobs}` hash tag, so one master holds the jobs; what these
tests prove is that every call Mend makes (scripts, pipelines, BLPOP, streams, pub/sub)
goes through the cluster client to the right node, and survives a failover."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.errors import JobNotFound
from mend_core.job import JobStatus
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.store import JobStore
from mend_core.redis_client import connect
from mend_devkit.redis_cluster import RedisCluster
from mend_devkit.redis_server import env_for
from mend_devkit.sample import photo
from mend_server.server import MendServer, queue_gauges
from tests.conftest import AUTH, make_settings, serving
from tests.faulty_s3 import S3Service
from tests.helpers import resize_request, submit_request
from tests.images import decode, encode
from tests.test_gateway_support import gateway_settings, start_gateway
from tests.test_work_queue import SPEC
from tests.workers import (
    eventually,
    get_job,
    history,
    mend_workers_of,
    statuses,
    submit,
    wait_terminal,
    watch_until,
    worker_pool,
)


@pytest.fixture
async def cluster_stub(
    redis_cluster: RedisCluster,
) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    redis_cluster.flushall()
    async with serving(redis_cluster.url) as stub:
        yield stub


def resize(bucket: str, dest_key: str, **overrides: object) -> pb.SubmitImageResizeRequest:
    return resize_request(
        source_bucket=bucket,
        source_key="in/photo.jpg",
        dest_bucket=bucket,
        dest_key=dest_key,
        width=64,
        height=48,
        **overrides,
    )


async def test_jobs_on_a_cluster(
    cluster_stub, redis_cluster: RedisCluster, s3: S3Service, bucket: str
) -> None:
    stub = cluster_stub
    # Submitted before any worker runs: they wait, in order.
    ids = [await submit(stub, resize(bucket, f"out/{i}.png")) for i in range(5)]
    got = await get_job(stub, ids[0])
    assert got.status == pb.JOB_STATUS_PENDING and got.queue_position == 1

    listed: list[str] = []
    token = ""
    while True:
        page = await stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=token), metadata=AUTH)
        listed += [job.id for job in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert listed == ids[::-1]

    cancelled = await stub.CancelJob(pb.CancelJobRequest(id=ids[1]), metadata=AUTH)
    assert cancelled.status == pb.JOB_STATUS_CANCELLED

    batch = await stub.SubmitBatch(
        pb.SubmitBatchRequest(
            jobs=[
                submit_request(
                    source_bucket=bucket,
                    source_key="in/photo.jpg",
                    dest_bucket=bucket,
                    dest_key=f"batch/{i}.png",
                )
                for i in range(3)
            ]
        ),
        metadata=AUTH,
    )
    assert len(batch.job_ids) == 3

    # A watcher in place before the workers start sees the job through to the end.
    watching = asyncio.create_task(
        watch_until(stub, ids[0], lambda job: job.status == pb.JOB_STATUS_COMPLETED)
    )
    async with worker_pool(redis_cluster.url, **s3.env()) as workers:
        workers.start()
        workers.start()
        for job_id in [ids[0], *ids[2:], *batch.job_ids]:
            job = await wait_terminal(stub, job_id)
            assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        seen = await watching
        assert statuses(seen) == ["pending", "processing", "completed"]
        # Resumed after the version the client saw, the watch replays only what followed.
        states = await history(stub, ids[0])
        resumed = await watch_until(
            stub,
            ids[0],
            lambda job: job.status == pb.JOB_STATUS_COMPLETED,
            from_version=states[1].version,
        )
        assert [s.version for s in resumed] == [s.version for s in states[2:]]
    assert (await get_job(stub, ids[1])).status == pb.JOB_STATUS_CANCELLED
    data, _ = s3.get(bucket, "batch/2.png")
    assert decode(data).size == (800, 600)
    assert decode(s3.get(bucket, "out/4.png")[0]).size == (64, 48)


async def test_sigkilled_worker_loses_no_job_on_a_cluster(
    cluster_stub, redis_cluster: RedisCluster, s3: S3Service
) -> None:
    stub = cluster_stub
    bucket = s3.new_bucket()
    s3.put(bucket, "in/photo.jpg", encode(photo(640, 480), "JPEG"))
    s3.proxy.hold_reads(key="in/photo.jpg")  # the first worker is mid-job when it dies
    async with worker_pool(redis_cluster.url, **s3.env()) as workers:
        doomed = workers.start()
        job_id = await submit(stub, resize(bucket, "out.png"))
        await eventually(lambda: s3.proxy.held, "the worker to start downloading the source")
        doomed.signal(signal.SIGKILL)
        assert await doomed.wait_exit() == -signal.SIGKILL
        await eventually(
            lambda: not mend_workers_of(redis_cluster.url), "the killed worker's executor to die"
        )
        s3.proxy.release()
        workers.start()
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert job.attempt == 2
        assert statuses(await history(stub, job_id)) == [
            "pending", "processing", "pending", "processing", "completed"
        ]


def run_tool(redis_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = env_for(redis_url)
    return subprocess.run([*argv], env=env, capture_output=True, text=True, timeout=60)


async def test_health_probes_metrics_and_tools_on_a_cluster(
    redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    """Every other way Mend opens Redis: the gateway's readiness check, the queue gauges
    (a synchronous client), the worker health probe and mend-admin."""
    redis_cluster.flushall()
    settings = make_settings(redis_cluster.url)
    server = MendServer(settings)
    await server.start()
    gateway = await start_gateway(gateway_settings(settings, server.port, tmp_path))
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            ready = await http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        gauges = queue_gauges(settings)
        try:
            families = {family.name: family for family in gauges.collect()}
        finally:
            gauges.close()
        assert families["mend_queue_stats_up"].samples[0].value == 1
        assert families["mend_workers"].samples[0].value == 0

        probe = (sys.executable, "-m", "mend_server.probe", "worker")
        async with worker_pool(redis_cluster.url) as workers:
            workers.start()
            await eventually(
                lambda: run_tool(redis_cluster.url, *probe).returncode == 0,
                "the worker probe to see the worker",
                every=0.5,
            )
        admin = (str(Path(sys.executable).with_name("mend-admin")), "webhooks", "list", "--json")
        listed = run_tool(redis_cluster.url, *admin)
        assert (listed.returncode, json.loads(listed.stdout or "null")) == (0, []), listed.stderr
    finally:
        await gateway.stop()
        await server.stop(grace=0)


def _calls(redis_cluster: RedisCluster) -> Counter[str]:
    """Commands served by the masters so far, by name (INFO itself, replication and what a
    client sends when it opens a connection apart: redis-py 8 says HELLO, CLIENT SETINFO)."""
    out: Counter[str] = Counter()
    for node in redis_cluster.masters():
        for name, stat in node.info("commandstats").items():
            out[name.removeprefix("cmdstat_")] += int(stat["calls"])
    ignored = ("info", "replconf", "cluster|nodes", "hello", "client|setinfo", "select", "auth")
    return out - Counter(dict.fromkeys(ignored, 10**9))


@pytest.fixture
async def cluster_store(redis_cluster: RedisCluster) -> AsyncIterator[JobStore]:
    """A JobStore on the cluster client whose estimate counts stay shared for a minute."""
    redis_cluster.flushall()
    redis = connect(redis_cluster.url, shared=False)
    store = JobStore(redis, Partitions(12), retention_completed_seconds=3600,
                     retention_failed_seconds=3600, worker_liveness_seconds=30,
                     estimate_counts_ttl_seconds=60)
    yield store
    await redis.aclose()


async def test_get_on_a_cluster_reads_other_partitions_only_for_a_pending_job(
    cluster_store: JobStore, redis_cluster: RedisCluster
) -> None:
    store = cluster_store
    submitted = await store.submit("acme", [SPEC] * 24)
    await store.cancel("acme", submitted[0].job_id)
    await store.get("acme", submitted[0].job_id)  # the script loaded on its node
    before = _calls(redis_cluster)
    cancelled = await store.get("acme", submitted[0].job_id)
    # Not pending: one script on the job's node (its own HGETALL counts too), nothing else.
    assert cancelled.status == JobStatus.CANCELLED
    assert _calls(redis_cluster) - before == Counter({"evalsha": 1, "hgetall": 1})
    # Pending: the live workers and every partition's queue, read once for both gets.
    before = _calls(redis_cluster)
    first = await store.get("acme", submitted[1].job_id)
    second = await store.get("acme", submitted[2].job_id)
    assert first.queue_position and second.queue_position
    calls = _calls(redis_cluster) - before
    # (each script also counts its own partition's queue with a ZCARD)
    assert (calls["evalsha"], calls["zcount"], calls["zcard"]) == (2, 1, 12 + 2)


async def test_shared_estimate_counts_leak_nothing_between_tenants(
    cluster_store: JobStore,
) -> None:
    store = cluster_store
    [mine] = await store.submit("acme", [SPEC])
    others = await store.submit("other", [SPEC] * 30)
    await store.get("other", others[0].job_id)  # the counts, read and shared from now on
    # Another tenant's job stays unknown, and its estimate is computed from the caller's
    # own partition: nothing of the call that read the counts.
    with pytest.raises(JobNotFound):
        await store.get("other", mine.job_id)
    job = await store.get("acme", mine.job_id)
    assert job.spec == SPEC and job.queue_position >= 1
    assert store._counts.reads == 1


def _reads(redis_cluster: RedisCluster) -> int:
    """Socket reads of the masters so far (one per round trip of a small pipeline)."""
    return sum(int(n.info("stats")["total_reads_processed"]) for n in redis_cluster.masters())


async def test_concurrent_calls_share_each_nodes_round_trips_on_a_cluster(
    cluster_store: JobStore, redis_cluster: RedisCluster
) -> None:
    store = cluster_store
    submitted = await store.submit("acme", [SPEC] * 60)
    for s in submitted:
        await store.cancel("acme", s.job_id)
        await store.get("acme", s.job_id)  # (the script loaded on every master)
    start = _reads(redis_cluster)
    before = _reads(redis_cluster)  # less the reads of counting them
    jobs = await asyncio.gather(*(store.get("acme", s.job_id) for s in submitted))
    reads = _reads(redis_cluster) - before - (before - start)
    assert [j.id for j in jobs] == [s.job_id for s in submitted]
    assert {j.status for j in jobs} == {JobStatus.CANCELLED}
    # Alone, 60 round trips; shared, a couple per master (plus the INFO reads and any
    # replica's acknowledgements meanwhile).
    assert reads <= 20, reads


async def test_concurrent_submits_push_their_wake_tokens_together_on_a_cluster(
    cluster_store: JobStore, redis_cluster: RedisCluster
) -> None:
    """Each job queued gets its wake token, but concurrent submits push them in shared
    RPUSHes on the `{jobs}` node, not one each."""
    store, parts = cluster_store, Partitions(12)
    wake_node = redis_cluster.master_of(parts.wake)
    client = redis.Redis(port=wake_node.port)
    try:
        client.delete(parts.wake)
        before = client.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0)
        submitted = await asyncio.gather(*(store.submit("acme", [SPEC]) for _ in range(120)))
        pushes = client.info("commandstats")["cmdstat_rpush"]["calls"] - before
        tokens = [int(t) for t in client.lrange(parts.wake, 0, -1)]
    finally:
        client.close()
    expected = sorted(parts.of_job(s.job_id) for [s] in submitted)
    assert sorted(tokens) == expected
    # Alone, one each (120); shared, a few per wave of answers (20-30 on a quiet machine).
    assert pushes <= 60, pushes
