"""JobStore: the client-facing operations on jobs in Redis (submit, read, list, cancel,
statistics, event log). Knows nothing of gRPC or HTTP."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from mend_core.errors import (
    BatchExists,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    JobNotRetryable,
    NotReplicated,
    QuotaExceeded,
    RequestConflict,
)
from mend_core.job import Batch, Job, JobSpec, JobStatus, new_job_id
from mend_core.jobstate import activity
from mend_core.jobstate.activity import MinuteCount, WorkerActivity
from mend_core.jobstate.encoding import (
    fingerprint,
    job_from_fields,
    pairs,
    spec_fields,
    trace_fields,
)
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
    # The live workers and their jobs (the caller's own, or any in the all-tenants view).
    workers_detail: list[WorkerActivity] = field(default_factory=list)
    # Completed and failed jobs per minute, oldest first (activity.THROUGHPUT_MINUTES).
    throughput: list[MinuteCount] = field(default_factory=list)


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
class PurgeFilter:
    """Which finished jobs a purge deletes: in one of `statuses` (terminal ones), of
    `job_type` (None: any) and finished before `finished_before_ms` (None: any time)."""

    statuses: tuple[JobStatus, ...]
    job_type: str | None = None
    finished_before_ms: int | None = None


@dataclass(frozen=True)
class PurgeCursor:
    """Where a purge goes on: the tenant, and the submission sequence it had reached."""

    tenant: str
    seq: int


@dataclass(frozen=True)
class Purged:
    job_ids: list[str]  # deleted (dry run: would be)
    next_cursor: PurgeCursor | None  # None: every matching job was looked at


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
        replicas: int = 0,
        replicas_timeout_seconds: float = 1.0,
    ) -> None:
        """replicas: how many replicas must hold each write a caller is answered about
        (submit, cancel, retry, delete, purge) before the answer; NotReplicated when
        fewer did within replicas_timeout_seconds."""
        self._redis = redis
        self._replicas = replicas
        self._replicas_timeout = replicas_timeout_seconds
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
        self,
        tenant: str,
        specs: list[JobSpec],
        batch: Batch | None = None,
        *,
        trace_parent: str = "",
    ) -> list[Submitted]:
        """Stores and enqueues every spec atomically; returns once they are in Redis.
        A spec whose request_id made a job before gives that job back when it is the same
        request; RequestConflict when it is not, or when it is part of a batch.
        trace_parent: the submitter's trace context, which the jobs carry to the workers."""
        docs = []
        for spec in specs:
            job_id = new_job_id()
            doc = {
                "id": job_id,
                "request_id": spec.request_id,
                "fingerprint": fingerprint(spec) if spec.request_id else "",
                "priority": spec.priority,
                "type": spec.type,
                "fields": spec_fields(spec, job_id, tenant) | trace_fields(trace_parent),
            }
            # When to run: the script works the delay out on Redis's clock.
            if spec.run_at_ms is not None:
                doc["run_at_ms"] = spec.run_at_ms
            if spec.delay_ms is not None:
                doc["delay_ms"] = spec.delay_ms
            docs.append(json.dumps(doc))
        batch_doc = json.dumps(asdict(batch)) if batch else ""
        out = await self._write(
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

    async def _write(self, name: str, *args: Any) -> Any:
        """A script whose change the caller is told about: with replicas required, the
        answer waits for them (Redis WAIT)."""
        if not self._replicas:
            return await self._scripts(name, *args)
        timeout_ms = max(1, round(self._replicas_timeout * 1000))
        out, acknowledged = await self._scripts.replicated(
            name, args, replicas=self._replicas, timeout_ms=timeout_ms
        )
        if acknowledged < self._replicas:
            raise NotReplicated(acknowledged, self._replicas, self._replicas_timeout)
        return out

    async def get(self, tenant: str, job_id: str) -> Job:
        out = await self._scripts("get", job_id, tenant, self._liveness_ms)
        if not out:
            raise JobNotFound(job_id)
        return self._read(out)

    def _read(self, out: list[Any]) -> Job:
        """read_job's reply (lua/get.lua) -> the job, with its estimate while pending."""
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
        tenant: str | None,
        *,
        status: JobStatus | None,
        job_type: str | None,
        page_size: int,
        cursor: int | None,
    ) -> Page:
        """Newest first, from the per-tenant index of the narrowest filter. The cursor is
        the index score (submission sequence) of the last job returned. tenant None: every
        tenant's jobs, merged by that sequence (which is global), so one page reads up to
        a page from each tenant."""
        tenants = [tenant] if tenant is not None else sorted(await self._tenant_names())
        found: list[tuple[int, Job]] = []
        more = False
        for name in tenants:
            scanned, left = await self._scan(name, status, job_type, page_size, cursor)
            found += scanned
            more = more or left
        found.sort(key=lambda entry: entry[0], reverse=True)
        more = more or len(found) > page_size
        page = found[:page_size]
        return Page([job for _, job in page], page[-1][0] if more and page else None)

    async def _tenant_names(self) -> set[str]:
        return await self._redis.smembers(self._keys.tenants)  # type: ignore[misc, no-any-return]

    async def _scan(
        self,
        tenant: str,
        status: JobStatus | None,
        job_type: str | None,
        page_size: int,
        cursor: int | None,
    ) -> tuple[list[tuple[int, Job]], bool]:
        """Up to page_size of the tenant's jobs below the cursor, with their sequence, and
        whether it has more."""
        if status is not None:
            index, other = self._keys.index(tenant, f"status:{status.value}"), job_type
        elif job_type is not None:
            index, other = self._keys.index(tenant, f"type:{job_type}"), None
        else:
            index, other = self._keys.index(tenant, "all"), None
        jobs: list[tuple[int, Job]] = []
        upper = f"({cursor}" if cursor is not None else "+inf"
        batch = page_size if other is None else max(page_size * 2, 50)
        while len(jobs) < page_size:
            entries = await self._redis.zrevrangebyscore(
                index, upper, "-inf", start=0, num=batch, withscores=True
            )
            if not entries:
                return jobs, False
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, _ in entries:
                    pipe.hgetall(self._keys.job(job_id))
                rows = await pipe.execute()
            expired: list[str] = []  # by retention: their index entries go, in one round trip
            for (job_id, score), fields in zip(entries, rows, strict=True):
                upper = f"({int(score)}"
                if not fields:
                    expired.append(job_id)
                    continue
                job = job_from_fields(fields)
                if other is not None and job.spec.type != other:
                    continue
                jobs.append((int(score), job))
                if len(jobs) == page_size:
                    break
            await self._forget(tenant, expired)
            if len(jobs) == page_size:
                more = await self._redis.zcount(index, "-inf", upper)
                return jobs, bool(more)
            if len(entries) < batch:
                return jobs, False
        return jobs, False

    async def _forget(self, tenant: str, job_ids: list[str]) -> None:
        if not job_ids:
            return
        names = ["all", *(f"status:{s.value}" for s in JobStatus)]
        names += [f"type:{t}" for t in job_types()]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrem(self._keys.index(tenant, name), *job_ids)
            await pipe.execute()

    async def cancel(self, tenant: str, job_id: str) -> Job:
        out = await self._write("cancel", job_id, tenant, self._cancelled_ttl_ms)
        code, fields = out[0], pairs(out[1:])
        if code == "not_found":
            raise JobNotFound(job_id)
        job = job_from_fields(fields)
        if code == "finished":
            raise JobFinished(job)
        return job

    async def retry(self, tenant: str, job_id: str) -> Job:
        """A failed or cancelled job back to pending with a fresh attempt budget (RetryJob);
        JobNotRetryable in any other state."""
        out = await self._write("requeue", job_id, tenant, self._liveness_ms)
        if out[0] == "not_found":
            raise JobNotFound(job_id)
        if out[0] == "state":
            raise JobNotRetryable(job_from_fields(pairs(out[1:])))
        # The state the retry made, with its place in the queue as GetJob shows it.
        return self._read(out[1])

    async def delete(self, tenant: str, job_id: str) -> None:
        """Deletes a finished job and all trace of it; JobNotFinished when it is not."""
        out = await self._write("delete", job_id, tenant)
        if out[0] == "not_found":
            raise JobNotFound(job_id)
        if out[0] == "unfinished":
            raise JobNotFinished(job_from_fields(pairs(out[1:])))

    async def purge(
        self,
        tenants: list[str] | None,
        match: PurgeFilter,
        *,
        dry_run: bool,
        page_size: int,
        cursor: PurgeCursor | None,
    ) -> Purged:
        """Deletes the finished jobs that match, oldest first, looking at no more than
        page_size jobs per call; go on from next_cursor. tenants=None: every tenant's."""
        if tenants is None:
            tenants = sorted(await self._tenant_names())
        if cursor is not None:
            tenants = [t for t in tenants if t >= cursor.tenant]
        index = "all"
        if len(match.statuses) == 1:
            index = f"status:{match.statuses[0].value}"
        elif match.job_type is not None:
            index = f"type:{match.job_type}"
        statuses = " ".join(s.value for s in match.statuses)
        before = "" if match.finished_before_ms is None else match.finished_before_ms
        budget, deleted = page_size, []
        for tenant in tenants:
            after = cursor.seq if cursor is not None and cursor.tenant == tenant else 0
            entries = await self._redis.zrangebyscore(
                self._keys.index(tenant, index),
                f"({after}",
                "+inf",
                start=0,
                num=budget,
                withscores=True,
            )
            if entries:
                ids = [job_id for job_id, _ in entries]
                deleted += await self._write(
                    "purge", tenant, statuses, match.job_type or "", before, int(dry_run), *ids
                )
                budget -= len(entries)
            if budget == 0:
                return Purged(deleted, PurgeCursor(tenant, int(entries[-1][1])))
        return Purged(deleted, None)

    async def events(self, job_id: str, after_version: int, count: int = 100) -> list[Job]:
        """The job's recorded states with a version above after_version, oldest first."""
        entries = await self._redis.xrange(
            self._keys.events(job_id), min=f"(0-{after_version}", max="+", count=count
        )
        return [job_from_fields(fields) for _, fields in entries]

    async def tenant_of(self, job_id: str) -> str | None:
        """The tenant a job belongs to (None: no such job), for admin keys' calls."""
        tenant = await self._redis.hget(self._keys.job(job_id), "tenant")  # type: ignore[misc]
        return tenant if tenant is None else str(tenant)

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
            if all_tenants:
                pipe.hgetall(self._keys.stats)
                pipe.zcard(self._keys.scheduled)
                pipe.smembers(self._keys.tenants)
            else:
                pipe.hgetall(self._keys.tenant_stats(tenant))
            counters, *rest = await pipe.execute()
        whose = None if all_tenants else tenant
        now = await activity.read(
            self._redis, self._keys, now_ms=now_ms, liveness_ms=self._liveness_ms, tenant=whose
        )
        detail, minutes = now.workers, now.throughput
        # The live workers, as the detail lists them (the same registry, the same instant).
        workers = len(detail)
        if not all_tenants:
            by_type = _counts_by_type(counters)
            scheduled = max(int(counters.get("scheduled", 0)), 0)
            return Stats(
                _total(by_type), by_type, workers, scheduled, {}, detail, minutes
            )
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
        return Stats(
            _total(by_type), by_type, workers, scheduled, by_tenant, detail, minutes
        )

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())  # type: ignore[misc]
        except Exception:
            return False
