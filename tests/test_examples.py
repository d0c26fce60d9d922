"""The example scripts in clients/examples, run as they are against a real server; only
the address and key differ from `make run`, through the variables the scripts read."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from mend_client import AsyncClient
from mend_core.jobstate.queue import WorkQueue
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY

EXAMPLES = Path(__file__).resolve().parent.parent / "clients" / "examples"
VENV_BIN = str(Path(sys.executable).parent)
PATIENCE = 30.0


def script_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
    # Without the virtualenv on PATH, as after `make run`: the scripts find its grpcurl.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != VENV_BIN
    )
    env.pop("GRPCURL", None)
    env.update(values)
    return env


@pytest.fixture
def env(mend_server: MendServer) -> dict[str, str]:
    return script_env(MEND_ADDRESS=f"127.0.0.1:{mend_server.port}", MEND_API_KEY=API_KEY)


async def run(script: str, *args: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(EXAMPLES / script), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), PATIENCE)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def json_stream(text: str) -> list[dict]:
    """Consecutive JSON objects, as grpcurl and `jq` print them (indented, one after
    another)."""
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return objects
        obj, pos = decoder.raw_decode(text, pos)
        objects.append(obj)


async def test_grpcurl_list_and_describe(env: dict[str, str]) -> None:
    listed = (await run("grpcurl/list.sh", env=env)).split()
    for name in ("mend.v1.JobService", "grpc.health.v1.Health", "mend.v1.JobService.WatchJob"):
        assert name in listed

    service = await run("grpcurl/describe.sh", env=env)
    assert "mend.v1.JobService is a service:" in service
    assert (
        "rpc WatchJob ( .mend.v1.WatchJobRequest ) returns ( stream .mend.v1.WatchJobResponse )"
        in service
    )  # noqa: E501
    job = await run("grpcurl/describe.sh", "mend.v1.Job", env=env)
    assert "mend.v1.Job is a message:" in job and "int64 version = 19;" in job


async def test_grpcurl_submit_get_watch(env: dict[str, str], mend_server: MendServer) -> None:
    [submitted] = json_stream(await run("grpcurl/submit_job.sh", env=env))
    assert submitted["status"] == "JOB_STATUS_PENDING"
    job_id = submitted["jobId"]

    [job] = json_stream(await run("grpcurl/get_job.sh", job_id, env=env))
    assert job["id"] == job_id and job["status"] == "JOB_STATUS_PENDING"
    assert job["parameters"]["imageResize"] == {"width": 800, "height": 600, "quality": 85}

    # WatchJob streams until the job finishes: cancel the job once the script shows it.
    watch = await asyncio.create_subprocess_exec(
        str(EXAMPLES / "grpcurl" / "watch_job.sh"), job_id, env=env,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert watch.stdout is not None
    first = b""
    while not first.endswith(b"\n}\n"):  # the end of grpcurl's first indented object
        line = await asyncio.wait_for(watch.stdout.readline(), PATIENCE)
        assert line, "the watch ended early"
        first += line
    assert json.loads(first)["job"]["status"] == "JOB_STATUS_PENDING"
    async with AsyncClient(f"127.0.0.1:{mend_server.port}", api_key=API_KEY) as client:
        await client.cancel(job_id)
    rest, _ = await asyncio.wait_for(watch.communicate(), PATIENCE)
    assert watch.returncode == 0
    states = [e["job"] for e in json_stream(rest.decode()) if "job" in e]
    assert [s["status"] for s in states] == ["JOB_STATUS_CANCELLED"]

    # Resuming from the last version seen prints nothing more: the job has finished.
    assert (
        json_stream(await run("grpcurl/watch_job.sh", job_id, states[-1]["version"], env=env)) == []
    )  # noqa: E501


async def test_grpcurl_scripts_send_the_api_key(mend_server: MendServer) -> None:
    env = script_env(MEND_ADDRESS=f"127.0.0.1:{mend_server.port}", MEND_API_KEY="wrong-key")
    proc = await asyncio.create_subprocess_exec(
        str(EXAMPLES / "grpcurl" / "submit_job.sh"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), PATIENCE)
    assert proc.returncode != 0 and "Unauthenticated" in err.decode()


GATEWAY_MISSING = importlib.util.find_spec("mend_server.gateway.main") is None


@pytest.mark.skipif(GATEWAY_MISSING, reason="needs the REST gateway (mend_server.gateway)")
async def test_curl_walkthrough_against_the_gateway(
    mend_server: MendServer, redis_server: RedisServer, work: WorkQueue
) -> None:
    """Runs the seed's curl walkthrough against a real gateway process; the job is
    completed here, as a worker would, while the script polls."""
    http_port = free_port()
    server_env = script_env(
        MEND_REDIS_URL=redis_server.url,
        MEND_GRPC_PORT=str(mend_server.port),
        MEND_HTTP_PORT=str(http_port),
        MEND_API_KEYS=f"acme={API_KEY}",
    )
    gateway = await asyncio.create_subprocess_exec(
        str(Path(VENV_BIN) / "mend-gateway"), env=server_env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{http_port}"
        for _ in range(200):
            probe = await asyncio.create_subprocess_exec(
                "curl", "-sf", f"{url}/health/live", stdout=asyncio.subprocess.DEVNULL
            )
            if await probe.wait() == 0:
                break
            await asyncio.sleep(0.05)
        env = script_env(MEND_URL=url, MEND_API_KEY=API_KEY, MEND_POLL_SECONDS="0.1")
        walkthrough = asyncio.create_task(run("curl/walkthrough.sh", env=env))
        lease = None
        while lease is None:
            if walkthrough.done():  # it ended before submitting: show why
                await walkthrough
                raise AssertionError("the walkthrough ended without queueing a job")
            lease = await work.claim("test-worker")
            await asyncio.sleep(0.05)
        result = JobResult(
            "file:///var/storage/my-bucket/output.jpg", 245678, 1.23,
            ImageMetadata(800, 600, "jpeg"),
        )  # fmt: skip
        assert await work.complete(lease, result)
        out = await walkthrough
    finally:
        gateway.terminate()
        await gateway.wait()
    assert "Status: completed" in out
    final = json_stream(out[out.index("Status: completed") + len("Status: completed") :])[-1]
    assert final["status"] == "completed" and final["result"]["metadata"]["width"] == 800
