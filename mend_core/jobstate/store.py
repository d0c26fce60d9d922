"""JobStore: the client-facing operations on jobs in Redis (submit, read, list, cancel,
statistics, event log). Knows nothing of gRPC or HTTP.

Every call on a job runs in the job's partition (partitions.py); reads across jobs
(ListJobs, statistics, queue positions) ask every partition, one pipelined round trip
each step."""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
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
from mend_core.job import Batch, Job, JobSpec, JobStatus
from mend_core.jobstate import activity
from mend_core.jobstate.activity import MinuteCount, WorkerActivity
from mend_core.jobstate.coalesce import Coalescer, RoundTrips
from mend_core.jobstate.encoding import (
    EVENTS_SNAPSHOT_EVERY,
    fingerprint,
    full_names,
    hmget_fields,
    hmget_values,
    job_from_fields,
    log_start,
    pairs,
    replay,
    spec_fields,
    trace_fields,
)
from mend_core.jobstate.estimate import Ahead, SlotTimes, pending_mix, slot_averages, wait_seconds
from mend_core.jobstate.partitions import Partitions, single_node
from mend_core.jobstate.scripts import Scripts, pipelined
from mend_core.operations import job_types

_STATUSES = tuple(s.value for s in JobStatus)
_TENANT = hmget_fields(["tenant"])
# On a cluster, how long concurrent GetJobs share one read of the live workers and of every
# partition's queue length (for a pending job's estimate, which may be this much stale).
ESTIMATE_COUNTS_TTL_SECONDS = 0.005


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


@dataclass(frozen=True, order=True)
class ListCursor:
    """Where a listing goes on: after the job of this arrival number (seq) in this partition.
    Jobs are listed newest first by (seq, partition), which is unique: seq is unique within
    a partition and follows creation time across them (lua/_lib.lua next_seq). A purge
    goes the other way, oldest first."""

    seq: int
    partition: int


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: ListCursor | None


@dataclass(frozen=True)
class PurgeFilter:
    """Which finished jobs a purge deletes: in one of `statuses` (terminal ones), of
    `job_type` (None: any) and finished before `finished_before_ms` (None: any time)."""

    statuses: tuple[JobStatus, ...]
    job_type: str | None = None
    finished_before_ms: int | None = None


