"""The REST gateway over real HTTP: a real gRPC server (in-process), real Redis, uvicorn
on a free port, httpx as the client. Jobs are moved by WorkQueue, the workers' own code."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_devkit.s3 import MotoS3
from mend_server.gateway.errors import http_status
from mend_server.server import MendServer
from tests.conftest import API_KEY, OTHER_KEY, make_settings
from tests.helpers import PUBLIC_WEBHOOK_URL
from tests.test_gateway_support import (
    SEED_BODY,
    SEED_RESULT,
    RunningGateway,
    Worker,
    gateway_settings,
    start_gateway,
)

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# The seed's completed job (the "Job Status" page), the shape every field must keep.
SEED_COMPLETED: dict[str, Any] = {
    "id": "c815faad-3e99-4d0f-99a3-af61bfc7f26e",
    "type": "image_resize",
    "status": "completed",
    "source_bucket": "my-bucket",
    "source_key": "images/input.jpg",
    "dest_bucket": "my-bucket",
    "dest_key": "images/output.jpg",
    "parameters": {"width": 800, "height": 600, "quality": 85},
    "result": {
        "output_url": "s3://my-bucket/images/output.jpg",
        "file_size": 245678,
        "duration": 1.23,
        "metadata": {"width": 800, "height": 600, "format": "jpeg"},
    },
    "created_at": "2024-01-15T10:30:00Z",
    "updated_at": "2024-01-15T10:30:15Z",
    "completed_at": "2024-01-15T10:30:15Z",
    "duration_seconds": 1.23,
}


@pytest.fixture
async def gateway(mend_server: MendServer, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    running = await start_gateway(settings)
    yield running
    await running.stop()


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as client:
        yield client


@pytest.fixture
async def worker(redis_server: RedisServer) -> AsyncIterator[Worker]:
    w = Worker(redis_server.url)
    yield w
    await w.close()


async def submit(http: httpx.AsyncClient, **overrides: Any) -> str:
    response = await http.post("/api/v1/jobs/image/resize", json={**SEED_BODY, **overrides})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def assert_same_shape(actual: Any, seed: Any, path: str = "") -> None:
    """Every key of the seed is there, with a value of the same JSON type."""
    if isinstance(seed, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        for key, value in seed.items():
            assert key in actual, f"{path}.{key} is missing from {actual!r}"
            assert_same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(seed, str) and RFC3339_UTC.match(seed):
        assert isinstance(actual, str) and RFC3339_UTC.match(actual), f"{path}: {actual!r}"
    else:
        assert type(actual) is type(seed), f"{path}: {actual!r} is not like {seed!r}"


# ------------------------------------------------------------------ the seed walkthrough


async def test_seed_walkthrough_submit_extract_poll_get(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    # 1. Submit: the seed's curl body, 202 and Mend's answer.
    response = await http.post(
        "/api/v1/jobs/image/resize",
        content=(
            '{ "source_bucket": "my-bucket", "source_key": "input.jpg", "dest_bucket": '
            '"my-bucket", "dest_key": "output.jpg", "width": 800, "height": 600 }'
        ),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "status", "message"}
    assert body["status"] == "pending"
    assert body["message"] == "Job queued for processing"
    # 2. Extract the id (jq -r '.job_id').
    job_id = body["job_id"]
    assert uuid.UUID(job_id).version == 4

    # 3. Poll: pending, with the queue position the seed shows for pending jobs.
    pending = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    assert pending["id"] == job_id
    assert pending["status"] == "pending"
    assert pending["type"] == "image_resize"
    assert pending["queue_position"] == 1
    assert isinstance(pending["estimated_wait_seconds"], int | float)
    assert pending["parameters"] == {"width": 800, "height": 600}
    for absent in ("result", "error", "completed_at", "duration_seconds"):
        assert absent not in pending

    lease = await worker.claim()
    processing = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    assert processing["status"] == "processing"
    assert "queue_position" not in processing and "estimated_wait_seconds" not in processing

    assert await worker.queue.complete(lease, SEED_RESULT)
    # 4. Get the final result.
    done = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    assert done["status"] == "completed"
    assert done["result"] == SEED_COMPLETED["result"]
    assert done["duration_seconds"] == 1.23
    for absent in ("error", "queue_position", "estimated_wait_seconds"):
        assert absent not in done


async def test_completed_job_has_exactly_the_seed_shape(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    job_id = await submit(
        http, source_key="images/input.jpg", dest_key="images/output.jpg", quality=85
    )
    await worker.queue.complete(await worker.claim(), SEED_RESULT)

    job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    assert_same_shape(job, SEED_COMPLETED)
    expected = {k: v for k, v in SEED_COMPLETED.items() if not k.endswith("_at")}
    assert {k: job[k] for k in expected} == {**expected, "id": job_id}
    assert job["parameters"] == {"width": 800, "height": 600, "quality": 85}
    # Compared as times: RFC 3339 strings with and without a fraction do not sort as text.
    created, updated, completed = (
        datetime.fromisoformat(job[k]) for k in ("created_at", "updated_at", "completed_at")
    )
    assert created <= updated == completed


async def test_failed_job_has_the_seed_shape(http: httpx.AsyncClient, worker: Worker) -> None:
    job_id = await submit(http)
    error = "Source file not found: s3://my-bucket/images/input.jpg"
    await worker.queue.fail(await worker.claim(), error)

    job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    seed_failed = {
        "id": job_id,
        "type": "image_resize",
        "status": "failed",
        "error": error,
        "created_at": "2024-01-15T10:30:00Z",
        "updated_at": "2024-01-15T10:30:05Z",
    }
    assert_same_shape(job, seed_failed)
    assert {k: job[k] for k in ("id", "type", "status", "error")} == {
        k: seed_failed[k] for k in ("id", "type", "status", "error")
    }
    assert "result" not in job and "queue_position" not in job


async def test_enums_are_lowercase_both_ways(http: httpx.AsyncClient) -> None:
    job_id = await submit(
        http,
        fit="cover",
        format="WEBP",
        webhook_style="discord",
        webhook_url=PUBLIC_WEBHOOK_URL,
        priority=7,
    )
    job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["parameters"] == {"width": 800, "height": 600, "fit": "cover", "format": "webp"}
    assert job["webhook_style"] == "discord"
    assert job["priority"] == 7
    # The proto names work too.
    other = await submit(http, fit="FIT_MODE_FILL", format="IMAGE_FORMAT_PNG", dest_key="o.png")
    job = (await http.get(f"/api/v1/jobs/{other}")).json()
    assert job["parameters"]["fit"] == "fill" and job["parameters"]["format"] == "png"


async def test_list_filters_by_lowercase_status_and_type_and_pages(
    http: httpx.AsyncClient,
) -> None:
    ids = [await submit(http, dest_key=f"out/{i}.jpg") for i in range(3)]
    assert (await http.post(f"/api/v1/jobs/{ids[0]}/cancel")).status_code == 200

    pending = (
        await http.get("/api/v1/jobs?status=pending&type=image_resize&page_size=&page_token=")
    ).json()
    assert [j["id"] for j in pending["jobs"]] == [ids[2], ids[1]]
    assert all(j["status"] == "pending" for j in pending["jobs"])
    cancelled = (await http.get("/api/v1/jobs", params={"status": "cancelled"})).json()
    assert [j["id"] for j in cancelled["jobs"]] == [ids[0]]

    first = (await http.get("/api/v1/jobs?page_size=2")).json()
    assert [j["id"] for j in first["jobs"]] == [ids[2], ids[1]]
    assert first["next_page_token"]
    token = first["next_page_token"]
    rest = (await http.get("/api/v1/jobs", params={"page_size": 2, "page_token": token})).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]]
    assert rest["next_page_token"] == ""


async def test_empty_list_is_an_empty_array(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/jobs")).json() == {"jobs": [], "next_page_token": ""}


async def test_cancel_then_cancel_again_is_a_conflict(http: httpx.AsyncClient) -> None:
    job_id = await submit(http)
    response = await http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "cancelled" and job["error"]
    again = await http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "FAILED_PRECONDITION"
    assert "already cancelled" in again.json()["error"]


async def test_batch_in_mends_shape(http: httpx.AsyncClient) -> None:
    item = {
        "type": "image_resize",
        "source_bucket": "my-bucket",
        "source_key": "a.jpg",
        "dest_bucket": "my-bucket",
        "dest_key": "a-small.jpg",
        "parameters": {"width": 320, "quality": 70},
    }
    response = await http.post(
        "/api/v1/jobs/batch",
        json={
            "batch_id": "summer-2024",
            "jobs": [item, {**item, "dest_key": "a-tiny.webp", "priority": 9}],
            "options": {"webhook_url": PUBLIC_WEBHOOK_URL, "fail_fast": True},
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"batch_id", "total_jobs", "job_ids", "status"}
    assert body["batch_id"] == "summer-2024"
    assert body["total_jobs"] == 2 and len(body["job_ids"]) == 2
    assert body["status"] == "queued"
    first, second = [(await http.get(f"/api/v1/jobs/{i}")).json() for i in body["job_ids"]]
    assert first["parameters"] == {"width": 320, "quality": 70}
    assert first["batch_id"] == "summer-2024"
    assert second["priority"] == 9


async def test_batch_errors_name_the_item_field_in_mends_shape(http: httpx.AsyncClient) -> None:
    item = {**SEED_BODY, "type": "image_resize", "parameters": {"width": 800}}
    del item["width"], item["height"]
    response = await http.post(
        "/api/v1/jobs/batch",
        json={"jobs": [item, {**item, "parameters": {"width": -1}, "priority": 42}]},
    )
    assert response.status_code == 400
    fields = {d["field"] for d in response.json()["details"]}
    assert fields == {"jobs[1].parameters.width", "jobs[1].priority"}

    unknown = await http.post("/api/v1/jobs/batch", json={"jobs": [{**item, "type": "video"}]})
    assert unknown.status_code == 400
    assert unknown.json()["details"][0]["field"] == "jobs[0].type"
    empty = await http.post("/api/v1/jobs/batch", json={"jobs": []})
    assert empty.status_code == 400 and empty.json()["details"][0]["field"] == "jobs"


async def test_a_batch_of_bad_items_is_400_naming_the_first_fields(
    http: httpx.AsyncClient,
) -> None:
    """Hundreds of violations: the error still reaches the client through gRPC's trailer
    limits, naming the first fields and how many more there were (not a 429 from gRPC)."""
    item = {**SEED_BODY, "type": "image_resize", "parameters": {"width": -1, "quality": 101}}
    del item["width"], item["height"]
    bad = {**item, "dest_bucket": "x", "source_key": "../" + "s" * 200}
    response = await http.post("/api/v1/jobs/batch", json={"jobs": [bad] * 100})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"].startswith("invalid request: jobs[0].")
    assert "more" in body["error"]
    assert body["details"][0]["field"].startswith("jobs[0].")


async def test_submit_job_accepts_mend_and_proto_shapes(http: httpx.AsyncClient) -> None:
    location = {k: SEED_BODY[k] for k in ("source_bucket", "source_key", "dest_bucket", "dest_key")}
    mend = await http.post(
        "/api/v1/jobs",
        json={**location, "type": "image_resize", "parameters": {"height": 50}, "priority": 1},
    )
    proto = await http.post(
        "/api/v1/jobs",
        json={
            **location,
            "parameters": {"image_resize": {"height": 60}},
            "options": {"priority": 2},
        },
    )
    assert mend.status_code == proto.status_code == 202, (mend.text, proto.text)
    a = (await http.get(f"/api/v1/jobs/{mend.json()['job_id']}")).json()
    b = (await http.get(f"/api/v1/jobs/{proto.json()['job_id']}")).json()
    assert (a["parameters"], a["priority"]) == ({"height": 50}, 1)
    assert (b["parameters"], b["priority"]) == ({"height": 60}, 2)


async def test_queue_stats(http: httpx.AsyncClient) -> None:
    for _ in range(2):
        await submit(http)
    stats = (await http.get("/api/v1/queue/stats")).json()
    assert stats["totals"] == {
        "pending": 2, "processing": 0, "completed": 0, "failed": 0, "cancelled": 0
    }
    assert stats["by_type"]["image_resize"]["pending"] == 2
    assert stats["workers"] == 0


# --------------------------------------------------------------------------- auth


async def test_api_key_is_required_and_passed_through(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        missing = await anonymous.post("/api/v1/jobs/image/resize", json=SEED_BODY)
        wrong = await anonymous.get("/api/v1/jobs", headers={"X-API-Key": "nope"})
        bearer = await anonymous.post(
            "/api/v1/jobs/image/resize",
            json=SEED_BODY,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        # A key gRPC metadata cannot carry is refused, not a crash.
        odd_key = "k\u00e9y".encode("latin-1")
        odd = await anonymous.get("/api/v1/jobs", headers={"X-API-Key": odd_key})
    for response in (missing, wrong, odd):
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHENTICATED"
        assert "API key" in response.json()["error"]
    assert bearer.status_code == 202


async def test_other_tenants_job_is_not_found(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    job_id = await submit(http)
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": OTHER_KEY}) as other:
        assert (await other.get(f"/api/v1/jobs/{job_id}")).status_code == 404
        assert (await other.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 404
    assert (await http.get(f"/api/v1/jobs/{job_id}")).status_code == 200


# ------------------------------------------------------------------------- errors


async def test_invalid_fields_are_400_with_field_violations(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/jobs/image/resize", json={**SEED_BODY, "width": 0, "height": 0, "quality": 101}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_ARGUMENT"
    assert {d["field"] for d in body["details"]} == {"width", "quality"}
    assert all(d["description"] for d in body["details"])
    assert "quality" in body["error"]


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    for raw in (b'{"width": 8', b"\xff\xfe\x00", b'{"width": NaN}', b"[" * 5000 + b"]" * 5000):
        response = await http.post(
            "/api/v1/jobs/image/resize", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, raw[:20]
        assert "malformed JSON" in response.json()["error"]


async def test_body_must_be_an_object(http: httpx.AsyncClient) -> None:
    for body in ([1, 2], "text", 5):
        response = await http.post("/api/v1/jobs/image/resize", json=body)
        assert response.status_code == 400
        assert response.json()["details"] == [
            {"field": "(body)", "description": "must be a JSON object"}
        ]


async def test_wrong_content_type_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/jobs/image/resize",
        content="source_bucket=my-bucket",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


async def test_unknown_fields_are_400_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/jobs/image/resize", json={**SEED_BODY, "widht": 10, "color": "red"}
    )
    assert response.status_code == 400
    assert {d["field"] for d in response.json()["details"]} == {"widht", "color"}
    assert "widht" in response.json()["error"]
    query = await http.get("/api/v1/jobs?state=pending")
    assert query.status_code == 400
    assert query.json()["details"] == [{"field": "state", "description": "unknown query parameter"}]


async def test_wrong_types_and_enum_values_are_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/jobs/image/resize",
        json={**SEED_BODY, "width": "wide", "height": True, "fit": "stretch", "quality": 2**40},
    )
    assert response.status_code == 400
    details = {d["field"]: d["description"] for d in response.json()["details"]}
    assert details["width"] == "must be an integer"
    assert details["height"] == "must be an integer"
    assert "inside, cover, fill" in details["fit"]
    assert "between" in details["quality"]
    listing = await http.get("/api/v1/jobs?status=done&page_size=many")
    assert {d["field"] for d in listing.json()["details"]} == {"status", "page_size"}


async def test_oversized_bodies_are_413(http: httpx.AsyncClient, gateway: RunningGateway) -> None:
    limit = gateway.gateway.settings.max_request_bytes
    big = {**SEED_BODY, "source_key": "k" * (limit + 1)}
    declared = await http.post("/api/v1/jobs/image/resize", json=big)
    assert declared.status_code == 413
    assert str(limit) in declared.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        yield b'{"source_key": "'
        for _ in range(limit // 1000 + 1):
            yield b"k" * 1000
        yield b'"}'

    chunked = await http.post(
        "/api/v1/jobs/image/resize", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413


async def test_unknown_routes_and_methods_answer_json(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]
    method = await http.delete("/api/v1/jobs/image/resize")
    assert method.status_code == 405 and method.json()["error"]
    bad_id = await http.get("/api/v1/jobs/not-a-uuid")
    assert bad_id.status_code == 400
    assert bad_id.json()["details"][0]["field"] == "id"
    unknown = await http.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
    ],
)
def test_grpc_codes_map_to_http_statuses(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status


def test_grpc_message_size_errors_are_413() -> None:
    message = "Received message larger than max (5000000 vs. 4194304)"
    assert http_status(grpc.StatusCode.RESOURCE_EXHAUSTED, message) == 413


# ------------------------------------------------- dependencies down: 503, 504, health


async def test_grpc_server_down_is_503_and_unhealthy(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = gateway_settings(make_settings(redis_server.url), free_port(), tmp_path)
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, headers={"X-API-Key": API_KEY}) as c:
            submit_response = await c.post("/api/v1/jobs/image/resize", json=SEED_BODY)
            health = await c.get("/health")
            ready = await c.get("/health/ready")
            live = await c.get("/health/live")
    finally:
        await running.stop()
    assert submit_response.status_code == 503
    assert submit_response.json()["code"] == "UNAVAILABLE"
    # The channel's own message names the upstream (ipv4:127.0.0.1:PORT): not for clients.
    for leak in ("127.0.0.1", "ipv4", str(settings.grpc_port)):
        assert leak not in submit_response.text, submit_response.text
    assert "unavailable" in submit_response.json()["error"]
    assert submit_response.headers["Retry-After"].isdigit(), submit_response.headers
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["dependencies"]["grpc"]["status"] == "unhealthy"
    assert health.json()["dependencies"]["redis"]["status"] == "healthy"
    assert ready.status_code == 503 and "grpc" in ready.json()["error"]
    assert live.status_code == 200


async def test_silent_grpc_server_is_504(redis_server: RedisServer, tmp_path: Path) -> None:
    # A TCP listener that accepts and never speaks HTTP/2: every call runs into its deadline.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = gateway_settings(make_settings(redis_server.url), port, tmp_path)
    running = await start_gateway(settings, grpc_timeout_seconds=0.3)
    try:
        async with httpx.AsyncClient(base_url=running.url, headers={"X-API-Key": API_KEY}) as c:
            response = await c.get(f"/api/v1/jobs/{uuid.uuid4()}")
    finally:
        await running.stop()
        silent.close()
    assert response.status_code == 504
    assert response.json()["code"] == "DEADLINE_EXCEEDED"


async def test_redis_down_is_not_ready(mend_server: MendServer, tmp_path: Path) -> None:
    settings = gateway_settings(
        mend_server.settings, mend_server.port, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url) as c:
            ready = await c.get("/health/ready")
            health = await c.get("/health")
    finally:
        await running.stop()
    assert ready.status_code == 503
    assert "redis" in ready.json()["error"]
    assert health.json()["dependencies"]["redis"]["status"] == "unhealthy"
    assert health.json()["status"] == "unhealthy"


async def test_health_reports_each_dependency(http: httpx.AsyncClient) -> None:
    response = await http.get("/health", headers={"X-API-Key": ""})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["dependencies"]) == {"redis", "storage", "grpc"}
    for dep in body["dependencies"].values():
        assert dep["status"] == "healthy"
        assert isinstance(dep["latency_ms"], int | float)
        assert RFC3339_UTC.match(dep["last_check"])
    assert (await http.get("/health/ready")).json() == {"status": "ready"}


async def test_missing_storage_root_is_degraded(mend_server: MendServer, tmp_path: Path) -> None:
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path / "missing")
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url) as c:
            health = await c.get("/health")
            ready = await c.get("/health/ready")
    finally:
        await running.stop()
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    storage = health.json()["dependencies"]["storage"]
    assert storage["status"] == "unhealthy" and "does not exist" in storage["error"]
    assert ready.status_code == 200


# ------------------------------------------------------------- metrics, CORS, OpenAPI


async def test_metrics_count_requests_by_route_and_status(http: httpx.AsyncClient) -> None:
    job_id = await submit(http)
    await http.get(f"/api/v1/jobs/{job_id}")
    await http.get("/api/v1/jobs/not-a-uuid")
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'mend_http_requests_total{method="POST",route="/api/v1/jobs/image/resize",status="202"} 1.0'
        in text
    )
    for status in ("200", "400"):
        series = f'method="GET",route="/api/v1/jobs/{{id}}",status="{status}"'
        assert f"mend_http_requests_total{{{series}}} 1.0" in text
    assert "mend_http_request_duration_seconds_bucket" in text
    assert 'mend_gateway_grpc_calls_total{code="OK",method="SubmitImageResize"} 1.0' in text


async def test_cors_is_off_by_default_and_configurable(
    mend_server: MendServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-API-Key, Content-Type",
    }
    plain = await http.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in plain.headers

    settings = gateway_settings(
        mend_server.settings, mend_server.port, tmp_path, cors_origins="https://app.example.com"
    )
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url) as c:
            allowed = await c.options("/api/v1/jobs/image/resize", headers=preflight)
            other = await c.options(
                "/api/v1/jobs/image/resize", headers={**preflight, "Origin": "https://evil.example"}
            )
    finally:
        await running.stop()
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400


async def test_openapi_document_follows_the_annotations(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths["/api/v1/jobs"]) == {"get", "post"}
    assert "post" in paths["/api/v1/jobs/image/resize"]
    assert "202" in paths["/api/v1/jobs/image/resize"]["post"]["responses"]
    assert "get" in paths["/api/v1/jobs/{id}/stream"]
    assert "post" in paths["/api/v1/jobs/{id}/cancel"]
    listing = {p["name"] for p in paths["/api/v1/jobs"]["get"]["parameters"]}
    assert listing == {"status", "type", "page_size", "page_token", "all_tenants"}
    schemas = doc["components"]["schemas"]
    assert "pending" in schemas["Job"]["properties"]["status"]["enum"]
    # The job's parameters are flat: an operation's parameters, not a oneof wrapper.
    assert schemas["JobParameters"] == {
        "anyOf": [
            {"$ref": f"#/components/schemas/{f.message_type.name}"}
            for f in pb.JobParameters.DESCRIPTOR.oneofs_by_name["operation"].fields
        ]
    }


SEED_SCRIPT = r"""
# 1. Submit job
RESPONSE=$(curl -X POST http://localhost:PORT/api/v1/jobs/image/resize \
  -H "X-API-Key: your-api-key" \
  -H "Content-Type: application/json" \
  -d '{
    "source_bucket": "my-bucket",
    "source_key": "input.jpg",
    "dest_bucket": "my-bucket",
    "dest_key": "output.jpg",
    "width": 800,
    "height": 600
  }')
