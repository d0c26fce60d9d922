"""Soak: thousands of WatchJob streams opened and cancelled leave nothing behind.

A real `mend-server` process serves 2,000 concurrent streams; after they are cancelled its
memory (RSS from /proc) is back near where it was after a warm-up round, and Redis sees the
same connections from it as before: one pub/sub subscription for every stream, not one per
stream. An in-process server shows the same directly: its change feed has no watchers left."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import grpc
import pytest
import redis

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.redis_client import MAX_CONNECTIONS
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer, env_for
from tests.conftest import API_KEY, AUTH
from tests.helpers import resize_request

SERVER_BIN = Path(sys.executable).with_name("mend-server")
STREAMS = 2_000
JOBS = 50  # the streams are spread over these, 40 watchers per job
CHANNELS = 8  # client connections the streams are spread over
# Streams are opened in waves: gRPC core's server rejects calls (CANCELLED) that arrive
# faster than the server takes them beyond grpc.server.max_pending_requests (1,000).
WAVE = 500
ROUNDS = 3  # the first warms up (allocator arenas, pooled Redis connections)
RSS_TOLERANCE_KB = 30 * 1024
# Bounds that only catch hangs; they time nothing.
START_TIMEOUT = 30
SETTLE_TIMEOUT = 20

pytestmark = pytest.mark.timeout(90)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def server_connections(client: redis.Redis) -> list[dict]:
    """Redis' clients other than this test's own connection: the server's, as nothing
    else talks to this Redis during the test."""
    me = client.client_id()
    clients = cast(list[dict], client.client_list())
    return [c for c in clients if int(c["id"]) != me]


def pubsub_count(connections: list[dict]) -> int:
    return sum(1 for c in connections if "P" in c["flags"])


async def settled_rss(pid: int) -> int:
    """RSS once the server has finished tearing the streams down (it stops moving)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    previous = rss_kb(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = rss_kb(pid)
        if abs(current - previous) < 256:
            return current
        previous = current
    return rss_kb(pid)


@pytest.fixture
def server_process(redis_server: RedisServer, redis_client) -> Iterator[tuple[int, int]]:
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="mend-server-", suffix=".log") as log:
        process = subprocess.Popen(
            [str(SERVER_BIN)],
            env=env_for(
                redis_server.url,
                MEND_GRPC_PORT=str(port),
                MEND_API_KEYS=f"acme={API_KEY}",
                MEND_SHUTDOWN_GRACE_SECONDS_SERVER="0",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
                except grpc.FutureTimeoutError:
                    raise AssertionError(
                        f"mend-server did not listen:\n{Path(log.name).read_text()}"
                    ) from None
            yield process.pid, port
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output = Path(log.name).read_text(errors="replace")
    assert "Traceback" not in output, output


async def open_and_cancel(
    stubs: list[jobs_pb2_grpc.JobServiceStub],
    job_ids: list[str],
    during: list[list[dict]],
    redis_client: redis.Redis,
) -> None:
    """Opens STREAMS watch streams, waits until each has its first state, notes Redis'
    connections while they are all open, then cancels every one."""
    calls = []
    for wave in range(0, STREAMS, WAVE):
        opened = [
            stubs[i % len(stubs)].WatchJob(
                pb.WatchJobRequest(id=job_ids[i % len(job_ids)]), metadata=AUTH
            )
            for i in range(wave, wave + WAVE)
        ]
        firsts = await asyncio.gather(*(asyncio.wait_for(c.read(), START_TIMEOUT) for c in opened))
        assert all(f.job.status == pb.JOB_STATUS_PENDING for f in firsts)
        calls += opened
    during.append(server_connections(redis_client))
    for call in calls:
        call.cancel()
    for call in calls:
        assert await call.code() == grpc.StatusCode.CANCELLED


async def test_2000_streams_opened_and_cancelled_leave_nothing_behind(
    server_process, redis_client
) -> None:
    pid, port = server_process
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(CHANNELS)]
    try:
        stubs = [jobs_pb2_grpc.JobServiceStub(ch) for ch in channels]
        job_ids = [
            (await stubs[0].SubmitImageResize(resize_request(), metadata=AUTH)).job_id
            for _ in range(JOBS)
        ]
        idle = server_connections(redis_client)
        # The change feed connects once a job is watched (one connection per node).
        assert pubsub_count(idle) <= 1

        during: list[list[dict]] = []
        after: list[tuple[int, list[dict]]] = []
        for _ in range(ROUNDS):
            await open_and_cancel(stubs, job_ids, during, redis_client)
            rss = await settled_rss(pid)
            after.append((rss, server_connections(redis_client)))
    finally:
        for ch in channels:
            await ch.close()

    # With 2,000 streams open, Redis sees one subscription and the server's bounded pool;
    # cancelling the streams closes none of it: they held no connection of their own.
    for connections, (_, after_cancel) in zip(during, after, strict=True):
        assert pubsub_count(connections) == 1
        assert len(connections) <= MAX_CONNECTIONS + 1
        assert {c["id"] for c in after_cancel} == {c["id"] for c in connections}
    # Memory comes back: 2,000 open streams take ~55 MB here, so a stream that kept even
    # half of its memory after being cancelled would exceed this within a round.
    warm_rss = after[0][0]
    for rss, _ in after[1:]:
        assert rss - warm_rss < RSS_TOLERANCE_KB, (warm_rss, rss)


async def test_cancelled_streams_leave_no_watcher_registered(mend_server, stub) -> None:
    job_ids = [
        (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id for _ in range(10)
    ]
    calls = [
        stub.WatchJob(pb.WatchJobRequest(id=job_ids[i % len(job_ids)]), metadata=AUTH)
        for i in range(500)
    ]
    await asyncio.gather(*(c.read() for c in calls))
    assert mend_server.feed.watcher_count == 500

    for call in calls:
        call.cancel()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while mend_server.feed.watcher_count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mend_server.feed.watcher_count == 0
    assert mend_server.feed.watched_jobs == 0  # no per-job entries left behind either
