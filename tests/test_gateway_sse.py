"""GET /api/v1/jobs/{id}/stream over real HTTP: Mend's SSE events from submission to the
terminal event, resumption with Last-Event-ID (and refused resume points), keepalives,
disconnects; stream tokens (`?token=`, POST /api/v1/jobs/{id}/stream-token) and CORS."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer, env_for
from mend_server.server import MendServer
from tests.conftest import API_KEY, OTHER_KEY
from tests.test_gateway_support import (
    SEED_BODY,
    SEED_RESULT,
    Event,
    RunningGateway,
    Worker,
    gateway_settings,
    sse_events,
    start_gateway,
)
from tests.test_stream_tokens import forged, tokens_of

PAGE_ORIGIN = "http://127.0.0.1:9"  # a page's origin, as CORS sees it (nothing listens)
RESULT_JSON = {
    "output_url": "s3://my-bucket/images/output.jpg",
    "file_size": 245678,
    "duration": 1.23,
    "metadata": {"width": 800, "height": 600, "format": "jpeg"},
}


@pytest.fixture
async def gateway(mend_server: MendServer, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(
        mend_server.settings, mend_server.port, tmp_path, cors_origins=PAGE_ORIGIN
    )
    running = await start_gateway(settings, sse_keepalive_seconds=0.2)
    yield running
    await running.stop()


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"X-API-Key": API_KEY}, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def worker(redis_server: RedisServer) -> AsyncIterator[Worker]:
    w = Worker(redis_server.url)
    yield w
    await w.close()


async def submit(http: httpx.AsyncClient) -> str:
    response = await http.post("/api/v1/jobs/image/resize", json=SEED_BODY)
    assert response.status_code == 202
    return response.json()["job_id"]


async def rest(events: AsyncIterator[Event]) -> list[Event]:
    return [e async for e in events]


async def eventually(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_stream_from_submission_to_complete(http: httpx.AsyncClient, worker: Worker) -> None:
    job_id = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = sse_events(response)

        pending = await anext(events)
        assert (pending.id, pending.event) == ("1", "status")
        assert pending.data["status"] == "pending"
        assert pending.data["message"] == "Job queued for processing"
        assert pending.data["queue_position"] == 1

        lease = await worker.claim()
        assert await anext(events) == Event(
            "2", "status", {"status": "processing", "message": "Processing started"}
        )
        await worker.queue.progress(lease, 50, "Resizing")
        assert await anext(events) == Event("3", "progress", {"percent": 50, "message": "Resizing"})
        await worker.queue.complete(lease, SEED_RESULT)
        assert await anext(events) == Event(
            "4", "complete", {"status": "completed", "result": RESULT_JSON}
        )
        assert await rest(events) == []  # the stream ends after the terminal event


async def test_last_event_id_resumes_without_repeating(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    job_id = await submit(http)
    url = f"/api/v1/jobs/{job_id}/stream"
    async with http.stream("GET", url) as response:
        first = await anext(sse_events(response))
    assert first.id == "1"

    # Everything happens while the client is away.
    lease = await worker.claim()
    await worker.queue.progress(lease, 40, "Downloading")

    async with http.stream("GET", url, headers={"Last-Event-ID": "1"}) as response:
        events = sse_events(response)
        assert await anext(events) == Event(
            "2", "status", {"status": "processing", "message": "Processing started"}
        )
        progress = Event("3", "progress", {"percent": 40, "message": "Downloading"})
        assert await anext(events) == progress

    # Resuming after the "processing" event does not announce processing again.
    async with http.stream("GET", url, headers={"Last-Event-ID": "2"}) as response:
        events = sse_events(response)
        assert await anext(events) == progress
        await worker.queue.complete(lease, SEED_RESULT)
        done = await anext(events)
        assert (done.id, done.event, done.data["status"]) == ("4", "complete", "completed")
        assert await rest(events) == []

    # After the terminal event there is nothing more: 204 tells EventSource to stop.
    over = await http.get(url, headers={"Last-Event-ID": "4"})
    assert over.status_code == 204


async def test_the_streams_of_a_job_share_one_upstream_watch(
    http: httpx.AsyncClient, worker: Worker, gateway: RunningGateway, mend_server: MendServer
) -> None:
    job_id = await submit(http)
    url = f"/api/v1/jobs/{job_id}/stream"
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for _ in range(3):
            response = await stack.enter_async_context(http.stream("GET", url))
            events = sse_events(response)
            assert (await anext(events)).data["status"] == "pending"
            streams.append(events)
        # Each stream was admitted by a WatchJob of its own; then they share one.
        await eventually(lambda: mend_server.feed.watcher_count == 1, "one upstream WatchJob")
        assert gateway.gateway.streams.shared.calls == 1

        lease = await worker.claim()
        await worker.queue.progress(lease, 50, "Resizing")
        # A stream that joins late (its own call read the processing state) misses nothing.
        late = sse_events(await stack.enter_async_context(http.stream("GET", url)))
        assert (await anext(late)).event == "status"
        assert await anext(late) == Event("3", "progress", {"percent": 50, "message": "Resizing"})
        await worker.queue.complete(lease, SEED_RESULT)
        expected = [
            Event("2", "status", {"status": "processing", "message": "Processing started"}),
            Event("3", "progress", {"percent": 50, "message": "Resizing"}),
            Event("4", "complete", {"status": "completed", "result": RESULT_JSON}),
        ]
        for events in streams:
            assert await rest(events) == expected
        assert await rest(late) == expected[2:]
    await eventually(lambda: mend_server.feed.watcher_count == 0, "upstream WatchJob ended")
    assert gateway.gateway.streams.shared.calls == 0


async def test_the_last_stream_of_a_job_to_leave_cancels_the_shared_watch(
    http: httpx.AsyncClient, mend_server: MendServer
) -> None:
    job_id = await submit(http)
    url = f"/api/v1/jobs/{job_id}/stream"
    async with http.stream("GET", url) as first:
        first_events = sse_events(first)
        await anext(first_events)
        async with http.stream("GET", url) as second:
            second_events = sse_events(second)
            await anext(second_events)
            await eventually(lambda: mend_server.feed.watcher_count == 1, "one shared watch")
        await asyncio.sleep(0.1)
        assert mend_server.feed.watcher_count == 1  # the first stream still follows the job
    await eventually(lambda: mend_server.feed.watcher_count == 0, "WatchJob cancelled")


async def test_stream_of_a_finished_job_is_its_terminal_event(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    job_id = await submit(http)
    await worker.queue.complete(await worker.claim(), SEED_RESULT)
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
        events = await rest(sse_events(response))
    assert events == [Event("3", "complete", {"status": "completed", "result": RESULT_JSON})]


async def test_failed_and_cancelled_jobs_end_with_an_error_event(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    failing = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{failing}/stream") as response:
        events = sse_events(response)
        await anext(events)
        lease = await worker.claim()
        await worker.queue.fail(lease, "Source file not found: s3://my-bucket/input.jpg")
        tail = await rest(events)
    assert tail[-1] == Event(
        "3", "error", {"status": "failed", "error": "Source file not found: s3://my-bucket/input.jpg"}
    )

    cancelled = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{cancelled}/stream") as response:
        events = sse_events(response)
        await anext(events)
        assert (await http.post(f"/api/v1/jobs/{cancelled}/cancel")).status_code == 200
        tail = await rest(events)
    assert [(e.event, e.data["status"]) for e in tail] == [("error", "cancelled")]
    assert tail[0].data["error"]


async def test_idle_streams_carry_keepalive_comments(http: httpx.AsyncClient) -> None:
    job_id = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
        # The job stays pending: the stream stays open and idle, so only keepalives come.
        seen = [line async for line in _until_keepalive(response.aiter_lines())]
    assert seen[-1] == ": keepalive", seen


async def _until_keepalive(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        yield line
        if line == ": keepalive":
            return


async def test_a_client_that_leaves_cancels_the_upstream_watch(
    http: httpx.AsyncClient, mend_server: MendServer
) -> None:
    job_id = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
        events = sse_events(response)
        await anext(events)
        await eventually(lambda: mend_server.feed.watcher_count == 1, "WatchJob started")
    await eventually(lambda: mend_server.feed.watcher_count == 0, "WatchJob cancelled")


async def test_gateway_shutdown_ends_open_streams(
    http: httpx.AsyncClient, gateway: RunningGateway
) -> None:
    job_id = await submit(http)
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
        events = sse_events(response)
        await anext(events)
        gateway.gateway.begin_shutdown()
        assert await rest(events) == []


async def test_stream_errors_are_json(gateway: RunningGateway, http: httpx.AsyncClient) -> None:
    unknown = await http.get(f"/api/v1/jobs/{uuid.uuid4()}/stream")
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    bad_id = await http.get("/api/v1/jobs/123/stream")
    assert bad_id.status_code == 400
    job_id = await submit(http)
    bad_resume = await http.get(f"/api/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": "x"})
    assert bad_resume.status_code == 400 and "Last-Event-ID" in bad_resume.json()["error"]
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        denied = await anonymous.get(f"/api/v1/jobs/{job_id}/stream")
    assert denied.status_code == 401


@contextlib.asynccontextmanager
async def gateway_command(
    mend_server: MendServer, redis_server: RedisServer, tmp_path: Path, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    """The `mend-gateway` command in front of mend_server, its stderr piped, and a client
    for it, once /health/live answers; killed after, if it still runs."""
    port = free_port()
    command = Path(sys.executable).with_name("mend-gateway")
    process = await asyncio.create_subprocess_exec(
        str(command),
        env=env_for(
            redis_server.url,
            MEND_API_KEYS=mend_server.settings.api_keys,
            MEND_GRPC_PORT=str(mend_server.port),
            MEND_HTTP_PORT=str(port),
            MEND_STORAGE_ROOT=str(tmp_path),
            **env,
        ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=10
        ) as http:
            for _ in range(500):
                try:
                    if (await http.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
            yield process, http
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_mend_gateway_command_ends_streams_and_exits_on_sigterm(
    mend_server: MendServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with gateway_command(
        mend_server, redis_server, tmp_path, MEND_SHUTDOWN_GRACE_SECONDS_SERVER="1"
    ) as (process, http):
        job_id = await submit(http)
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
            events = sse_events(response)
            assert (await anext(events)).data["status"] == "pending"
            process.send_signal(signal.SIGTERM)
            assert await rest(events) == []  # ended by the gateway, not by the job
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_resuming_beyond_the_jobs_version_is_400_at_once(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    # A running job at version 2. Version 3 (the edge: the bridge reads one version
    # early) and 99 are beyond it; a stream that waited for them would never end.
    job_id = await submit(http)
    lease = await worker.claim()
    url = f"/api/v1/jobs/{job_id}/stream"
    for beyond in ("3", "99"):
        answer = await http.get(url, headers={"Last-Event-ID": beyond})
        assert answer.status_code == 400, (beyond, answer.text)
        body = answer.json()
        assert body["code"] == "OUT_OF_RANGE"
        assert [d["field"] for d in body["details"]] == ["Last-Event-ID"]
        assert f"job {job_id} is at version 2" in body["error"]
    by_query = await http.get(url, params={"from_version": "99"})
    assert by_query.status_code == 400
    assert [d["field"] for d in by_query.json()["details"]] == ["from_version"]

    # Finished at version 3: 3 is "seen it all" (204), 4 is beyond it.
    await worker.queue.complete(lease, SEED_RESULT)
    assert (await http.get(url, headers={"Last-Event-ID": "3"})).status_code == 204
    beyond_end = await http.get(url, headers={"Last-Event-ID": "4"})
    assert beyond_end.status_code == 400
    assert "is at version 3" in beyond_end.json()["error"]


@pytest.mark.parametrize(
    ("query", "header", "field"),
    [
        ({"from_version": "-1"}, {}, "from_version"),
        ({"from_version": "x"}, {}, "from_version"),
        ({"from_version": "99999999999999999999"}, {}, "from_version"),
        ({}, {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "x"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "1e3"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "\u0663"}, "Last-Event-ID"),  # an Arabic-Indic 3
        ({}, {"Last-Event-ID": "99999999999999999999"}, "Last-Event-ID"),
    ],
)
async def test_a_bad_resume_point_is_400_before_the_stream(
    http: httpx.AsyncClient, query: dict[str, str], header: dict[str, str], field: str
) -> None:
    # A 200 with an empty stream would make EventSource reconnect forever.
    job_id = await submit(http)
    headers = {k: v.encode() for k, v in header.items()}  # type: ignore[misc]
    answer = await http.get(f"/api/v1/jobs/{job_id}/stream", params=query, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert field in [d["field"] for d in answer.json()["details"]], answer.json()


async def test_last_event_id_wins_over_from_version_in_the_query(
    http: httpx.AsyncClient, worker: Worker
) -> None:
    # EventSource reconnects to the same URL (?from_version=1) and adds the id of the
    # last event it saw: that is where the client is.
    job_id = await submit(http)
    lease = await worker.claim()
    await worker.queue.progress(lease, 40, "Downloading")
    url = f"/api/v1/jobs/{job_id}/stream?from_version=1"
    async with http.stream("GET", url, headers={"Last-Event-ID": "2"}) as response:
        first = await anext(sse_events(response))
    assert first == Event("3", "progress", {"percent": 40, "message": "Downloading"})


# --------------------------------------------------------- stream tokens (?token=), CORS


@pytest.fixture
async def anonymous(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no key, as a browser's EventSource."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


async def token_for(http: httpx.AsyncClient, job_id: str) -> str:
    answer = await http.post(f"/api/v1/jobs/{job_id}/stream-token")
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


async def test_stream_token_route_answers_token_and_expiry(http: httpx.AsyncClient) -> None:
    job_id = await submit(http)
    answer = await http.post(f"/api/v1/jobs/{job_id}/stream-token")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "expires_at"}
    assert body["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    left = (expires - datetime.now(UTC)).total_seconds()
    assert 290 <= left <= 300


async def test_a_token_in_the_query_follows_the_job_to_complete(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, worker: Worker
) -> None:
    job_id = await submit(http)
    url = f"/api/v1/jobs/{job_id}/stream"
    token = await token_for(http, job_id)
    async with anonymous.stream("GET", url, params={"token": token}) as response:
        assert response.status_code == 200
        events = sse_events(response)
        assert (await anext(events)).data["status"] == "pending"
        lease = await worker.claim()
        assert (await anext(events)).data["status"] == "processing"
        await worker.queue.complete(lease, SEED_RESULT)
        done = await anext(events)
        assert (done.id, done.event) == ("3", "complete")
    # EventSource's reconnect: the same URL and Last-Event-ID; after the end, 204.
    again = await anonymous.get(url, params={"token": token}, headers={"Last-Event-ID": "3"})
    assert again.status_code == 204
    resumed = await anonymous.get(url, params={"token": token}, headers={"Last-Event-ID": "2"})
    assert resumed.status_code == 200
    assert Event("3", "complete", done.data) in [e async for e in sse_events(resumed)]


async def test_a_token_for_another_job_is_403_on_the_stream(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    mine, other = await submit(http), await submit(http)
    token = await token_for(http, mine)
    refused = await anonymous.get(f"/api/v1/jobs/{other}/stream", params={"token": token})
    assert refused.status_code == 403
    assert refused.json()["code"] == "PERMISSION_DENIED"


async def test_expired_and_tampered_tokens_are_401(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, mend_server: MendServer
) -> None:
    job_id = await submit(http)
    url = f"/api/v1/jobs/{job_id}/stream"
    expired, _ = tokens_of(mend_server, clock=lambda: time.time() - 3600).issue(job_id, "acme")
    good = await token_for(http, job_id)
    payload, _, mac = good.partition(".")
    tampered = forged(good, job=str(uuid.uuid4()))
    flipped = payload + "." + ("B" if mac[0] == "A" else "A") + mac[1:]
    for token in (expired, tampered, flipped, payload + "." + mac + "A", "garbage", "é"):
        refused = await anonymous.get(url, params={"token": token})
        assert refused.status_code == 401, (token, refused.text)
        assert refused.headers["content-type"] == "application/json"
    assert "expired" in (await anonymous.get(url, params={"token": expired})).json()["error"]


async def test_a_token_is_not_accepted_on_any_other_route(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    job_id = await submit(http)
    token = await token_for(http, job_id)
    for method, path in (
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("POST", f"/api/v1/jobs/{job_id}/stream-token"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/queue/stats"),
    ):
        refused = await anonymous.request(method, path, params={"token": token})
        assert refused.status_code == 401, (method, path, refused.text)
    bearer = await anonymous.get(
        f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.status_code == 401
    assert (await http.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "pending"


async def test_another_tenant_cannot_get_a_token_for_my_job_over_rest(
    http: httpx.AsyncClient, gateway: RunningGateway
) -> None:
    job_id = await submit(http)
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": OTHER_KEY}) as other:
        refused = await other.post(f"/api/v1/jobs/{job_id}/stream-token")
    assert refused.status_code == 404
    async with httpx.AsyncClient(base_url=gateway.url) as nobody:
        assert (await nobody.post(f"/api/v1/jobs/{job_id}/stream-token")).status_code == 401


async def test_a_token_given_twice_is_400(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    job_id = await submit(http)
    token = await token_for(http, job_id)
    answer = await anonymous.get(
        f"/api/v1/jobs/{job_id}/stream", params=[("token", token), ("token", "other")]
    )
    assert answer.status_code == 400
    assert [d["field"] for d in answer.json()["details"]] == ["token"]


async def test_cors_lets_the_configured_origin_get_a_token_and_open_the_stream(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    job_id = await submit(http)
    # The page's fetch() with X-API-Key and Content-Type needs a preflight.
    preflight = await anonymous.options(
        f"/api/v1/jobs/{job_id}/stream-token",
        headers={
            "Origin": PAGE_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed and "content-type" in allowed

    minted = await http.post(f"/api/v1/jobs/{job_id}/stream-token", headers={"Origin": PAGE_ORIGIN})
    assert minted.headers["access-control-allow-origin"] == PAGE_ORIGIN
    token = minted.json()["token"]
    # EventSource's GET is a simple request: the answer must name the origin.
    async with anonymous.stream(
        "GET",
        f"/api/v1/jobs/{job_id}/stream",
        params={"token": token},
        headers={"Origin": PAGE_ORIGIN},
    ) as response:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == PAGE_ORIGIN
    # Another origin is not let in.
    foreign = await anonymous.options(
        f"/api/v1/jobs/{job_id}/stream-token",
        headers={"Origin": "http://127.0.0.2:9", "Access-Control-Request-Method": "POST"},
    )
    assert foreign.status_code == 400
    assert "access-control-allow-origin" not in foreign.headers
