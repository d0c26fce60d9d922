"""Fair queuing against a real Redis: tenants take turns, priority orders each tenant's own
jobs, and queue_position is the job's true place in the claim order."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from mend_core.job import JobStatus
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.queue import WorkQueue
from mend_core.jobstate.store import JobStore
from mend_core.redis_client import connect
from mend_devkit.redis_server import RedisServer
from tests.test_work_queue import RESULT, SPEC


@pytest.fixture
async def parts(
    redis_server: RedisServer, redis_client
) -> AsyncIterator[tuple[JobStore, WorkQueue]]:
    redis = connect(redis_server.url, shared=False)
    retention = {"retention_completed_seconds": 3600, "retention_failed_seconds": 3600}
    yield (
        JobStore(redis, Partitions(1), worker_liveness_seconds=30, **retention),
        WorkQueue(redis, Partitions(1), lease_seconds=30, **retention),
    )
    await redis.aclose()


async def submit(store: JobStore, tenant: str, count: int = 1, priority: int = 5) -> list[str]:
    done = await store.submit(tenant, [replace(SPEC, priority=priority)] * count)
    return [s.job_id for s in done]


async def claim_all(queue: WorkQueue) -> list[tuple[str, str]]:
    """(tenant, job id) of every job, in claim order."""
    order = []
    while (lease := await queue.claim("w1")) is not None:
        order.append((lease.job.tenant, lease.job_id))
        await queue.complete(lease, RESULT)
    return order


async def test_one_job_of_a_new_tenant_goes_before_a_flood(parts) -> None:
    store, queue = parts
    # 20,000 rather than the 100,000 keeps the test quick; a claim's cost does not
    # grow with the queue (ZPOPMIN on two sorted sets).
    for _ in range(2):
        await submit(store, "flood", 10_000)
    running = await queue.claim("w1")  # the only worker is busy with a flood job
    assert running is not None and running.job.tenant == "flood"

    (single,) = await submit(store, "small")
    assert (await store.get("small", single)).queue_position == 1
    await queue.complete(running, RESULT)
    lease = await queue.claim("w1")
    assert lease is not None and lease.job_id == single


async def test_tenants_alternate_and_a_drained_tenant_cannot_jump_the_line(parts) -> None:
    store, queue = parts
    await submit(store, "flood", 20)
    seen = []
    for _ in range(6):
        # `small` submits one job at a time, each once the last one ran: it never has
        # two turns in a row, however often its queue empties and fills again.
        await submit(store, "small")
        for _ in range(2):
            lease = await queue.claim("w1")
            assert lease is not None
            seen.append(lease.job.tenant)
            await queue.complete(lease, RESULT)
    assert seen == ["flood", "small"] * 6


async def test_priority_orders_each_tenants_own_jobs(parts) -> None:
    store, queue = parts
    (a_low,) = await submit(store, "a", priority=1)
    (b_low,) = await submit(store, "b", priority=1)
    (a_high,) = await submit(store, "a", priority=9)
    (b_mid,) = await submit(store, "b", priority=5)
    (a_mid,) = await submit(store, "a", priority=5)
    order = [job_id for _, job_id in await claim_all(queue)]
    assert order == [a_high, b_mid, a_mid, b_low, a_low]


async def test_queue_position_is_the_place_in_the_claim_order(parts) -> None:
    # Three tenants, mixed priorities, claims and a cancellation in between: every
    # pending job's queue_position is where the claims then actually take it.
    store, queue = parts
    rng = random.Random(11)
    tenants = ["acme", "globex", "initech"]
    pending: dict[str, str] = {}
    for step in range(60):
        tenant = rng.choice(tenants[: 1 + step // 10])  # tenants join over time
        for job_id in await submit(store, tenant, rng.randint(1, 3), rng.randint(0, 9)):
            pending[job_id] = tenant
        if step % 7 == 6:
            lease = await queue.claim("w1")
            assert lease is not None
            del pending[lease.job_id]
            await queue.complete(lease, RESULT)
    cancelled = rng.choice(sorted(pending))
    await store.cancel(pending.pop(cancelled), cancelled)

    positions = {}
    for job_id, tenant in pending.items():
        job = await store.get(tenant, job_id)
        assert job.status is JobStatus.PENDING
        positions[job_id] = job.queue_position
    order = [job_id for _, job_id in await claim_all(queue)]
    assert sorted(order) == sorted(pending)
    assert {job_id: i + 1 for i, job_id in enumerate(order)} == positions