@dataclass(frozen=True)
class Purged:
    job_ids: list[str]  # deleted (dry run: would be)
    next_cursor: ListCursor | None  # None: every matching job was looked at


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
        partitions: Partitions,
        *,
        retention_completed_seconds: int,
        retention_failed_seconds: int,
        worker_liveness_seconds: float,
        quota: Quota = Quota(),
        replicas: int = 0,
        replicas_timeout_seconds: float = 1.0,
        estimate_counts_ttl_seconds: float = ESTIMATE_COUNTS_TTL_SECONDS,
    ) -> None:
        """replicas: how many replicas must hold each write a caller is answered about
        (submit, cancel, retry, delete, purge) before the answer; NotReplicated when
        fewer did within replicas_timeout_seconds. estimate_counts_ttl_seconds: see
        ESTIMATE_COUNTS_TTL_SECONDS."""
        self._redis = redis
        self._replicas = replicas
        self._replicas_timeout = replicas_timeout_seconds
        self._quota = quota
        self._parts = partitions
        # Concurrent calls share round trips (coalesce.py): every script call and submit's
        # quota reads (on a cluster, where a pipeline's retries differ, the calls of one
        # node share its round trips: scripts and wake pushes).
        self._trips = RoundTrips(redis)
        self._scripts = [Scripts(redis, keys, self._trips) for keys in partitions.keys]
        # A request_id keeps answering with its job for as long as the job may live.
        self._request_ttl_ms = max(retention_completed_seconds, retention_failed_seconds) * 1000
        # Cancelled jobs are kept like failed ones.
        self._cancelled_ttl_ms = retention_failed_seconds * 1000
        self._liveness_ms = int(worker_liveness_seconds * 1000)
        # On a single Redis, submit pushes its wake tokens and get reads the other
        # partitions' queues in the same script (partitions.single_node).
        self._single_node = single_node(redis)
        self._wake_keys = (partitions.wake, partitions.schedule_wake)
        # Elsewhere concurrent submits push their tokens together: one RPUSH, not one each.
        self._wakes: Coalescer[tuple[int, int, bool], None] = Coalescer(self._push_wakes)
        self._around_keys = [
            (partitions.workers, *(k.turns for q, k in enumerate(partitions.keys) if q != p))
            for p in range(partitions.count)
        ]
        # Elsewhere (a cluster) a pending job's estimate takes the counts from here.
        self._counts = _Recent(self._read_counts, estimate_counts_ttl_seconds)

    def _of(self, job_id: str) -> Scripts:
        return self._scripts[self._parts.of_job(job_id)]

    async def submit(
        self,
        tenant: str,
        specs: list[JobSpec],
        batch: Batch | None = None,
        *,
        trace_parent: str = "",
    ) -> list[Submitted]:
        """Stores and enqueues every spec; returns once they are in Redis. A batch goes to
        one partition, atomically (all or none); a list of single jobs is stored partition
        by partition (each spec's partition: its request_id's, or one at random).
        A spec whose request_id made a job before gives that job back when it is the same
        request; RequestConflict when it is not, or when it is part of a batch.
        trace_parent: the submitter's trace context, which the jobs carry to the workers."""
        groups: dict[int, list[int]] = {}
        for i, spec in enumerate(specs):
            if batch is not None:
                partition = self._parts.of_batch(tenant, batch.id)
            elif spec.request_id:
                partition = self._parts.of_request(tenant, spec.request_id)
            else:
                partition = self._parts.random()
            groups.setdefault(partition, []).append(i)
        foreign = (
            self._foreign_requests(tenant, specs, self._parts.of_batch(tenant, batch.id))
            if batch is not None
            else []
        )
        await self._refuse_used_requests(foreign)
        done: dict[int, Submitted] = {}
        for partition, group in groups.items():
            submitted = await self._submit_in(
                partition, tenant, [specs[i] for i in group], batch, trace_parent, group
            )
            done.update(zip(group, submitted, strict=True))
        submitted = [done[i] for i in range(len(specs))]
        await self._record_requests(foreign, specs, submitted)
        return submitted

    def _foreign_requests(
        self, tenant: str, specs: list[JobSpec], partition: int
    ) -> list[tuple[int, str]]:
        """(index, request key) of each batch item whose request_id belongs to a partition
        other than the batch's: a single job with that request_id lives (and is looked up)
        there, so the batch checks and records it there too."""
        out = []
        for i, spec in enumerate(specs):
            if spec.request_id:
                home = self._parts.of_request(tenant, spec.request_id)
                if home != partition:
                    out.append((i, self._parts[home].request(tenant, spec.request_id)))
        return out

    async def _refuse_used_requests(self, foreign: list[tuple[int, str]]) -> None:
        """RequestConflict naming each batch item whose request_id made a job that still
        exists, in the request_id's own partition (the batch script checks its own). Not
        atomic with the batch: a single submit racing it with the same request_id may pass."""
        if not foreign:
            return
        stored = await pipelined(self._redis, [("GET", key) for _, key in foreign])
        used = [(i, str(value).split(" ")[0]) for (i, _), value in zip(foreign, stored, strict=True)
                if value]
        if not used:
            return
        job_keys = [self._parts.job_keys(job_id).job(job_id) for _, job_id in used]
        exists = await pipelined(self._redis, [("EXISTS", key) for key in job_keys])
        conflicts = [pair for pair, n in zip(used, exists, strict=True) if int(n)]
        if conflicts:
            raise RequestConflict(conflicts)

    async def _record_requests(
        self, foreign: list[tuple[int, str]], specs: list[JobSpec], submitted: list[Submitted]
    ) -> None:
        """Records the batch items' request_ids in their own partitions (see _foreign_requests),
        so that a later single submit with one of them finds the batch's job: marked
        `elsewhere`, as the job is in the batch's partition (lua/submit.lua)."""
        if foreign:
            await pipelined(
                self._redis,
                [
                    ("SET", key, f"{submitted[i].job_id} {fingerprint(specs[i])} elsewhere",
                     "PX", self._request_ttl_ms)
                    for i, key in foreign
                ],
            )

    async def _submit_in(
        self,
        partition: int,
        tenant: str,
        specs: list[JobSpec],
        batch: Batch | None,
        trace_parent: str,
        indexes: list[int],
    ) -> list[Submitted]:
        docs, delayed = [], False
        for spec in specs:
            job_id = self._parts.new_job_id(partition)
            doc = {
                "id": job_id,
                "request_id": spec.request_id,
                "fingerprint": fingerprint(spec) if spec.request_id else "",
                "priority": spec.priority,
                "type": spec.type,
                "fields": spec_fields(spec, tenant) | trace_fields(trace_parent),
            }
            # When to run: the script works the delay out on Redis's clock.
            if spec.run_at_ms is not None:
                doc["run_at_ms"] = spec.run_at_ms
            if spec.delay_ms is not None:
                doc["delay_ms"] = spec.delay_ms
            delayed = delayed or spec.run_at_ms is not None or spec.delay_ms is not None
            docs.append(json.dumps(doc))
        batch_doc = json.dumps(asdict(batch)) if batch else ""
        taken, quota_arg = await self._quota_for(partition, tenant, len(docs))
        single = self._single_node
        out = await self._write(
            partition,
            "submit",
            tenant,
            self._request_ttl_ms,
            batch_doc,
            quota_arg,
            partition if single else "",
            *docs,
            keys=self._wake_keys if single else (),
        )
        refused = bool(out) and out[0] in ("over_quota", "batch_exists", "request_conflict")
        created = 0 if refused else sum(1 for i in range(1, len(out), 2) if out[i] == 1)
        if taken > created:  # tokens the refused or replayed jobs did not use go back
            await self._take_rate(tenant, created - taken)
        if out and out[0] == "over_quota":
            quota, retry_ms = out[1], int(out[3])
            retry_after = retry_ms / 1000 if retry_ms >= 0 else None
            raise QuotaExceeded(tenant, quota, self._quota.describe(quota), retry_after)
        if out == ["batch_exists"]:
            raise BatchExists(batch.id if batch else "")
        if out and out[0] == "request_conflict":
            pairs = out[1:]
            raise RequestConflict(
                [(indexes[int(pairs[i]) - 1], pairs[i + 1]) for i in range(0, len(pairs), 2)]
            )
        if not single and (created or delayed):  # on a single Redis the script woke them
            await self._wakes((partition, created, delayed))
        return [Submitted(job_id=out[i], created=out[i + 1] == 1) for i in range(0, len(out), 2)]

    async def _push_wakes(
        self, submits: list[tuple[int, int, bool]]
    ) -> list[None | BaseException]:
        """The wake tokens of submits (partition, jobs queued, any scheduled), in one push."""
        tokens = [partition for partition, jobs, _ in submits for _ in range(jobs)]
        scheduled = any(delayed for _, _, delayed in submits)
        await self._parts.push_wake_tokens(
            self._redis, tokens, scheduled=scheduled, on_node=self._trips.on_node
        )
        none: list[None | BaseException] = [None] * len(submits)
        return none

    async def _quota_for(self, partition: int, tenant: str, jobs: int) -> tuple[int, str]:
        """The submit script's quota argument for `jobs` new jobs in `partition`, and the
        rate tokens taken for them. The rate bucket lives in the tenant's home partition and
        is taken first (given back for the jobs not created). Max pending sums the
        partitions: the other partitions' count is read before the submit, so concurrent
        submits of one tenant to different partitions may each pass, overshooting the limit
        by at most the jobs of the submits in flight at once."""
        quota = self._quota
        taken, refused, retry_ms = 0, 0, 0
        if quota.submit_rate > 0:
            verdict = await self._take_rate(tenant, jobs)
            if verdict[0] == 0:
                taken = jobs
            else:
                refused, retry_ms = int(verdict[0]), int(verdict[1])
        elsewhere = 0
        if quota.max_pending > 0 and self._parts.count > 1:
            others = [q for q in range(self._parts.count) if q != partition]
            counts = await self._trips.pipelined(
                [("ZCARD", self._parts[q].index(tenant, "status:pending")) for q in others],
            )
            elsewhere = sum(int(n) for n in counts)
        return taken, f"{quota.max_pending} {elsewhere} {refused} {retry_ms}"

    async def _take_rate(self, tenant: str, jobs: int) -> list[Any]:
        """Takes `jobs` tokens of the tenant's submit rate (negative: gives them back)."""
        quota = self._quota
        home = self._scripts[self._parts.home(tenant)]
        out: list[Any] = await home("submit_rate", tenant, jobs, quota.submit_rate, quota.burst)
        return out

    async def _write(
        self, partition: int, name: str, *args: Any, keys: Sequence[str] = ()
    ) -> Any:
        """A script whose change the caller is told about: with replicas required, the
        answer waits for them (Redis WAIT)."""
        scripts = self._scripts[partition]
        if not self._replicas:
            return await scripts(name, *args, keys=keys)
        timeout_ms = max(1, round(self._replicas_timeout * 1000))
        out, acknowledged = await scripts.replicated(
            name, args, replicas=self._replicas, timeout_ms=timeout_ms, keys=keys
        )
        if acknowledged < self._replicas:
            raise NotReplicated(acknowledged, self._replicas, self._replicas_timeout)
        return out

    async def get(self, tenant: str, job_id: str) -> Job:
        partition = self._parts.of_job(job_id)
        args, keys = self._get_args(partition, tenant, job_id)
        out = await self._scripts[partition]("get", *args, keys=keys)
        if not out:
            raise JobNotFound(job_id)
        return await self._job_from_reply(partition, job_id, out)

    def _get_args(
        self, partition: int, tenant: str, job_id: str
    ) -> tuple[tuple[Any, ...], Sequence[str]]:
        """The get script's ARGV after the prefix, and its keys beyond the routing key. On a
        single Redis one script call reads the other partitions too. Elsewhere the job first,
        with one script on its node; only a pending job's estimate needs the other
        partitions' counts, shared by concurrent calls (`_around`). The script takes the last
        counts known (only to choose how to describe the jobs ahead: exact types, or groups
        when many are queued elsewhere)."""
        if self._single_node:
            since = int(time.time() * 1000) - self._liveness_ms
            return (job_id, tenant, since), self._around_keys[partition]
        last = self._counts.last
        known = [n for q, n in enumerate(last[1:]) if q != partition] if last else []
        return (job_id, tenant, *known), ()

    async def _job_from_reply(self, partition: int, job_id: str, out: list[Any]) -> Job:
        """The get script's (non-empty) reply -> the job, with its estimate while pending."""
        if self._single_node:
            return self._read(job_id, out[:8], out[8] if len(out) > 8 else [])
        return self._read(job_id, out, await self._around(partition) if len(out) > 1 else [])

    async def _around(self, partition: int) -> list[int]:
        """What a pending job's estimate needs beyond its partition: the live workers, and
        how many jobs each other partition has queued (at most ESTIMATE_COUNTS_TTL_SECONDS
        old: they hold nothing of any tenant's own, so every caller may share them)."""
        workers, *queued = await self._counts()
        return [workers, *(n for q, n in enumerate(queued) if q != partition)]

    async def _read_counts(self) -> list[int]:
        """The live workers, then every partition's queued jobs (one pipelined call)."""
        since = int(time.time() * 1000) - self._liveness_ms
        counts = await pipelined(
            self._redis,
            [("ZCOUNT", self._parts.workers, since, "+inf"),
             *(("ZCARD", keys.turns) for keys in self._parts.keys)],
        )
        return [int(n) for n in counts]

    async def get_many(self, wanted: list[tuple[str, str]]) -> list[Job | None]:
        """`get` for each (tenant, job id), the scripts in one pipelined round trip; None
        where get would raise JobNotFound."""
        calls = []
        for tenant, job_id in wanted:
            partition = self._parts.of_job(job_id)
            calls.append((partition, *self._get_args(partition, tenant, job_id)))
        replies = await pipelined(
            self._redis,
            [self._scripts[p].command("get", *args, keys=keys) for p, args, keys in calls],
            [(self._scripts[p], "get") for p in sorted({p for p, _, _ in calls})],
        )
        return [
            await self._job_from_reply(p, job_id, out) if out else None
            for (p, _, _), (_, job_id), out in zip(calls, wanted, replies, strict=True)
        ]

    def _read(self, job_id: str, out: list[Any], around: Sequence[Any]) -> Job:
        """read_job's reply (lua/get.lua) and `_around`'s -> the job, with its estimate while
        pending. Other partitions' queued jobs count as ahead of it up to as many as are
        ahead in its own partition (workers claim from the partitions in turn)."""
        if len(out) == 1:
            return job_from_fields(pairs(out[0]), job_id)
        position, queued, due_ms, now_ms, running, ahead, stats = out[1:]
        workers, *others = around
        # A job waiting for a retry backoff joins the end of the queue when it is due.
        before = int(position) if int(position) >= 0 else int(queued)
        elsewhere = sum(min(int(n), before) for n in others)
        times = SlotTimes(slot_averages(pairs(stats)))
        jobs_ahead: list[Ahead] | list[str]
        if ahead and ahead[0][0] == "exact" and not elsewhere:
            jobs_ahead = [str(t) for t in ahead[0][1:]]
        else:
            if ahead and ahead[0][0] == "exact":
                groups = [Ahead(1, {str(t): 1}) for t in ahead[0][1:]]
            else:
                groups = [Ahead(int(count), pending_mix(pairs(mix))) for count, mix in ahead]
            if elsewhere:  # the other partitions' jobs, with this one's mix of types
                groups.append(Ahead(elsewhere, pending_mix(pairs(stats))))
            jobs_ahead = groups
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
            pairs(out[0]),
            job_id,
            queue_position=before + elsewhere + 1,
            estimated_wait_seconds=round(wait, 3),
        )

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        status: JobStatus | None,
        job_type: str | None,
        page_size: int,
        cursor: ListCursor | None,
    ) -> Page:
        """Newest first, from the per-tenant indexes of the narrowest filter, merged over
        the partitions (and, for tenant None, every tenant) by (seq, partition): the cursor
        is that pair of the last job returned, so a page goes on exactly where the last one
        ended whatever was submitted meanwhile."""
        tenants = [tenant] if tenant is not None else sorted(await self._tenant_names())
        if status is not None:
            name, other = f"status:{status.value}", job_type
        elif job_type is not None:
            name, other = f"type:{job_type}", None
        else:
            name, other = "all", None
        sources = [
            _Source(p, t, keys.index(t, name), cursor)
            for p, keys in enumerate(self._parts.keys)
            for t in tenants
        ]
        batch = page_size if other is None else max(page_size * 2, 50)
        jobs: list[Job] = []
        last: ListCursor | None = None
        while len(jobs) < page_size:
            await self._fill(sources, batch)
            taken = _merge(sources, page_size - len(jobs))
            if not taken:
                return Page(jobs, None)
            rows = await pipelined(
                self._redis, [("HGETALL", self._parts[c.partition].job(i)) for c, i, _ in taken]
            )
            expired: dict[tuple[int, str], list[str]] = {}
            for (at, job_id, source), fields in zip(taken, rows, strict=True):
                last = at
                if not fields:  # expired by retention: its index entries go
                    expired.setdefault((at.partition, source.tenant), []).append(job_id)
                    continue
                job = job_from_fields(fields, job_id)
                if other is None or job.spec.type == other:
                    jobs.append(job)
            await self._forget(expired)
        more = any(s.buffer for s in sources) or bool(await self._left(sources))
        return Page(jobs, last if more else None)

    async def _fill(self, sources: list[_Source], batch: int) -> None:
        """Reads the next entries of every source whose buffer ran out (one round trip)."""
        empty = [s for s in sources if not s.buffer and not s.done]
        if not empty:
            return
        replies = await pipelined(
            self._redis,
            [
                (s.read, s.index, s.bound, s.end, "WITHSCORES", "LIMIT", 0, batch)
                for s in empty
            ],
        )
        for source, flat in zip(empty, replies, strict=True):
            entries = [(int(float(flat[i + 1])), flat[i]) for i in range(0, len(flat), 2)]
            source.buffer = [(ListCursor(seq, source.partition), job_id) for seq, job_id in entries]
            source.buffer.reverse()  # popped from the end: the next to take last
            source.done = len(entries) < batch
            if entries:
                source.bound = f"({entries[-1][0]}"

    async def _left(self, sources: list[_Source]) -> int:
        """Whether any source has entries beyond those read (one round trip)."""
        open_sources = [s for s in sources if not s.done]
        if not open_sources:
            return 0
        counts = await pipelined(
            self._redis,
            [("ZCOUNT", s.index, *s.unread) for s in open_sources],
        )
        return sum(int(n) for n in counts)

    async def _tenant_names(self) -> set[str]:
        rows = await pipelined(self._redis, [("SMEMBERS", k.tenants) for k in self._parts.keys])
        return set().union(*rows)

    async def _forget(self, expired: dict[tuple[int, str], list[str]]) -> None:
        """Drops expired jobs' index entries, by (partition, tenant), in one round trip."""
        if not expired:
            return
        names = ["all", *(f"status:{s.value}" for s in JobStatus)]
        names += [f"type:{t}" for t in job_types()]
        await pipelined(
            self._redis,
            [
                ("ZREM", self._parts[p].index(tenant, n), *job_ids)
                for (p, tenant), job_ids in expired.items()
                for n in names
            ],
        )

    async def cancel(self, tenant: str, job_id: str) -> Job:
        out = await self._write(
            self._parts.of_job(job_id), "cancel", job_id, tenant, self._cancelled_ttl_ms
        )
        code, fields = out[0], pairs(out[1:])
        if code == "not_found":
            raise JobNotFound(job_id)
        job = job_from_fields(fields, job_id)
        if code == "finished":
            raise JobFinished(job)
        return job

    async def retry(self, tenant: str, job_id: str) -> Job:
        """A failed or cancelled job back to pending with a fresh attempt budget (RetryJob);
        JobNotRetryable in any other state."""
        partition = self._parts.of_job(job_id)
        out = await self._write(partition, "requeue", job_id, tenant)
        if out[0] == "not_found":
            raise JobNotFound(job_id)
        if out[0] == "state":
            raise JobNotRetryable(job_from_fields(pairs(out[1:]), job_id))
        await self._parts.wake_workers(self._redis, partition, 1)
        # The state the retry made, with its place in the queue as GetJob shows it.
        return self._read(job_id, out[1], await self._around(partition))

    async def delete(self, tenant: str, job_id: str) -> None:
        """Deletes a finished job and all trace of it; JobNotFinished when it is not."""
        out = await self._write(self._parts.of_job(job_id), "delete", job_id, tenant)
        if out[0] == "not_found":
            raise JobNotFound(job_id)
        if out[0] == "unfinished":
            raise JobNotFinished(job_from_fields(pairs(out[1:]), job_id))

    async def purge(
        self,
        tenants: list[str] | None,
        match: PurgeFilter,
        *,
        dry_run: bool,
        page_size: int,
        cursor: ListCursor | None,
    ) -> Purged:
        """Deletes the finished jobs that match, oldest first: the partitions' indexes (for
        tenants=None, every tenant's) merged by (seq, partition), as ListJobs merges them
        newest first. Looks at no more than page_size jobs per call; next_cursor, that pair
        of the last job looked at, goes on exactly there whatever was submitted or deleted
        meanwhile (None once a call looked at fewer: nothing more to look at)."""
        if tenants is None:
            tenants = sorted(await self._tenant_names())
        index = "all"
        if len(match.statuses) == 1:
            index = f"status:{match.statuses[0].value}"
        elif match.job_type is not None:
            index = f"type:{match.job_type}"
        sources = [
            _Source(p, t, keys.index(t, index), cursor, oldest_first=True)
            for p, keys in enumerate(self._parts.keys)
            for t in tenants
        ]
        looked: list[tuple[ListCursor, str, _Source]] = []
        while len(looked) < page_size:
            await self._fill(sources, page_size)
            taken = _merge(sources, page_size - len(looked))
            if not taken:
                break
            looked += taken
        # Checked and deleted by one script per (partition, tenant), in one round trip.
        groups: dict[tuple[int, str], list[str]] = {}
        for _, job_id, source in looked:
            groups.setdefault((source.partition, source.tenant), []).append(job_id)
        statuses = " ".join(s.value for s in match.statuses)
        before = "" if match.finished_before_ms is None else match.finished_before_ms
        args = (statuses, match.job_type or "", before, int(dry_run))
        if self._replicas and not dry_run:  # each write acknowledged by its replicas
            replies = [
                await self._write(p, "purge", tenant, *args, *ids)
                for (p, tenant), ids in groups.items()
            ]
        else:
            replies = await pipelined(
                self._redis,
                [
                    self._scripts[p].command("purge", tenant, *args, *ids)
                    for (p, tenant), ids in groups.items()
                ],
                [(self._scripts[p], "purge") for p, _ in groups],
            )
        matched = {job_id for ids in replies for job_id in ids}
        deleted = [job_id for _, job_id, _ in looked if job_id in matched]
        return Purged(deleted, looked[-1][0] if len(looked) == page_size else None)

    async def events(self, job_id: str, after_version: int, count: int = 100) -> list[Job]:
        """Up to `count` of the job's states with a version above after_version, oldest
        first, rebuilt from its event log; where the log no longer reaches (it expires
        soon after the job's end), the job's current state."""
        kind, found = await self._of(job_id)(
            "events", job_id, log_start(after_version), after_version, count + EVENTS_SNAPSHOT_EVERY
        )
        if kind == "log":
            states = replay(found, after_version)[:count]
            return [job_from_fields(state, job_id) for state in states]
        current = full_names(pairs(found))
        if current and int(current.get("version", 0)) > after_version:
            return [job_from_fields(current, job_id)]
        return []

    async def tenant_of(self, job_id: str) -> str | None:
        """The tenant a job belongs to (None: no such job), for admin keys' calls."""
        return (await self.tenants_of([job_id]))[0]

    async def tenants_of(self, job_ids: list[str]) -> list[str | None]:
        """tenant_of for each id, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self._parts.job_keys(job_id).job(job_id), _TENANT)
        tenants = [hmget_values(values)[0] for values in await pipe.execute()]
        return [t if t is None else str(t) for t in tenants]

    async def find(self, job_id: str) -> Job | None:
        """Any tenant's job, or None once it has expired: for Mend's own use (webhook
        payloads), never to answer a caller, whose reads go through get()."""
        key = self._parts.job_keys(job_id).job(job_id)
        fields = await self._redis.hgetall(key)  # type: ignore[misc]
        return job_from_fields(fields, job_id) if fields else None

    async def batch(self, tenant: str, batch_id: str) -> BatchCounts | None:
        """The batch's counts, or None when there is no such batch (or it expired)."""
        keys = self._parts[self._parts.of_batch(tenant, batch_id)]
        fields = await self._redis.hgetall(keys.batch(tenant, batch_id))  # type: ignore[misc]
        if not fields:
            return None
        counts = {k: int(fields.get(k, 0)) for k in ("completed", "failed", "cancelled")}
        return BatchCounts(total=int(fields["total"]), **counts)

    async def stats(self, tenant: str, *, all_tenants: bool = False) -> Stats:
        """The tenant's own counts; with all_tenants, every tenant's totals and each
        tenant's share. Sums of the partitions'."""
        now_ms = int(time.time() * 1000)
        parts = self._parts.keys
        if all_tenants:
            rows = await pipelined(
                self._redis,
                [
                    command
                    for keys in parts
                    for command in (
                        ("HGETALL", keys.stats),
                        ("ZCARD", keys.scheduled),
                        ("SMEMBERS", keys.tenants),
                    )
                ],
            )
            counters = _sum_hashes(rows[0::3])
            scheduled = sum(int(n) for n in rows[1::3])
            names = sorted(set().union(*rows[2::3]))
        else:
            counters = _sum_hashes(
                await pipelined(self._redis, [("HGETALL", k.tenant_stats(tenant)) for k in parts])
            )
        whose = None if all_tenants else tenant
        now = await activity.read(
            self._redis, self._parts, now_ms=now_ms, liveness_ms=self._liveness_ms, tenant=whose
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
        rows = await pipelined(
            self._redis, [("HGETALL", k.tenant_stats(name)) for name in names for k in parts]
        )
        by_tenant = {
            name: _total(_counts_by_type(_sum_hashes(rows[i * len(parts):(i + 1) * len(parts)])))
            for i, name in enumerate(names)
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


class _Recent:
    """`await recent()`: what `read()` answered at most `ttl` seconds ago; concurrent
    callers past that share one new read (its answer, or its error)."""

    def __init__(self, read: Callable[[], Awaitable[list[int]]], ttl: float) -> None:
        self._read, self._ttl = read, ttl
        self._value: list[int] | None = None
        self._at = 0.0
        self._flight: asyncio.Future[list[int]] | None = None
        self.reads = 0  # what tests look at

    @property
    def last(self) -> list[int] | None:
        """The last answer, whatever its age (None: none yet)."""
        return self._value

    async def __call__(self) -> list[int]:
        if self._value is not None and time.monotonic() - self._at < self._ttl:
            return self._value
        if self._flight is None:
            self._flight = asyncio.ensure_future(self._refresh())
        # A caller cancelled meanwhile leaves the read to the others.
        return await asyncio.shield(self._flight)

    async def _refresh(self) -> list[int]:
        try:
            started = time.monotonic()
            self.reads += 1
            value = await self._read()
            self._value, self._at = value, started
            return value
        finally:
            self._flight = None


def _sum_hashes(rows: Sequence[dict[str, str]]) -> dict[str, str]:
    """The partitions' counter hashes as one (numeric fields summed, others: any)."""
    total: dict[str, float] = {}
    for row in rows:
        for name, value in row.items():
            try:
                total[name] = total.get(name, 0) + float(value)
            except ValueError:
                continue
    return {name: str(int(value)) if value == int(value) else str(value)
            for name, value in total.items()}


@dataclass
class _Source:
    """One index of one partition that a listing reads, newest first, from below the
    cursor (a purge: oldest first, from above it); `buffer` holds entries read but not
    yet taken (the next to take last). `bound`: the score to read on from."""

    partition: int
    tenant: str
    index: str
    cursor: ListCursor | None
    oldest_first: bool = False
    bound: str = ""
    buffer: list[tuple[ListCursor, str]] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        self.bound = "-inf" if self.oldest_first else "+inf"
        if self.cursor is not None:
            # Jobs come after the cursor's in (seq, partition) order: at its seq, only
            # those of a lower partition (oldest first: of a higher one).
            if self.oldest_first:
                inclusive = self.partition > self.cursor.partition
            else:
                inclusive = self.partition < self.cursor.partition
            self.bound = f"{'' if inclusive else '('}{self.cursor.seq}"

    @property
    def read(self) -> str:
        return "ZRANGEBYSCORE" if self.oldest_first else "ZREVRANGEBYSCORE"

    @property
    def end(self) -> str:
        return "+inf" if self.oldest_first else "-inf"

    @property
    def unread(self) -> tuple[str, str]:
        """ZCOUNT's (min, max) of the entries not read yet."""
        return (self.bound, self.end) if self.oldest_first else (self.end, self.bound)

    def key(self) -> tuple[int, int]:
        """The heap key of the next entry to take: the smallest is taken first."""
        at = self.buffer[-1][0]
        return (at.seq, at.partition) if self.oldest_first else (-at.seq, -at.partition)


def _merge(sources: list[_Source], wanted: int) -> list[tuple[ListCursor, str, _Source]]:
    """Takes up to `wanted` entries, in the sources' order (newest or oldest first) across
    them, while every source that may hold entries before those taken has some read."""
    heap = [(s.key(), n) for n, s in enumerate(sources) if s.buffer]
    heapq.heapify(heap)
    taken: list[tuple[ListCursor, str, _Source]] = []
    while heap and len(taken) < wanted:
        _, n = heapq.heappop(heap)
        source = sources[n]
        at, job_id = source.buffer.pop()
        taken.append((at, job_id, source))
        if source.buffer:
            heapq.heappush(heap, (source.key(), n))
        elif not source.done:
            break  # its next entries are unread and may come before the others'
    return taken

