"""The Python client against a real server: submit, read, list, cancel, typed errors,
and watch/wait to a terminal state, including across a server restart."""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import AsyncIterator

import pytest

from mend_client import (
    AlreadyExists,
    AsyncClient,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    Job,
    JobStatus,
    MendError,
    NotFound,
    ResizeJob,
    Unauthenticated,
    Unavailable,
)
from mend_core.jobstate.queue import Lease, WorkQueue
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY, OTHER_KEY, make_settings
from tests.helpers import RESIZE_FIELDS

# Upper bound for waiting on something that should happen promptly; never asserted on.
PATIENCE = 20.0


def address(server: MendServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
async def client(mend_server: MendServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(address(mend_server), api_key=API_KEY) as c:
        yield c


async def claim(work: WorkQueue, job_id: str) -> Lease:
    lease = await work.claim("test-worker")
    assert lease is not None and lease.job_id == job_id
    return lease


async def complete(work: WorkQueue, lease: Lease) -> None:
    result = JobResult(
        output_url="file:///var/storage/my-bucket/images/output.jpg",
        file_size=1234,
        duration=0.5,
        metadata=ImageMetadata(width=800, height=600, format="jpeg"),
    )
    assert await work.complete(lease, result)


async def test_resize_then_get(client: AsyncClient) -> None:
    job_id = await client.resize(
        **RESIZE_FIELDS,
        quality=90,
        fit="cover",
        format="webp",
        priority=7,
        max_attempts=2,
        timeout_seconds=60,
        request_id="order-1",
    )
    job = await client.get(job_id)
    assert job.id == job_id
    assert job.type == "image_resize"
    assert job.status is JobStatus.PENDING
    assert (job.source_bucket, job.source_key) == ("my-bucket", "images/input.jpg")
    assert (job.dest_bucket, job.dest_key) == ("my-bucket", "images/output.jpg")
    assert job.parameters == {
        "width": 800,
        "height": 600,
        "quality": 90,
        "fit": "cover",
        "format": "webp",
    }
    assert (job.priority, job.max_attempts, job.request_id) == (7, 2, "order-1")
    assert job.queue_position == 1
    assert job.created_at is not None and job.result is None
    assert job.to_dict()["source_key"] == "images/input.jpg"
    # The same request with the same request_id returns the original job; another
    # request with it is refused, naming the field.
    again = dict(RESIZE_FIELDS, quality=90, fit="cover", format="webp", priority=7)
    again.update(max_attempts=2, timeout_seconds=60, request_id="order-1")
    assert await client.resize(**again) == job_id
    with pytest.raises(AlreadyExists) as info:
        await client.resize(**RESIZE_FIELDS, request_id="order-1")
    assert [field for field, _ in info.value.violations] == ["options.request_id"]


async def test_list_iterates_every_page(client: AsyncClient) -> None:
    ids = [await client.resize(**RESIZE_FIELDS) for _ in range(5)]
    listed = [job.id async for job in client.list(page_size=2)]
    assert listed == ids[::-1]  # newest first, across three pages
    assert [job.id async for job in client.list(page_size=2, limit=3)] == ids[:1:-1]

    first = await client.list_page(page_size=2)
    assert [j.id for j in first.jobs] == ids[:2:-1] and first.next_page_token
    await client.cancel(ids[1])
    cancelled = [job async for job in client.list(status="cancelled")]
    assert [(j.id, j.status) for j in cancelled] == [(ids[1], JobStatus.CANCELLED)]


async def test_cancel_pending_job_then_again(client: AsyncClient) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    job = await client.cancel(job_id)
    assert job.status is JobStatus.CANCELLED
    with pytest.raises(FailedPrecondition, match="already cancelled"):
        await client.cancel(job_id)


async def test_invalid_argument_carries_field_violations(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.resize(
            source_bucket="My_Bucket",
            source_key="in.jpg",
            dest_bucket="my-bucket",
            dest_key="out.jpg",
            width=0,
            height=0,
            quality=101,
        )
    fields = [field for field, _ in caught.value.violations]
    assert fields == [
        "source_bucket",
        "parameters.image_resize.width",
        "parameters.image_resize.quality",
    ]
    assert all(description for _, description in caught.value.violations)
    assert isinstance(caught.value, MendError) and "invalid request" in str(caught.value)


async def test_batch_is_all_or_nothing(client: AsyncClient) -> None:
    good = ResizeJob(**RESIZE_FIELDS)
    batch = await client.submit_batch([good, good, good], batch_id="b-1")
    assert batch.batch_id == "b-1" and len(batch.job_ids) == 3
    assert (await client.get(batch.job_ids[2])).batch_id == "b-1"

    bad = ResizeJob(**{**RESIZE_FIELDS, "width": -1})
    with pytest.raises(InvalidArgument) as caught:
        await client.submit_batch([good, bad])
    assert [f for f, _ in caught.value.violations] == ["jobs[1].parameters.image_resize.width"]
    assert len([job async for job in client.list()]) == 3  # nothing was added

    stats = await client.stats()
    assert stats.totals.pending == 3 and stats.by_type["image_resize"].pending == 3


async def test_not_found_for_unknown_ids_and_other_tenants(mend_server: MendServer) -> None:
    async with (
        AsyncClient(address(mend_server), api_key=API_KEY) as mine,
        AsyncClient(address(mend_server), api_key=OTHER_KEY) as theirs,
    ):
        job_id = await mine.resize(**RESIZE_FIELDS)
        with pytest.raises(NotFound):
            await theirs.get(job_id)
        with pytest.raises(NotFound):
            await mine.get(str(uuid.uuid4()))
        with pytest.raises(InvalidArgument) as caught:
            await mine.get("not-a-uuid")
        assert caught.value.violations[0][0] == "id"


async def test_unauthenticated_without_a_valid_key(mend_server: MendServer) -> None:
    for key in (None, "wrong-key"):
        async with AsyncClient(address(mend_server), api_key=key) as c:
            with pytest.raises(Unauthenticated):
                await c.stats()


async def test_unavailable_when_nothing_listens() -> None:
    async with AsyncClient(f"127.0.0.1:{free_port()}", api_key=API_KEY, timeout=5) as c:
        with pytest.raises(Unavailable):
            await c.get(str(uuid.uuid4()))
        with pytest.raises(Unavailable):
            async for _ in c.watch(str(uuid.uuid4()), reconnect_for=0.5):
                pass


async def test_watch_yields_each_state_in_order(client: AsyncClient, work: WorkQueue) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    watch = client.watch(job_id)
    first = await anext(watch)
    assert first.status is JobStatus.PENDING
    lease = await claim(work, job_id)
    assert await work.progress(lease, 40, "resizing")
    await complete(work, lease)

    rest = [job async for job in watch]  # ends by itself after the terminal state
    states = [first, *rest]
    assert [j.status for j in states] == [
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
    ]
    versions = [j.version for j in states]
    assert versions == sorted(set(versions))
    assert rest[1].progress is not None and rest[1].progress.percent == 40
    done = rest[-1]
    assert done.result is not None and (done.result.width, done.result.format) == (800, "jpeg")
    assert done.completed_at is not None and done.duration_seconds is not None


async def test_wait_returns_the_terminal_state(client: AsyncClient, work: WorkQueue) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    waiter = asyncio.create_task(client.wait(job_id, timeout=PATIENCE))
    lease = await claim(work, job_id)
    assert await work.fail(lease, "Source file not found: s3://my-bucket/images/input.jpg")
    job = await waiter
    assert job.status is JobStatus.FAILED
    assert job.error == "Source file not found: s3://my-bucket/images/input.jpg"


async def test_wait_raises_deadline_exceeded(client: AsyncClient) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    with pytest.raises(DeadlineExceeded) as caught:
        await client.wait(job_id, timeout=0.3)
    assert isinstance(caught.value, TimeoutError)


async def test_watch_of_a_finished_job_from_its_last_version_is_empty(
    client: AsyncClient,
) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    cancelled = await client.cancel(job_id)
    assert [j.status async for j in client.watch(job_id)] == [JobStatus.CANCELLED]
    assert [j async for j in client.watch(job_id, from_version=cancelled.version)] == []


async def restart(server: MendServer, redis_url: str, between) -> MendServer:
    """Stops the server, runs `between` while it is down, starts a new one on its port."""
    port = server.port
    await server.stop(grace=0)
    await between()
    new = MendServer(make_settings(redis_url, grpc_port=port))
    await new.start()
    return new


async def test_async_watch_resumes_across_a_server_restart(
    mend_server: MendServer, redis_server: RedisServer, work: WorkQueue
) -> None:
    seen: asyncio.Queue[Job | BaseException] = asyncio.Queue()

    async def follow(job_id: str) -> None:
        try:
            async with AsyncClient(address(mend_server), api_key=API_KEY) as c:
                async for job in c.watch(job_id):
                    await seen.put(job)
        except BaseException as exc:  # surfaced to the test through the queue
            await seen.put(exc)

    async with AsyncClient(address(mend_server), api_key=API_KEY) as c:
        job_id = await c.resize(**RESIZE_FIELDS)
    follower = asyncio.create_task(follow(job_id))
    first = await asyncio.wait_for(seen.get(), PATIENCE)
    assert isinstance(first, Job) and first.status is JobStatus.PENDING

    async def finish_while_down() -> None:
        await complete(work, await claim(work, job_id))

    new = await restart(mend_server, redis_server.url, finish_while_down)
    try:
        await asyncio.wait_for(follower, PATIENCE)
    finally:
        await new.stop(grace=0)
    rest = [seen.get_nowait() for _ in range(seen.qsize())]
    assert [getattr(j, "status", j) for j in rest] == [JobStatus.PROCESSING, JobStatus.COMPLETED]


async def test_sync_watch_resumes_across_a_server_restart(
    mend_server: MendServer, redis_server: RedisServer, work: WorkQueue
) -> None:
    # The sync client blocks, so it runs in a thread while the server runs on this loop.
    seen: queue.Queue[Job | BaseException | None] = queue.Queue()
    job_ids: queue.Queue[str] = queue.Queue()

    def follow() -> None:
        try:
            with Client(address(mend_server), api_key=API_KEY) as c:
                job_id = c.resize(**RESIZE_FIELDS)
                job_ids.put(job_id)
                for job in c.watch(job_id):
                    seen.put(job)
                seen.put(c.get(job_id))  # after the restart, unary calls work again too
        except BaseException as exc:
            seen.put(exc)
        seen.put(None)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    job_id = await asyncio.to_thread(job_ids.get, timeout=PATIENCE)
    first = await asyncio.to_thread(seen.get, timeout=PATIENCE)
    assert isinstance(first, Job) and first.status is JobStatus.PENDING

    async def finish_while_down() -> None:
        lease = await claim(work, job_id)
        assert await work.progress(lease, 40, "resizing")
        await complete(work, lease)

    new = await restart(mend_server, redis_server.url, finish_while_down)
    try:
        rest = []
        while (item := await asyncio.to_thread(seen.get, timeout=PATIENCE)) is not None:
            rest.append(item)
    finally:
        await new.stop(grace=0)
    assert [getattr(j, "status", j) for j in rest] == [
        JobStatus.PROCESSING,
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
    ]
    assert rest[1].progress.percent == 40


async def test_sync_client_calls(mend_server: MendServer) -> None:
    def scenario() -> tuple[list[str], list[str], Job, list[tuple[str, str]]]:
        with Client(address(mend_server), api_key=API_KEY) as c:
            ids = [c.resize(**RESIZE_FIELDS, priority=p) for p in (1, 9)]
            listed = [j.id for j in c.list(page_size=1)]
            cancelled = c.cancel(ids[0])
            try:
                c.resize(**{**RESIZE_FIELDS, "dest_key": "/abs.jpg"})
            except InvalidArgument as exc:
                return ids, listed, cancelled, exc.violations
            raise AssertionError("no InvalidArgument")

    ids, listed, cancelled, violations = await asyncio.to_thread(scenario)
    assert listed == ids[::-1]
    assert cancelled.status is JobStatus.CANCELLED
    assert violations == [("dest_key", "must not start with '/'")]


def test_every_operations_job_carries_its_parameters() -> None:
    """Job.parameters is what the REST API shows for any operation, not only image_resize."""
    from mend.v1 import jobs_pb2 as pb
    from mend_client import Job

    msg = pb.Job(id="a", status=pb.JOB_STATUS_PENDING, type=pb.JOB_TYPE_AUDIO_CONVERT)
    msg.parameters.audio_convert.bitrate = "128k"
    msg.parameters.audio_convert.channels = 1
    assert Job.from_proto(msg).parameters == {"bitrate": "128k", "channels": 1}
