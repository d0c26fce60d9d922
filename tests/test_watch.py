"""WatchJob: current state first, then every change exactly once and in order, the end after
the terminal state; resuming from a version; no state lost when Redis drops the pub/sub
connection; many watchers on one server; heartbeats; tenants and bad ids.

Transitions are driven through WorkQueue (the worker's side of the store) rather than by a
worker process, so each test decides exactly when each change happens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.jobstate.encoding import EVENTS_MAXLEN, log_start
from mend_core.jobstate.queue import Lease, WorkQueue
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import AUTH, OTHER_AUTH, make_settings
from tests.helpers import (
    bad_request,
    events_key,
    job_key,
    log_entries,
    resize_request,
    violated_fields,
)

# Bounds that only catch hangs (a watcher that never hears of a change); they time nothing.
# Below the default heartbeat (15 s), whose re-read of the log would hide a missed wake-up.
HANG_SECONDS = 10.0
RESULT = JobResult(
    output_url="file://my-bucket/images/output.jpg",
    file_size=1234,
    duration=0.5,
    metadata=ImageMetadata(width=800, height=600, format="JPEG"),
)

Stub = jobs_pb2_grpc.JobServiceStub
StartServer = Callable[..., Awaitable[Stub]]

@pytest.fixture
def queue(work: WorkQueue) -> WorkQueue:
    return work


@pytest.fixture
async def start_server(redis_server: RedisServer, redis_client) -> AsyncIterator[StartServer]:
    """Starts a MendServer with settings overrides; returns a stub on its own channel."""
    servers: list[MendServer] = []
    channels: list[grpc.aio.Channel] = []

    async def start(**overrides: object) -> Stub:
        server = MendServer(make_settings(redis_server.url, **overrides))
        await server.start()
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return jobs_pb2_grpc.JobServiceStub(channel)

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(grace=0)


async def submit(stub: Stub) -> str:
    return (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id


async def claim(queue: WorkQueue, job_id: str) -> Lease:
    lease = await queue.claim("test-worker")
    assert lease is not None and lease.job_id == job_id
    return lease


async def next_job(call: grpc.aio.UnaryStreamCall) -> pb.Job | None:
    """The next job state on the stream, skipping heartbeats; None at the end."""
    while True:
        message = await asyncio.wait_for(call.read(), HANG_SECONDS)
        if message is grpc.aio.EOF:
            return None
        if message.HasField("job"):
            return message.job


async def rest_of(call: grpc.aio.UnaryStreamCall) -> list[pb.Job]:
    """Every remaining job state, up to the end of the stream (which must be OK)."""
    states = []
    while (job := await next_job(call)) is not None:
        states.append(job)
    assert await call.code() == grpc.StatusCode.OK
    return states


def summary(states: list[pb.Job]) -> list[tuple[int, int, int]]:
    return [(s.version, s.status, s.progress.percent) for s in states]


async def test_watch_pending_job_through_to_completed(stub, queue) -> None:
    job_id = await submit(stub)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)

    first = await next_job(call)
    assert first is not None
    assert (first.id, first.status) == (job_id, pb.JOB_STATUS_PENDING)
    assert first.queue_position == 1  # the current state, as GetJob shows it
    v = first.version

    # One change at a time: each arrives once, with the next version.
    lease = await claim(queue, job_id)
    processing = await next_job(call)
    assert processing is not None
    assert (processing.version, processing.status) == (v + 1, pb.JOB_STATUS_PROCESSING)

    assert await queue.progress(lease, 40, "Resizing")
    progress = await next_job(call)
    assert progress is not None
    assert (progress.version, progress.status) == (v + 2, pb.JOB_STATUS_PROCESSING)
    assert (progress.progress.percent, progress.progress.message) == (40, "Resizing")

    assert await queue.complete(lease, RESULT)
    completed = await next_job(call)
    assert completed is not None
    assert (completed.version, completed.status) == (v + 3, pb.JOB_STATUS_COMPLETED)
    assert completed.result.output_url == RESULT.output_url
    # The stream ends after the terminal state.
    assert await rest_of(call) == []


async def test_watch_sees_each_of_a_burst_of_changes_once(stub, queue) -> None:
    job_id = await submit(stub)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    first = await next_job(call)
    assert first is not None

    # Changes faster than the watcher reads: wake-ups coalesce, states must not.
    lease = await claim(queue, job_id)
    for percent in range(10, 100, 10):
        assert await queue.progress(lease, percent, f"{percent}%")
    assert await queue.complete(lease, RESULT)

    states = await rest_of(call)
    v = first.version
    assert [s.version for s in states] == list(range(v + 1, v + 12))
    assert [s.progress.percent for s in states[1:-1]] == list(range(10, 100, 10))
    assert states[-1].status == pb.JOB_STATUS_COMPLETED


async def test_watcher_joining_mid_flight_sees_every_later_state_once(stub, queue) -> None:
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 10, "Downloading")

    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    current = await next_job(call)
    assert current is not None
    assert current.status == pb.JOB_STATUS_PROCESSING
    assert (current.progress.percent, current.progress.message) == (10, "Downloading")
    v = current.version

    assert await queue.progress(lease, 60, "Encoding")
    assert await queue.complete(lease, RESULT)
    assert summary(await rest_of(call)) == [
        (v + 1, pb.JOB_STATUS_PROCESSING, 60),
        (v + 2, pb.JOB_STATUS_COMPLETED, 100),
    ]


async def test_watch_finished_job_and_resume_from_each_version(stub, queue) -> None:
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 30, "a")
    assert await queue.progress(lease, 70, "b")
    assert await queue.complete(lease, RESULT)
    final = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert final.status == pb.JOB_STATUS_COMPLETED

    # A finished job: its final state at once, then the end.
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    assert summary(await rest_of(call)) == [(final.version, pb.JOB_STATUS_COMPLETED, 100)]

    # Reconnecting after version k: exactly the versions above k, the terminal one last.
    for k in range(final.version):
        call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
        states = await rest_of(call)
        assert [s.version for s in states] == list(range(k + 1, final.version + 1)), k
        assert states[-1].status == pb.JOB_STATUS_COMPLETED

    # Resuming from the terminal version: nothing left, the stream ends at once.
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=final.version), metadata=AUTH)
    assert await rest_of(call) == []


async def test_a_finished_jobs_log_goes_soon_and_a_resume_gets_the_final_state(
    stub, queue, redis_client
) -> None:
    # The log is what resuming reads while a job runs; once it has finished, it is kept
    # only for a short grace, and the job (kept for its retention) answers instead.
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 30, "a")
    assert await queue.complete(lease, RESULT)
    final = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    log, job = events_key(job_id), job_key(job_id)
    assert 0 < redis_client.pttl(log) <= 60_000
    assert redis_client.ttl(job) > 3000  # the work fixture's retention: an hour

    redis_client.delete(log)  # what its expiry does
    for k in range(final.version):
        call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
        states = await rest_of(call)
        assert states == [final], k
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=final.version), metadata=AUTH)
    assert await rest_of(call) == []


async def test_each_log_entry_holds_what_its_version_changed(stub, queue, redis_client) -> None:
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 30, "a")
    assert await queue.complete(lease, RESULT)
    entries = [fields for _, fields in log_entries(redis_client, job_id)]
    # The submit's entry is the whole job; each later one what changed: fields set, and
    # under "-" the names of those removed.
    assert entries[0]["tenant"] == "acme" and entries[0]["status"] == "pending"
    assert set(entries[1]) == {"status", "attempt", "fence", "started_at", "worker", "updated_at"}
    assert entries[2].pop("updated_at")
    assert entries[2] == {"progress_percent": "30", "progress_message": "a"}
    assert entries[3]["status"] == "completed" and entries[3]["output_url"] == RESULT.output_url
    assert entries[3]["-"] == "worker progress_percent progress_message"
    assert "source_key" not in entries[3]


async def test_resume_from_any_version_of_a_long_log(stub, queue, redis_client) -> None:
    # Every 64th version's entry is the whole job again, so that a state is rebuilt from
    # a bounded part of the log; resuming either side of those must give the same states.
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    claimed = (await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)).version
    for i in range(140):
        assert await queue.progress(lease, i % 100, f"step {i}")
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    whole = [v for v, fields in log_entries(redis_client, job_id) if "tenant" in fields]
    assert whole == [1, 65, 129]
    for k in (0, 1, claimed, 63, 64, 65, 66, 100, 128, 129, 130, current.version - 1):
        call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
        states = [await next_job(call) for _ in range(k, current.version)]
        call.cancel()
        assert [s.version for s in states if s] == list(range(k + 1, current.version + 1))
        for s in states:
            assert s is not None and s.source_key == current.source_key, k
            if s.version > claimed:
                step = s.version - claimed - 1
                assert s.progress.message == f"step {step}", (k, s.version)
                assert s.status == pb.JOB_STATUS_PROCESSING and s.attempt == 1


async def test_a_long_log_keeps_its_last_versions_only(stub, queue, redis_client) -> None:
    # A job with more progress updates than the log holds: the log keeps the last
    # EVENTS_MAXLEN versions; a resume within them replays them, one from before them
    # gets the current state.
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    for i in range(EVENTS_MAXLEN + 40):
        assert await queue.progress(lease, i % 100, f"step {i}")
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    versions = [version for version, _ in log_entries(redis_client, job_id)]
    assert versions == list(range(current.version - EVENTS_MAXLEN + 1, current.version + 1))

    k = current.version - 100
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
    states = [await next_job(call) for _ in range(k, current.version)]
    call.cancel()
    assert [s.version for s in states if s] == list(range(k + 1, current.version + 1))
    assert states[-1] == current

    for k in (0, 1, versions[0] - 2):
        assert log_start(k) < versions[0]  # its states' whole-job entry is trimmed
        call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
        assert await next_job(call) == current, k
        call.cancel()


async def test_a_job_whose_log_is_still_a_stream_goes_on(stub, queue, redis_client) -> None:
    # A job stored before the log was a list has a stream there: a resume answers with the
    # job as it is, and the job's next change starts the list over with the whole job.
    job_id = await submit(stub)
    log = events_key(job_id)
    redis_client.delete(log)
    redis_client.xadd(log, {"status": "pending", "version": "1"}, id="0-1")
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=0), metadata=AUTH)
    pending = await next_job(call)
    call.cancel()
    assert pending is not None and (pending.version, pending.status) == (1, pb.JOB_STATUS_PENDING)

    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 30, "a")
    assert redis_client.type(log) == "list"
    assert [v for v, _ in log_entries(redis_client, job_id)] == [2, 3]
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=2), metadata=AUTH)
    progress = await next_job(call)
    call.cancel()
    assert progress is not None and (progress.version, progress.progress.percent) == (3, 30)
    assert await queue.complete(lease, RESULT)


async def test_watch_accepts_the_id_in_upper_case(stub, queue) -> None:
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.complete(lease, RESULT)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id.upper()), metadata=AUTH)
    states = await rest_of(call)
    assert [(s.id, s.status) for s in states] == [(job_id, pb.JOB_STATUS_COMPLETED)]


async def test_resume_from_version_of_a_running_job_then_follow_it(stub, queue) -> None:
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    assert await queue.progress(lease, 50, "half")
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)

    # A client that saw only the submit (version 1) catches up, then follows live.
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=1), metadata=AUTH)
    caught_up = [await next_job(call) for _ in range(2, current.version + 1)]
    assert [s.version for s in caught_up if s] == list(range(2, current.version + 1))
    assert await queue.complete(lease, RESULT)
    assert summary(await rest_of(call)) == [(current.version + 1, pb.JOB_STATUS_COMPLETED, 100)]


async def test_resume_across_more_states_than_one_read_returns(start_server, queue) -> None:
    # The log is read in pages; a long backlog must not wait for the next change (or the
    # next heartbeat, an hour away here) to be delivered in full.
    stub = await start_server(watch_heartbeat_seconds=3600)
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    for i in range(250):
        assert await queue.progress(lease, i % 100, f"step {i}")
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)

    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=0), metadata=AUTH)
    backlog = [await next_job(call) for _ in range(current.version)]
    assert [s.version for s in backlog if s] == list(range(1, current.version + 1))
    assert await queue.complete(lease, RESULT)
    assert summary(await rest_of(call)) == [(current.version + 1, pb.JOB_STATUS_COMPLETED, 100)]


async def test_no_state_lost_when_redis_drops_the_pubsub_connection(
    start_server, queue, redis_client
) -> None:
    # Heartbeats (which also re-read the log) are out of the way: only the change feed's
    # resubscribe-and-reread can bring these states to the watcher in time.
    stub = await start_server(watch_heartbeat_seconds=3600)
    job_id = await submit(stub)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    first = await next_job(call)
    assert first is not None

    # Each change is made right after Redis killed the subscription, before the feed can
    # have resubscribed, so its PUBLISH reaches nobody.
    assert redis_client.client_kill_filter(_type="pubsub") >= 1
    lease = await claim(queue, job_id)
    processing = await next_job(call)
    assert processing is not None
    assert (processing.version, processing.status) == (first.version + 1, pb.JOB_STATUS_PROCESSING)

    assert redis_client.client_kill_filter(_type="pubsub") >= 1
    assert await queue.progress(lease, 50, "half")
    assert await queue.complete(lease, RESULT)
    assert summary(await rest_of(call)) == [
        (first.version + 2, pb.JOB_STATUS_PROCESSING, 50),
        (first.version + 3, pb.JOB_STATUS_COMPLETED, 100),
    ]


async def test_500_concurrent_watchers_all_see_the_terminal_state(stub, queue) -> None:
    # 50 jobs with 5 watchers each, and one job with 250.
    spread = [await submit(stub) for _ in range(50)]
    crowded = await submit(stub)
    targets = [job_id for job_id in spread for _ in range(5)] + [crowded] * 250
    calls = [stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH) for job_id in targets]
    firsts = await asyncio.gather(*(next_job(call) for call in calls))
    assert all(f is not None and f.status == pb.JOB_STATUS_PENDING for f in firsts)

    async def run_all() -> None:
        for _ in range(len(spread) + 1):
            lease = await queue.claim("test-worker")
            assert lease is not None
            assert await queue.progress(lease, 50, "half")
            assert await queue.complete(lease, RESULT)

    driver = asyncio.create_task(run_all())
    results = await asyncio.gather(*(rest_of(call) for call in calls))
    await driver
    for job_id, first, states in zip(targets, firsts, results, strict=True):
        assert first is not None
        assert [s.id for s in states] == [job_id] * 3
        assert [s.version for s in states] == [first.version + i for i in (1, 2, 3)]
        assert states[-1].status == pb.JOB_STATUS_COMPLETED


async def test_watchers_of_one_job_at_different_versions_each_see_their_own_rest(
    stub, queue
) -> None:
    # Watchers of one job share reads of its log; watchers that are at different versions
    # (resumed from various points, joined live) must still each get exactly their rest.
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    for percent in (10, 20, 30):
        assert await queue.progress(lease, percent, "")
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    starts = [k for k in range(current.version + 1) for _ in range(20)]
    resumed = [
        stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=k), metadata=AUTH)
        for k in starts
    ]
    live = [stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH) for _ in range(50)]
    firsts = await asyncio.gather(*(next_job(call) for call in live))
    assert {f.version for f in firsts if f} == {current.version}

    async def burst() -> None:
        for percent in range(40, 100, 10):
            assert await queue.progress(lease, percent, "")
        assert await queue.complete(lease, RESULT)

    driver = asyncio.create_task(burst())
    results = await asyncio.gather(*(rest_of(call) for call in resumed + live))
    await driver
    final = current.version + 7
    for start, states in zip(starts + [current.version] * len(live), results, strict=True):
        assert [s.version for s in states] == list(range(start + 1, final + 1)), start


async def test_idle_stream_receives_heartbeats(start_server, queue) -> None:
    stub = await start_server(watch_heartbeat_seconds=0.1)
    job_id = await submit(stub)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    first = await asyncio.wait_for(call.read(), HANG_SECONDS)
    assert first.job.status == pb.JOB_STATUS_PENDING

    # Nothing changes: the stream still carries a message now and then.
    for _ in range(3):
        message = await asyncio.wait_for(call.read(), HANG_SECONDS)
        assert message.HasField("heartbeat")

    # Heartbeats do not disturb the states that follow.
    lease = await claim(queue, job_id)
    assert await queue.complete(lease, RESULT)
    assert [s.status for s in await rest_of(call)] == [
        pb.JOB_STATUS_PROCESSING,
        pb.JOB_STATUS_COMPLETED,
    ]


async def test_watch_of_another_tenants_job_is_not_found(stub) -> None:
    job_id = await submit(stub)
    for request in (
        pb.WatchJobRequest(id=job_id),
        pb.WatchJobRequest(id=job_id, from_version=0),
        pb.WatchJobRequest(id=str(uuid.uuid4())),
    ):
        call = stub.WatchJob(request, metadata=OTHER_AUTH)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("bad_id", ["", "nope", "12345678-1234-1234-1234-123456789012", "x" * 200])
async def test_watch_of_a_malformed_id_is_invalid_argument(stub, bad_id) -> None:
    call = stub.WatchJob(pb.WatchJobRequest(id=bad_id), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert violated_fields(info.value) == ["id"]


async def test_resuming_from_a_version_the_job_never_had_is_out_of_range(stub, queue) -> None:
    # A running job: waiting for version 99 would wait forever (heartbeats, and after
    # the job completes still nothing), so the server says at once where the job is.
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    for beyond in (current.version + 1, 99):
        call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=beyond), metadata=AUTH)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(call.read(), HANG_SECONDS)
        assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
        [violation] = bad_request(info.value).field_violations
        assert violation.field == "from_version"
        assert f"job {job_id} is at version {current.version}" in violation.description

    # A finished job: the same, rather than an empty stream that looks like "all seen".
    assert await queue.complete(lease, RESULT)
    final = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    call = stub.WatchJob(
        pb.WatchJobRequest(id=job_id, from_version=final.version + 1), metadata=AUTH
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(call.read(), HANG_SECONDS)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert f"is at version {final.version}" in info.value.details()


async def test_a_resumed_watch_with_nothing_to_catch_up_starts_with_a_heartbeat(
    start_server, queue
) -> None:
    # The heartbeat interval is an hour: the first heartbeat can only be the greeting.
    stub = await start_server(watch_heartbeat_seconds=3600)
    job_id = await submit(stub)
    lease = await claim(queue, job_id)
    current = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    call = stub.WatchJob(
        pb.WatchJobRequest(id=job_id, from_version=current.version), metadata=AUTH
    )
    first = await asyncio.wait_for(call.read(), HANG_SECONDS)
    assert first.HasField("heartbeat")
    assert await queue.complete(lease, RESULT)
    assert summary(await rest_of(call)) == [(current.version + 1, pb.JOB_STATUS_COMPLETED, 100)]


def evalsha_calls(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def log_reads(redis_client) -> int:
    """Reads of jobs' event logs so far (events.lua's LINDEX, one a read)."""
    return int(redis_client.info("commandstats").get("cmdstat_lindex", {}).get("calls", 0))


async def test_a_stream_opened_on_the_current_state_reads_the_log_only_after_a_change(
    stub, mend_server, redis_client
) -> None:
    """After the current state, the stream waits for a change before reading the job's log
    (a change since the stream registered wakes it): one read per change, none for nothing."""
    parts = mend_server.partitions
    first = await submit(stub)
    holding = stub.WatchJob(pb.WatchJobRequest(id=first), metadata=AUTH)
    assert await next_job(holding) is not None  # keeps the partition subscribed
    partition = parts.of_job(first)
    while parts.of_job(job_id := await submit(stub)) != partition:
        pass
    await asyncio.sleep(0.3)  # the first stream's reads, if any, are done
    before = log_reads(redis_client)
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
    current = await next_job(call)
    assert current is not None and current.status == pb.JOB_STATUS_PENDING
    await asyncio.sleep(0.3)  # room for a read the stream should not make
    assert log_reads(redis_client) == before
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AUTH)
    cancelled = await next_job(call)
    assert cancelled is not None and cancelled.status == pb.JOB_STATUS_CANCELLED
    assert await rest_of(call) == []
    assert log_reads(redis_client) == before + 1
    holding.cancel()


async def test_watchers_opening_at_once_share_one_first_read_per_tenant(
    stub, queue, redis_client
) -> None:
    """60 streams opened together on one job, half by another tenant: the owner's all get
    the same current state from a few shared reads; the other tenant's are NOT_FOUND."""
    job_id = await submit(stub)
    before = evalsha_calls(redis_client)
    calls = [
        stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH if i % 2 else OTHER_AUTH)
        for i in range(60)
    ]

    async def first(call: grpc.aio.UnaryStreamCall) -> pb.Job | grpc.StatusCode:
        try:
            job = await next_job(call)
        except grpc.aio.AioRpcError as err:
            return err.code()
        assert job is not None
        return job

    firsts = await asyncio.gather(*(first(c) for c in calls))
    reads = evalsha_calls(redis_client) - before
    owners = [f for i, f in enumerate(firsts) if i % 2]
    assert all(f == grpc.StatusCode.NOT_FOUND for i, f in enumerate(firsts) if not i % 2)
    assert all(isinstance(f, pb.Job) and f == owners[0] for f in owners)
    assert owners[0].status == pb.JOB_STATUS_PENDING and owners[0].queue_position == 1
    # A refused read is never shared (feed.py): the other tenant's 30 read alone; the
    # owner's 30 share a few (before: one read per stream, 60).
    assert reads - 30 < 10, reads
    # The streams go on as before: the claim reaches every one of the owner's.
    await claim(queue, job_id)
    for call in calls[1::2]:
        job = await next_job(call)
        assert job is not None and job.status == pb.JOB_STATUS_PROCESSING
        call.cancel()