# 2. Extract job ID
JOB_ID=$(echo $RESPONSE | jq -r '.job_id')
# 3. Poll for status
while true; do
  STATUS=$(curl -s http://localhost:PORT/api/v1/jobs/$JOB_ID \
    -H "X-API-Key: your-api-key" | jq -r '.status')
  echo "Status: $STATUS"
  if [ "$STATUS" = "completed" ] || [ "$STATUS" = "failed" ]; then
    break
  fi
  sleep 2
done
# 4. Get final result
curl http://localhost:PORT/api/v1/jobs/$JOB_ID \
  -H "X-API-Key: your-api-key" | jq
"""


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)
async def test_seed_shell_walkthrough_runs_verbatim(
    redis_server: RedisServer, redis_client: Any, worker: Worker, tmp_path: Path
) -> None:
    server = MendServer(make_settings(redis_server.url, api_keys="your-api-key"))
    await server.start()
    running = await start_gateway(gateway_settings(server.settings, server.port, tmp_path))
    try:
        script = SEED_SCRIPT.replace("PORT", str(running.gateway.settings.http_port))
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        # Be the worker: finish the job as soon as the script has submitted it.
        while (lease := await worker.queue.claim("test-worker")) is None:
            await asyncio.sleep(0.01)
        await worker.queue.complete(lease, SEED_RESULT)
        out, err = await asyncio.wait_for(shell.communicate(), 60)
    finally:
        await running.stop()
        await server.stop(grace=0)
    assert shell.returncode == 0, err.decode()
    text = out.decode()
    assert "Status: completed" in text
    final = json.loads(text[text.index("{") :])
    assert final["id"] == lease.job_id
    assert final["status"] == "completed"
    assert final["result"] == SEED_COMPLETED["result"]


async def run_curl(*args: str) -> tuple[int, str, str]:
    """curl (no ~/.curlrc, no proxy) -> its exit status, stdout and its -v trace."""
    curl = await asyncio.create_subprocess_exec(
        *("curl", "-q", "--noproxy", "*", "-s", "-v", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(curl.communicate(), 30)
    assert curl.returncode is not None
    return curl.returncode, out.decode(), err.decode()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_curl_d_without_a_content_type_is_read_as_json(gateway: RunningGateway) -> None:
    # `curl -d` with no -H Content-Type sends application/x-www-form-urlencoded (issue 8,
    # item 11): a JSON body is taken as JSON, a real form body is 415.
    url = f"{gateway.url}/api/v1/jobs/image/resize"
    key = f"X-API-Key: {API_KEY}"
    status, out, trace = await run_curl("-d", json.dumps(SEED_BODY), "-H", key, url)
    assert status == 0, trace
    assert "> Content-Type: application/x-www-form-urlencoded" in trace, trace
    assert "< HTTP/1.1 202" in trace, out
    answer = json.loads(out)
    assert answer["status"] == "pending" and uuid.UUID(answer["job_id"]).version == 4

    form = "source_bucket=my-bucket&source_key=input.jpg&width=100"
    status, out, trace = await run_curl("-d", form, "-H", key, url)
    assert status == 0, trace
    assert "< HTTP/1.1 415" in trace, out
    assert "form-encoded" in json.loads(out)["error"]


async def test_s3_storage_health(mend_server: MendServer, tmp_path: Path, aws_env: None) -> None:
    moto = MotoS3()
    up_url = moto.endpoint
    down_url = f"http://127.0.0.1:{free_port()}"
    # moto loads its S3 backend on the first request: take that time outside the probe.
    boto3.client("s3", endpoint_url=up_url, region_name="us-east-1").list_buckets()
    statuses = {}
    try:
        for name, endpoint in (("up", up_url), ("down", down_url)):
            settings = gateway_settings(
                mend_server.settings, mend_server.port, tmp_path, storage="s3",
                s3_endpoint_url=endpoint,
            )
            running = await start_gateway(settings)
            try:
                async with httpx.AsyncClient(base_url=running.url) as c:
                    statuses[name] = (await c.get("/health")).json()
            finally:
                await running.stop()
    finally:
        moto.stop()
    assert statuses["up"]["status"] == "healthy"
    assert statuses["up"]["dependencies"]["storage"]["backend"] == "s3"
    assert statuses["down"]["status"] == "degraded"
    assert statuses["down"]["dependencies"]["storage"]["status"] == "unhealthy"
