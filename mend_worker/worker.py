"""Worker: one process's loop of claim -> run under a lease -> report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid

import redis.exceptions

from mend_core.errors import AccessDenied
from mend_core.jobstate.queue import Lease, WorkQueue
from mend_core.logs import job_context
from mend_core.redis_client import UNAVAILABLE_ERRORS
from mend_core.settings import Settings
from mend_core.tasks import cancel_and_wait
from mend_core.telemetry.metrics import JobMetrics
from mend_core.telemetry.tracing import TRACEPARENT, TRACING_OFF, Tracing
from mend_worker.executor import ChildExecutor, Completed, Failed, Outcome

log = logging.getLogger(__name__)

# Idle workers block in Redis; the timeout only bounds how long a lost wake-up token
# (a worker killed right after taking it) can delay a pickup.
WAIT_TIMEOUT_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 1.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def worker_host(worker_id: str) -> str:
    """The host name a worker id was made on (new_worker_id)."""
    return worker_id.rpartition(":")[0]


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, scaled by 0.5-1.5."""
    return min(cap, base * 2 ** max(attempt - 1, 0)) * random.uniform(0.5, 1.5)


class Worker:
    def __init__(
        self,
        settings: Settings,
        queue: WorkQueue,
        executor: ChildExecutor,
        worker_id: str | None = None,
        *,
        metrics: JobMetrics | None = None,
        tracing: Tracing = TRACING_OFF,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or JobMetrics()
        self._tracing = tracing
        self._queue = queue
        self._executor = executor
        # Checked again before each job: a grant revoked while the job waited applies.
        self._grants = settings.bucket_grants()
        self.worker_id = worker_id or new_worker_id()
        self._stopping = asyncio.Event()
        # A job leased together with the previous one's completion, to run next.
        self._next: Lease | None = None

    def stop(self) -> None:
        """Stop claiming; the running job gets shutdown_grace_seconds, then is released."""
        self._stopping.set()

    async def run(self) -> None:
        self._executor.start()  # start-up (imports) overlaps the wait for the first job
        housekeeping = asyncio.create_task(self._housekeeping())
        try:
            while not self._stopping.is_set():
                try:
                    current = self._next or await self._queue.claim(self.worker_id)
                    self._next = None
                    if current is None:
                        await self._wait_for_work()
                    else:
                        with job_context(current.job_id):  # its tasks inherit the job id
                            self._next = await self._process(current)
                except UNAVAILABLE_ERRORS as exc:
                    log.warning("redis unavailable (%s); retrying in 1s", exc)
                    await asyncio.sleep(1)
        finally:
            if self._next is not None:  # leased with the last completion, never started
                with contextlib.suppress(redis.exceptions.RedisError):
                    await self._queue.release(self._next)
            await cancel_and_wait(housekeeping)
            with contextlib.suppress(redis.exceptions.RedisError):
                await self._queue.unregister_worker(self.worker_id)
            self._executor.close()

    async def _wait_for_work(self) -> None:
        waiting = asyncio.create_task(self._queue.wait_for_work(WAIT_TIMEOUT_SECONDS))
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(waiting, stopping)
        if waiting.done() and not waiting.cancelled() and waiting.exception():
            raise waiting.exception()  # type: ignore[misc]

    async def _housekeeping(self) -> None:
        """Announce this worker, requeue jobs of dead workers, and queue scheduled jobs
        (retries, delayed jobs) when due: it sleeps until the earliest due time when that
        comes before its usual interval, and a newly scheduled job wakes it to look again,
        so a due job is queued on time without polling Redis."""
        scheduled = asyncio.Event()
        watcher = asyncio.create_task(self._watch_schedule(scheduled))
        try:
            while True:
                pause = HOUSEKEEPING_SECONDS
                scheduled.clear()  # before reaping: a job scheduled meanwhile wakes us
                try:
                    await self._queue.register_worker(self.worker_id)
                    reaped = await self._queue.reap()
                    self._metrics.lease_expiries.labels("requeued").inc(reaped.requeued)
                    self._metrics.lease_expiries.labels("failed").inc(reaped.failed)
                    if reaped.requeued or reaped.failed:
                        log.warning(
                            "leases expired: %d jobs requeued, %d failed",
                            reaped.requeued,
                            reaped.failed,
                        )
                    if reaped.next_due_seconds is not None:
                        # A millisecond late rather than early: Redis's clock decides.
                        pause = min(pause, reaped.next_due_seconds + 0.001)
                except redis.exceptions.RedisError as exc:
                    log.warning("housekeeping failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await scheduled.wait()
        finally:
            await cancel_and_wait(watcher)

    async def _watch_schedule(self, scheduled: asyncio.Event) -> None:
        """Sets `scheduled` whenever a job is scheduled (one worker's housekeeping takes
        each wake-up token; the others keep their interval)."""
        while True:
            try:
                if await self._queue.wait_for_schedule(WAIT_TIMEOUT_SECONDS):
                    scheduled.set()
            except redis.exceptions.RedisError as exc:
                log.warning("schedule watch failed: %s", exc)
                await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _process(self, lease: Lease) -> Lease | None:
        """One attempt at a leased job, measured, in a span that joins the submitter's
        trace; returns the next job when it was leased at once."""
        job = lease.job
        job_type = job.spec.type
        if job.attempt == 1 and job.started_at_ms is not None:
            wait = max(0, job.started_at_ms - job.created_at_ms) / 1000  # both Redis' clock
            self._metrics.queue_wait.labels(job_type).observe(wait)
        started = time.perf_counter()
        with self._tracing.span(
            f"job {job_type}",
            kind="consumer",
            parent={TRACEPARENT: job.trace_parent},
            attributes={"mend.job.id": job.id, "mend.job.type": job_type,
                        "mend.job.attempt": job.attempt},
        ):
            try:
                return await self._attempt(lease)
            finally:
                self._metrics.processing.labels(job_type).observe(time.perf_counter() - started)

    async def _attempt(self, lease: Lease) -> Lease | None:
        """Runs a leased job to its end; returns the next job when it was leased at once."""
        job = lease.job
        log.debug("job %s: attempt %d of %d", job.id, job.attempt, job.spec.max_attempts)
        spec = job.spec
        try:
            self._grants.check(job.tenant, spec.buckets())
        except AccessDenied as exc:
            return await self._report(lease, Failed(str(exc), permanent=True))

        async def on_progress(percent: int, message: str) -> None:
            try:
                await self._queue.progress(lease, percent, message)
            except redis.exceptions.RedisError as exc:  # progress is best effort
                log.warning("job %s: progress not recorded: %s", job.id, exc)

        running = asyncio.create_task(
            self._executor.run(job.id, spec, on_progress, trace_parent=self._tracing.traceparent())
        )
        lost = asyncio.create_task(self._until_lease_lost(lease))
        stopped = asyncio.create_task(self._until_grace_expired())
        done, _ = await asyncio.wait(
            {running, lost, stopped},
            timeout=spec.timeout_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        await cancel_and_wait(lost, stopped)
        if running in done:
            return await self._report(lease, running.result())
        # The job must stop now: kill the child, then account for why.
        await cancel_and_wait(running)
        self._executor.kill()
        if not self._stopping.is_set():
            # The next job should not pay for the new child's start-up.
            self._executor.start()
        if lost in done:
            log.info("job %s: lease lost (cancelled or reassigned); stopped it", job.id)
        elif stopped in done:
            log.info("job %s: shutting down; releasing it to another worker", job.id)
            await self._queue.release(lease)
        else:
            timed_out = Failed(f"timed out after {spec.timeout_seconds}s", permanent=False)
            return await self._report(lease, timed_out)
        return None

    async def _until_lease_lost(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            try:
                if not await self._queue.heartbeat(lease):
                    return
            except redis.exceptions.RedisError as exc:
                # Keep going: the lease may outlive a short Redis hiccup.
                log.warning("heartbeat failed: %s", exc)

    async def _until_grace_expired(self) -> None:
        await self._stopping.wait()
        await asyncio.sleep(self._settings.shutdown_grace_seconds)

    async def _report(self, lease: Lease, outcome: Outcome) -> Lease | None:
        """Records how the job ended; after a success, also leases the next job (one round
        trip for both) unless the worker is stopping."""
        job = lease.job
        following = None
        if isinstance(outcome, Completed):
            result = outcome.result
            if self._stopping.is_set():
                committed = await self._queue.complete(lease, result)
            else:
                committed, following = await self._queue.complete_and_claim(
                    lease, result, self.worker_id
                )
            log.info("job %s: completed in %.3fs", job.id, result.duration)
            outcome_name = "completed"
        elif not outcome.permanent and job.attempt < job.spec.max_attempts:
            delay = backoff_seconds(
                job.attempt,
                self._settings.retry_backoff_base_seconds,
                self._settings.retry_backoff_max_seconds,
            )
            committed = await self._queue.retry(lease, outcome.error, delay)
            log.info("job %s: %s; retrying in %.1fs", job.id, outcome.error, delay)
            outcome_name = "retry"
        else:
            error = outcome.error
            if not outcome.permanent:
                error += f" (gave up after {job.attempt} attempts)"
            committed = await self._queue.fail(lease, error)
            log.info("job %s: failed: %s", job.id, error)
            outcome_name = "failed"
        if not committed:
            log.info("job %s: lease lost before reporting; result dropped", job.id)
        elif outcome_name == "retry":
            self._metrics.retries.labels(job.spec.type).inc()
        else:
            self._metrics.finished.labels(job.spec.type, outcome_name).inc()
        return following
