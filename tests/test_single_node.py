"""On a single Redis, submit pushes its wake tokens and get reads the other partitions' queues
inside their scripts (partitions.single_node); on a cluster the store sends those commands
itself. Both paths must leave the same tokens and answer with the same estimates."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from mend_core.jobstate.partitions import Partitions, single_node
from mend_core.jobstate.store import JobStore
from mend_core.redis_client import connect
from mend_devkit.redis_server import RedisServer
from tests.test_work_queue import SPEC

PARTS = Partitions(12)
RETENTION = {"retention_completed_seconds": 3600, "retention_failed_seconds": 3600}


@pytest.fixture
async def stores(redis_server: RedisServer, redis_client) -> AsyncIterator[list[JobStore]]:
    """Two stores on one Redis: the single-node one, and one taking the cluster's path."""
    redis = connect(redis_server.url, shared=False)
    assert single_node(redis)
    single = JobStore(redis, PARTS, worker_liveness_seconds=30, **RETENTION)
    split = JobStore(redis, PARTS, worker_liveness_seconds=30, **RETENTION)
    split._single_node = False
    yield [single, split]
    await redis.aclose()


def tokens(redis_client, key: str) -> Counter[int]:
    return Counter(int(t) for t in redis_client.lrange(key, 0, -1))


@pytest.mark.parametrize("path", [0, 1], ids=["single node", "cluster path"])
async def test_submit_wakes_one_worker_per_queued_job_naming_its_partition(
    stores: list[JobStore], redis_client, path: int
) -> None:
    store = stores[path]
    submitted = await store.submit("acme", [SPEC] * 30)
    assert tokens(redis_client, PARTS.wake) == Counter(PARTS.of_job(s.job_id) for s in submitted)
    assert redis_client.llen(PARTS.schedule_wake) == 0
    redis_client.delete(PARTS.wake)
    # A delayed job wakes the housekeeping (the cluster path wakes a worker too, in vain);
    # a replay wakes nobody.
    await store.submit("acme", [replace(SPEC, delay_ms=60_000)])
    assert redis_client.llen(PARTS.schedule_wake) == 1
    assert redis_client.llen(PARTS.wake) == path
    redis_client.delete(PARTS.wake)
    once = replace(SPEC, request_id="r-1")
    [first] = await store.submit("acme", [once])
    assert tokens(redis_client, PARTS.wake) == Counter([PARTS.of_job(first.job_id)])
    [again] = await store.submit("acme", [once])
    assert again.job_id == first.job_id and not again.created
    assert redis_client.llen(PARTS.wake) == 1


async def test_get_estimates_the_same_either_way(stores: list[JobStore], redis_client) -> None:
    single, split = stores
    submitted = await single.submit("acme", [SPEC] * 40)
    await single.submit("other", [SPEC] * 5)
    positions = []
    for s in submitted:
        fast, slow = await single.get("acme", s.job_id), await split.get("acme", s.job_id)
        assert fast == slow
        positions.append(fast.queue_position)
    # The other partitions' queues count: positions reach beyond any one partition's length.
    assert max(positions) > max(Counter(PARTS.of_job(s.job_id) for s in submitted).values())
