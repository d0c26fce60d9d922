"""Stream tokens (issue 8, item 17): CreateStreamToken makes a short-lived token for one
job of one tenant, accepted by WatchJob (metadata `x-mend-stream-token`) and by no other
call; tampered, expired or foreign tokens are refused; every server process verifies
every other's. (Over REST, `?token=` on the SSE route: test_gateway_sse.py; in a real
browser: test_browser_stream.py.)"""

from __future__ import annotations

import base64
import json
import time
import uuid

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.errors import InvalidStreamToken
from mend_core.tenancy import parse_api_keys
from mend_devkit.redis_server import RedisServer
from mend_server.auth import STREAM_TOKEN_METADATA
from mend_server.server import MendServer
from mend_server.stream_tokens import StreamTokens, derive_secret
from tests.conftest import AUTH, OTHER_AUTH, make_settings
from tests.helpers import resize_request

Stub = jobs_pb2_grpc.JobServiceStub


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token_payload(token: str) -> dict[str, object]:
    text = token.partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def forged(token: str, **changes: object) -> str:
    """The token with its payload changed and its signature kept."""
    mac = token.partition(".")[2]
    return b64(json.dumps({**token_payload(token), **changes}).encode()) + "." + mac


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
    bad = [
        forged(token, tenant="globex"),  # another tenant, old signature
        payload + "." + b64(b"\x00" * 32),  # another signature
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


def test_a_token_has_exactly_one_spelling() -> None:
    """base64 decoders skip foreign characters and a last character's spare bits: a
    token spelled any other way is refused, so one that differs is never accepted."""
    tokens = StreamTokens(b"secret", 300)
    token, _ = tokens.issue("job-1", "acme")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    accepted = [c for c in alphabet if _verifies(tokens, token[:-1] + c)]
    assert accepted == [token[-1]]
    payload, _, mac = token.partition(".")
    for other in (payload + ".!" + mac, payload + "=." + mac, payload + "." + mac + "=="):
        with pytest.raises(InvalidStreamToken, match="malformed"):
            tokens.verify(other)


def _verifies(tokens: StreamTokens, token: str) -> bool:
    try:
        tokens.verify(token)
    except InvalidStreamToken:
        return False
    return True


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
        forged(good, tenant="globex"),
        forged(good, exp=2**40),
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
