"""The floor of `python -m bench watch`'s server side: the least a grpc.aio server can do to
relay Redis pub/sub to WatchJob streams.

`python -m bench.watch_relay REDIS_URL CHANNELS` serves WatchJob (Mend's service and
messages, so the benchmark's watchers use it unchanged) on a free loopback port and prints
`{"port": N}`. A stream gets a one-field first message at once; then, for each
"<job id>:<version>" published on the sharded CHANNELS (space separated), every stream of
that job gets a `Job{id, version, updated_at}` encoded once for all of them and written
through an identity serializer, as Mend's own fan-out does. There is no authentication,
no job read, no event log, no resume: what is left is one pub/sub read per transition and
one gRPC message write per stream, which any design built on Redis pub/sub and grpc.aio
pays. A line `{"end": {job_id: version}}` on stdin ends that job's streams after that
version.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from bench.watch import _say, _stdin_lines

METHOD = "/mend.v1.JobService/WatchJob"


class Stream:
    """One WatchJob stream: the messages not yet written, and its wait for more."""

    __slots__ = ("pending", "waiter")

    def __init__(self) -> None:
        self.pending: list[tuple[bytes, bool]] = []
        self.waiter: asyncio.Future[None] | None = None


class Relay:
    def __init__(self) -> None:
        self.streams: dict[str, set[Stream]] = {}  # job id -> its open streams
        self.final: dict[str, int] = {}

    async def watch(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        from mend.v1 import jobs_pb2 as pb

        job_id, stream = request.id, Stream()
        self.streams.setdefault(job_id, set()).add(stream)
        yield pb.WatchJobResponse(job=pb.Job(id=job_id)).SerializeToString()
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not stream.pending:
                    stream.waiter = loop.create_future()
                    await stream.waiter
                messages, stream.pending = stream.pending, []
                for data, last in messages:
                    yield data
                    if last:
                        return
        finally:
            self.streams[job_id].discard(stream)

    def deliver(self, job_id: str, version: int) -> None:
        from mend.v1 import jobs_pb2 as pb

        streams = self.streams.get(job_id)
        if not streams:
            return
        job = pb.Job(id=job_id, version=version)
        job.updated_at.FromMilliseconds(time.time_ns() // 1_000_000)
        message = (pb.WatchJobResponse(job=job).SerializeToString(),
                   version >= self.final.get(job_id, 1 << 62))
        for stream in streams:
            stream.pending.append(message)
            if stream.waiter is not None and not stream.waiter.done():
                stream.waiter.set_result(None)


async def main(redis_url: str, channels: str) -> None:
    from redis.asyncio import Redis

    from bench.sharded_pubsub import ShardedPubSub
    from mend.v1 import jobs_pb2 as pb
    from mend_server.server import grpc_options

    relay = Relay()
    handler = grpc.method_handlers_generic_handler("mend.v1.JobService", {
        "WatchJob": grpc.unary_stream_rpc_method_handler(
            relay.watch,
            request_deserializer=pb.WatchJobRequest.FromString,
            response_serializer=lambda data: data,
        ),
    })
    server = grpc.aio.server(options=grpc_options(reuse_port=False))  # Mend's own options
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = ShardedPubSub(redis.connection_pool, ignore_subscribe_messages=True)
    for channel in channels.split():
        await pubsub.ssubscribe(channel)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "smessage":
                job_id, _, version = message["data"].rpartition(":")
                relay.deliver(job_id, int(version))

    listener = asyncio.create_task(listen())
    await pubsub.ping()
    _say(port=port)
    stdin = await _stdin_lines()
    while line := await stdin.readline():
        relay.final.update(json.loads(line)["end"])
    listener.cancel()
    await pubsub.aclose()
    await redis.aclose()
    await server.stop(None)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
