"""Fairness and the wait estimate with real worker processes, S3 (moto) behind the
fault-injecting proxy, whose read delays make jobs of a known length. The jobs come in
batches, each in one partition (README "Partitions"): tenants take turns within a
partition, workers take turns between partitions."""

from __future__ import annotations

import time
from itertools import count

import pytest

from mend.v1 import jobs_pb2 as pb
from mend_core.jobstate.queue import STAY
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from tests.conftest import AUTH, OTHER_AUTH
from tests.faulty_s3 import S3Service
from tests.helpers import PARTS, job_field
from tests.images import encode
from tests.workers import eventually, wait_terminal, worker_pool

WORKERS = 2


def resize(bucket: str, key: str) -> pb.SubmitJobRequest:
    return pb.SubmitJobRequest(
        source_bucket=bucket,
        source_key=key,
        dest_bucket=bucket,
        dest_key=f"out/{key}",
        parameters=pb.JobParameters(image_resize=pb.ImageResizeParameters(width=40)),
    )


def colors(bucket: str, key: str) -> pb.SubmitJobRequest:
    return pb.SubmitJobRequest(
        source_bucket=bucket,
        source_key=key,
        parameters=pb.JobParameters(image_colors=pb.ImageColorsParameters(count=2)),
    )


def put_sources(s3: S3Service, bucket: str, *keys: str) -> None:
    for key in keys:
        s3.put(bucket, key, encode(photo(64, 48), "JPEG"))


# The partition the batches go to (the flood's, in the test of another partition: a
# newcomer's goes to the next).
HOME = 0


def batch_in(partition: int, metadata) -> str:
    """A new batch id of the tenant of `metadata` whose batch lives in `partition`."""
    tenant = "globex" if metadata is OTHER_AUTH else "acme"
    return next(
        name
        for name in (f"b-{tenant}-{partition}-{n}-{time.monotonic_ns()}" for n in count())
        if PARTS.of_batch(tenant, name) == partition
    )


async def submit_all(
    stub, requests: list[pb.SubmitJobRequest], metadata, partition: int = HOME
) -> list[str]:
    batch = pb.SubmitBatchRequest(batch_id=batch_in(partition, metadata), jobs=requests)
    done = await stub.SubmitBatch(batch, metadata=metadata)
    return list(done.job_ids)


def started_ms(redis_client, job_id: str) -> int | None:
    value = job_field(redis_client, job_id, "started_at")
    return int(value) if value else None


@pytest.mark.parametrize("apart", [False, True], ids=["same partition", "another partition"])
async def test_a_flood_of_jobs_cannot_starve_another_tenant(
    stub, redis_server: RedisServer, redis_client, s3: S3Service, apart: bool
) -> None:
    bucket = s3.new_bucket()
    put_sources(s3, bucket, "flood.jpg", "mine.jpg")
    s3.proxy.delay_reads(0.1, key="flood.jpg")  # each flood job holds a worker a while
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        for _ in range(WORKERS):
            workers.start()
        flood = []
        for _ in range(2):
            flood += await submit_all(stub, [resize(bucket, "flood.jpg")] * 100, OTHER_AUTH)
        await eventually(
            lambda: sum(started_ms(redis_client, j) is not None for j in flood) >= WORKERS,
            "every worker busy with the flood",
        )
        submitted_ms = int(time.time() * 1000)
        mine_in = (HOME + 1) % PARTS.count if apart else HOME
        (mine,) = await submit_all(stub, [resize(bucket, "mine.jpg")], AUTH, mine_in)
        job = await wait_terminal(stub, mine, within=60)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    mine_started = started_ms(redis_client, mine)
    assert mine_started is not None
    # Flood jobs that started after mine was queued and before it started: in the flood's
    # partition, tenants take turns, so at most the one job each worker claimed while mine
    # was being submitted. In another partition a busy worker learns of mine at its next
    # scan of the partitions (every 2·P claims), then stays at most STAY claims in a row
    # with the flood's (README "Partitions"): at most that many more each.
    per_worker = 2 * PARTS.count + STAY + 1 if apart and PARTS.count > 1 else 1
    overtaking = [
        j
        for j in flood
        if (s := started_ms(redis_client, j)) is not None and submitted_ms <= s < mine_started
    ]
    assert len(overtaking) <= WORKERS * per_worker, len(overtaking)


async def test_estimated_wait_is_close_to_the_real_wait(
    stub, redis_server: RedisServer, redis_client, s3: S3Service
) -> None:
    # A mixed workload: resizes that hold a worker about 1 s (slow reads) and colour
    # extractions of about 60 ms, from two tenants taking turns.
    bucket = s3.new_bucket()
    put_sources(s3, bucket, "slow.jpg", "fast.jpg")
    s3.proxy.delay_reads(0.5, key="slow.jpg")  # read twice (HEAD, GET) per job
    s3.proxy.delay_reads(0.02, key="fast.jpg")
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        for _ in range(WORKERS):
            workers.start()
        await eventually(lambda: redis_client.zcard(PARTS.workers) == WORKERS, "workers")
        # The first jobs of a fresh worker also pay for its executor's start-up (imports,
        # clients): run some, forget those averages, and learn them again from warm workers.
        for forget in (True, False):
            warmup = await submit_all(
                stub, [resize(bucket, "slow.jpg")] * 3 + [colors(bucket, "fast.jpg")] * 4, AUTH
            )
            for job_id in warmup:
                assert (await wait_terminal(stub, job_id)).status == pb.JOB_STATUS_COMPLETED
            if forget:
                for keys in PARTS.keys:
                    redis_client.hdel(keys.stats, "image_resize:avg_ms", "image_colors:avg_ms")

        slow = await submit_all(stub, [resize(bucket, "slow.jpg")] * 4, AUTH)
        fast = await submit_all(stub, [colors(bucket, "fast.jpg")] * 8, OTHER_AUTH)
        (waiting,) = await submit_all(stub, [colors(bucket, "fast.jpg")], AUTH)
        estimates = {}
        for job_id, metadata in ((waiting, AUTH), (fast[-1], OTHER_AUTH)):
            job = await get_job_as(stub, job_id, metadata)
            assert job.status == pb.JOB_STATUS_PENDING
            estimates[job_id] = (time.time(), job.estimated_wait_seconds, job.queue_position)
        for job_id in [*slow, *fast, waiting]:
            done = await wait_terminal(stub, job_id, within=60, metadata=_auth(job_id, fast))
            assert done.status == pb.JOB_STATUS_COMPLETED, (done.error, workers.outputs())
    averages = [
        {k: int(v) for k, v in redis_client.hgetall(keys.stats).items() if k.endswith(":avg_ms")}
        for keys in PARTS.keys
    ]
    for job_id, (asked, estimate, position) in estimates.items():
        actual = started_ms(redis_client, job_id) / 1000 - asked  # type: ignore[operator]
        assert abs(estimate - actual) <= 0.25 * actual, (position, estimate, actual, averages)


def _auth(job_id: str, fast: list[str]):
    return OTHER_AUTH if job_id in fast else AUTH


async def get_job_as(stub, job_id: str, metadata) -> pb.Job:
    job: pb.Job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata)
    return job

