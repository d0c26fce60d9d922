"""The job state machine's own promises against a real Redis: every key its scripts and
classes write is named in the one key table (keys.KEYS), every Lua script is a named
transition, and the reads Mend makes for itself (webhook payloads) go through JobStore."""

from __future__ import annotations

import functools
import re
import string
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

import mend_core.jobstate
from mend_core.errors import JobNotFound, NotReplicated
from mend_core.job import Batch, JobStatus
from mend_core.jobstate import activity
from mend_core.jobstate.encoding import full_names
from mend_core.jobstate.keys import KEYS, Keys
from mend_core.jobstate.partitions import GLOBAL_KEYS, GLOBAL_PREFIX, Partitions
from mend_core.jobstate.queue import WorkQueue
from mend_core.jobstate.scripts import TRANSITIONS
from mend_core.jobstate.store import BatchCounts, JobStore, PurgeFilter, Quota
from mend_core.jobstate.webhook_queue import WebhookQueue
from mend_core.redis_client import connect
from mend_devkit.redis_server import RedisServer
from tests.test_work_queue import RESULT
from tests.test_work_queue import SPEC as JOB

SPEC = replace(JOB, webhook_url="http://hooks.example/")
LUA = Path(mend_core.jobstate.__file__).with_name("lua")
SENTINEL = "test:end"


class Parts:
    def __init__(self, redis_server: RedisServer) -> None:
        self.redis = connect(redis_server.url, shared=False)
        keys = Keys()
        store = functools.partial(
            JobStore,
            self.redis,
            Partitions(1),
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
            worker_liveness_seconds=30,
        )
        self.store = store(quota=Quota(max_pending=100, submit_rate=1000))  # (rate bucket)
        self.queue = WorkQueue(
            self.redis,
            Partitions(1),
            lease_seconds=30,
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
        )
        self.webhooks = WebhookQueue(self.redis, keys, dead_retention_seconds=3600)
        # Its writes wait for a replica this Redis does not have (MEND_SUBMIT_REPLICAS).
        self.replicated = store(replicas=1, replicas_timeout_seconds=0.01)


@pytest.fixture
async def parts(redis_server: RedisServer, redis_client) -> AsyncIterator[Parts]:
    parts = Parts(redis_server)
    yield parts
    await parts.redis.aclose()


async def workout(p: Parts) -> None:
    """Every transition at least once: submit (with a request_id, and a fail_fast batch),
    claim, heartbeat, progress, complete, retry, reap, release, fail, cancel; the worker
    registry; a webhook delivered, retried, promoted and dead-lettered; and a delayed job
    cancelled, requeued (RetryJob), deleted and purged."""
    store, queue, hooks = p.store, p.queue, p.webhooks
    await queue.register_worker("w1")
    await store.submit("acme", [replace(SPEC, request_id="r1")])
    lease = await queue.claim("w1")
    assert lease is not None
    assert await queue.heartbeat(lease) and await queue.progress(lease, 50, "half")
    assert await queue.complete(lease, RESULT)
    batch = Batch("b1", fail_fast=True, webhook_url="http://hooks.example/batch")
    await store.submit("acme", [replace(SPEC, batch_id="b1")] * 2, batch)
    lease = await queue.claim("w1")
    assert lease is not None and await queue.retry(lease, "transient", 0)
    assert (await queue.reap()).promoted == 1
    lease = await queue.claim("w1")
    assert lease is not None and await queue.release(lease)
    lease = await queue.claim("w1")
    assert lease is not None and await queue.fail(lease, "bad")  # cancels its sibling
    (pending,) = await store.submit("acme", [SPEC])
    await store.cancel("acme", pending.job_id)
    await store.get("acme", pending.job_id)
    await store.stats("acme", all_tenants=True)
    await queue.unregister_worker("w1")
    with pytest.raises(NotReplicated):  # it writes the replication barrier, then WAITs
        await p.replicated.cancel("acme", "no-such-job")

    await hooks.create_group()
    first, *rest = await hooks.take("c1", 10, block_ms=0, claim_idle_ms=60_000)
    assert len(rest) == 2  # job.completed, job.failed, batch.completed
    await hooks.delivered(first)
    assert await hooks.retry_later(rest[0], 0, "{}")
    assert (await hooks.promote(10))[0] == 1
    assert await hooks.bury(rest[1], "gone", None)
    assert await hooks.replay([letter.id for letter in await hooks.dead_letters()])

    (later,) = await store.submit("acme", [replace(JOB, delay_ms=60_000)])
    await store.cancel("acme", later.job_id)
    await store.retry("acme", later.job_id)
    await store.cancel("acme", later.job_id)
    await store.delete("acme", later.job_id)
    finished = PurgeFilter(tuple(s for s in JobStatus if s.terminal))
    purged = await store.purge(["acme"], finished, dry_run=False, page_size=100, cursor=None)
    assert purged.job_ids and purged.next_cursor is None


