"""Chaos: ~300 jobs through real processes while everything they depend on is killed.

A client submits 300 resizes at a steady pace through a real `mend-server`, retrying a
submit that fails as a real client would (same request_id: the same job). Meanwhile a
random `mend-worker` is SIGKILLed every 2 s (and replaced), Redis is SIGKILLed and
restarted once (same port, same AOF), and `mend-server` is SIGKILLed and restarted once
(same port). Then, once the faults stop: every job whose submit answered ends
`completed` with an output of the requested size, nothing is left queued, in flight or
scheduled, and no request_id made two jobs.

Waits are bounded generously for a loaded machine: they catch hangs, they time nothing.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.job import JobStatus
from mend_core.jobstate.encoding import FIELDS
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from tests.conftest import AUTH
from tests.helpers import PARTS, across, job_key
from tests.images import decode, encode
from tests.test_server_lifecycle import ServerProcess
from tests.workers import FAST_ENV, WorkerProcess, Workers, get_job, worker_pool

JOBS = 300
# A PNG this large takes a worker tens of ms to decode: the workers fall behind the
# client, so a killed worker almost always dies holding a job (a kill between jobs
# would prove nothing).
SOURCE_SIZE = (2400, 1800)
WORKERS = 3
KILL_EVERY = 2.0
SUBMIT_SECONDS = 10.0  # submits are spread over this, so the outages hit some
REDIS_KILL_AT = 3.0  # seconds into the chaos
REDIS_DOWN = 1.0
SERVER_KILL_AT = 7.0
CHAOS_AT_LEAST = 18.0  # worker kills go on until then, and until every job was accepted
SUBMIT_WITHIN = 60.0  # per job: how long the client keeps retrying a submit
DRAIN_WITHIN = 90.0  # after the chaos: every accepted job must be terminal by then
# Every worker kill costs the job it held one attempt (its lease expires, the reaper
# requeues it), and so can the Redis outage. Ten attempts, the server's limit, means a
# job fails only if it was hit ten times: the test checks that faults lose no job, not
# what a job's attempt budget is.
MAX_ATTEMPTS = 10
BUCKET = "chaos"
SOURCE_KEY = "in/photo.png"
# Reconnect quickly once the restarted server listens again (gRPC's default backoff
# grows from 1 s towards 2 minutes), as a client that expects restarts would.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# What a real client retries: the service (or its store) is briefly unreachable.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

COMPLETED = pb.JOB_STATUS_COMPLETED

pytestmark = pytest.mark.timeout(240)


def size_of(i: int) -> tuple[int, int]:
    """Each job asks for its own output size, so a mixed-up output would show."""
    return 40 + i % 61, 30 + (i * 7) % 47


def request(i: int) -> pb.SubmitImageResizeRequest:
    width, height = size_of(i)
    return pb.SubmitImageResizeRequest(
        source_bucket=BUCKET,
        source_key=SOURCE_KEY,
        dest_bucket=BUCKET,
        dest_key=f"out/{i:03d}.png",
        width=width,
        height=height,
        fit=pb.FIT_MODE_FILL,
        request_id=f"chaos-{i:03d}",
        max_attempts=MAX_ATTEMPTS,
    )


@dataclass
class Client:
    """Submits jobs like a real client: a submit that fails retryably is sent again with
    the same request_id; a job counts as accepted once a submit answered its id."""

    stub: jobs_pb2_grpc.JobServiceStub
    accepted: dict[int, str] = field(default_factory=dict)
    # Every id any submit answered for a request: more than one is a duplicate job.
    answered: dict[int, set[str]] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)
    refused: dict[int, str] = field(default_factory=dict)

    async def submit(self, i: int) -> None:
        deadline = time.monotonic() + SUBMIT_WITHIN
        while True:
            try:
                response = await self.stub.SubmitImageResize(request(i), metadata=AUTH, timeout=5)
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE or time.monotonic() > deadline:
                    self.refused[i] = f"{err.code().name}: {err.details()}"
                    return
                self.retried[err.code().name] += 1
                await asyncio.sleep(0.2)
                continue
            self.answered.setdefault(i, set()).add(response.job_id)
            self.accepted[i] = response.job_id
            return

    async def run(self) -> None:
        """JOBS submits at a steady pace over SUBMIT_SECONDS, each retried on its own."""
        start = time.monotonic()
        pending = []
        for i in range(JOBS):
            await asyncio.sleep(max(0.0, start + i * SUBMIT_SECONDS / JOBS - time.monotonic()))
            pending.append(asyncio.create_task(self.submit(i)))
        await asyncio.gather(*pending)


class Pool:
    """WORKERS `mend-worker --single` processes; kill() SIGKILLs a random one and starts
    its replacement, as a supervisor would (without the supervisor's crash backoff)."""

    def __init__(self, workers: Workers) -> None:
        self._workers = workers
        self.live = [workers.start() for _ in range(WORKERS)]
        self.killed = 0

    def kill(self) -> None:
        victim: WorkerProcess = random.choice(self.live)
        victim.signal(signal.SIGKILL)
        self.killed += 1
        self.live.remove(victim)
        self.live.append(self._workers.start())


class Timeline:
    """What happened when, for the failure message."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.entries: list[str] = []

    def note(self, what: str) -> None:
        self.entries.append(f"{time.monotonic() - self._start:6.1f}s {what}")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start


class Outages:
    """Redis and the server, each SIGKILLed and restarted once on its own port."""

    def __init__(self, redis: RedisServer, server: ServerProcess, env: dict[str, str]) -> None:
        self.redis = redis
        self.server = server
        self._env = env

    async def redis_restart(self, timeline: Timeline) -> None:
        self.redis.kill()
        timeline.note("redis SIGKILLed")
        await asyncio.sleep(REDIS_DOWN)
        await asyncio.to_thread(self.redis.restart)
        timeline.note("redis restarted")

    async def server_restart(self, timeline: Timeline) -> None:
        old = self.server
        old.process.kill()
        await asyncio.to_thread(old.process.wait, 10)
        timeline.note("mend-server SIGKILLed")
        old.close()
        self.server = ServerProcess(self.redis.url, port=old.port, **self._env)
        await asyncio.to_thread(self.server.wait_ready)
        timeline.note("mend-server restarted")


async def at(seconds: float, fault: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(seconds)
    await fault()


async def chaos(client: Client, pool: Pool, outages: Outages, timeline: Timeline) -> None:
    """Submits every job while a worker is killed every KILL_EVERY seconds, and Redis and
    the server once each; goes on until every submit ended and CHAOS_AT_LEAST passed."""
    tasks = [
        asyncio.create_task(client.run()),
        asyncio.create_task(at(REDIS_KILL_AT, lambda: outages.redis_restart(timeline))),
        asyncio.create_task(at(SERVER_KILL_AT, lambda: outages.server_restart(timeline))),
    ]
    try:
        while not all(t.done() for t in tasks) or timeline.elapsed < CHAOS_AT_LEAST:
            await asyncio.sleep(KILL_EVERY)
            pool.kill()
            timeline.note(f"worker SIGKILLed ({pool.killed}), {backlog(outages.redis)}")
        for task in tasks:
            await task  # raises what a fault or the client raised
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    timeline.note(f"chaos over: {len(client.accepted)} jobs accepted")


def backlog(server: RedisServer) -> str:
    """How many jobs wait and run, for the timeline."""
    client = redis.Redis(port=server.port, socket_timeout=1)
    try:
        queued, inflight = across(client, "ZCARD", "turns"), across(client, "ZCARD", "inflight")
        return f"{queued} queued, {inflight} in flight"
    except redis.RedisError:
        return "redis down"
    finally:
        client.close()


def stuck(r: redis.Redis, job_ids: Iterable[str]) -> list[str]:
    """The jobs that are not terminal (yet)."""
    ids = list(job_ids)
    with r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(job_key(job_id), FIELDS["status"])
        statuses = pipe.execute()
    return [i for i, s in zip(ids, statuses, strict=True) if not (s and JobStatus(s).terminal)]


async def drain(r: redis.Redis, job_ids: Iterable[str], timeline: Timeline) -> None:
    """Waits until every job is terminal; returns either way at the deadline (the
    assertions then say which are not)."""
    deadline = time.monotonic() + DRAIN_WITHIN
    while stuck(r, job_ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    timeline.note("drained")


def describe(i: int, job: pb.Job) -> str:
    status = pb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
    return f"#{i} {job.id} {status} attempt {job.attempt}/{job.max_attempts} error={job.error!r}"


def leftovers(r: redis.Redis) -> dict[str, int]:
    """Jobs still queued, in flight or scheduled for a retry: none once all are done."""
    return {
        "queue": across(r, "ZCARD", "turns"),
        "inflight": across(r, "ZCARD", "inflight"),
        "scheduled": across(r, "ZCARD", "scheduled"),
    }


def job_count(r: redis.Redis) -> int:
    return sum(
        1 for keys in PARTS.keys for _ in r.scan_iter(match=keys.job("*"), count=1000)
    )


def output_problem(root: Path, i: int, job: pb.Job) -> str | None:
    """What is wrong with a completed job's output, if anything: it must decode and have
    the size the job asked for."""
    try:
        size = decode((root / BUCKET / f"out/{i:03d}.png").read_bytes()).size
    except (OSError, ValueError) as exc:  # missing, or not an image Pillow can read
        return f"#{i} {job.id}: output unreadable: {exc}"
    reported = (job.result.metadata.width, job.result.metadata.height)
    if size != size_of(i) or reported != size_of(i):
        return f"#{i} {job.id}: output {size}, reported {reported}, asked for {size_of(i)}"
    return None


async def test_accepted_jobs_survive_killed_workers_redis_and_server(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    (root / BUCKET / "in").mkdir(parents=True)
    (root / BUCKET / SOURCE_KEY).write_bytes(encode(photo(*SOURCE_SIZE), "PNG"))
    redis_server = RedisServer()
    outages = Outages(redis_server, ServerProcess(redis_server.url, **FAST_ENV), FAST_ENV)
    r = redis_server.client()
    try:
        await asyncio.to_thread(outages.server.wait_ready)
        async with (
            worker_pool(
                redis_server.url, MEND_STORAGE="file", MEND_STORAGE_ROOT=str(root)
            ) as workers,
            grpc.aio.insecure_channel(
                f"127.0.0.1:{outages.server.port}", options=CHANNEL_OPTIONS
            ) as channel,
        ):
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            client = Client(stub)
            pool = Pool(workers)
            timeline = Timeline()
            await chaos(client, pool, outages, timeline)
            await drain(r, client.accepted.values(), timeline)
            # Read back through the restarted server, as the client would.
            found = await asyncio.gather(*(get_job(stub, i) for i in client.accepted.values()))
            jobs = dict(zip(client.accepted, found, strict=True))
            left, made = leftovers(r), job_count(r)
    finally:
        r.close()
        outages.server.close()
        redis_server.stop()

    timings = "\n".join(timeline.entries)
    attempts = sorted(Counter(job.attempt for job in jobs.values()).items())
    summary = (
        f"{len(jobs)} of {JOBS} jobs accepted, {pool.killed} workers killed, "
        f"submits retried {dict(client.retried)}, jobs by attempts {attempts}\n{timings}"
    )
    print(summary)  # with -s: how hard the chaos hit
    assert client.refused == {}, f"submits that never got a job id: {client.refused}\n{summary}"
    assert len(jobs) == JOBS, summary
    unfinished = [describe(i, job) for i, job in jobs.items() if job.status != COMPLETED]
    assert unfinished == [], (
        f"{len(unfinished)} accepted jobs did not complete:\n" + "\n".join(unfinished)
        + f"\n{summary}"
    )
    bad_outputs = [p for i, job in jobs.items() if (p := output_problem(root, i, job))]
    assert bad_outputs == [], "\n".join(bad_outputs)
    assert left == {"queue": 0, "inflight": 0, "scheduled": 0}, summary
    # One job per request_id: a retried submit got its first job back, never a new one.
    duplicates = {i: ids for i, ids in client.answered.items() if len(ids) > 1}
    assert duplicates == {}, f"request_ids that made several jobs: {duplicates}"
    assert made == JOBS, f"{made} jobs in Redis for {JOBS} request_ids"
    # The chaos really hit: clients saw the outages, jobs were run again.
    assert client.retried["UNAVAILABLE"] > 0, summary
    assert any(job.attempt > 1 for job in jobs.values()), summary
