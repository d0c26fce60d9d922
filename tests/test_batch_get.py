"""BatchGetJobs (AIP-231): GetJob for many ids in one call, all or nothing, with GetJob's
tenancy; and the REST gateway coalescing concurrent GETs of one caller into it, each GET
answered byte for byte as alone."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, OTHER_KEY, make_settings
from tests.helpers import resize_request
from tests.test_gateway_support import RunningGateway, gateway_settings, start_gateway
from tests.test_queue_order import request_ids

ADMIN_KEY = "admin-key"
ADMIN_AUTH = (("x-api-key", ADMIN_KEY),)


@pytest.fixture
async def server(redis_server: RedisServer, redis_client) -> AsyncIterator[MendServer]:
    running = MendServer(make_settings(redis_server.url, admin_keys=f"ops={ADMIN_KEY}"))
    await running.start()
    yield running
    await running.stop(grace=0)


@pytest.fixture
async def stub(server: MendServer) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


async def submit(stub: jobs_pb2_grpc.JobServiceStub, auth=AUTH) -> str:
    return (await stub.SubmitImageResize(resize_request(), metadata=auth)).job_id


async def batch_error(stub, ids: list[str], auth=AUTH) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.BatchGetJobs(pb.BatchGetJobsRequest(ids=ids), metadata=auth)
    return info.value


async def test_batch_get_answers_each_id_as_get_job_in_order(stub) -> None:
    # In one partition (request_ids choose it), so that their queue positions are 1, 2, 3.
    rids = request_ids()
    ids = [
        (await stub.SubmitImageResize(resize_request(request_id=next(rids)), metadata=AUTH)).job_id
        for _ in range(3)
    ]
    wanted = [ids[2], ids[0], ids[2].upper(), ids[1]]  # order kept, repeats answered
    got = await stub.BatchGetJobs(pb.BatchGetJobsRequest(ids=wanted), metadata=AUTH)
    alone = [await stub.GetJob(pb.GetJobRequest(id=i), metadata=AUTH) for i in wanted]
    assert list(got.jobs) == alone
    assert [j.queue_position for j in got.jobs] == [3, 1, 3, 2]


async def test_batch_get_is_all_or_nothing_with_get_jobs_errors(stub) -> None:
    mine = await submit(stub)
    theirs = await submit(stub, OTHER_AUTH)
    missing = str(uuid.uuid4())
    for absent in (theirs, missing):  # another tenant's job is not found, as in GetJob
        err = await batch_error(stub, [mine, absent])
        assert err.code() is grpc.StatusCode.NOT_FOUND
        assert absent in err.details()
    err = await batch_error(stub, [mine, "nope", "", mine])
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ids[1]" in err.details() and "ids[2]" in err.details()
    err = await batch_error(stub, [])
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = await batch_error(stub, [mine] * 101)
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 100" in err.details()


async def test_admin_key_batch_gets_every_tenants_jobs(stub) -> None:
    ids = [await submit(stub), await submit(stub, OTHER_AUTH)]
    got = await stub.BatchGetJobs(pb.BatchGetJobsRequest(ids=ids), metadata=ADMIN_AUTH)
    assert [j.id for j in got.jobs] == ids


async def test_batch_get_over_rest(server: MendServer, stub, tmp_path: Path) -> None:
    ids = [await submit(stub) for _ in range(2)]
    gateway = await start_gateway(gateway_settings(server.settings, server.port, tmp_path))
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as http:
            r = await http.get("/api/v1/jobs:batchGet", params=[("ids", i) for i in ids])
            assert r.status_code == 200
            assert [j["id"] for j in r.json()["jobs"]] == ids
            r = await http.get("/api/v1/jobs:batchGet", params={"ids": str(uuid.uuid4())})
            assert r.status_code == 404
    finally:
        await gateway.stop()


# --- the gateway's coalescing -------------------------------------------------------------


@pytest.fixture
async def gateway(server: MendServer, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(gateway_settings(server.settings, server.port, tmp_path))
    yield running
    await running.stop()


def upstream_calls(metrics: str, method: str) -> int:
    found = re.findall(
        rf'mend_gateway_grpc_calls_total{{code="\w+",method="{method}"}} (\d+)', metrics
    )
    return sum(int(float(n)) for n in found)


async def answers(client: httpx.AsyncClient, paths: list[str]) -> list[tuple[int, bytes, str]]:
    responses = await asyncio.gather(*(client.get(p) for p in paths))
    return [(r.status_code, r.content, r.headers["content-type"]) for r in responses]


async def test_concurrent_gets_share_upstream_calls_and_answer_as_alone(
    stub, gateway: RunningGateway
) -> None:
    mine = [await submit(stub) for _ in range(5)]
    theirs = await submit(stub, OTHER_AUTH)
    paths = [f"/api/v1/jobs/{i}" for i in [*mine, *mine, theirs, str(uuid.uuid4()), "nope"]]
    limits = httpx.Limits(max_connections=len(paths))
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"X-API-Key": API_KEY}, limits=limits
    ) as http:
        alone = [(await answers(http, [p]))[0] for p in paths]
        before = (await http.get("/metrics")).text
        together = await answers(http, paths)
        after = (await http.get("/metrics")).text
    # Byte for byte: the job, another tenant's job and a missing one (404), a bad id (400).
    assert together == alone
    assert [status for status, _, _ in alone] == [200] * 10 + [404, 404, 400]
    batches = upstream_calls(after, "BatchGetJobs") - upstream_calls(before, "BatchGetJobs")
    gets = upstream_calls(after, "GetJob") - upstream_calls(before, "GetJob")
    assert batches >= 1, after
    # Fewer upstream calls than GETs, though a failed batch asks its ids again alone.
    assert gets < len(paths)


async def test_callers_never_share_a_call(stub, gateway: RunningGateway) -> None:
    """Two tenants polling the same ids at once: each sees only its own jobs."""
    mine = [await submit(stub) for _ in range(4)]
    theirs = [await submit(stub, OTHER_AUTH) for _ in range(4)]
    paths = [f"/api/v1/jobs/{i}" for i in mine + theirs] * 3
    async with (
        httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as acme,
        httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": OTHER_KEY}) as globex,
    ):
        a, b = await asyncio.gather(answers(acme, paths), answers(globex, paths))
    assert [s for s, _, _ in a] == ([200] * 4 + [404] * 4) * 3
    assert [s for s, _, _ in b] == ([404] * 4 + [200] * 4) * 3


async def test_shortcut_answers_as_the_app(stub, server: MendServer, tmp_path: Path) -> None:
    """A plain GET takes the shortcut (fast_path.py); with an Origin header and CORS on,
    the same GET goes through Starlette: the same status, type and bytes."""
    settings = gateway_settings(
        server.settings, server.port, tmp_path, cors_origins="http://app.example"
    )
    gateway = await start_gateway(settings)
    job_id = await submit(stub)
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            for path, headers in [
                (f"/api/v1/jobs/{job_id}", {"X-API-Key": API_KEY}),
                (f"/api/v1/jobs/{job_id}", {"Authorization": f"Bearer {API_KEY}"}),
                (f"/api/v1/jobs/{job_id}", {"X-API-Key": OTHER_KEY}),
                (f"/api/v1/jobs/{job_id}", {}),
                ("/api/v1/jobs/not-an-id", {"X-API-Key": API_KEY}),
            ]:
                fast = await http.get(path, headers=headers)
                slow = await http.get(path, headers={**headers, "Origin": "http://other"})
                assert (fast.status_code, fast.headers["content-type"], fast.content) == (
                    slow.status_code, slow.headers["content-type"], slow.content
                ), path
                assert "vary" in slow.headers and "vary" not in fast.headers  # the two ways
                www = fast.headers.get("www-authenticate")
                assert www == slow.headers.get("www-authenticate")
    finally:
        await gateway.stop()


async def test_an_oversized_credential_is_unauthenticated(
    stub, server: MendServer, tmp_path: Path
) -> None:
    """A key too long for gRPC metadata is no key (401), not gRPC's RESOURCE_EXHAUSTED
    (a 429 quoting its limits), on the shortcut and through Starlette alike."""
    settings = gateway_settings(
        server.settings, server.port, tmp_path, cors_origins="http://app.example"
    )
    gateway = await start_gateway(settings)
    job_id = await submit(stub)
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            for headers in (
                {"X-API-Key": "k" * 20_000},
                {"Authorization": "Bearer " + "k" * 20_000},
            ):
                for extra in ({}, {"Origin": "http://other"}):  # the shortcut, Starlette
                    r = await http.get(f"/api/v1/jobs/{job_id}", headers={**headers, **extra})
                    assert r.status_code == 401, r.text
                    assert r.json()["code"] == "UNAUTHENTICATED"
                r = await http.get(f"/api/v1/jobs/{job_id}/stream", headers=headers)
                assert r.status_code == 401, r.text
    finally:
        await gateway.stop()