def _pattern(template: str) -> str:
    parts = string.Formatter().parse(template)
    return "".join(re.escape(lit) + (".+" if field else "") for lit, field, _, _ in parts)


async def test_every_key_written_is_in_the_key_table(parts: Parts, redis_client) -> None:
    # Keyspace notifications name every key a command writes, transient ones included
    # (an emptied queue or a wake list no longer exists by the end).
    redis_client.config_set("notify-keyspace-events", "KA")
    pubsub = redis_client.pubsub()
    try:
        pubsub.psubscribe("__keyspace@*__:*")
        pubsub.get_message(timeout=5)  # the subscription's confirmation
        await workout(parts)
        redis_client.set(SENTINEL, "1")
        written: set[str] = set()
        while (message := pubsub.get_message(timeout=5)) is not None:
            key = message["channel"].split(":", 1)[1]
            if key == SENTINEL:
                break
            written.add(key)
        else:
            pytest.fail("the keyspace notifications stopped before the sentinel")
    finally:
        pubsub.close()
        redis_client.config_set("notify-keyspace-events", "")

    prefix = Keys().prefix
    patterns = {
        name: re.compile(re.escape(prefix) + _pattern(template))
        for name, (template, kind, _) in KEYS.items()
        if kind != "sharded channel"
    }
    # With one partition, the keys outside partitions share its prefix.
    patterns |= {
        name: re.compile(re.escape(GLOBAL_PREFIX) + _pattern(key))
        for name, (key, _, _) in GLOBAL_KEYS.items()
        if name != "partitions"  # written by the processes at start, not by these calls
    }
    unnamed = sorted(k for k in written if not any(p.fullmatch(k) for p in patterns.values()))
    assert unnamed == []
    unused = sorted(n for n, p in patterns.items() if not any(p.fullmatch(k) for k in written))
    assert unused == []


def test_lua_builds_no_key_name_of_its_own() -> None:
    # Scripts reach keys only through the generated names (QUEUE, job_key(id), ...); the
    # prefix is theirs only through those.
    for path in LUA.glob("*.lua"):
        assert "PREFIX" not in path.read_text(), path.name


def test_every_script_is_a_named_transition() -> None:
    scripts = {path.stem for path in LUA.glob("*.lua") if not path.stem.startswith("_")}
    assert scripts == set(TRANSITIONS)


async def test_reads_for_webhook_payloads(parts: Parts) -> None:
    store, queue = parts.store, parts.queue
    ids = await store.submit("acme", [replace(SPEC, batch_id="b1")] * 2, Batch("b1", True))
    lease = await queue.claim("w1")
    assert lease is not None and await queue.fail(lease, "bad")

    job = await store.find(ids[0].job_id)  # any tenant's: no tenant given
    assert job is not None and job.status is JobStatus.FAILED and job.error == "bad"
    assert await store.batch("acme", "b1") == BatchCounts(2, 0, 1, 1)
    assert await store.batch("globex", "b1") is None
    assert await store.find("no-such-job") is None


