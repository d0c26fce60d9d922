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

from tests.images import decode
from tests.services import free_port
from tests.test_gateway_support import SEED_BODY
from tests.workers import cmdline, eventually, processes_with_env

BIN = Path(sys.executable).parent
HEADERS = {"X-API-Key": "dev-key"}


class Stack:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.grpc_port, self.http_port = free_port(), free_port()
        # Only this test's settings: none of the caller's MEND_* variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
        env |= {
            "MEND_GRPC_PORT": str(self.grpc_port),
            "MEND_HTTP_PORT": str(self.http_port),
            "MEND_WORKERS": "2",
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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        for pid in [stack.proc.pid, *stack.processes()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stack.proc.wait()


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
    assert "API key   dev-key" in banner
    assert "(its own redis-server; data and AOF in var/redis)" in banner

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.http_port}", headers=HEADERS, timeout=10
    ) as http:
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
