"""WorkQueue: the worker's side of the job store. Claims jobs under a lease, keeps the
lease alive, and makes each transition with a Lua script that first checks the caller
still holds the lease (its fence token), so a worker that lost a job cannot touch it.

Across partitions (partitions.py): a worker claims from the partitions in turn, staying
with one while it has jobs for at most STAY claims in a row and STAY_SECONDS, so that none
starves when another is flooded, while moving on (a second script next to a completion)
stays rare when jobs are short. What it knows of each partition's queue (the count of
queued jobs) comes from its claims' replies and from a scan of every partition (one
pipelined round trip), made when it knows of no job and whenever a stay ends otherwise
(pipelined with a completion, so it costs no round trip). A completion that stays with its
partition and scans nothing is one script call, as with a single partition. An idle worker
blocks on the one global wake list (a token naming the partition per queued job), then
claims from that partition first: pickup within a round trip, no polling. Priority and
fair turns order each partition's queue; across partitions, the turns decide."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from mend_core.job import Job, JobResult
from mend_core.jobstate.encoding import job_from_fields, pairs, result_fields
from mend_core.jobstate.partitions import WAKE_MAXLEN, Partitions
from mend_core.jobstate.scripts import Scripts, pipelined
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
    fields = pairs(flat)
    job = job_from_fields(fields, fields.pop("id"))  # claim_next adds the id
    return Lease(job=job, fence=job.fence)


# A worker stays with one partition while it has queued jobs, for at most this many claims
# in a row and this long: with short jobs a stay spans many claims (moving on costs a second
# script next to a completion, and a scan), with long ones every partition gets its turn soon.
STAY = 32
STAY_SECONDS = 0.05


class _Rotation:
    """Which partition a worker claims from next: in turn, among those it knows to have
    queued jobs."""

    def __init__(self, count: int) -> None:
        self.queued = [0] * count
        self.current = random.randrange(count)
        self.stayed = 0
        self.until = 0.0  # when the stay with `current` ends (time.monotonic())
        self.stay_ended = True  # since the last scan: time to look at every partition again

    def pick(self) -> int | None:
        if self.stayed < STAY and self.queued[self.current] > 0:
            now = time.monotonic()
            if now < self.until:
                self.stayed += 1
                return self.current
        self.stay_ended = True
        count = len(self.queued)
        for step in range(1, count + 1):
            p = (self.current + step) % count
            if self.queued[p] > 0:
                self.current, self.stayed = p, 1
                self.until = time.monotonic() + STAY_SECONDS
                return p
        return None

    def claimed(self, partition: int, left: int) -> None:
        self.queued[partition] = left

    def scanned(self, queued: list[int]) -> None:
        self.queued = queued
        self.stay_ended = False

    def scan_due(self) -> bool:
        """A single partition's count comes with every claim: it needs no scan."""
        return self.stay_ended and len(self.queued) > 1


