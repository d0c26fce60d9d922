"""Partitions (mend_core/jobstate/partitions.py) on one redis-server: where jobs, batches and
request ids live, ListJobs paging and queue positions across partitions, workers that drain
every partition, sharded change notifications, quotas over partitions, and a deployment
that keeps its partition count."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.crc import key_slot

from mend_core.errors import QuotaExceeded, RequestConflict
from mend_core.job import Batch, JobStatus
from mend_core.jobstate.partitions import Partitions, PartitionsMismatch, partition_tags
from mend_core.jobstate.queue import STAY, WorkQueue
from mend_core.jobstate.store import JobStore, ListCursor, PurgeFilter, Quota
from mend_core.redis_client import connect
from mend_devkit.redis_server import RedisServer
from mend_server.feed import ChangeFeed
from mend_server.server import MendServer
from tests.conftest import make_settings
from tests.test_work_queue import RESULT, SPEC
from tests.workers import eventually

P = 12
PARTS = Partitions(P)

RETENTION = {"retention_completed_seconds": 3600, "retention_failed_seconds": 3600}


class Stack:
    def __init__(self, redis_server: RedisServer, quota: Quota | None = None) -> None:
        self.redis = connect(redis_server.url, shared=False)
        self.store = JobStore(
            self.redis, PARTS, worker_liveness_seconds=30, quota=quota or Quota(), **RETENTION
        )
        self.queue = WorkQueue(self.redis, PARTS, lease_seconds=30, **RETENTION)


@pytest.fixture
async def stack(redis_server: RedisServer, redis_client) -> AsyncIterator[Stack]:
    parts = Stack(redis_server)
    yield parts
    await parts.redis.aclose()


def test_tags_are_fixed_and_spread_evenly_over_masters() -> None:
    # The tags name every key of a deployment: they must never change for a given P.
    assert partition_tags(1) == ("jobs",)
    assert partition_tags(12) == (
        "p00.62", "p01.32", "p02.60", "p03.13", "p04.23", "p05.1",
        "p06.48", "p07.14", "p08.2", "p09.62", "p10.23", "p11.60",
    )
    slots = [key_slot(tag.encode()) for tag in partition_tags(12)]
    for masters in (2, 3, 4, 6):
        # `redis-cli --cluster create` gives each master an equal, contiguous slot range.
        per_master = Counter(slot * masters // 16384 for slot in slots)
        assert sorted(per_master.values()) == [12 // masters] * masters


def test_a_job_id_is_a_uuid4_naming_its_partition() -> None:
    for partition in range(P):
        for _ in range(20):
            job_id = PARTS.new_job_id(partition)
            assert uuid.UUID(job_id).version == 4
            assert PARTS.of_job(job_id) == PARTS.of_job(job_id.upper()) == partition


async def test_jobs_spread_over_every_partition(stack: Stack, redis_client) -> None:
    ids = [s.job_id for s in await stack.store.submit("acme", [SPEC] * 240)]
    per_partition = Counter(PARTS.of_job(job_id) for job_id in ids)
    assert set(per_partition) == set(range(P))
    for job_id in ids:  # each job's keys are its partition's
        assert redis_client.exists(PARTS.job_keys(job_id).job(job_id))
    assert redis_client.keys("mend:{jobs}:job:*") == []


async def test_a_batch_lives_in_one_partition(stack: Stack, redis_client) -> None:
    for n in range(6):
        batch = Batch(f"b{n}", fail_fast=False)
        ids = [s.job_id for s in await stack.store.submit("acme", [SPEC] * 5, batch)]
        partition = PARTS.of_batch("acme", batch.id)
        assert {PARTS.of_job(job_id) for job_id in ids} == {partition}
        assert redis_client.zcard(PARTS[partition].batch_jobs("acme", batch.id)) == 5
        assert await stack.store.batch("acme", batch.id) is not None


async def test_request_ids_replay_across_partitions(stack: Stack) -> None:
    specs = [replace(SPEC, request_id=f"order-{n}") for n in range(60)]
    first = [s.job_id for s in await stack.store.submit("acme", specs)]
    assert len({PARTS.of_job(job_id) for job_id in first}) > 1
    again = await stack.store.submit("acme", specs)
    assert [s.job_id for s in again] == first and not any(s.created for s in again)
    # Another tenant's request ids are its own.
    theirs = await stack.store.submit("globex", specs[:5])
    assert all(s.created for s in theirs)


async def test_a_batch_and_single_jobs_share_request_ids_across_partitions(
    stack: Stack,
) -> None:
    batch = Batch(id="b-1")
    home = PARTS.of_batch("acme", batch.id)
    # Request ids whose own partition is not the batch's.
    elsewhere = [r for r in (f"r-{n}" for n in range(50)) if PARTS.of_request("acme", r) != home]
    [single] = await stack.store.submit("acme", [replace(SPEC, request_id=elsewhere[0])])
    with pytest.raises(RequestConflict) as refused:
        await stack.store.submit(
            "acme", [SPEC, replace(SPEC, request_id=elsewhere[0])], Batch(id="b-0")
        )
    assert refused.value.conflicts == [(1, single.job_id)]
    # A batch item's request id, used later by a single job: the same request is the
    # batch's job again.
    jobs = await stack.store.submit("acme", [replace(SPEC, request_id=elsewhere[1])], batch)
    [again] = await stack.store.submit("acme", [replace(SPEC, request_id=elsewhere[1])])
    assert again.job_id == jobs[0].job_id and not again.created


async def test_list_pages_over_partitions_under_concurrent_submits(stack: Stack) -> None:
    store = stack.store
    before = [s.job_id for s in await store.submit("acme", [SPEC] * 60)]
    seen: list[str] = []
    cursor: ListCursor | None = None
    while True:
        page = await store.list_jobs(
            "acme", status=None, job_type=None, page_size=7, cursor=cursor
        )
        seen += [job.id for job in page.jobs]
        await store.submit("acme", [SPEC] * 3)  # newer than every page: never listed
        if page.next_cursor is None:
            break
        assert page.next_cursor < (cursor or ListCursor(2**62, 0))
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 60
    assert set(seen) == set(before)
    listed = [await store.get("acme", job_id) for job_id in seen]
    created = [job.created_at_ms for job in listed]
    assert created == sorted(created, reverse=True)


async def test_purge_pages_over_partitions_oldest_first(stack: Stack, redis_client) -> None:
    store = stack.store

    order: dict[str, tuple[int, int]] = {}  # job id -> (seq, partition)

    async def cancelled(n: int) -> list[str]:
        ids = [s.job_id for s in await store.submit("acme", [SPEC] * n)]
        for job_id in ids:
            await store.cancel("acme", job_id)
            index = PARTS.job_keys(job_id).index("acme", "all")
            order[job_id] = (int(redis_client.zscore(index, job_id)), PARTS.of_job(job_id))
        return ids

    finished = await cancelled(40)
    assert len({PARTS.of_job(job_id) for job_id in finished}) > 1
    match = PurgeFilter((JobStatus.CANCELLED,))
    purged: list[str] = []
    cursor: ListCursor | None = None
    for page in range(100):
        done = await store.purge(["acme"], match, dry_run=False, page_size=7, cursor=cursor)
        purged += done.job_ids
        if done.next_cursor is None:
            break
        if page < 3:  # newer than every page so far: a later page purges them
            finished += await cancelled(2)
        cursor = done.next_cursor
    # Each job once, none skipped although every page deleted what it looked at, oldest
    # first by (seq, partition) across the partitions.
    assert len(purged) == len(set(purged)) and set(purged) == set(finished)
    assert purged == sorted(purged, key=order.__getitem__)


async def test_queue_position_counts_every_partition(stack: Stack) -> None:
    store = stack.store
    # Three jobs in one partition, one in another (batches choose their partition).
    names = iter(f"b{n}" for n in range(1000))
    first = next(names)
    second = next(n for n in names if PARTS.of_batch("acme", n) != PARTS.of_batch("acme", first))
    a = [s.job_id for s in await store.submit("acme", [SPEC] * 3, Batch(first, False))]
    [b] = [s.job_id for s in await store.submit("acme", [SPEC], Batch(second, False))]
    # Workers take turns between the partitions: before a[k], k jobs of its own and up to
    # k of the other's.
    positions = [(await store.get("acme", job_id)).queue_position for job_id in [*a, b]]
    assert positions == [1, 3, 4, 1]


async def test_a_worker_drains_every_partition_none_starved(stack: Stack) -> None:
    store, queue = stack.store, stack.queue
    flood_batch = "flood"
    flooded = PARTS.of_batch("acme", flood_batch)
    flood = {s.job_id for s in await store.submit("acme", [SPEC] * 60, Batch(flood_batch, False))}
    # Then one job in every other partition.
    singles: dict[int, str] = {}
    for n in range(10_000):
        partition = PARTS.of_batch("acme", f"s{n}")
        if partition != flooded and partition not in singles:
            [s] = await store.submit("acme", [SPEC], Batch(f"s{n}", False))
            singles[partition] = s.job_id
        if len(singles) == P - 1:
            break
    order: list[str] = []
    lease = await queue.claim("w1")
    while lease is not None:
        order.append(lease.job_id)
        _, lease = await queue.complete_and_claim(lease, RESULT, "w1")
        if lease is None:
            lease = await queue.claim("w1")
    assert sorted(order) == sorted(flood | set(singles.values()))
    # Every other partition's job came before the flood had taken more than STAY turns.
    last_single = max(order.index(job_id) for job_id in singles.values())
    assert last_single < STAY + P


async def test_an_idle_worker_claims_from_the_partition_a_token_names(stack: Stack) -> None:
    store, queue = stack.store, stack.queue
    assert await queue.claim("w1") is None  # idle: the wake list is empty
    waiting = asyncio.create_task(queue.wait_for_work(5))
    [submitted] = await store.submit("acme", [SPEC])
    await asyncio.wait_for(waiting, 5)
    lease = await queue.claim("w1")
    assert lease is not None and lease.job_id == submitted.job_id


async def test_a_watcher_is_woken_through_its_partitions_sharded_channel(
    stack: Stack, redis_client
) -> None:
    feed = ChangeFeed(stack.redis, PARTS, linger_seconds=0.1)
    await feed.start()
    try:
        [submitted] = await stack.store.submit("acme", [SPEC])
        job_id = submitted.job_id
        partition = PARTS.of_job(job_id)
        channel = PARTS[partition].changes_channel

        def subscribers() -> int:
            return int(redis_client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])

        with feed.listen(job_id) as watch:
            await eventually(lambda: subscribers() == 1, "the partition's subscription")
            assert partition in feed.subscribed_partitions
            watch.clear()
            await stack.store.cancel("acme", job_id)
            assert await watch.wait(5)
        if partition != 0:  # partition 0's channel stays subscribed
            await eventually(lambda: subscribers() == 0, "the partition to be unsubscribed")
            assert partition not in feed.subscribed_partitions
        # Nothing listens on the old, unsharded channel (the feed subscribes sharded).
        assert redis_client.pubsub_numsub("mend:{jobs}:changes") == [("mend:{jobs}:changes", 0)]
    finally:
        await feed.close()


async def test_going_idle_after_a_completion_scans_once_after_dropping_the_tokens(
    stack: Stack, redis_client
) -> None:
    """The completion that finds no next job scans every partition with it; the claim that
    follows drops the wake tokens and scans again (no job queued meanwhile goes unseen),
    with no scan of its own before: two scans in all, not three."""
    store, queue = stack.store, stack.queue

    def zcards() -> int:
        return int(redis_client.info("commandstats").get("cmdstat_zcard", {}).get("calls", 0))

    await store.submit("acme", [SPEC])
    lease = await queue.claim("w1")
    assert lease is not None
    before = zcards()
    assert await queue.complete_and_claim(lease, RESULT, "w1") == (True, None)
    assert await queue.claim("w1") is None
    # A scan is P ZCARDs; the scripts' own (the count left in a queue) are a few more.
    assert (zcards() - before) // P == 2
    assert redis_client.llen(PARTS.wake) == 0
    # A job queued now is found as before: its token wakes the idle worker.
    [submitted] = await store.submit("acme", [SPEC])
    await queue.wait_for_work(5)
    lease = await queue.claim("w1")
    assert lease is not None and lease.job_id == submitted.job_id


async def test_a_partition_stays_subscribed_a_while_after_its_last_watcher(
    stack: Stack, redis_client
) -> None:
    """A watcher arriving during the linger finds the subscription in place (no SSUBSCRIBE,
    no confirmation to wait for) and is woken by its job's changes; after the linger the
    channel is unsubscribed."""
    feed = ChangeFeed(stack.redis, PARTS, linger_seconds=30)
    await feed.start()

    def ssubscribes() -> int:
        stats = redis_client.info("commandstats").get("cmdstat_ssubscribe", {})
        return int(stats.get("calls", 0))

    try:
        [first] = await stack.store.submit("acme", [SPEC])
        partition = PARTS.of_job(first.job_id)
        channel = PARTS[partition].changes_channel

        def subscribers() -> int:
            return int(redis_client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])

        with feed.listen(first.job_id):
            await eventually(lambda: subscribers() == 1, "the partition's subscription")
        assert partition in feed.subscribed_partitions and subscribers() == 1
        # Another job of the same partition, watched during the linger.
        [second] = await stack.store.submit("acme", [SPEC])
        while PARTS.of_job(second.job_id) != partition:
            [second] = await stack.store.submit("acme", [SPEC])
        before = ssubscribes()
        with feed.listen(second.job_id) as watch:
            watch.clear()
            await stack.store.cancel("acme", second.job_id)
            assert await watch.wait(5)
        assert ssubscribes() == before
        assert subscribers() == 1
    finally:
        await feed.close()
    short = ChangeFeed(stack.redis, PARTS, linger_seconds=0.1)
    await short.start()
    try:
        with short.listen(first.job_id):
            await eventually(lambda: subscribers() == 1, "the partition's subscription")
        await eventually(lambda: subscribers() == 0, "the partition to be unsubscribed")
        assert partition not in short.subscribed_partitions
    finally:
        await short.close()


async def test_quotas_hold_across_partitions(redis_server: RedisServer, redis_client) -> None:
    stack = Stack(redis_server, Quota(max_pending=5))
    try:
        await stack.store.submit("acme", [SPEC] * 5)  # spread over partitions
        with pytest.raises(QuotaExceeded) as refused:
            await stack.store.submit("acme", [SPEC])
        assert refused.value.quota == "pending"
    finally:
        await stack.redis.aclose()
    redis_client.flushall()
    stack = Stack(redis_server, Quota(max_pending=3, submit_rate=0.001, submit_burst=4))
    try:
        await stack.store.submit("acme", [SPEC] * 3)
        # Refused for pending jobs: the rate tokens it took are given back.
        with pytest.raises(QuotaExceeded):
            await stack.store.submit("acme", [SPEC])
        lease = await stack.queue.claim("w1")
        assert lease is not None and await stack.queue.complete(lease, RESULT)
        await stack.store.submit("acme", [SPEC])  # the 4th token
        lease = await stack.queue.claim("w1")
        assert lease is not None and await stack.queue.complete(lease, RESULT)
        with pytest.raises(QuotaExceeded) as refused:
            await stack.store.submit("acme", [SPEC])
        assert refused.value.quota == "rate"
    finally:
        await stack.redis.aclose()


async def test_a_process_with_another_partition_count_refuses_to_start(
    redis_server: RedisServer, redis_client
) -> None:
    redis = connect(redis_server.url, shared=False)
    try:
        await Partitions(12).claim(redis)
        await Partitions(12).claim(redis)  # the same count: fine
        with pytest.raises(PartitionsMismatch, match="MEND_PARTITIONS=16.*12 partitions"):
            await Partitions(16).claim(redis)
    finally:
        await redis.aclose()
    server = MendServer(make_settings(redis_server.url, partitions=16))
    with pytest.raises(PartitionsMismatch):
        await server.start()
    await server.stop(grace=0)
