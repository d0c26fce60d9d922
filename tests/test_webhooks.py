"""Webhooks reach a real HTTP receiver on loopback: signed, with a delivery id, retried
from Redis (across a server restart), dead-lettered and replayed with `mend-admin`; and
targets in private ranges are refused at submit (gRPC and REST) and at delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.jobstate.queue import WorkQueue
from mend_core.jobstate.webhook_queue import WebhookQueue
from mend_core.results import ImageMetadata, JobResult
from mend_core.settings import Settings
from mend_core.validation import JobDraft, Limits, validate
from mend_devkit.redis_server import env_for
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, make_settings
from tests.helpers import (
    PARTS,
    PUBLIC_WEBHOOK_URL,
    across,
    is_uuid4,
    queued,
    resize_request,
    submit_request,
    violated_fields,
)
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway
from tests.test_server_lifecycle import ServerProcess
from tests.workers import eventually

SECRET = "webhook-secret"
# Test schedules: two quick retries, so three attempts in all.
QUICK_RETRIES = (0.05, 0.05)


class Receiver:
    """A real HTTP server on loopback that records each POST (headers, body) and answers
    the first `failures` of them with 500, the others with 204."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[tuple[Message, bytes]] = []
        self.failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers, body))
                failing = receiver.failures > 0
                receiver.failures -= 1
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait(self, count: int = 1) -> list[tuple[Message, bytes]]:
        async with asyncio.timeout(15):
            while len(self.requests) < count:
                await asyncio.sleep(0.02)
        return self.requests

    def delivery_ids(self) -> list[str]:
        return [headers.get("X-Mend-Delivery", "") for headers, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def hooked_server(redis_server, redis_client) -> AsyncIterator[MendServer]:
    settings = make_settings(
        redis_server.url,
        webhook_secret=SECRET,
        webhook_allow_private=True,
        webhook_retry_seconds=QUICK_RETRIES,
    )
    server = MendServer(settings)
    await server.start()
    yield server
    await server.stop(grace=0)


@pytest.fixture
async def hooked_stub(hooked_server) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hooked_server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


def work_queue(server: MendServer) -> WorkQueue:
    return WorkQueue(
        server.redis,
        PARTS,
        lease_seconds=10,
        retention_completed_seconds=3600,
        retention_failed_seconds=3600,
    )


RESULT = JobResult("file:///out.jpg", 1234, 0.5, ImageMetadata(800, 600, "jpeg"))


async def finish_one(server: MendServer, *, failed: bool = False) -> None:
    """Moves the next pending job to completed (or failed), as a worker would."""
    queue = work_queue(server)
    lease = await queue.claim("w1")
    assert lease is not None
    if failed:
        assert await queue.fail(lease, "Source file not found: s3://b/k")
    else:
        assert await queue.complete(lease, RESULT)


def settled(redis_client) -> bool:
    """Nothing left to deliver: no delivery in the streams, none waiting to retry."""
    return across(redis_client, "XLEN", "webhooks") == 0 == across(
        redis_client, "ZCARD", "webhook_retries"
    )


def dead(redis_client) -> int:
    """The dead letters of every partition."""
    return across(redis_client, "XLEN", "dead_webhooks")



def admin(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's `mend-admin` command, as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "mend_server.admin", *args],
        env=env_for(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def dead_letters(redis_url: str) -> list[dict[str, Any]]:
    listed = admin(redis_url, "webhooks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


# ------------------------------------------------------------------ delivery


async def test_completed_job_posts_signed_default_payload(hooked_server, hooked_stub, receiver):
    request = submit_request(options=pb.SubmitOptions(webhook_url=receiver.url))
    job_id = (await hooked_stub.SubmitJob(request, metadata=AUTH)).job_id
    await finish_one(hooked_server)

    [(headers, body)] = await receiver.wait()
    assert headers["User-Agent"] == "Mend-Webhook/1.0"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    timestamp = headers["X-Mend-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Mend-Signature"] == "sha256=" + expected.hexdigest()
    assert headers["X-Mend-Delivery"]
    payload = json.loads(body)
    assert payload["event"] == "job.completed"
    assert payload["timestamp"].endswith("Z")
    job = payload["job"]
    assert job["id"] == job_id and job["status"] == "completed" and job["type"] == "image_resize"
    assert job["result"]["output_url"] == "file:///out.jpg"
    assert job["result"]["metadata"] == {"width": 800, "height": 600, "format": "jpeg"}


async def test_retries_until_delivered_once_with_one_delivery_id(
    hooked_server, hooked_stub, receiver, redis_client
):
    receiver.failures = 2
    request = submit_request(options=pb.SubmitOptions(webhook_url=receiver.url))
    await hooked_stub.SubmitJob(request, metadata=AUTH)
    await finish_one(hooked_server, failed=True)

    requests = await receiver.wait(3)
    # Every attempt is the same delivery: one id, the same payload (signed afresh).
    [delivery_id] = set(receiver.delivery_ids())
    assert delivery_id and uuid.UUID(delivery_id)
    assert len({body for _, body in requests}) == 1
    payload = json.loads(requests[-1][1])
    assert payload["event"] == "job.failed"
    assert payload["job"]["error"] == "Source file not found: s3://b/k"
    # Delivered once: nothing waits for another attempt, nothing is dead-lettered.
    await eventually(lambda: settled(redis_client), "the delivery to be settled")
    assert dead(redis_client) == 0
    assert len(receiver.requests) == 3 and receiver.delivery_ids() == [delivery_id] * 3


async def test_discord_style_and_batch_completed(hooked_server, hooked_stub, receiver):
    jobs = [
        submit_request(
            options=pb.SubmitOptions(
                webhook_url=receiver.url, webhook_style=pb.WEBHOOK_STYLE_DISCORD
            )
        ),
        submit_request(),
    ]
    batch = pb.SubmitBatchRequest(
        batch_id="b-7", jobs=jobs, options=pb.BatchOptions(webhook_url=receiver.url)
    )
    await hooked_stub.SubmitBatch(batch, metadata=AUTH)
    for _ in range(2):
        await finish_one(hooked_server)
    requests = await receiver.wait(2)
    bodies = [json.loads(body) for _, body in requests]
    discord = next(b for b in bodies if "embeds" in b)
    embed = discord["embeds"][0]
    assert embed["title"] == "✅ Job Completed" and embed["color"] == 3066993
    assert [f["name"] for f in embed["fields"]] == ["Job ID", "Type", "Status"]
    finished = next(b for b in bodies if b.get("event") == "batch.completed")
    assert finished["batch"] == {
        "batch_id": "b-7",
        "total_jobs": 2,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
    }
    # Two deliveries, two ids.
    assert len(set(receiver.delivery_ids())) == 2


async def test_a_localhost_url_reaches_the_checked_address_with_its_own_host(
    hooked_server, hooked_stub, receiver
):
    # The dispatcher resolves `localhost` once and connects to that address itself
    # (trying ::1 and 127.0.0.1 in the resolver's order); the Host header stays the URL's.
    url = f"http://localhost:{receiver.port}/hook?source=mend"
    await hooked_stub.SubmitJob(
        submit_request(options=pb.SubmitOptions(webhook_url=url)), metadata=AUTH
    )
    await finish_one(hooked_server)
    [(headers, _)] = await receiver.wait()
    assert headers["Host"] == f"localhost:{receiver.port}"


async def test_failing_receiver_ends_in_dead_letters_listed_and_replayed_by_the_operator(
    hooked_server, hooked_stub, receiver, redis_server, redis_client
):
    receiver.failures = 10**6
    for dest in ("out/a.jpg", "out/b.jpg"):
        request = submit_request(dest_key=dest, options=pb.SubmitOptions(webhook_url=receiver.url))
        await hooked_stub.SubmitJob(request, metadata=AUTH)
        await finish_one(hooked_server)
    await receiver.wait(6)  # three attempts each
    await eventually(lambda: dead(redis_client) == 2, "two dead letters")
    assert settled(redis_client)
    sent_ids = receiver.delivery_ids()
    assert len(set(sent_ids)) == 2

    letters = dead_letters(redis_server.url)
    assert {letter["delivery_id"] for letter in letters} == set(sent_ids)
    for letter in letters:
        assert letter["url"] == receiver.url
        assert letter["event"] == "job.completed" and letter["attempts"] == 3
        assert "3 attempts failed" in letter["error"] and "HTTP 500" in letter["error"]
        assert letter["failed_at"].endswith("Z") and letter["job_id"]
    table = admin(redis_server.url, "webhooks", "list").stdout
    assert all(letter["id"] in table for letter in letters)

    # The receiver is healthy again: replay the first by id, then the rest with --all.
    receiver.failures = 0
    receiver.requests.clear()
    first, second = letters
    replayed = admin(redis_server.url, "webhooks", "replay", first["id"])
    assert replayed.returncode == 0 and "replayed 1 of 1" in replayed.stdout
    await receiver.wait(1)
    assert receiver.delivery_ids() == [first["delivery_id"]]  # the same delivery again
    assert json.loads(receiver.requests[0][1])["job"]["id"] == first["job_id"]
    assert [letter["id"] for letter in dead_letters(redis_server.url)] == [second["id"]]

    again = admin(redis_server.url, "webhooks", "replay", first["id"])
    assert again.returncode == 1 and f"not a dead letter: {first['id']}" in again.stderr
    everything = admin(redis_server.url, "webhooks", "replay", "--all")
    assert everything.returncode == 0 and "replayed 1 dead letters" in everything.stdout
    await receiver.wait(2)
    assert receiver.delivery_ids() == [first["delivery_id"], second["delivery_id"]]
    await eventually(lambda: settled(redis_client), "the replays to be settled")
    assert dead_letters(redis_server.url) == []


def test_admin_refuses_a_malformed_replay() -> None:
    both = admin("redis://127.0.0.1:1/0", "webhooks", "replay", "1-0", "--all")
    assert both.returncode == 2 and "ids or --all" in both.stderr
    bad = admin("redis://127.0.0.1:1/0", "webhooks", "replay", "not-an-id")
    assert bad.returncode == 2 and "not a dead-letter id: not-an-id" in bad.stderr


async def test_retry_survives_a_server_restart(redis_server, redis_client, receiver, work):
    """A delivery waiting for its retry lives in Redis: the server that made the first
    attempt is killed, a new one sends the retry."""
    env = {"MEND_WEBHOOK_ALLOW_PRIVATE": "true", "MEND_WEBHOOK_RETRY_SECONDS": "3"}
    first = ServerProcess(redis_server.url, **env)
    second: ServerProcess | None = None
    try:
        first.wait_ready()
        stub = jobs_pb2_grpc.JobServiceStub(first.channel)
        stub.SubmitImageResize(resize_request(webhook_url=receiver.url), metadata=AUTH, timeout=10)
        receiver.failures = 1
        lease = await work.claim("w1")
        assert lease is not None and await work.complete(lease, RESULT)

        await receiver.wait(1)
        await eventually(
            lambda: across(redis_client, "ZCARD", "webhook_retries") == 1,
            "the retry to be scheduled",
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)

        second = ServerProcess(redis_server.url, **env)
        second.wait_ready()
        await receiver.wait(2)
        assert len(set(receiver.delivery_ids())) == 1
        await eventually(lambda: settled(redis_client), "the retry to be settled")
        assert second.stop(signal.SIGTERM) == 0
    finally:
        first.close()
        if second is not None:
            second.close()


def test_retry_schedule_is_a_setting(monkeypatch) -> None:
    monkeypatch.setenv("MEND_WEBHOOK_RETRY_SECONDS", "1, 10,60")
    assert Settings().webhook_retry_seconds == (1.0, 10.0, 60.0)
    monkeypatch.setenv("MEND_WEBHOOK_RETRY_SECONDS", "")
    assert Settings().webhook_retry_seconds == ()
    monkeypatch.setenv("MEND_WEBHOOK_RETRY_SECONDS", "5,-1")
    with pytest.raises(ValueError, match=">= 0"):
        Settings()
    monkeypatch.delenv("MEND_WEBHOOK_RETRY_SECONDS")
    assert Settings().webhook_retry_seconds == (1.0, 10.0, 60.0)


# ------------------------------------------------------------------ nothing dropped


async def test_delivery_stream_is_not_trimmed_by_count(redis_server, redis_client, work):
    """A backlog past 100,000 deliveries (no server running to send them) keeps every one."""
    backlog = 100_500  # past the old cap (MAXLEN ~ 100000) by more than one stream node
    server = MendServer(make_settings(redis_server.url))  # its store only; not started
    try:
        spec = validate(
            JobDraft(
                type="image_resize",
                **{k: SEED_BODY[k] for k in ("source_bucket", "source_key", "dest_bucket")},
                dest_key="o.jpg",
                params={"width": 10},
                webhook_url=PUBLIC_WEBHOOK_URL,
            ),
            Limits.from_settings(server.settings),
        )
        [submitted] = await server.store.submit("acme", [spec])
        # The backlog is in the stream of the job's partition, where its delivery goes.
        stream = PARTS.job_keys(submitted.job_id).webhooks
        redis_client.eval(
            "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'n', i) end",
            1,
            stream,
            backlog,
        )
        oldest = redis_client.xrange(stream, count=1)[0][0]
        lease = await work.claim("w1")
        assert lease is not None and await work.complete(lease, RESULT)
    finally:
        await server.redis.aclose()
    assert redis_client.xlen(stream) == backlog + 1
    assert redis_client.xrange(stream, count=1)[0][0] == oldest


async def test_dead_letters_are_trimmed_by_age_not_count(redis_server, redis_client, work):
    keys = PARTS[0]
    queue = WebhookQueue(work._redis, keys, dead_retention_seconds=3600)  # noqa: SLF001
    # One dead letter from long ago (older than the retention) and 500 recent ones.
    redis_client.xadd(keys.dead_webhooks, {"event": "job.failed", "error": "old"}, id="1-0")
    for i in range(500):
        redis_client.xadd(keys.dead_webhooks, {"event": "job.failed", "error": f"recent {i}"})
    await queue.create_group()
    redis_client.xadd(keys.webhooks, {"event": "job.failed", "url": "http://x/", "job_id": "j"})
    [delivery] = await queue.take("c", 1, block_ms=100, claim_idle_ms=60_000)
    dead_id = await queue.bury(delivery, "HTTP 500", "{}")
    assert dead_id is not None
    ids = [entry_id for entry_id, _ in redis_client.xrange(keys.dead_webhooks)]
    assert "1-0" not in ids and len(ids) == 501 and ids[-1] == dead_id
    assert redis_client.xlen(keys.webhooks) == 0


# ------------------------------------------------------------------ refused targets

REFUSED_URLS = [
    "http://127.0.0.1:9/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fd00::1]/hook",
    "https://localhost/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_submit_refuses_a_private_webhook_target(stub, redis_client, url):
    request = submit_request(options=pb.SubmitOptions(webhook_url=url))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitJob(request, metadata=AUTH)
    assert violated_fields(err.value) == ["options.webhook_url"]
    assert "webhooks go to public addresses only" in err.value.details()
    assert queued(redis_client) == set()


async def test_every_submit_path_names_its_refused_webhook(stub, redis_client):
    with pytest.raises(grpc.aio.AioRpcError) as flat:
        await stub.SubmitImageResize(
            resize_request(webhook_url="http://10.0.0.7/hook"), metadata=AUTH
        )
    assert violated_fields(flat.value) == ["webhook_url"]
    assert "10.0.0.7, a private address" in flat.value.details()

    ok = pb.SubmitOptions(webhook_url=PUBLIC_WEBHOOK_URL)
    batch = pb.SubmitBatchRequest(
        jobs=[
            submit_request(params=pb.ImageResizeParameters(width=-1), options=ok),
            submit_request(options=pb.SubmitOptions(webhook_url="http://[::1]:8080/x")),
        ],
        options=pb.BatchOptions(webhook_url="http://127.0.0.1/batch-done"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitBatch(batch, metadata=AUTH)
    assert set(violated_fields(err.value)) == {
        "jobs[0].parameters.image_resize.width",
        "jobs[1].options.webhook_url",
        "options.webhook_url",
    }
    assert queued(redis_client) == set()

    # A public address literal needs no lookup and is accepted.
    accepted = await stub.SubmitJob(submit_request(options=ok), metadata=AUTH)
    assert is_uuid4(accepted.job_id)


async def test_rest_answers_400_naming_webhook_url(mend_server, tmp_path: Path):
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    running = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, headers={"X-API-Key": API_KEY}) as http:
            flat = await http.post(
                "/api/v1/jobs/image/resize",
                json={**SEED_BODY, "webhook_url": "http://169.254.169.254/latest/"},
            )
            assert flat.status_code == 400
            assert [d["field"] for d in flat.json()["details"]] == ["webhook_url"]
            assert "webhook_url" in flat.json()["error"]
            assert "link-local" in flat.json()["error"]

            location = {k: v for k, v in SEED_BODY.items() if k not in ("width", "height")}
            item = {
                **location,
                "type": "image_resize",
                "parameters": {"width": 80},
                "webhook_url": "http://10.9.9.9/",
            }
            batch = await http.post(
                "/api/v1/jobs/batch",
                json={"jobs": [item], "options": {"webhook_url": "http://[::1]/"}},
            )
            assert batch.status_code == 400
            fields = {d["field"] for d in batch.json()["details"]}
            assert fields == {"jobs[0].webhook_url", "options.webhook_url"}
    finally:
        await running.stop()


async def test_target_refused_at_delivery_is_dead_lettered(
    mend_server, receiver, redis_server, redis_client
):
    # Accepted while private targets were allowed; by delivery they no longer are.
    spec = validate(
        JobDraft(
            type="image_resize",
            **{k: SEED_BODY[k] for k in ("source_bucket", "source_key", "dest_bucket")},
            dest_key="o.jpg",
            params={"width": 10},
            webhook_url=receiver.url,
        ),
        Limits.from_settings(mend_server.settings),
    )
    await mend_server.store.submit("acme", [spec])
    await finish_one(mend_server)
    await eventually(lambda: dead(redis_client) == 1, "a dead letter")
    [letter] = dead_letters(redis_server.url)
    assert letter["error"].startswith("refused: 127.0.0.1, a loopback address")
    assert letter["attempts"] == 1
    assert receiver.requests == []
    assert settled(redis_client)


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "http://host:port/"])
async def test_a_malformed_webhook_url_is_a_bad_request(stub, url):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitJob(
            submit_request(options=pb.SubmitOptions(webhook_url=url)), metadata=AUTH
        )
    assert violated_fields(err.value) == ["options.webhook_url"]
    assert "is not a valid URL" in err.value.details()
