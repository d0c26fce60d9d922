"""What the queue is doing right now, for the overview: the live workers and the job each
runs, and how many jobs finished in each of the last minutes. Read-only; the per-minute
counters are written by the Lua scripts (`tally` in lua/_lib.lua, on every completion and
failure) and expire by themselves."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from mend_core.jobstate.encoding import hmget_fields, hmget_values
from mend_core.jobstate.partitions import Partitions

THROUGHPUT_MINUTES = 15
# More jobs in flight than this are not looked at (a worker runs one job at a time).
_MAX_INFLIGHT = 1000
# Of each job in flight (under either names: encoding.FIELDS).
_FIELDS = hmget_fields(["worker", "type", "started_at", "tenant", "status"])


@dataclass(frozen=True)
class WorkerActivity:
    worker_id: str
    # Empty while idle, or when the job is another tenant's and the caller may not see it.
    job_id: str = ""
    job_type: str = ""
    started_at_ms: int | None = None


@dataclass(frozen=True)
class MinuteCount:
    start_ms: int
    completed: int
    failed: int


@dataclass(frozen=True)
class Activity:
    workers: list[WorkerActivity]
    throughput: list[MinuteCount]


async def read(
    redis: Redis, parts: Partitions, *, now_ms: int, liveness_ms: int, tenant: str | None
) -> Activity:
    """Two round trips (pipelines over the partitions, whose counts are summed): the
    workers that registered within liveness_ms, by id, with the job
    each runs, and the completed and failed jobs per minute for the last THROUGHPUT_MINUTES
    minutes, oldest first, the current minute last. Only `tenant`'s jobs and counts are
    shown (None: every tenant's)."""
    current = now_ms // 60_000
    minutes = range(current - THROUGHPUT_MINUTES + 1, current + 1)
    fields = ["completed", "failed"]
    if tenant is not None:
        fields = [f"{name}:{tenant}" for name in fields]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(parts.workers, now_ms - liveness_ms, "+inf")
        for keys in parts.keys:
            pipe.zrange(keys.inflight, 0, _MAX_INFLIGHT - 1)
            for minute in minutes:
                pipe.hmget(keys.throughput(minute), fields)
        workers, *rest = await pipe.execute()
    step = 1 + len(minutes)
    inflight = [job_id for i in range(0, len(rest), step) for job_id in rest[i]]
    counts = [
        [sum(int(rest[i + 1 + m][f] or 0) for i in range(0, len(rest), step)) for f in (0, 1)]
        for m in range(len(minutes))
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in inflight:
            pipe.hmget(parts.job_keys(job_id).job(job_id), _FIELDS)
        rows = [hmget_values(values) for values in await pipe.execute()]
    running: dict[str, WorkerActivity] = {}
    for job_id, (worker, job_type, started, owner, status) in zip(inflight, rows, strict=True):
        if not worker or status != "processing":
            continue
        if tenant is not None and owner != tenant:
            running[worker] = WorkerActivity(worker)
            continue
        started_ms = int(started) if started else None
        running[worker] = WorkerActivity(worker, job_id, job_type or "", started_ms)
    return Activity(
        [running.get(w, WorkerActivity(w)) for w in sorted(workers)],
        [
            MinuteCount(minute * 60_000, done, failed)
            for minute, (done, failed) in zip(minutes, counts, strict=True)
        ],
    )