class WorkQueue:
    def __init__(
        self,
        redis: Redis,
        partitions: Partitions,
        *,
        lease_seconds: float,
        retention_completed_seconds: int,
        retention_failed_seconds: int,
    ) -> None:
        self._redis = redis
        self._parts = partitions
        self._scripts = [Scripts(redis, keys) for keys in partitions.keys]
        self._lease_ms = int(lease_seconds * 1000)
        self._completed_ttl_ms = retention_completed_seconds * 1000
        self._failed_ttl_ms = retention_failed_seconds * 1000
        self._turns = _Rotation(partitions.count)
        self._woken_for: int | None = None  # the partition the last wake token named
        # The last completion scanned every partition (pipelined with it) and leased nothing:
        # a claim right after it needs no scan of its own before going idle.
        self._scanned_idle = False

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> WorkQueue:
        """The queue as every worker process (and the worker health probe) uses it."""
        return cls(
            redis,
            Partitions(settings.partitions),
            lease_seconds=settings.lease_seconds,
            retention_completed_seconds=settings.retention_completed_seconds,
            retention_failed_seconds=settings.retention_failed_seconds,
        )

    @property
    def partitions(self) -> Partitions:
        return self._parts

    async def claim(self, worker_id: str) -> Lease | None:
        """Leases the first pending job (highest priority, then oldest) of a partition:
        the one the last wake token named, else the next in turn with jobs queued; None
        when every partition's queue is empty."""
        woken_for, self._woken_for = self._woken_for, None
        scanned, self._scanned_idle = self._scanned_idle, False
        if woken_for is not None and (lease := await self._claim_in(woken_for, worker_id)):
            return lease
        cleared = False
        for _ in range(2 * self._parts.count + 2):  # bounded, whatever others claim meanwhile
            partition = self._turns.pick()
            if partition is None and not scanned:
                await self._scan()
                partition = self._turns.pick()
            scanned = False
            if partition is None and not cleared:
                # Idle from here on. The tokens left in the wake list name jobs that are
                # claimed already: drop them, or idle workers would wake for each in vain;
                # then look again, so no job queued before the drop goes unseen, and give
                # the jobs seen their tokens back.
                cleared = True
                await self._redis.delete(self._parts.wake)
                await self._scan()
                await self._wake_all(self._turns.queued)
                partition = self._turns.pick()
            if partition is None:
                return None
            if lease := await self._claim_in(partition, worker_id):
                return lease
        return None

    async def _claim_in(self, partition: int, worker_id: str) -> Lease | None:
        fields, left = await self._scripts[partition]("claim", worker_id, self._lease_ms)
        self._turns.claimed(partition, int(left))
        return _lease(fields)

    def _scan_commands(self) -> list[tuple[str, str]]:
        return [("ZCARD", keys.turns) for keys in self._parts.keys]

    async def _scan(self) -> None:
        counts = await pipelined(self._redis, self._scan_commands())
        self._turns.scanned([int(n) for n in counts])

    async def wait_for_work(self, block_seconds: float) -> None:
        """Blocks until a job may have been enqueued (or block_seconds elapse): idle workers
        sleep in Redis, not in a polling loop. The token names the partition to claim from
        first."""
        woken = await self._redis.blpop([self._parts.wake], timeout=block_seconds)  # type: ignore[misc]
        if woken is not None:
            self._woken_for = int(woken[1]) % self._parts.count

    async def wait_for_schedule(self, block_seconds: float) -> bool:
        """Blocks until a job was scheduled (or block_seconds elapse); True when one was.
        Housekeeping then reaps again, which learns the earliest due time of every job
        scheduled so far: the tokens left are spent with this one (a worker starting after
        a burst of delayed submits wakes once, not once per job)."""
        key = self._parts.schedule_wake
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
        """Completes the job and leases the next one in the same round trip: from the
        job's partition in the same script, or, when the turn is another's, by a second
        script in the same pipeline."""
        self._scanned_idle = False
        partition = self._parts.of_job(lease.job_id)
        scripts = self._scripts[partition]
        following = self._turns.pick()
        scan = self._turns.scan_due()
        args = (lease.job_id, lease.fence, json.dumps(result_fields(result)), result.duration)
        if (following is None or following == partition) and not scan:
            # Staying: one script call, no pipeline (the common case when jobs are short).
            done = await scripts(
                "complete", *args, self._completed_ttl_ms, worker_id, self._lease_ms
            )
            fields, left = (done[1], done[2]) if len(done) > 1 else ([], 0)
            self._turns.claimed(partition, int(left))
            return done[0] == 1, _lease(fields)
        commands: list[tuple[Any, ...]] = []
        needed = [(scripts, "complete")]
        if following is None or following == partition:
            following = partition
            commands.append(
                scripts.command(
                    "complete", *args, self._completed_ttl_ms, worker_id, self._lease_ms
                )
            )
        else:
            other = self._scripts[following]
            commands.append(scripts.command("complete", *args, self._completed_ttl_ms))
            commands.append(other.command("claim", worker_id, self._lease_ms))
            needed.append((other, "claim"))
        if scan:
            commands += self._scan_commands()
        out = await pipelined(self._redis, commands, needed)
        if len(commands) > 1 and commands[1][0] == "EVALSHA":
            done, (fields, left), rest = out[0], out[1], out[2:]
        else:
            done, rest = out[0], out[1:]
            fields, left = (done[1], done[2]) if len(done) > 1 else ([], 0)
        self._turns.claimed(following, int(left))
        if scan:  # read after the claim: the fresher count
            self._turns.scanned([int(n) for n in rest])
        # Idle from here on: the next claim drops the wake tokens and scans again (they
        # must be in that order), so the scan just made spares it one before.
        self._scanned_idle = scan and not fields
        return done[0] == 1, _lease(fields)

    async def fail(self, lease: Lease, error: str) -> bool:
        return bool(await self._call("fail", lease, error, self._failed_ttl_ms))

    async def retry(self, lease: Lease, error: str, delay_seconds: float) -> bool:
        done = bool(await self._call("retry", lease, error, int(delay_seconds * 1000)))
        if done:
            partition = self._parts.of_job(lease.job_id)
            await self._parts.wake_workers(self._redis, partition, 0, scheduled=True)
        return done

    async def release(self, lease: Lease) -> bool:
        """Gives an unfinished job back to the queue at once (worker shutting down)."""
        done = bool(await self._call("release", lease))
        if done:
            await self._parts.wake_workers(self._redis, self._parts.of_job(lease.job_id), 1)
        return done

    async def reap(self, limit: int = 100) -> Reaped:
        """Housekeeping of every partition (one pipelined round trip), waking idle workers
        for the jobs it queued."""
        replies = await pipelined(
            self._redis,
            [s.command("reap", self._failed_ttl_ms, limit) for s in self._scripts],
            [(s, "reap") for s in self._scripts],
        )
        requeued = failed = promoted = 0
        next_due_ms = -1
        queued = []
        for reply in replies:
            r, f, p, due = (int(n) for n in reply)
            requeued, failed, promoted = requeued + r, failed + f, promoted + p
            if due >= 0 and (next_due_ms < 0 or due < next_due_ms):
                next_due_ms = due
            queued.append(r + p)
        await self._wake_all(queued)
        next_due = next_due_ms / 1000 if next_due_ms >= 0 else None
        return Reaped(requeued, failed, promoted, next_due)

    async def _wake_all(self, queued: list[int]) -> None:
        """Wake tokens for `queued[p]` jobs of each partition p, in one push."""
        tokens = [p for p, n in enumerate(queued) for _ in range(min(n, WAKE_MAXLEN))]
        await self._parts.push_wake_tokens(self._redis, tokens)

    async def register_worker(self, worker_id: str) -> None:
        await self._redis.zadd(self._parts.workers, {worker_id: int(time.time() * 1000)})

    async def unregister_worker(self, worker_id: str) -> None:
        await self._redis.zrem(self._parts.workers, worker_id)

    async def live_workers(self, within_seconds: float) -> list[str]:
        """The workers that registered within the last `within_seconds`."""
        since = int((time.time() - within_seconds) * 1000)
        return list(await self._redis.zrangebyscore(self._parts.workers, since, "+inf"))

    async def _call(self, script: str, lease: Lease, *args: object) -> Any:
        scripts = self._scripts[self._parts.of_job(lease.job_id)]
        return await scripts(script, lease.job_id, lease.fence, *args)
