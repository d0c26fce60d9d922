"""`python -m bench.loadgen`: a closed-loop gRPC load generator driven over stdin/stdout.

One JSON command per line on stdin, one JSON answer per line on stdout:
  {"op": "connect", "target": NAME, "address": "127.0.0.1:PORT", "channels": 4, "api_key": K}
      (again for the same NAME: closes its channels and opens new connections)
  {"op": "run", "target": NAME, "method": "submit" | "get" | "list" | "batch",
   "concurrency": N, "seconds": S, "max_calls": M}
      -> {"calls", "elapsed", "errors": {code: n}, "latencies_us": [...]}
  {"op": "quit"}
A run keeps N calls in flight (N coroutines, each awaiting one call at a time) spread
over the target's channels until S seconds or M calls have passed. `submit` calls
SubmitImageResize and keeps the job ids it gets; `get` calls GetJob on those ids (it
submits a first batch when it has none); `list` calls ListJobs for the first page (20
jobs, newest first); `batch` calls SubmitBatch with BATCH_JOBS jobs. Living across
commands, the process keeps its channels open, so runs against different servers can be
interleaved cheaply."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc

CALL_TIMEOUT_SECONDS = 10.0
MAX_IDS = 10_000
SEED_JOBS = 1_000
RESIZE = pb.SubmitImageResizeRequest(
    source_bucket="bench-source",
    source_key="images/input.jpg",
    dest_bucket="bench-dest",
    dest_key="images/output.jpg",
    width=800,
    height=600,
)
LIST = pb.ListJobsRequest(page_size=20)
BATCH_JOBS = 100
BATCH = pb.SubmitBatchRequest(jobs=[
    pb.SubmitJobRequest(
        source_bucket=RESIZE.source_bucket,
        source_key=RESIZE.source_key,
        dest_bucket=RESIZE.dest_bucket,
        dest_key=f"images/output-{i}.jpg",
        parameters=pb.JobParameters(image_resize=pb.ImageResizeParameters(width=800, height=600)),
    )
    for i in range(BATCH_JOBS)
])


@dataclass
class Target:
    channels: list[grpc.aio.Channel]
    stubs: list[jobs_pb2_grpc.JobServiceStub]
    metadata: tuple[tuple[str, str], ...]
    job_ids: list[str] = field(default_factory=list)


async def connect(address: str, channels: int, api_key: str) -> Target:
    # A local subchannel pool gives each channel its own TCP connection.
    chans = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]
    await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 10) for c in chans))
    stubs = [jobs_pb2_grpc.JobServiceStub(c) for c in chans]
    return Target(chans, stubs, (("x-api-key", api_key),))


async def run(
    target: Target, method: str, concurrency: int, seconds: float, max_calls: int
) -> dict[str, Any]:
    if method == "get" and not target.job_ids:
        await run(target, "submit", min(concurrency, 50), 60.0, SEED_JOBS)
    latencies: list[int] = []
    errors: Counter[str] = Counter()
    started = itertools.count()
    getters = [
        pb.GetJobRequest(id=job_id) for job_id in target.job_ids
    ] if method == "get" else []
    keep_ids = target.job_ids if method == "submit" else None
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        stub = target.stubs[i % len(target.stubs)]
        call = {"submit": stub.SubmitImageResize, "get": stub.GetJob, "list": stub.ListJobs,
                "batch": stub.SubmitBatch}[method]
        md = target.metadata
        clock = time.perf_counter_ns
        while time.perf_counter() < deadline:
            n = next(started)
            if n >= max_calls:
                return
            request = (getters[n % len(getters)] if getters else LIST if method == "list"
                       else BATCH if method == "batch" else RESIZE)
            t0 = clock()
            try:
                response = await call(request, metadata=md, timeout=CALL_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            latencies.append((clock() - t0) // 1000)
            if keep_ids is not None and len(keep_ids) < MAX_IDS:
                keep_ids.append(response.job_id)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "calls": len(latencies),
        "elapsed": elapsed,
        "errors": dict(errors),
        "latencies_us": latencies,
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    targets: dict[str, Target] = {}
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = json.loads(line)
        if cmd["op"] == "connect":
            if old := targets.pop(cmd["target"], None):  # a reconnection: new connections
                for channel in old.channels:
                    await channel.close()
            targets[cmd["target"]] = await connect(cmd["address"], cmd["channels"], cmd["api_key"])
            answer: dict[str, Any] = {"ok": True}
        elif cmd["op"] == "run":
            answer = await run(
                targets[cmd["target"]], cmd["method"], cmd["concurrency"], cmd["seconds"],
                cmd["max_calls"],
            )
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for target in targets.values():
        for channel in target.channels:
            await channel.close()


if __name__ == "__main__":
    asyncio.run(main())
