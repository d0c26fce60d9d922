"""What the gateway tests share (no tests here): a gateway served by uvicorn on a free
port, a worker stand-in that drives jobs through the real Lua scripts, an SSE reader,
and a whole stack (gRPC server + gateway) on its own thread for synchronous clients."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from redis.asyncio import Redis

from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.queue import Lease, WorkQueue
from mend_core.results import ImageMetadata, JobResult
from mend_core.settings import Settings
from mend_devkit.ports import free_port
from mend_server.gateway import Gateway
from mend_server.server import MendServer
from tests.conftest import PARTITIONS, make_settings

SEED_BODY = {
    "source_bucket": "my-bucket",
    "source_key": "input.jpg",
    "dest_bucket": "my-bucket",
    "dest_key": "output.jpg",
    "width": 800,
    "height": 600,
}
SEED_RESULT = JobResult(
    output_url="s3://my-bucket/images/output.jpg",
    file_size=245678,
    duration=1.23,
    metadata=ImageMetadata(width=800, height=600, format="jpeg"),
)


def gateway_settings(base: Settings, grpc_port: int, storage_root: Path, **extra: Any) -> Settings:
    values = {
        "http_port": free_port(),
        "grpc_port": grpc_port,
        "storage_root": storage_root,
        **extra,
    }
    return base.model_copy(update=values)


@dataclass
class RunningGateway:
    gateway: Gateway
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.gateway.begin_shutdown()
        self.server.should_exit = True
        await self.task


async def start_gateway(settings: Settings, **options: Any) -> RunningGateway:
    gateway = Gateway(settings, **options)
    config = uvicorn.Config(
        gateway.app,
        host="127.0.0.1",
        port=settings.http_port,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0.01)
    return RunningGateway(gateway, server, task, f"http://127.0.0.1:{settings.http_port}")


class Worker:
    """Moves jobs as a worker would, through mend_core's WorkQueue (the Lua scripts)."""

    def __init__(self, redis_url: str) -> None:
        self.redis = Redis.from_url(redis_url, decode_responses=True)
        self.queue = WorkQueue(
            self.redis,
            Partitions(PARTITIONS),
            lease_seconds=30,
            retention_completed_seconds=3600,
            retention_failed_seconds=3600,
        )

    async def claim(self) -> Lease:
        lease = await self.queue.claim("test-worker")
        assert lease is not None, "no pending job to claim"
        return lease

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


async def sse_events(
    response: httpx.Response, comments: list[str] | None = None
) -> AsyncIterator[Event]:
    """The events of an SSE response, as they arrive; comments go to `comments`."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                data = json.loads(fields["data"])
                yield Event(fields.get("id"), fields.get("event", "message"), data)
            fields = {}
        elif line.startswith(":"):
            if comments is not None:
                comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class StackThread:
    """A gRPC server and a gateway on their own event loop in a thread, so that
    synchronous clients (schemathesis uses requests) can call them. `overrides` are
    server settings (see conftest.make_settings)."""

    def __init__(self, redis_url: str, storage_root: Path, **overrides: Any) -> None:
        self._redis_url = redis_url
        self._storage_root = storage_root
        self._overrides = overrides
        self.grpc_port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="mend-stack", daemon=True)

    def __enter__(self) -> StackThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.url, "the stack did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = MendServer(make_settings(self._redis_url, **self._overrides))
        await server.start()
        self.grpc_port = server.port
        try:
            settings = gateway_settings(server.settings, server.port, self._storage_root)
            gateway = await start_gateway(settings)
            self.url = gateway.url
            self._ready.set()
            await self._stop.wait()
            await gateway.stop()
        finally:
            await server.stop(grace=0)
