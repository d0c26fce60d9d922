"""WorkQueue: the worker's side of the job store. Claims jobs under a lease, keeps the
lease alive, and makes each transition with a Lua script that first checks the caller
still holds the lease (its fence token), so a worker that lost a job cannot touch it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from mend_core.job import Job, JobResult
from mend_core.jobstate.encoding import job_from_fields, pairs, result_fields
from mend_core.jobstate.keys import Keys
from mend_core.jobstate.scripts import Scripts
from mend_core.settings import Settings


@dataclass(frozen=True)
class Lease:
    job: Job
    fence: int

    @property
    def job_id(self) -> str:
        return self.job.id


@dataclass(frozen=True)
class Reaped:
    requeued: int
    failed: int
    promoted: int
    # Until the next scheduled job (a retry or a delayed job) is due; None: none is.
    next_due_seconds: float | None = None


def _lease(flat: list[str] | None) -> Lease | None:
    if not flat:
        return None
    job = job_from_fields(pairs(flat))
    return Lease(job=job, fence=job.fence)


class WorkQueue:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        lease_seconds: float,
        retention_completed_seconds: int,
        retention_failed_seconds: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis, keys)
        self._lease_ms = int(lease_seconds * 1000)
        self._completed_ttl_ms = retention_completed_seconds * 1000
        self._failed_ttl_ms = retention_failed_seconds * 1000

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> WorkQueue:
        """The queue as every worker process (and the worker health probe) uses it."""
        return cls(
            redis,
            Keys(),
            lease_seconds=settings.lease_seconds,
            retention_completed_seconds=settings.retention_completed_seconds,
            retention_failed_seconds=settings.retention_failed_seconds,
        )

    async def claim(self, worker_id: str) -> Lease | None:
        """Leases the first pending job (highest priority, then oldest), or None."""
        return _lease(await self._scripts("claim", worker_id, self._lease_ms))

    async def wait_for_work(self, block_seconds: float) -> None:
        """Blocks until a job may have been enqueued (or block_seconds elapse): idle workers
        sleep in Redis, not in a polling loop."""
        await self._redis.blpop([self._keys.wake], timeout=block_seconds)  # type: ignore[misc]

    async def wait_for_schedule(self, block_seconds: float) -> bool:
        """Blocks until a job was scheduled (or block_seconds elapse); True when one was.
        Housekeeping then reaps again, which learns the earliest due time of every job
        scheduled so far: the tokens left are spent with this one (a worker starting after
        a burst of delayed submits wakes once, not once per job)."""
        key = self._keys.schedule_wake
        woken = await self._redis.blpop([key], timeout=block_seconds)  # type: ignore[misc]
        if woken is None:
            return False
        await self._redis.delete(key)
        return True

    async def heartbeat(self, lease: Lease) -> bool:
        """Extends the lease; False means it is lost (cancelled, reaped, timed out)."""
        return bool(await self._call("heartbeat", lease, self._lease_ms))

    async def progress(self, lease: Lease, percent: int, message: str) -> bool:
        return bool(await self._call("progress", lease, percent, message))

    async def complete(self, lease: Lease, result: JobResult) -> bool:
        out = await self._call(
            "complete",
            lease,
            json.dumps(result_fields(result)),
            result.duration,
            self._completed_ttl_ms,
        )
        return out[0] == 1

    async def complete_and_claim(
        self, lease: Lease, result: JobResult, worker_id: str
    ) -> tuple[bool, Lease | None]:
        """Completes the job and leases the next one in the same round trip."""
        out = await self._call(
            "complete",
            lease,
            json.dumps(result_fields(result)),
            result.duration,
            self._completed_ttl_ms,
            worker_id,
            self._lease_ms,
        )
        return out[0] == 1, _lease(out[1]) if len(out) > 1 else None

    async def fail(self, lease: Lease, error: str) -> bool:
        return bool(await self._call("fail", lease, error, self._failed_ttl_ms))

    async def retry(self, lease: Lease, error: str, delay_seconds: float) -> bool:
        return bool(await self._call("retry", lease, error, int(delay_seconds * 1000)))

    async def release(self, lease: Lease) -> bool:
        """Gives an unfinished job back to the queue at once (worker shutting down)."""
        return bool(await self._call("release", lease))

    async def reap(self, limit: int = 100) -> Reaped:
        requeued, failed, promoted, next_due_ms = (
            int(n) for n in await self._scripts("reap", self._failed_ttl_ms, limit)
        )
        next_due = next_due_ms / 1000 if next_due_ms >= 0 else None
        return Reaped(requeued, failed, promoted, next_due)

    async def register_worker(self, worker_id: str) -> None:
        await self._redis.zadd(self._keys.workers, {worker_id: int(time.time() * 1000)})

    async def unregister_worker(self, worker_id: str) -> None:
        await self._redis.zrem(self._keys.workers, worker_id)

    async def live_workers(self, within_seconds: float) -> list[str]:
        """The workers that registered within the last `within_seconds`."""
        since = int((time.time() - within_seconds) * 1000)
        return list(await self._redis.zrangebyscore(self._keys.workers, since, "+inf"))

    async def _call(self, script: str, lease: Lease, *args: object) -> Any:
        return await self._scripts(script, lease.job_id, lease.fence, *args)
