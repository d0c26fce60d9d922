"""JobStore: the client-facing operations on jobs in Redis (submit, read, list, cancel,
statistics, event log). Knows nothing of gRPC or HTTP."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

from mend_core.errors import (
    BatchExists,
    JobFinished,
    JobNotFound,
    QuotaExceeded,
    RequestConflict,
)
from mend_core.job import Batch, Job, JobSpec, JobStatus, new_job_id
from mend_core.jobstate.encoding import fingerprint, job_from_fields, pairs, spec_fields
from mend_core.jobstate.estimate import Ahead, SlotTimes, pending_mix, slot_averages, wait_seconds
from mend_core.jobstate.keys import Keys
from mend_core.jobstate.scripts import Scripts
from mend_core.operations import job_types

_STATUSES = tuple(s.value for s in JobStatus)


@dataclass(frozen=True)
class Quota:
    """Every tenant's limits (0: none): pending jobs, and a token bucket on submitted jobs
    (`submit_rate` per second, up to `submit_burst` at once; 0: one second's worth)."""

    max_pending: int = 0
    submit_rate: float = 0.0
    submit_burst: int = 0

    @property
    def burst(self) -> int:
        return self.submit_burst or max(1, math.ceil(self.submit_rate))

    def describe(self, quota: str) -> str:
        if quota == "pending":
            return f"{self.max_pending} pending jobs"
        return f"{self.submit_rate:g} submitted jobs per second, {self.burst} at once"


@dataclass(frozen=True)
class Submitted:
    job_id: str
    created: bool  # False: a request_id replay returned the original job


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class Stats:
    totals: Counts
    by_type: dict[str, Counts]
    workers: int
    scheduled: int
    # Each tenant's totals; only in the all-tenants view.
    by_tenant: dict[str, Counts] = field(default_factory=dict)


def _counts_by_type(counters: dict[str, str]) -> dict[str, Counts]:
    """Counters named "<type>:<status>" -> Counts per type (other fields are ignored)."""
    per_type: dict[str, dict[str, int]] = {}
    for name, value in counters.items():
        jtype, _, status = name.partition(":")
        if status in _STATUSES:
            per_type.setdefault(jtype, {})[status] = max(int(value), 0)
    return {t: Counts(**c) for t, c in per_type.items()}


def _total(by_type: dict[str, Counts]) -> Counts:
    return Counts(**{s: sum(getattr(c, s) for c in by_type.values()) for s in _STATUSES})


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: int | None


@dataclass(frozen=True)
class BatchCounts:
    """A batch's jobs, and how many of them ended in each terminal state so far."""

    total: int
    completed: int
    failed: int
    cancelled: int


class JobStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        retention_completed_seconds: int,
        retention_failed_seconds: int,
        worker_liveness_seconds: float,
        quota: Quota = Quota(),
    ) -> None:
        self._redis = redis
        self._quota = quota
        self._quota_arg = f"{quota.max_pending} {quota.submit_rate} {quota.burst}"
        self._keys = keys
        self._scripts = Scripts(redis, keys)
        # A request_id keeps answering with its job for as long as the job may live.
        self._request_ttl_ms = max(retention_completed_seconds, retention_failed_seconds) * 1000
        # Cancelled jobs are kept like failed ones.
        self._cancelled_ttl_ms = retention_failed_seconds * 1000
        self._liveness_ms = int(worker_liveness_seconds * 1000)

    async def submit(
        self, tenant: str, specs: list[JobSpec], batch: Batch | None = None
    ) -> list[Submitted]:
        """Stores and enqueues every spec atomically; returns once they are in Redis.
        A spec whose request_id made a job before gives that job back when it is the same
        request; RequestConflict when it is not, or when it is part of a batch."""
        docs = []
        for spec in specs:
            job_id = new_job_id()
            doc = {
                "id": job_id,
                "request_id": spec.request_id,
                "fingerprint": fingerprint(spec) if spec.request_id else "",
                "priority": spec.priority,
                "type": spec.type,
                "fields": spec_fields(spec, job_id, tenant),
            }
            docs.append(json.dumps(doc))
        batch_doc = json.dumps(asdict(batch)) if batch else ""
        out = await self._scripts(
            "submit", tenant, self._request_ttl_ms, batch_doc, self._quota_arg, *docs
        )
        if out and out[0] == "over_quota":
            quota, retry_ms = out[1], int(out[3])
            retry_after = retry_ms / 1000 if retry_ms >= 0 else None
            raise QuotaExceeded(tenant, quota, self._quota.describe(quota), retry_after)
        if out == ["batch_exists"]:
            raise BatchExists(batch.id if batch else "")
        if out and out[0] == "request_conflict":
            pairs = out[1:]
            raise RequestConflict(
                [(int(pairs[i]) - 1, pairs[i + 1]) for i in range(0, len(pairs), 2)]
            )
        return [Submitted(job_id=out[i], created=out[i + 1] == 1) for i in range(0, len(out), 2)]

    async def get(self, tenant: str, job_id: str) -> Job:
        out = await self._scripts("get", job_id, tenant, self._liveness_ms)
        if not out:
            raise JobNotFound(job_id)
        if len(out) == 1:
            return job_from_fields(pairs(out[0]))
        position, queued, due_ms, workers, now_ms, running, ahead, stats = out[1:]
        # A job waiting for a retry backoff joins the end of the queue when it is due.
        position = int(position) + 1 if int(position) >= 0 else int(queued) + 1
        times = SlotTimes(slot_averages(pairs(stats)))
        if ahead and ahead[0][0] == "exact":
            jobs_ahead: list[Ahead] | list[str] = list(ahead[0][1:])
        else:
            jobs_ahead = [Ahead(int(count), pending_mix(pairs(mix))) for count, mix in ahead]
        wait = wait_seconds(
            jobs_ahead,
            [(running[i], (int(now_ms) - int(running[i + 1])) / 1000)
             for i in range(0, len(running), 2)],
            int(workers),
            times,
        )
        if due_ms:
            wait += max(0.0, (float(due_ms) - int(now_ms)) / 1000)
        return job_from_fields(
            pairs(out[0]), queue_position=position, estimated_wait_seconds=round(wait, 3)
        )

    async def list_jobs(
        self,
        tenant: str,
        *,
        status: JobStatus | None,
        job_type: str | None,
        page_size: int,
        cursor: int | None,
    ) -> Page:
        """Newest first, from the per-tenant index of the narrowest filter. The cursor is
        the index score (submission sequence) of the last job returned."""
        if status is not None:
            index, other = self._keys.index(tenant, f"status:{status.value}"), job_type
        elif job_type is not None:
            index, other = self._keys.index(tenant, f"type:{job_type}"), None
        else:
            index, other = self._keys.index(tenant, "all"), None
        jobs: list[Job] = []
        upper = f"({cursor}" if cursor is not None else "+inf"
        batch = page_size if other is None else max(page_size * 2, 50)
        while len(jobs) < page_size:
            entries = await self._redis.zrevrangebyscore(
                index, upper, "-inf", start=0, num=batch, withscores=True
            )
            if not entries:
                return Page(jobs, None)
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, _ in entries:
                    pipe.hgetall(self._keys.job(job_id))
                rows = await pipe.execute()
            for (job_id, score), fields in zip(entries, rows, strict=True):
                upper = f"({int(score)}"
                if not fields:
                    await self._forget(tenant, job_id)  # expired by retention
                    continue
                job = job_from_fields(fields)
                if other is not None and job.spec.type != other:
                    continue
                jobs.append(job)
                if len(jobs) == page_size:
                    more = await self._redis.zcount(index, "-inf", upper)
                    return Page(jobs, int(score) if more else None)
            if len(entries) < batch:
                return Page(jobs, None)
        return Page(jobs, None)

    async def _forget(self, tenant: str, job_id: str) -> None:
        names = ["all", *(f"status:{s.value}" for s in JobStatus)]
        names += [f"type:{t}" for t in job_types()]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrem(self._keys.index(tenant, name), job_id)
            await pipe.execute()

    async def cancel(self, tenant: str, job_id: str) -> Job:
        out = await self._scripts("cancel", job_id, tenant, self._cancelled_ttl_ms)
        code, fields = out[0], pairs(out[1:])
        if code == "not_found":
            raise JobNotFound(job_id)
        job = job_from_fields(fields)
        if code == "finished":
            raise JobFinished(job)
        return job

    async def events(self, job_id: str, after_version: int, count: int = 100) -> list[Job]:
        """The job's recorded states with a version above after_version, oldest first."""
        entries = await self._redis.xrange(
            self._keys.events(job_id), min=f"(0-{after_version}", max="+", count=count
        )
        return [job_from_fields(fields) for _, fields in entries]

    async def find(self, job_id: str) -> Job | None:
        """Any tenant's job, or None once it has expired: for Mend's own use (webhook
        payloads), never to answer a caller, whose reads go through get()."""
        fields = await self._redis.hgetall(self._keys.job(job_id))  # type: ignore[misc]
        return job_from_fields(fields) if fields else None

    async def batch(self, tenant: str, batch_id: str) -> BatchCounts | None:
        """The batch's counts, or None when there is no such batch (or it expired)."""
        fields = await self._redis.hgetall(self._keys.batch(tenant, batch_id))  # type: ignore[misc]
        if not fields:
            return None
        counts = {k: int(fields.get(k, 0)) for k in ("completed", "failed", "cancelled")}
        return BatchCounts(total=int(fields["total"]), **counts)

    async def stats(self, tenant: str, *, all_tenants: bool = False) -> Stats:
        """The tenant's own counts; with all_tenants, every tenant's totals and each
        tenant's share."""
        now_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self._keys.workers, now_ms - self._liveness_ms, "+inf")
            if all_tenants:
                pipe.hgetall(self._keys.stats)
                pipe.zcard(self._keys.scheduled)
                pipe.smembers(self._keys.tenants)
            else:
                pipe.hgetall(self._keys.tenant_stats(tenant))
            workers, counters, *rest = await pipe.execute()
        if not all_tenants:
            by_type = _counts_by_type(counters)
            scheduled = max(int(counters.get("scheduled", 0)), 0)
            return Stats(_total(by_type), by_type, int(workers), scheduled)
        scheduled, tenants = rest
        names = sorted(tenants)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._keys.tenant_stats(name))
            rows = await pipe.execute()
        by_tenant = {
            name: _total(_counts_by_type(row)) for name, row in zip(names, rows, strict=True)
        }
        by_type = _counts_by_type(counters)
        return Stats(_total(by_type), by_type, int(workers), scheduled, by_tenant)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())  # type: ignore[misc]
        except Exception:
            return False
