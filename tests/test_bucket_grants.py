"""Tenants touch only the buckets granted to them (MEND_TENANT_BUCKETS), and see only
their own queue statistics unless their key is an admin key (MEND_ADMIN_KEYS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.sample import photo
from mend_server.gateway.app import Gateway
from mend_server.server import MendServer
from tests.conftest import make_settings
from tests.helpers import bad_request, resize_request, stored_jobs, submit_request
from tests.images import encode
from tests.workers import submit, wait_terminal, worker_pool

KEY_A, KEY_B, KEY_OPS = "key-a", "key-b", "key-ops"
AS_A = (("x-api-key", KEY_A),)
AS_B = (("x-api-key", KEY_B),)
AS_OPS = (("x-api-key", KEY_OPS),)
TWO_TENANTS = {
    "api_keys": f"a={KEY_A},b={KEY_B}",
    "admin_keys": f"ops={KEY_OPS}",
    "tenant_buckets": "a=tenant-a-private|shared-bucket,b=tenant-b",
}


@pytest.fixture
async def server(redis_server, redis_client) -> AsyncIterator[MendServer]:
    server = MendServer(make_settings(redis_server.url, **TWO_TENANTS))
    await server.start()
    yield server
    await server.stop(grace=0)


@pytest.fixture
async def jobs(server: MendServer) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


def refused(err: grpc.aio.AioRpcError) -> dict[str, str]:
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (err.code(), err.details())
    return {v.field: v.description for v in bad_request(err).field_violations}


async def test_tenant_cannot_read_another_tenants_bucket(jobs) -> None:
    request = resize_request(source_bucket="tenant-a-private", dest_bucket="tenant-b")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitImageResize(request, metadata=AS_B)
    fields = refused(info.value)
    assert list(fields) == ["source_bucket"]
    assert "tenant-a-private" in fields["source_bucket"]


async def test_tenant_cannot_write_into_another_tenants_bucket(jobs, redis_client) -> None:
    request = submit_request(source_bucket="tenant-b", dest_bucket="tenant-a-private")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitJob(request, metadata=AS_B)
    assert list(refused(info.value)) == ["dest_bucket"]
    assert stored_jobs(redis_client) == []  # nothing was queued


async def test_granted_buckets_are_usable(jobs) -> None:
    request = resize_request(source_bucket="shared-bucket", dest_bucket="tenant-a-private")
    assert (await jobs.SubmitImageResize(request, metadata=AS_A)).job_id


async def test_a_batch_names_every_refused_item_and_queues_none(jobs, redis_client) -> None:
    items = [
        submit_request(source_bucket="tenant-b", dest_bucket="tenant-b"),
        submit_request(source_bucket="tenant-b", dest_bucket="shared-bucket"),
        submit_request(source_bucket="tenant-a-private", dest_bucket="tenant-b"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitBatch(pb.SubmitBatchRequest(jobs=items), metadata=AS_B)
    assert sorted(refused(info.value)) == ["jobs[1].dest_bucket", "jobs[2].source_bucket"]
    assert stored_jobs(redis_client) == []


async def test_a_tenant_without_a_grant_uses_no_bucket(redis_server, redis_client) -> None:
    settings = make_settings(redis_server.url, api_keys="a=key-a,c=key-c", tenant_buckets="a=*")
    server = MendServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            assert await stub.SubmitImageResize(resize_request(), metadata=AS_A)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.SubmitImageResize(resize_request(), metadata=(("x-api-key", "key-c"),))
            assert sorted(refused(info.value)) == ["dest_bucket", "source_bucket"]
    finally:
        await server.stop(grace=0)


@pytest.mark.parametrize(
    ("keys", "grants", "allowed"),
    [
        pytest.param("solo=key-a", "", True, id="one tenant, no grants: open"),
        pytest.param("key-a", "", True, id="one bare key, no grants: open"),
        pytest.param("solo=key-a", "solo=other-bucket", False, id="one tenant with grants"),
        pytest.param("key-a,key-b", "", False, id="two bare keys, no grants: closed"),
    ],
)
async def test_when_buckets_are_open(redis_server, redis_client, keys, grants, allowed) -> None:
    server = MendServer(make_settings(redis_server.url, api_keys=keys, tenant_buckets=grants))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = jobs_pb2_grpc.JobServiceStub(channel).SubmitImageResize(
                resize_request(), metadata=AS_A
            )
            if allowed:
                assert (await call).job_id
            else:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(grace=0)


async def test_rest_answers_403_naming_the_field(server: MendServer) -> None:
    gateway = Gateway(server.settings)
    transport = httpx.ASGITransport(app=gateway.app)
    async with (
        gateway.app.router.lifespan_context(gateway.app),
        httpx.AsyncClient(transport=transport, base_url="http://mend") as http,
    ):
        body = {
            "source_bucket": "tenant-a-private",
            "source_key": "secret.jpg",
            "dest_bucket": "tenant-b",
            "dest_key": "stolen.jpg",
            "width": 100,
        }
        response = await http.post(
            "/api/v1/jobs/image/resize", json=body, headers={"X-API-Key": KEY_B}
        )
        assert response.status_code == 403
        error = response.json()
        assert error["error"].startswith("permission denied: source_bucket")
        assert "tenant-a-private" in error["error"]
        assert [d["field"] for d in error["details"]] == ["source_bucket"]

        stats = await http.get("/api/v1/queue/stats", headers={"X-API-Key": KEY_B})
        assert stats.status_code == 200 and stats.json()["by_tenant"] == {}


async def test_a_grant_revoked_while_the_job_waits_fails_it(
    redis_server, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    (root / "tenant-a-private").mkdir(parents=True)
    (root / "tenant-a-private" / "in.jpg").write_bytes(encode(photo(64, 48), "JPEG"))
    server = MendServer(make_settings(redis_server.url, **TWO_TENANTS))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            request = resize_request(
                source_bucket="tenant-a-private", source_key="in.jpg",
                dest_bucket="tenant-a-private", dest_key="out.jpg", width=32, height=None,
            )
            job_id = await submit(stub, request, metadata=AS_A)
            # The workers run with a's grant taken back.
            env = {
                "MEND_STORAGE_ROOT": str(root),
                "MEND_API_KEYS": TWO_TENANTS["api_keys"],
                "MEND_TENANT_BUCKETS": "a=shared-bucket,b=tenant-b",
            }
            async with worker_pool(redis_server.url, **env) as workers:
                workers.start()
                job = await wait_terminal(stub, job_id, metadata=AS_A)
        assert job.status == pb.JOB_STATUS_FAILED
        assert "tenant-a-private" in job.error and "'a'" in job.error
        assert not (root / "tenant-a-private" / "out.jpg").exists()
    finally:
        await server.stop(grace=0)


# ---------------------------------------------------------------------- queue statistics


async def test_queue_stats_show_only_the_callers_jobs(jobs) -> None:
    for _ in range(2):
        await jobs.SubmitImageResize(
            resize_request(source_bucket="shared-bucket", dest_bucket="shared-bucket"),
            metadata=AS_A,
        )
    own = await jobs.SubmitImageResize(
        resize_request(source_bucket="tenant-b", dest_bucket="tenant-b"), metadata=AS_B
    )
    await jobs.CancelJob(pb.CancelJobRequest(id=own.job_id), metadata=AS_B)

    a = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_A)
    assert (a.totals.pending, a.totals.cancelled) == (2, 0)
    assert a.by_type["image_resize"].pending == 2
    assert not a.by_tenant

    b = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_B)
    assert (b.totals.pending, b.totals.cancelled) == (0, 1)
    assert not b.by_tenant

    ops = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_OPS)
    assert (ops.totals.pending, ops.totals.cancelled) == (2, 1)
    assert set(ops.by_tenant) == {"a", "b"}
    assert (ops.by_tenant["a"].pending, ops.by_tenant["b"].cancelled) == (2, 1)


async def test_scheduled_retries_are_counted_per_tenant(jobs, work) -> None:
    await jobs.SubmitImageResize(
        resize_request(source_bucket="tenant-b", dest_bucket="tenant-b"), metadata=AS_B
    )
    lease = await work.claim("w1")
    assert lease is not None
    await work.retry(lease, "storage timed out", delay_seconds=60)

    b = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_B)
    a = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_A)
    ops = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_OPS)
    assert (b.scheduled, a.scheduled, ops.scheduled) == (1, 0, 1)

    await jobs.CancelJob(pb.CancelJobRequest(id=lease.job_id), metadata=AS_B)
    b = await jobs.GetQueueStats(pb.GetQueueStatsRequest(), metadata=AS_B)
    assert (b.scheduled, b.totals.pending, b.totals.cancelled) == (0, 0, 1)


async def test_an_admin_key_uses_buckets_as_its_tenant_may(jobs) -> None:
    # Admin keys see every tenant's statistics; their buckets are granted like anyone's.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitImageResize(resize_request(), metadata=AS_OPS)
    assert sorted(refused(info.value)) == ["dest_bucket", "source_bucket"]


def test_malformed_grants_stop_the_process_at_start() -> None:
    with pytest.raises(ValueError, match="MEND_TENANT_BUCKETS"):
        make_settings("redis://127.0.0.1:1/0", tenant_buckets="a")
    with pytest.raises(ValueError, match="tenant name"):
        make_settings("redis://127.0.0.1:1/0", api_keys="a:b=key")
