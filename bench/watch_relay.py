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


class Relay:
    def __init__(self) -> None:
        # job id -> the waiters of its streams (each a future of the next message)
        self.streams: dict[str, set[asyncio.Future[tuple[bytes, bool]]]] = {}
        self.final: dict[str, int] = {}

    async def watch(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        from mend.v1 import jobs_pb2 as pb

        job_id = request.id
        yield pb.WatchJobResponse(job=pb.Job(id=job_id)).SerializeToString()
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[tuple[bytes, bool]] = loop.create_future()
            self.streams.setdefault(job_id, set()).add(waiter)
            data, last = await waiter
            yield data
            if last:
                return

    def deliver(self, job_id: str, version: int) -> None:
        from mend.v1 import jobs_pb2 as pb

        waiters = self.streams.pop(job_id, None)
        if not waiters:
            return
        job = pb.Job(id=job_id, version=version)
        job.updated_at.FromMilliseconds(time.time_ns() // 1_000_000)
        message = (pb.WatchJobResponse(job=job).SerializeToString(),
                   version >= self.final.get(job_id, 1 << 62))
        for waiter in waiters:
            waiter.set_result(message)


async def main(redis_url: str, channels: str) -> None:
    from redis.asyncio import Redis

    from bench.sharded_pubsub import ShardedPubSub
    from mend.v1 import jobs_pb2 as pb

    relay = Relay()
    handler = grpc.method_handlers_generic_handler("mend.v1.JobService", {
        "WatchJob": grpc.unary_stream_rpc_method_handler(
            relay.watch,
            request_deserializer=pb.WatchJobRequest.FromString,
            response_serializer=lambda data: data,
        ),
    })
    server = grpc.aio.server()
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