def test_the_readme_lists_the_key_table() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Redis keys", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, re.MULTILINE)
    listed = {key: kind.strip() for key, kind in rows}
    table = {re.sub(r"\{(\w+)\}", r"<\1>", t): kind for t, kind, _ in KEYS.values()}
    table |= {key: kind for key, kind, _ in GLOBAL_KEYS.values()}
    assert listed == table


def _as_stored_before(redis_client, key: str, job_id: str) -> dict[str, str]:
    """Rewrites a job's hash as Mend stored it before the short names (encoding.FIELDS):
    full names and an `id` field; its TTL kept. Returns the hash as now stored."""
    ttl = redis_client.pttl(key)
    before = full_names(redis_client.hgetall(key)) | {"id": job_id}
    redis_client.delete(key)
    redis_client.hset(key, mapping=before)
    if ttl > 0:
        redis_client.pexpire(key, ttl)
    return before


async def test_jobs_stored_under_the_full_field_names_read_and_change_as_before(
    parts: Parts, redis_client
) -> None:
    # Jobs in a deployment's Redis from before the short names: every read takes them as
    # they are, and the first change stores them under the short names.
    store, queue, keys = parts.store, parts.queue, Keys()
    (done_job, running_job) = await store.submit("acme", [SPEC, JOB])
    lease = await queue.claim("w1")
    assert lease is not None and lease.job_id == done_job.job_id
    assert await queue.complete(lease, RESULT)
    finished = await store.get("acme", done_job.job_id)
    pending = await store.get("acme", running_job.job_id)

    done_key, running_key = keys.job(done_job.job_id), keys.job(running_job.job_id)
    _as_stored_before(redis_client, done_key, done_job.job_id)
    stored = _as_stored_before(redis_client, running_key, running_job.job_id)
    assert "status" in redis_client.hgetall(running_key)
    assert redis_client.pttl(done_key) > 0

    assert await store.get("acme", done_job.job_id) == finished
    assert await store.find(done_job.job_id) == finished
    assert await store.tenants_of([done_job.job_id, "no-such-job"]) == ["acme", None]
    assert await store.get("acme", running_job.job_id) == pending
    page = await store.list_jobs("acme", status=None, job_type=None, page_size=10, cursor=None)
    assert [j.id for j in page.jobs] == [running_job.job_id, done_job.job_id]
    assert page.jobs[1] == replace(finished, queue_position=None, estimated_wait_seconds=None)
    with pytest.raises(JobNotFound):
        await store.get("globex", done_job.job_id)

    # The pending one runs: claimed (its queue's entry read its type), it is renamed.
    lease = await queue.claim("w1")
    assert lease is not None and lease.job_id == running_job.job_id
    assert lease.job.spec == pending.spec and lease.job.attempt == 1
    renamed = redis_client.hgetall(running_key)
    assert not set(renamed) & (set(stored) - {"result"})  # no full name, no `id` left
    assert full_names(renamed)["source_key"] == stored["source_key"]
    # Running under the full names (a job claimed before the upgrade): the overview shows it.
    _as_stored_before(redis_client, running_key, running_job.job_id)
    await queue.register_worker("w1")
    now_ms = int(time.time() * 1000)
    shown = await activity.read(
        parts.redis, Partitions(1), now_ms=now_ms, liveness_ms=60_000, tenant="acme"
    )
    assert [(w.worker_id, w.job_id) for w in shown.workers] == [("w1", running_job.job_id)]
    assert await queue.progress(lease, 40, "on")
    assert await queue.complete(lease, RESULT)
    states = await store.events(running_job.job_id, pending.version)
    assert [(s.version, s.status) for s in states] == [
        (pending.version + 1, JobStatus.PROCESSING),
        (pending.version + 2, JobStatus.PROCESSING),
        (pending.version + 3, JobStatus.COMPLETED),
    ]
    assert states[-1].spec == pending.spec and states[-1].result == finished.result
