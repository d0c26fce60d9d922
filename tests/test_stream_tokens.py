"""Stream tokens (issue 8, item 17): CreateStreamToken / POST /api/v1/jobs/{id}/stream-token
makes a short-lived token for one job of one tenant, accepted by WatchJob (metadata) and
the SSE route (`?token=`) and nowhere else; tampered, expired or foreign tokens are
refused; CORS lets a page of a configured origin make one and open the stream. (A real
browser doing so: test_browser_stream.py.)"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.tenancy import parse_api_keys
from mend_server.auth import STREAM_TOKEN_METADATA
from mend_server.server import MendServer
from mend_server.stream_tokens import InvalidStreamToken, StreamTokens, derive_secret
from tests.conftest import API_KEY, AUTH, OTHER_AUTH, OTHER_KEY, make_settings
from tests.helpers import resize_request
from tests.services import RedisServer
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

Stub = jobs_pb2_grpc.JobServiceStub
PAGE_ORIGIN = "http://127.0.0.1:9"  # a page's origin, as CORS sees it (nothing listens)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    text = token.partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def tokens_of(server: MendServer, *, clock=time.time) -> StreamTokens:  # type: ignore[no-untyped-def]
    """Tokens as the server makes them (same secret), with a clock of the test's own."""
    settings = server.settings
    secret = derive_secret(settings.stream_token_secret, settings.keys)
    return StreamTokens(secret, settings.stream_token_ttl_seconds, clock=clock)


# ---------------------------------------------------------------------------- the tokens


def test_a_token_names_its_job_tenant_and_expiry_and_verifies() -> None:
    tokens = StreamTokens(b"secret", 300, clock=lambda: 1_000_000.0)
    token, expires_at = tokens.issue("job-1", "acme")
    assert expires_at == 1_000_300
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    grant = tokens.verify(token)
    assert (grant.job_id, grant.tenant, grant.expires_at) == ("job-1", "acme", 1_000_300)


def test_tampered_foreign_malformed_and_expired_tokens_are_refused() -> None:
    now = [1_000_000.0]
    tokens = StreamTokens(b"secret", 300, clock=lambda: now[0])
    token, _ = tokens.issue("job-1", "acme")
    payload, _, mac = token.partition(".")
    forged = dict(_payload(token), tenant="globex")
    bad = [
        _b64(json.dumps(forged).encode()) + "." + mac,  # another tenant, old signature
        payload + "." + _b64(b"\x00" * 32),  # another signature
        payload + "." + mac[:-2],  # a truncated signature
        payload,  # no signature
        "",
        "%%%.%%%",
        "é." + mac,
        StreamTokens(b"other secret", 300, clock=lambda: now[0]).issue("job-1", "acme")[0],
    ]
    for candidate in bad:
        with pytest.raises(InvalidStreamToken):
            tokens.verify(candidate)
    now[0] += 299
    assert tokens.verify(token).job_id == "job-1"
    now[0] += 1
    with pytest.raises(InvalidStreamToken, match="expired"):
        tokens.verify(token)


def test_the_derived_secret_is_the_same_for_every_process_with_the_same_keys() -> None:
    a = parse_api_keys("acme=key-a,globex=key-b")
    b = parse_api_keys("globex=key-b, acme=key-a")
    assert derive_secret("", a) == derive_secret("", b)
    assert derive_secret("", a) != derive_secret("", parse_api_keys("acme=key-a"))
    assert derive_secret("configured", a) == b"configured"


# ------------------------------------------------------------------------------ gRPC


async def _submit(stub: Stub) -> str:
    return (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id


async def _token(stub: Stub, job_id: str) -> str:
    answer = await stub.CreateStreamToken(pb.CreateStreamTokenRequest(id=job_id), metadata=AUTH)
    return answer.token


def _with_token(token: str) -> tuple[tuple[str, str], ...]:
    return ((STREAM_TOKEN_METADATA, token),)


async def _first_state(stub: Stub, job_id: str, metadata) -> pb.Job:  # type: ignore[no-untyped-def]
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=metadata)
    message = await call.read()
    call.cancel()
    return message.job


