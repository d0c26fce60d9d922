"""What the dashboard's overview and job list read (issue 11, item 3): the live workers
and the job each runs, completions and failures per minute, and every tenant's jobs for
an admin key (ListJobs all_tenants), each as a tenant and as an admin sees it; and the
dashboard's files as the gateway serves them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import AUTH, OTHER_AUTH, serving
from tests.helpers import bad_request, resize_request
from tests.test_gateway_support import SEED_RESULT, Worker, gateway_settings, start_gateway

ADMIN_KEY = "admin-key"
AS_ADMIN = (("x-api-key", ADMIN_KEY),)


@pytest.fixture
async def stub(
    redis_server: RedisServer, redis_client
) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with serving(redis_server.url, admin_keys=f"ops={ADMIN_KEY}") as stub:
        yield stub


@pytest.fixture
async def worker(redis_server: RedisServer) -> AsyncIterator[Worker]:
    worker = Worker(redis_server.url)
    yield worker
    await worker.close()


async def submit(stub, auth, **overrides) -> str:  # type: ignore[no-untyped-def]
    return (await stub.SubmitImageResize(resize_request(**overrides), metadata=auth)).job_id


async def test_throughput_counts_completions_and_failures_of_this_minute(stub, worker) -> None:
    for auth in (AUTH, AUTH, AUTH, OTHER_AUTH):
        await submit(stub, auth)
    # acme's: two completed, one failed; globex's completed (whichever is claimed first).
    outcomes = {"acme": ["complete", "complete", "fail"], "globex": ["complete"]}
    for _ in range(4):
        lease = await worker.claim()
        if outcomes[lease.job.tenant].pop() == "complete":
            assert await worker.queue.complete(lease, SEED_RESULT)
        else:
            assert await worker.queue.fail(lease, "broken")

    mine = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    everyone = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_ADMIN)
    for stats, completed, failed in ((mine, 2, 1), (everyone, 3, 1)):
        buckets = list(stats.throughput)
        assert len(buckets) == 15
        starts = [b.start.seconds for b in buckets]
        assert all(s % 60 == 0 for s in starts)
        assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [60] * 14
        # Completions land in the current minute (or, right at a minute's turn, the one before).
        assert starts[-1] <= time.time() < starts[-1] + 60 + 5
        assert sum(b.completed for b in buckets[-2:]) == completed
        assert sum(b.failed for b in buckets[-2:]) == failed
        assert sum(b.completed + b.failed for b in buckets[:-2]) == 0
    # Cancelled jobs are not throughput.
    await stub.CancelJob(pb.CancelJobRequest(id=await submit(stub, AUTH)), metadata=AUTH)
    again = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert sum(b.completed + b.failed for b in again.throughput) == 3


async def test_workers_detail_shows_each_live_worker_and_its_job(stub, worker) -> None:
    acme_job = await submit(stub, AUTH)
    globex_job = await submit(stub, OTHER_AUTH)
    for worker_id in ("w-1", "w-2", "w-idle"):
        await worker.queue.register_worker(worker_id)
    # Which job each takes is the partitions' turn: the worker that took acme's job is
    # "mine", the other "theirs".
    first = await worker.queue.claim("w-1")
    second = await worker.queue.claim("w-2")
    assert first is not None and second is not None
    assert {first.job_id, second.job_id} == {acme_job, globex_job}
    mine, theirs = ("w-1", "w-2") if first.job_id == acme_job else ("w-2", "w-1")
    lease = first if first.job_id == acme_job else second

    def running(stats: pb.QueueStats) -> dict[str, tuple[str, int, bool]]:
        return {
            w.worker_id: (w.job_id, w.job_type, w.HasField("started_at"))
            for w in stats.workers_detail
        }

    resize = pb.JOB_TYPE_IMAGE_RESIZE
    acme = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AUTH)
    assert acme.workers == 3
    # A tenant sees every worker, but only its own job on it.
    assert running(acme) == {
        mine: (acme_job, resize, True),
        theirs: ("", 0, False),
        "w-idle": ("", 0, False),
    }
    admin = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_ADMIN)
    assert running(admin) == {
        mine: (acme_job, resize, True),
        theirs: (globex_job, resize, True),
        "w-idle": ("", 0, False),
    }
    [w] = [w for w in admin.workers_detail if w.worker_id == mine]
    assert abs(w.started_at.ToMilliseconds() - time.time() * 1000) < 60_000

    assert await worker.queue.complete(lease, SEED_RESULT)
    await worker.queue.unregister_worker("w-idle")
    after = await stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_ADMIN)
    assert running(after) == {mine: ("", 0, False), theirs: (globex_job, resize, True)}


async def test_all_tenants_lists_every_tenants_jobs_for_an_admin_key(stub) -> None:
    submitted = []
    for auth in (AUTH, OTHER_AUTH, AUTH, OTHER_AUTH, OTHER_AUTH):
        submitted.append(await submit(stub, auth))
    newest_first = submitted[::-1]

    seen, token = [], ""
    while True:
        request = pb.ListJobsRequest(all_tenants=True, page_size=2, page_token=token)
        page = await stub.ListJobs(request, metadata=AS_ADMIN)
        seen += [job.id for job in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == newest_first

    # Filters apply across tenants too; without all_tenants an admin sees its own tenant's.
    await stub.CancelJob(pb.CancelJobRequest(id=submitted[1]), metadata=OTHER_AUTH)
    cancelled = pb.ListJobsRequest(all_tenants=True, status=pb.JOB_STATUS_CANCELLED)
    page = await stub.ListJobs(cancelled, metadata=AS_ADMIN)
    assert [job.id for job in page.jobs] == [submitted[1]]
    own = await stub.ListJobs(pb.ListJobsRequest(), metadata=AS_ADMIN)
    assert list(own.jobs) == []


async def test_all_tenants_needs_an_admin_key(stub) -> None:
    await submit(stub, OTHER_AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListJobs(pb.ListJobsRequest(all_tenants=True), metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    [violation] = bad_request(info.value).field_violations
    assert violation.field == "all_tenants"
    assert "admin key" in violation.description


async def test_the_dashboard_files_are_served_with_a_strict_policy(
    mend_server: MendServer, tmp_path: Path
) -> None:
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    gateway = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            page = await http.get("/dashboard")  # no key: the page asks for one
            script = await http.get("/dashboard/app.js")
            style = await http.get("/dashboard/style.css")
            missing = await http.get("/dashboard/secrets.txt")
            escape = await http.get("/dashboard/..%2Fapp.py")
    finally:
        await gateway.stop()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/app.js">' in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    for answer in (page, script, style):
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
    # Only the dashboard's own files, by name.
    assert missing.status_code == 404 and "secrets.txt" in missing.json()["error"]
    assert escape.status_code == 404


async def test_an_admin_opens_follows_and_steers_any_tenants_job(stub) -> None:
    """An admin key (an operator) reads, watches, cancels, retries and deletes another
    tenant's job by its id; for every other tenant the job stays NOT_FOUND."""
    job_id = await submit(stub, OTHER_AUTH)  # globex's
    got = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AS_ADMIN)
    assert got.id == job_id and got.status == pb.JOB_STATUS_PENDING
    token = await stub.CreateStreamToken(pb.CreateStreamTokenRequest(id=job_id), metadata=AS_ADMIN)
    assert token.token
    watch = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AS_ADMIN)
    first = await watch.read()
    assert first.job.id == job_id
    watch.cancel()
    cancelled = await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AS_ADMIN)
    assert cancelled.status == pb.JOB_STATUS_CANCELLED
    retried = await stub.RetryJob(pb.RetryJobRequest(id=job_id), metadata=AS_ADMIN)
    assert retried.status == pb.JOB_STATUS_PENDING
    await stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=AS_ADMIN)
    for call, request in (
        (stub.GetJob, pb.GetJobRequest(id=job_id)),
        (stub.CancelJob, pb.CancelJobRequest(id=job_id)),
        (stub.DeleteJob, pb.DeleteJobRequest(id=job_id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request, metadata=AUTH)  # acme: not its job
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.DeleteJob(pb.DeleteJobRequest(id=job_id), metadata=AS_ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=OTHER_AUTH)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
