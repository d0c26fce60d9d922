"""Coalesced round trips (mend_core/jobstate/coalesce.py) on a real redis-server: concurrent
submits and gets share round trips, a lone call goes at once, each caller gets exactly its
own answer (quota refusals, request conflicts, other tenants' jobs) and a Redis failure
reaches every caller waiting on it while nothing acknowledged is lost.

Round trips are counted by Redis itself: `total_reads_processed` (INFO stats) grows by one
per read of a connection's socket, so by one per round trip of a small pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis

from mend_core.errors import JobNotFound, QuotaExceeded, RequestConflict
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.store import JobStore, Quota, Submitted
from mend_core.operations.image_resize import ResizeParams
from mend_core.redis_client import connect
from mend_devkit.redis_server import RedisServer
from tests.test_work_queue import SPEC

RETENTION = {"retention_completed_seconds": 3600, "retention_failed_seconds": 3600}
CALLERS = 50


def make_store(url: str, partitions: int = 12, quota: Quota | None = None) -> JobStore:
    # The server's client: a shared, bounded pool, where concurrent calls each take a
    # connection of their own unless they share a round trip.
    return JobStore(
        connect(url), Partitions(partitions), worker_liveness_seconds=30, quota=quota or Quota(),
        **RETENTION,
    )


@pytest.fixture
async def store(redis_server: RedisServer, redis_client) -> AsyncIterator[JobStore]:
    store = make_store(redis_server.url)
    yield store
    await store._redis.aclose()


class Reads:
    """Redis's count of socket reads (one per round trip) and of EVALSHA calls."""

    def __init__(self, server: RedisServer) -> None:
        self._client = server.client()
        self._reads0, self._evalsha0 = self._now()

    def _now(self) -> tuple[int, int]:
        info = self._client.info("everything")
        return int(info["total_reads_processed"]), int(info["cmdstat_evalsha"]["calls"])

    def since(self) -> tuple[int, int]:
        """(reads, EVALSHA calls) since start, less the read of this INFO."""
        reads, calls = self._now()
        self._client.close()
        return reads - self._reads0 - 1, calls - self._evalsha0


async def test_concurrent_submits_share_round_trips(store, redis_server) -> None:
    await store.submit("acme", [SPEC])  # the pool's first connection, and EVALSHA counted
    reads = Reads(redis_server)
    submitted = await asyncio.gather(*(store.submit("acme", [SPEC]) for _ in range(CALLERS)))
    trips, scripts = reads.since()
    # Alone each submit is a round trip of its own (its script).
    assert trips <= CALLERS // 4, trips
    assert scripts == CALLERS  # each caller's script ran once: none lost, none twice
    ids = {done.job_id for [done] in submitted}
    assert len(ids) == CALLERS and all(done.created for [done] in submitted)
    jobs = await asyncio.gather(*(store.get("acme", job_id) for job_id in ids))
    assert {job.id for job in jobs} == ids


async def test_concurrent_gets_share_round_trips(store, redis_server) -> None:
    ids = [done.job_id for done in await store.submit("acme", [SPEC] * CALLERS)]
    reads = Reads(redis_server)
    jobs = await asyncio.gather(*(store.get("acme", job_id) for job_id in ids))
    trips, scripts = reads.since()
    assert trips <= CALLERS // 4, trips
    assert scripts == CALLERS
    assert [job.id for job in jobs] == ids  # each caller its own job


async def test_a_lone_call_goes_at_once_alone(store, redis_server) -> None:
    [done] = await store.submit("acme", [SPEC])
    reads = Reads(redis_server)
    for _ in range(3):  # one after another: nothing in flight, nothing to wait for
        await store.get("acme", done.job_id)
    assert reads.since() == (3, 3)


async def test_each_caller_gets_its_own_answer(redis_server: RedisServer, redis_client) -> None:
    # One partition: the pending limit is checked atomically, so exactly who is refused
    # does not depend on timing. acme is at its limit, globex is not.
    limit = CALLERS + 2
    store = make_store(redis_server.url, partitions=1, quota=Quota(max_pending=limit))
    other = dataclasses.replace(SPEC, params=ResizeParams(width=9))
    [[first], [original]] = [
        await store.submit("acme", [SPEC]),
        await store.submit("acme", [dataclasses.replace(SPEC, request_id="order-1")]),
    ]
    await store.submit("acme", [SPEC] * (limit - 2))
    calls = {
        "acme over quota": store.submit("acme", [SPEC]),
        "acme replay": store.submit("acme", [dataclasses.replace(SPEC, request_id="order-1")]),
        "acme conflict": store.submit("acme", [dataclasses.replace(other, request_id="order-1")]),
        "globex same request_id": store.submit(
            "globex", [dataclasses.replace(SPEC, request_id="order-1")]
        ),
        "acme reads its job": store.get("acme", first.job_id),
        "globex reads acme's job": store.get("globex", first.job_id),
        **{f"globex {i}": store.submit("globex", [SPEC]) for i in range(CALLERS)},
    }
    trips = store._trips.trips
    outcomes = dict(
        zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True)
    )
    assert store._trips.trips - trips < len(calls) // 4  # they did go together

    refused = outcomes.pop("acme over quota")
    assert isinstance(refused, QuotaExceeded) and refused.quota == "pending"
    assert outcomes.pop("acme replay") == [Submitted(original.job_id, created=False)]
    conflict = outcomes.pop("acme conflict")
    assert isinstance(conflict, RequestConflict)
    assert conflict.conflicts == [(0, original.job_id)]
    [mine] = outcomes.pop("globex same request_id")
    assert mine.created and mine.job_id != original.job_id
    job = outcomes.pop("acme reads its job")
    assert job.id == first.job_id and job.tenant == "acme"
    assert isinstance(outcomes.pop("globex reads acme's job"), JobNotFound)
    ids = set()
    for name, outcome in outcomes.items():  # globex's own submits, untouched by acme's
        assert isinstance(outcome, list), (name, outcome)
        [done] = outcome
        assert done.created
        ids.add(done.job_id)
    assert len(ids) == CALLERS
    for job in await asyncio.gather(*(store.get("globex", job_id) for job_id in ids)):
        assert job.tenant == "globex"
    await store._redis.aclose()


async def test_a_redis_failure_reaches_every_waiting_caller() -> None:
    server = RedisServer()
    try:
        with server.client() as client:
            client.config_set("appendfsync", "always")  # what Redis answered, it keeps
        store = make_store(server.url)
        answered: list[str] = []
        failed: list[Exception] = []

        async def submitter() -> None:
            # Submits until Redis fails it: a caller whose round trip was in flight at the
            # kill, and one waiting for the next, must both hear of it.
            while True:
                try:
                    [done] = await store.submit("acme", [SPEC])
                except redis.RedisError as exc:
                    failed.append(exc)
                    return
                answered.append(done.job_id)

        callers = [asyncio.create_task(submitter()) for _ in range(CALLERS)]
        while len(answered) < 5 * CALLERS:
            await asyncio.sleep(0.01)
        server.kill()  # with round trips in flight and callers waiting for the next
        # Every caller hears back: none waits forever for a round trip that failed.
        await asyncio.wait_for(asyncio.gather(*callers), timeout=60)
        assert len(failed) == CALLERS
        assert all(isinstance(e, redis.ConnectionError) for e in failed), failed
        server.restart()
        # Every submit that was answered is in Redis.
        jobs = await asyncio.gather(*(store.get("acme", job_id) for job_id in answered))
        assert [job.id for job in jobs] == answered
        await store._redis.aclose()
    finally:
        server.stop()