async def _refusal(stub: Stub, job_id: str, metadata) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    return info.value


async def test_create_stream_token_then_watch_with_it(stub: Stub) -> None:
    job_id = await _submit(stub)
    before = int(time.time())
    answer = await stub.CreateStreamToken(pb.CreateStreamTokenRequest(id=job_id), metadata=AUTH)
    assert before + 300 <= answer.expires_at.seconds <= int(time.time()) + 300
    state = await _first_state(stub, job_id, _with_token(answer.token))
    assert (state.id, state.status) == (job_id, pb.JOB_STATUS_PENDING)


async def test_a_token_opens_its_own_job_only(stub: Stub) -> None:
    mine, other = await _submit(stub), await _submit(stub)
    token = await _token(stub, mine)
    refused = await _refusal(stub, other, _with_token(token))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    # A token decides alone: a valid key beside it does not widen it.
    refused = await _refusal(stub, other, _with_token(token) + AUTH)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_token_opens_no_other_call(stub: Stub) -> None:
    job_id = await _submit(stub)
    metadata = _with_token(await _token(stub, job_id))
    calls = [
        stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata),
        stub.CancelJob(pb.CancelJobRequest(id=job_id), metadata=metadata),
        stub.ListJobs(pb.ListJobsRequest(), metadata=metadata),
        stub.CreateStreamToken(pb.CreateStreamTokenRequest(id=job_id), metadata=metadata),
        stub.SubmitImageResize(resize_request(), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)).status == (
        pb.JOB_STATUS_PENDING
    )


async def test_expired_and_tampered_tokens_are_unauthenticated(
    stub: Stub, mend_server: MendServer
) -> None:
    job_id = await _submit(stub)
    expired, _ = tokens_of(mend_server, clock=lambda: time.time() - 301).issue(job_id, "acme")
    refused = await _refusal(stub, job_id, _with_token(expired))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (refused.details() or "")

    good = await _token(stub, job_id)
    payload, _, mac = good.partition(".")
    for tampered in (
        _b64(json.dumps(dict(_payload(good), tenant="globex")).encode()) + "." + mac,
        _b64(json.dumps(dict(_payload(good), exp=2**40)).encode()) + "." + mac,
        payload + "." + mac[::-1],
        "not-a-token",
    ):
        refused = await _refusal(stub, job_id, _with_token(tampered))
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, tampered


async def test_another_tenant_cannot_get_a_token_for_my_job(stub: Stub) -> None:
    job_id = await _submit(stub)
    for request in (pb.CreateStreamTokenRequest(id=job_id), pb.CreateStreamTokenRequest(
        id=str(uuid.uuid4())
    )):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateStreamToken(request, metadata=OTHER_AUTH)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateStreamToken(pb.CreateStreamTokenRequest(id="nope"), metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_server_process_accepts_every_others_tokens(
    stub: Stub, mend_server: MendServer, redis_server: RedisServer
) -> None:
    # Another server with the same keys (another of MEND_SERVER_PROCESSES) verifies the
    # token; one with another MEND_STREAM_TOKEN_SECRET does not.
    job_id = await _submit(stub)
    token = await _token(stub, job_id)
    settings = mend_server.settings
    for secret, accepted in (("", True), ("another secret", False)):
        other = MendServer(
            make_settings(redis_server.url, api_keys=settings.api_keys, stream_token_secret=secret)
        )
        await other.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
                other_stub = jobs_pb2_grpc.JobServiceStub(channel)
                if accepted:
                    assert (await _first_state(other_stub, job_id, _with_token(token))).id == job_id
                else:
                    refused = await _refusal(other_stub, job_id, _with_token(token))
                    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await other.stop(grace=0)


# ------------------------------------------------------------------------------ REST


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
async def anonymous(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no key, as a browser's EventSource."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
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
    tampered = _b64(json.dumps(dict(_payload(good), job=str(uuid.uuid4()))).encode()) + "." + mac
    for token in (expired, tampered, payload + "." + mac[:-1] + "A", "garbage", "é"):
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
