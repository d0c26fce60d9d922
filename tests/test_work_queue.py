"""WorkQueue against a real Redis: leasing the next job with a completion, wake-up tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mend_core.job import JobSpec, JobStatus
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.queue import WorkQueue
from mend_core.jobstate.store import JobStore
from mend_core.operations.image_resize import ResizeParams
from mend_core.redis_client import connect
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.redis_server import RedisServer

RESULT = JobResult("file:///out.jpg", 10, 0.01, ImageMetadata(8, 8, "jpeg"))
SPEC = JobSpec(
    type="image_resize",
    source_bucket="my-bucket",
    source_key="in.jpg",
    dest_bucket="my-bucket",
    dest_key="out.jpg",
    params=ResizeParams(width=8),
)


@pytest.fixture
async def stores(
    redis_server: RedisServer, redis_client
) -> AsyncIterator[tuple[JobStore, WorkQueue]]:
    redis = connect(redis_server.url, shared=False)
    yield (
        JobStore(
            redis,
            Partitions(1),
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
            worker_liveness_seconds=30,
        ),
        WorkQueue(
            redis,
            Partitions(1),
            lease_seconds=30,
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
        ),
    )
    await redis.aclose()


async def test_completion_leases_the_next_job_in_order(stores, redis_client) -> None:
    store, queue = stores
    ids = [s.job_id for s in await store.submit("t", [SPEC, SPEC, SPEC])]
    lease = await queue.claim("w1")
    seen = []
    while lease is not None:
        seen.append(lease.job_id)
        assert lease.job.status is JobStatus.PROCESSING and lease.job.attempt == 1
        committed, lease = await queue.complete_and_claim(lease, RESULT, "w1")
        assert committed
    assert seen == ids
    for job_id in ids:
        assert (await store.get("t", job_id)).status is JobStatus.COMPLETED


async def test_claims_spend_wake_up_tokens(stores, redis_client) -> None:
    # Jobs claimed without blocking must not leave a token each behind once the worker is
    # idle: idle workers would later wake once per token for nothing.
    store, queue = stores
    await store.submit("t", [SPEC] * 5)
    assert redis_client.llen(Partitions(1).wake) == 5
    lease = await queue.claim("w1")
    while lease is not None:
        _, lease = await queue.complete_and_claim(lease, RESULT, "w1")
    assert await queue.claim("w1") is None
    assert redis_client.llen(Partitions(1).wake) == 0


async def test_a_zombie_completion_leases_nothing(stores) -> None:
    store, queue = stores
    await store.submit("t", [SPEC, SPEC])
    lease = await queue.claim("w1")
    assert lease is not None
    await store.cancel("t", lease.job_id)
    assert await queue.complete_and_claim(lease, RESULT, "w1") == (False, None)
    # The other job is still there for a worker that holds a lease.
    assert await queue.claim("w2") is not None


async def test_a_completed_job_is_kept_compact_and_reads_back_the_same(
    stores, redis_client
) -> None:
    # Redis keeps a hash as a listpack (~1/3 of a hashtable's memory) only while each
    # value is short (hash-max-listpack-value, 64 bytes by default): the result is stored
    # as short fields of its own, not one JSON document, and nothing twice.
    store, queue = stores
    (submitted,) = await store.submit("t", [SPEC])
    lease = await queue.claim("w1")
    assert lease is not None
    assert await queue.progress(lease, 40, "Resizing")
    details = {"image": {"dominant_colors": ["#102030"]}}
    result = JobResult("file:///bucket/a-long-output-key-of-fifty-odd-characters.jpg", 10, 0.25,
                       ImageMetadata(8, 6, "JPEG"), details)
    assert await queue.complete(lease, result)
    key = Partitions(1).job_keys(submitted.job_id).job(submitted.job_id)
    assert redis_client.object("encoding", key) == "listpack"
    assert not {"result", "progress_percent", "progress_message"} & set(redis_client.hkeys(key))
    job = await store.get("t", submitted.job_id)
    assert job.result == result
    assert (job.progress_percent, job.progress_message) == (100, "Completed")
    assert job.duration_seconds == 0.25


async def test_a_jobs_creation_is_announced_to_no_one(stores, redis_client) -> None:
    """Nobody can watch a job before it exists: the change feed hears of its changes from
    the claim on, not of its creation (one SPUBLISH less per submit)."""
    store, queue = stores
    pubsub = redis_client.pubsub()
    pubsub.ssubscribe(Partitions(1).keys[0].changes_channel)
    assert pubsub.get_message(timeout=1)["type"] == "ssubscribe"
    [submitted] = await store.submit("t", [SPEC])
    lease = await queue.claim("w1")
    assert lease is not None and await queue.complete(lease, RESULT)
    heard = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        heard.append(message["data"])
    pubsub.close()
    assert heard == [f"{submitted.job_id}:2", f"{submitted.job_id}:3"]
