"""`python -m bench.noop_server PORT [--processes N]`: the no-op ceiling for the API benchmark.

A grpc.aio server implementing mend.v1.JobService whose SubmitImageResize and GetJob
answer a constant response without touching Redis and without interceptors: what is
left is the cost of gRPC and Python, the most Mend's server could reach on this machine.
Its options and event loop (uvloop) match mend-server's so that only Mend's own work
differs, and like `mend-server` with MEND_SERVER_PROCESSES=N, `--processes N` runs N
processes sharing the port with SO_REUSEPORT under the same supervisor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import grpc
import uvloop
from google.protobuf.timestamp_pb2 import Timestamp

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_server.server import grpc_options

JOB_ID = "3f2c8e1a-9b7d-4c6e-8a5f-1d2e3f4a5b6c"
NOW = Timestamp(seconds=1_760_000_000, nanos=123_000_000)

SUBMITTED = pb.SubmitJobResponse(
    job_id=JOB_ID, status=pb.JOB_STATUS_PENDING, message="Job queued for processing"
)
# Shaped like the pending job Mend returns for the benchmark's requests, so that
# serialising it costs about the same.
PENDING_JOB = pb.Job(
    id=JOB_ID,
    type=pb.JOB_TYPE_IMAGE_RESIZE,
    status=pb.JOB_STATUS_PENDING,
    source_bucket="bench-source",
    source_key="images/input.jpg",
    dest_bucket="bench-dest",
    dest_key="images/output.jpg",
    parameters=pb.JobParameters(image_resize=pb.ImageResizeParameters(width=800, height=600)),
    created_at=NOW,
    updated_at=NOW,
    priority=5,
    max_attempts=3,
    version=1,
    queue_position=1234,
    estimated_wait_seconds=617.0,
    timeout_seconds=300,
)


class NoopJobService(jobs_pb2_grpc.JobServiceServicer):
    async def SubmitImageResize(self, request, context):
        return SUBMITTED

    async def GetJob(self, request, context):
        return PENDING_JOB


async def serve(port: int, reuse_port: bool) -> None:
    server = grpc.aio.server(options=grpc_options(reuse_port=reuse_port))
    jobs_pb2_grpc.add_JobServiceServicer_to_server(NoopJobService(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.noop_server")
    p.add_argument("port", type=int)
    p.add_argument("--processes", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--reuse-port", action="store_true", help="listen with SO_REUSEPORT")
    args = p.parse_args(argv)
    if args.processes == 1:
        uvloop.run(serve(args.port, args.reuse_port))
        return 0
    from mend_worker.supervisor import Program, Supervisor

    logging.basicConfig(level=logging.INFO)
    child = [sys.executable, "-m", "bench.noop_server", str(args.port), "--reuse-port"]
    programs = [Program(f"noop-{i + 1}", child) for i in range(args.processes)]
    return Supervisor(programs).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
