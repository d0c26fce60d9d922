"""Per-tenant quotas over a real gRPC server and the REST gateway: pending jobs and submit
rate, refused with RESOURCE_EXHAUSTED + RetryInfo (HTTP 429 + Retry-After), all or none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_client import ResourceExhausted, from_rpc_error
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, make_settings
from tests.helpers import resize_request, submit_request, turns
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway


@pytest.fixture
async def limited(redis_server: RedisServer, redis_client, request) -> AsyncIterator[MendServer]:
    server = MendServer(make_settings(redis_server.url, **request.param))
    await server.start()
    yield server
    await server.stop(grace=0)


@pytest.fixture
async def stub(limited: MendServer) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


async def refusal(call) -> ResourceExhausted:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    error = from_rpc_error(info.value)
    assert isinstance(error, ResourceExhausted), error
    assert error.reason == "TENANT_QUOTA_EXCEEDED"
    return error


def batch(size: int, request_id: str = "") -> pb.SubmitBatchRequest:
    options = pb.SubmitOptions(request_id=request_id) if request_id else None
    jobs = [submit_request(options=options) if options else submit_request()] * size
    return pb.SubmitBatchRequest(jobs=jobs)


@pytest.mark.parametrize("limited", [{"tenant_max_pending": 3}], indirect=True)
async def test_pending_limit_counts_every_job_of_a_batch(stub, redis_client) -> None:
    await stub.SubmitBatch(batch(2), metadata=AUTH)
    # Two pending, a batch of two: refused as a whole, nothing stored.
    error = await refusal(stub.SubmitBatch(batch(2), metadata=AUTH))
    assert error.metadata == {"tenant": "acme", "quota": "pending"}
    assert error.retry_after is not None and error.retry_after > 0
    assert "3 pending jobs" in error.message
    assert turns(redis_client) == 2
    # One more fits; the limit is per tenant.
    await stub.SubmitImageResize(resize_request(), metadata=AUTH)
    await stub.SubmitBatch(batch(3), metadata=OTHER_AUTH)
    await refusal(stub.SubmitImageResize(resize_request(), metadata=AUTH))
    # A batch over the limit on its own can never pass: no RetryInfo.
    error = await refusal(stub.SubmitBatch(batch(4), metadata=OTHER_AUTH))
    assert error.retry_after is None and "this request alone" in error.message


@pytest.mark.parametrize("limited", [{"tenant_max_pending": 1}], indirect=True)
async def test_a_replayed_request_is_not_a_new_job(stub) -> None:
    request = resize_request(request_id="order-1")
    first = await stub.SubmitImageResize(request, metadata=AUTH)
    again = await stub.SubmitImageResize(request, metadata=AUTH)
    assert again.job_id == first.job_id
    await refusal(stub.SubmitImageResize(resize_request(), metadata=AUTH))
    # Cancelling the pending job makes room.
    await stub.CancelJob(pb.CancelJobRequest(id=first.job_id), metadata=AUTH)
    await stub.SubmitImageResize(resize_request(), metadata=AUTH)


@pytest.mark.parametrize(
    "limited", [{"tenant_submit_rate": 5, "tenant_submit_burst": 3}], indirect=True
)
async def test_submit_rate_is_a_token_bucket(stub) -> None:
    await stub.SubmitBatch(batch(3), metadata=AUTH)  # the whole burst at once
    error = await refusal(stub.SubmitImageResize(resize_request(), metadata=AUTH))
    assert error.metadata == {"tenant": "acme", "quota": "rate"}
    # One token comes back every 0.2 s.
    assert error.retry_after is not None and 0 < error.retry_after <= 0.2
    await stub.SubmitImageResize(resize_request(), metadata=OTHER_AUTH)  # its own bucket
    await asyncio.sleep(error.retry_after)
    await stub.SubmitImageResize(resize_request(), metadata=AUTH)
    error = await refusal(stub.SubmitBatch(batch(4), metadata=AUTH))
    assert error.retry_after is None


@pytest.mark.parametrize("limited", [{"tenant_max_pending": 1}], indirect=True)
async def test_gateway_answers_429_with_retry_after(limited: MendServer, tmp_path: Path) -> None:
    settings = gateway_settings(limited.settings, limited.port, tmp_path)
    gateway = await start_gateway(settings)
    try:
        headers = {"X-API-Key": API_KEY}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            url = "/api/v1/jobs/image/resize"
            assert (await http.post(url, json=SEED_BODY)).status_code == 202
            response = await http.post(url, json=SEED_BODY)
    finally:
        await gateway.stop()
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["code"] == "RESOURCE_EXHAUSTED" and body["reason"] == "TENANT_QUOTA_EXCEEDED"


def test_quota_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MEND_TENANT_MAX_PENDING", "1000")
    monkeypatch.setenv("MEND_TENANT_SUBMIT_RATE", "2.5")
    monkeypatch.setenv("MEND_TENANT_SUBMIT_BURST", "50")
    settings = make_settings("redis://127.0.0.1:1/0")
    assert (settings.tenant_max_pending, settings.tenant_submit_rate) == (1000, 2.5)
    assert settings.tenant_submit_burst == 50
