"""`make run` end to end: `mend-stack`, as a newcomer runs it, in an empty directory.

It must start Redis, the gRPC server, the gateway and the workers; run the docs'
walkthrough; replace a worker that dies; and on Ctrl-C or SIGTERM stop everything it
started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mend_devkit.ports import free_port
from tests.images import decode
from tests.test_cli import env_for, mend
from tests.test_gateway_support import SEED_BODY
from tests.workers import cmdline, eventually, processes_with_env

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
HEADERS = {"X-API-Key": "dev-key"}


class Stack:
    def __init__(self, cwd: Path, **settings: str) -> None:
        self.cwd = cwd
        self.grpc_port, self.http_port = free_port(), free_port()
        # Only this test's settings: none of the caller's MEND_* variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
        env |= {
            "MEND_GRPC_PORT": str(self.grpc_port),
            "MEND_HTTP_PORT": str(self.http_port),
            "MEND_WORKERS": "2",
            **settings,
        }
        self.log = cwd / "stack.log"
        with self.log.open("wb") as out:
            # Its own session, as in a terminal: Ctrl-C signals the foreground group.
            self.proc = subprocess.Popen(
                [str(BIN / "mend-stack")],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[int]:
        """Every live process the stack started: this test's gRPC port is in their
        environment and in no other."""
        return processes_with_env(f"MEND_GRPC_PORT={self.grpc_port}")

    def workers(self) -> list[int]:
        return [p for p in self.processes() if "mend-worker --single" in cmdline(p)]

    def stop(self, how: str) -> int:
        if how == "ctrl-c":  # the terminal signals the whole foreground group
            os.killpg(self.proc.pid, signal.SIGINT)
        else:  # `kill PID`, as a service manager would
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@contextlib.contextmanager
def started_stack(cwd: Path, **settings: str) -> Iterator[Stack]:
    """`mend-stack` in cwd with these MEND_* settings; whatever is left is killed after."""
    stack = Stack(cwd, **settings)
    try:
        yield stack
    finally:
        for pid in [stack.proc.pid, *stack.processes()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stack.proc.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with started_stack(tmp_path) as stack:
        yield stack


async def run_seed_job(http: httpx.AsyncClient) -> dict:  # type: ignore[type-arg]
    response = await http.post("/api/v1/jobs/image/resize", json=SEED_BODY)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    async def finished() -> dict | None:  # type: ignore[type-arg]
        job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
        return job if job["status"] in ("completed", "failed") else None

    deadline = time.monotonic() + 30
    while (job := await finished()) is None:
        assert time.monotonic() < deadline, f"job {job_id} never finished"
        await asyncio.sleep(0.1)
    return job


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
async def test_make_run_serves_the_walkthrough_replaces_workers_and_stops_clean(
    stack: Stack, how: str
) -> None:
    await eventually(lambda: "Press Ctrl-C to stop." in stack.output(), "the banner", 60)
    banner = stack.output()
    assert f"REST      http://127.0.0.1:{stack.http_port}/api/v1" in banner
    assert f"dashboard http://127.0.0.1:{stack.http_port}/dashboard" in banner
    assert "API key   dev-key" in banner
    assert "(its own redis-server; data and AOF in var/redis)" in banner

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.http_port}", headers=HEADERS, timeout=10
    ) as http:
        assert "<title>Mend dashboard</title>" in (await http.get("/dashboard")).text
        # The docs' walkthrough, on the sample photo the stack put in place.
        job = await run_seed_job(http)
        assert job["status"] == "completed", job
        output = stack.cwd / "var" / "storage" / "my-bucket" / "output.jpg"
        assert decode(output.read_bytes()).size == (800, 600)
        assert job["result"]["output_url"] == output.resolve().as_uri()
        # Accepted means durable: the stack's Redis writes its AOF under var/redis.
        assert any((stack.cwd / "var" / "redis").rglob("*.aof*"))

        # A worker that dies is replaced, and the stack goes on working.
        first = await eventually(lambda: len(stack.workers()) == 2 and stack.workers(), "workers")
        os.kill(first[0], signal.SIGKILL)
        await eventually(
            lambda: len(w := stack.workers()) == 2 and first[0] not in w, "a replacement worker"
        )
        assert (await run_seed_job(http))["status"] == "completed"

    assert stack.stop(how) == 0, stack.output()
    # Nothing it started is left running: no orphans.
    await eventually(lambda: not stack.processes(), "every process of the stack to exit", 10)


async def test_make_run_with_mutual_tls(tmp_path: Path) -> None:
    # The README's TLS section: `make dev-certs`, then `make run` with the TLS settings.
    certs = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.devcerts", str(tmp_path / "var" / "tls"), cwd=REPO
    )
    assert await certs.wait() == 0
    tls = {
        "MEND_TLS_CERT": "var/tls/server.pem",
        "MEND_TLS_KEY": "var/tls/server.key",
        "MEND_TLS_CLIENT_CA": "var/tls/ca.pem",
        "MEND_TLS_CA": "var/tls/ca.pem",
        "MEND_GATEWAY_TLS_CERT": "var/tls/client.pem",
        "MEND_GATEWAY_TLS_KEY": "var/tls/client.key",
    }
    with started_stack(tmp_path, MEND_WORKERS="1", **tls) as stack:
        await eventually(lambda: "Press Ctrl-C to stop." in stack.output(), "the banner", 60)
        banner = stack.output()
        assert (
            "TLS       mutual, certificate var/tls/server.pem; clients must present a "
            "certificate signed by var/tls/ca.pem"
        ) in banner
        assert (
            "(grpcurl -cacert var/tls/ca.pem -cert var/tls/client.pem -key var/tls/client.key "
            f"127.0.0.1:{stack.grpc_port} list)"
        ) in banner

        # The gateway reaches the server over mutual TLS, the workers run the job.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{stack.http_port}", headers=HEADERS, timeout=10
        ) as http:
            job = await run_seed_job(http)
        assert job["status"] == "completed", job

        # The CLI, as the README shows it.
        tls_dir = tmp_path / "var" / "tls"
        identity = ["--ca", f"{tls_dir}/ca.pem", "--cert", f"{tls_dir}/client.pem"]
        identity += ["--key", f"{tls_dir}/client.key"]
        address = ["--address", f"127.0.0.1:{stack.grpc_port}", "--api-key", "dev-key"]
        got = await mend(*identity, *address, "get", job["id"], "--json", env=env_for(None))
        assert got.code == 0, got.err
        assert got.json_lines()[0]["status"] == "completed"

        assert stack.stop("ctrl-c") == 0, stack.output()


def test_make_run_stops_at_a_bad_tls_setting(tmp_path: Path) -> None:
    with started_stack(tmp_path, MEND_TLS_CERT="var/tls/server.pem") as stack:
        assert stack.proc.wait(60) == 1
        assert (
            "MEND_TLS_CERT is set but MEND_TLS_KEY is not: a certificate needs its private key"
        ) in stack.output()
        # Stopped before anything started: no Redis, no half-started stack's traceback.
        assert "Traceback" not in stack.output()
        assert not (tmp_path / "var" / "redis" / "redis.log").exists()
