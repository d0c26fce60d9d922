"""Webhooks reach a real HTTP receiver on loopback, signed, retried, in both styles."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.job import ImageMetadata, JobResult
from mend_core.keys import Keys
from mend_core.queue import WorkQueue
from mend_server.server import MendServer
from tests.conftest import AUTH, make_settings
from tests.helpers import submit_request

SECRET = "webhook-secret"


class Receiver:
    """Records POSTs; answers the first `failures` of them with 500."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                failing = receiver.failures > 0
                receiver.failures -= 1
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait(self, count: int = 1) -> list[tuple[dict[str, str], bytes]]:
        async with asyncio.timeout(10):
            while len(self.requests) < count:
                await asyncio.sleep(0.02)
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
async def hooked_server(redis_server, redis_client) -> AsyncIterator[MendServer]:
    settings = make_settings(redis_server.url, webhook_secret=SECRET, webhook_allow_private=True)
    server = MendServer(settings)
    server.webhooks.backoff_seconds = 0.05
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
        Keys(),
        lease_seconds=10,
        retention_completed_seconds=3600,
        retention_failed_seconds=3600,
    )


RESULT = JobResult("file:///out.jpg", 1234, 0.5, ImageMetadata(800, 600, "jpeg"))


async def test_completed_job_posts_signed_default_payload(hooked_server, hooked_stub, receiver):
    request = submit_request(options=pb.SubmitOptions(webhook_url=receiver.url))
    job_id = (await hooked_stub.SubmitJob(request, metadata=AUTH)).job_id
    queue = work_queue(hooked_server)
    lease = await queue.claim("w1")
    assert lease is not None and await queue.complete(lease, RESULT)

    [(headers, body)] = await receiver.wait()
    assert headers["User-Agent"] == "Mend-Webhook/1.0"
    timestamp = headers["X-Mend-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Mend-Signature"] == "sha256=" + expected.hexdigest()
    payload = json.loads(body)
    assert payload["event"] == "job.completed"
    assert payload["timestamp"].endswith("Z")
    job = payload["job"]
    assert job["id"] == job_id and job["status"] == "completed" and job["type"] == "image_resize"
    assert job["result"]["output_url"] == "file:///out.jpg"
    assert job["result"]["metadata"] == {"width": 800, "height": 600, "format": "jpeg"}


async def test_failed_delivery_is_retried(hooked_server, hooked_stub, receiver):
    receiver.failures = 2
    request = submit_request(options=pb.SubmitOptions(webhook_url=receiver.url))
    await hooked_stub.SubmitJob(request, metadata=AUTH)
    queue = work_queue(hooked_server)
    lease = await queue.claim("w1")
    assert lease is not None and await queue.fail(lease, "Source file not found: s3://b/k")
    requests = await receiver.wait(3)
    assert len(requests) == 3
    assert {json.loads(body)["event"] for _, body in requests} == {"job.failed"}
    assert json.loads(requests[-1][1])["job"]["error"] == "Source file not found: s3://b/k"


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
    queue = work_queue(hooked_server)
    for _ in range(2):
        lease = await queue.claim("w1")
        assert lease is not None and await queue.complete(lease, RESULT)
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


async def test_private_targets_are_refused_by_default(stub, mend_server, receiver):
    # The default server refuses loopback targets: nothing reaches the receiver.
    request = submit_request(options=pb.SubmitOptions(webhook_url=receiver.url))
    await stub.SubmitJob(request, metadata=AUTH)
    queue = work_queue(mend_server)
    lease = await queue.claim("w1")
    assert lease is not None and await queue.complete(lease, RESULT)
    stream = Keys().webhooks
    for _ in range(200):  # the dispatcher takes the entry, refuses it and removes it
        if await mend_server.redis.xlen(stream) == 0:
            break
        await asyncio.sleep(0.02)
    assert await mend_server.redis.xlen(stream) == 0
    assert receiver.requests == []
