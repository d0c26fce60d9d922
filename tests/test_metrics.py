"""Prometheus metrics (issue 11, item 1): each scrape target — the gRPC server, a worker
host (a supervisor serving all its worker processes), the gateway — parses with
prometheus_client's parser and shows the job metrics moving after one real job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, make_settings
from tests.images import encode
from tests.telemetry import Samples, scrape, value
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway
from tests.workers import wait_terminal, worker_pool

RESIZE = {"type": "image_resize"}
SUBMIT = {"grpc_service": "mend.v1.JobService", "grpc_method": "SubmitImageResize"}


@pytest.fixture
async def metered_server(redis_server: RedisServer, redis_client) -> AsyncIterator[MendServer]:
    server = MendServer(make_settings(redis_server.url, metrics_port=0))  # 0: a free port
    await server.start()
    yield server
    await server.stop(grace=0)


async def test_every_target_parses_and_counts_one_job(
    metered_server: MendServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    source = root / SEED_BODY["source_bucket"] / str(SEED_BODY["source_key"])
    source.parent.mkdir(parents=True)
    source.write_bytes(encode(photo(400, 300), "JPEG"))
    assert metered_server.metrics_endpoint is not None
    server_url = f"http://127.0.0.1:{metered_server.metrics_endpoint.port}/metrics"
    worker_port = free_port()
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    gateway = await start_gateway(
        gateway_settings(metered_server.settings, metered_server.port, tmp_path)
    )
    storage = {"MEND_STORAGE": "file", "MEND_STORAGE_ROOT": str(root)}
    try:
        async with worker_pool(
            redis_server.url, MEND_WORKER_METRICS_PORT=str(worker_port), **storage
        ) as workers:
            workers.start("--processes", "2")  # one endpoint for both worker processes

            # The queue gauges come from Redis (cached briefly): both workers, once registered.
            before_server = await eventually_value(server_url, "mend_workers", lambda v: v == 2)
            before_worker = await _eventually_scrape(worker_url)

            async with httpx.AsyncClient(
                base_url=gateway.url, headers={"X-API-Key": API_KEY}
            ) as http:
                response = await http.post("/api/v1/jobs/image/resize", json=SEED_BODY)
                assert response.status_code == 202, response.text
                job_id = response.json()["job_id"]
                async with grpc.aio.insecure_channel(f"127.0.0.1:{metered_server.port}") as ch:
                    job = await wait_terminal(jobs_pb2_grpc.JobServiceStub(ch), job_id)
                assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
                gateway_metrics = await scrape(f"{gateway.url}/metrics")

            after_server = await eventually_value(
                server_url, "mend_queue_jobs", lambda v: v == 0, state="pending", **RESIZE
            )
            after_worker = await scrape(worker_url)
    finally:
        await gateway.stop()

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The gRPC server: go-grpc-prometheus' names, the submission, the queue from Redis.
    assert moved(before_server, after_server, "grpc_server_started_total", **SUBMIT) == 1
    handled = {**SUBMIT, "grpc_type": "unary", "grpc_code": "OK"}
    assert moved(before_server, after_server, "grpc_server_handled_total", **handled) == 1
    count = moved(before_server, after_server, "grpc_server_handling_seconds_count", **SUBMIT)
    assert count == 1
    assert moved(before_server, after_server, "mend_jobs_submitted_total", **RESIZE) == 1
    assert value(after_server, "mend_queue_stats_up") == 1
    assert value(after_server, "mend_workers") == 2
    assert value(after_server, "mend_queue_jobs", state="processing", **RESIZE) == 0
    assert value(after_server, "mend_queue_scheduled_jobs") == 0
    # No id in any label: every label set is bounded.
    assert not any(job_id in str(labels) for _, labels, _ in after_server + after_worker)

    # The worker host: one endpoint, the sum of its worker processes.
    finished = {"status": "completed", **RESIZE}
    assert moved(before_worker, after_worker, "mend_jobs_finished_total", **finished) == 1
    for histogram in ("mend_job_processing_seconds", "mend_job_queue_wait_seconds"):
        assert moved(before_worker, after_worker, f"{histogram}_count", **RESIZE) == 1
    # The wait is measured in Redis' milliseconds: an idle worker can take a job within one.
    assert value(after_worker, "mend_job_processing_seconds_sum", **RESIZE) > 0
    assert value(after_worker, "mend_job_queue_wait_seconds_sum", **RESIZE) >= 0
    assert value(after_worker, "mend_job_retries_total", **RESIZE) == 0

    # The gateway's own endpoint.
    route = {"route": "/api/v1/jobs/image/resize", "status": "202"}
    assert value(gateway_metrics, "mend_http_requests_total", **route) == 1


async def test_failed_submissions_are_counted_by_code(metered_server: MendServer) -> None:
    """grpc_code is the status the call ended with, even when a handler aborts."""
    assert metered_server.metrics_endpoint is not None
    url = f"http://127.0.0.1:{metered_server.metrics_endpoint.port}/metrics"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered_server.port}") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetJob(pb.GetJobRequest(id="not-an-id"), metadata=AUTH)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetJob(pb.GetJobRequest(id="not-an-id"))  # no key
    samples = await scrape(url)
    get = {"grpc_method": "GetJob", "grpc_type": "unary"}
    assert value(samples, "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **get) == 1
    assert value(samples, "grpc_server_handled_total", grpc_code="UNAUTHENTICATED", **get) == 1
    assert value(samples, "grpc_server_started_total", **get) == 2
    assert value(samples, "mend_jobs_submitted_total") == 0


async def _eventually_scrape(url: str) -> Samples:
    for _ in range(200):
        try:
            return await scrape(url)
        except httpx.ConnectError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing serves {url}")


async def eventually_value(
    url: str, name: str, check: Callable[[float], bool], **labels: str
) -> Samples:
    """A scrape in which check(value) holds (the queue gauges are cached for 2 s)."""
    samples: Samples = []
    for _ in range(200):
        samples = await scrape(url)
        if check(value(samples, name, **labels)):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} never passed its check: {value(samples, name, **labels)}")
