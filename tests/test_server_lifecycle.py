"""`mend-server` as a real process: health, graceful stop on SIGTERM/SIGINT (also with a
WatchJob stream open), health without Redis, and refusing to start without API keys."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer, env_for
from tests.conftest import API_KEY, AUTH
from tests.helpers import job_field, resize_request

SERVER_BIN = Path(sys.executable).with_name("mend-server")
# Generous bounds for a loaded 2-core machine: these catch hangs, they time nothing.
START_TIMEOUT = 30
EXIT_TIMEOUT = 15


class ServerProcess:
    def __init__(self, redis_url: str, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()  # a restart takes its predecessor's port
        self.log = tempfile.NamedTemporaryFile(prefix="mend-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(SERVER_BIN)],
            env=env_for(
                redis_url,
                MEND_GRPC_PORT=str(self.port),
                MEND_API_KEYS=f"acme={API_KEY}",
                MEND_SHUTDOWN_GRACE_SECONDS_SERVER="1",
                **env,
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def wait_ready(self) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"mend-server did not listen:\n{self.output()}") from None

    def health(self, service: str = "") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"mend-server ignored {sig!r}:\n{self.output()}") from None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def spawn(redis_server: RedisServer) -> Iterator:
    started: list[ServerProcess] = []

    def start(redis_url: str | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(redis_url or redis_server.url, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_then_stops_cleanly_on_signal(spawn, redis_client, sig) -> None:
    server = spawn()
    server.wait_ready()
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert server.health("mend.v1.JobService") == health_pb2.HealthCheckResponse.SERVING

    # It really serves the API, with the keys from its environment.
    stub = jobs_pb2_grpc.JobServiceStub(server.channel)
    job_id = stub.SubmitImageResize(resize_request(), metadata=AUTH, timeout=10).job_id
    assert job_field(redis_client, job_id, "status") == "pending"

    assert server.stop(sig) == 0
    assert "Traceback" not in server.output()


def test_stops_within_grace_while_a_watch_stream_is_open(spawn) -> None:
    server = spawn()
    server.wait_ready()
    stub = jobs_pb2_grpc.JobServiceStub(server.channel)
    job_id = stub.SubmitImageResize(resize_request(), metadata=AUTH, timeout=10).job_id

    # A pending job with no worker: this stream would stay open for ever.
    stream = stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH, timeout=60)
    first = next(stream)
    assert first.job.status == pb.JOB_STATUS_PENDING

    assert server.stop(signal.SIGTERM) == 0
    # The server cut the stream when its grace ran out rather than waiting for it.
    with pytest.raises(grpc.RpcError) as info:
        for _ in stream:
            pass
    assert info.value.code() != grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


def test_health_is_not_serving_without_redis(spawn) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    server = spawn(closed)
    server.wait_ready()
    assert server.health() == health_pb2.HealthCheckResponse.NOT_SERVING
    assert server.health("mend.v1.JobService") == health_pb2.HealthCheckResponse.NOT_SERVING

    # It still stops cleanly with nothing to talk to.
    assert server.stop() == 0


def test_submit_without_redis_is_unavailable(spawn) -> None:
    server = spawn(f"redis://127.0.0.1:{free_port()}/0")
    server.wait_ready()
    stub = jobs_pb2_grpc.JobServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitImageResize(resize_request(), metadata=AUTH, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_refuses_to_start_without_api_keys(redis_server) -> None:
    result = subprocess.run(
        [str(SERVER_BIN)],
        env=env_for(redis_server.url, MEND_GRPC_PORT=str(free_port()), MEND_API_KEYS=""),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert result.returncode != 0
    assert "MEND_API_KEYS" in result.stderr
