"""The installed `mend` command, run as a real process against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mend_core.jobstate.queue import WorkQueue
from mend_core.results import ImageMetadata, JobResult
from mend_devkit.ports import free_port
from mend_server.server import MendServer
from tests.conftest import API_KEY
from tests.test_gateway_support import gateway_settings, start_gateway

MEND = str(Path(sys.executable).with_name("mend"))
PATIENCE = 30.0
SOURCE, DEST = "my-bucket/images/input.jpg", "my-bucket/images/output.jpg"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines()]


def env_for(server: MendServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
    if server is not None:
        env.update(MEND_ADDRESS=f"127.0.0.1:{server.port}", MEND_API_KEY=API_KEY)
    env.update(extra)
    return env


async def mend(*args: str, env: dict[str, str]) -> Run:
    # Run without blocking: the server under test shares this event loop.
    proc = await asyncio.create_subprocess_exec(
        MEND, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), PATIENCE)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def env(mend_server: MendServer) -> dict[str, str]:
    return env_for(mend_server)


async def submit(env: dict[str, str], *extra: str) -> str:
    run = await mend("submit", "resize", SOURCE, DEST, "--width", "800", *extra, env=env)
    assert run.code == 0, run.err
    return run.out.strip()


async def test_submit_get_list_cancel_stats(env: dict[str, str]) -> None:
    job_id = await submit(env, "--height", "600", "--quality", "90", "--priority", "7")
    assert len(job_id) == 36

    got = await mend("get", job_id, env=env)
    assert got.code == 0, got.err
    assert f"id:          {job_id}" in got.out
    assert "status:      pending" in got.out and "queue position 1" in got.out
    assert "source:      my-bucket/images/input.jpg" in got.out
    assert "parameters:  width=800 height=600 quality=90" in got.out

    [doc] = (await mend("get", job_id, "--json", env=env)).json_lines()
    # What curl prints for GET /api/v1/jobs/{id}: the REST API's JSON.
    assert doc["id"] == job_id and doc["status"] == "pending"
    assert doc["dest_key"] == "images/output.jpg"  # .proto field names
    assert doc["parameters"] == {"width": 800, "height": 600, "quality": 90}
    assert doc["queue_position"] == 1 and "result" not in doc

    second = await submit(env)
    listed = await mend("list", "--json", "--page-size", "1", env=env)
    assert [d["id"] for d in listed.json_lines()] == [second, job_id]
    human = await mend("list", "--limit", "1", env=env)
    assert human.out.splitlines()[0].startswith(f"{second}  pending")
    assert len(human.out.splitlines()) == 1

    cancelled = await mend("cancel", job_id, env=env)
    assert (cancelled.code, cancelled.out.strip()) == (0, f"{job_id}  cancelled")
    [only] = (await mend("list", "--status", "cancelled", "--json", env=env)).json_lines()
    assert only["id"] == job_id

    stats = await mend("stats", "--json", env=env)
    [totals] = stats.json_lines()
    assert totals["totals"]["pending"] == 1 and totals["totals"]["cancelled"] == 1
    human_stats = await mend("stats", env=env)
    assert human_stats.out.splitlines()[1].split() == ["total", "1", "0", "0", "0", "1"]


async def test_json_is_what_curl_prints(
    env: dict[str, str], mend_server: MendServer, work: WorkQueue, tmp_path: Path
) -> None:
    """`mend --json` and the REST gateway print the same JSON for the same job, in every
    state: enum names, flat parameters, numbers and the fields each state shows."""
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    gateway = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as http:

            async def same(job_id: str) -> dict:
                [cli] = (await mend("get", job_id, "--json", env=env)).json_lines()
                rest = (await http.get(f"/api/v1/jobs/{job_id}")).json()
                assert cli == rest
                return cli

            pending = await submit(env, "--height", "600", "--fit", "cover", "--format", "webp")
            assert (await same(pending))["parameters"]["fit"] == "cover"
            lease = await work.claim("test-worker")
            assert lease is not None and await work.progress(lease, 40, "resizing")
            assert (await same(pending))["status"] == "processing"
            result = JobResult("file:///out.webp", 10, 0.5, ImageMetadata(800, 600, "webp"))
            assert await work.complete(lease, result)
            assert (await same(pending))["result"]["file_size"] == 10

            [cli_stats] = (await mend("stats", "--json", env=env)).json_lines()
            rest_stats = (await http.get("/api/v1/queue/stats")).json()
            assert cli_stats == rest_stats and cli_stats["totals"]["completed"] == 1
    finally:
        await gateway.stop()


async def test_flags_override_the_environment(mend_server: MendServer) -> None:
    env = env_for(None, MEND_ADDRESS=f"127.0.0.1:{free_port()}", MEND_API_KEY="wrong-key")
    flags = ["--address", f"127.0.0.1:{mend_server.port}", "--api-key", API_KEY]
    run = await mend("submit", "resize", SOURCE, DEST, "--width", "10", *flags, env=env)
    assert run.code == 0, run.err
    # Before the command works too.
    assert (await mend(*flags, "get", run.out.strip(), env=env)).code == 0


async def test_watch_until_completed_exits_0(env: dict[str, str], work: WorkQueue) -> None:
    job_id = await submit(env)
    proc = await asyncio.create_subprocess_exec(
        MEND, "watch", job_id, "--json", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), PATIENCE))
    assert first["status"] == "pending"

    lease = await work.claim("test-worker")
    assert lease is not None
    assert await work.progress(lease, 50, "resizing")
    result = JobResult("file:///out.jpg", 10, 0.1, ImageMetadata(800, 600, "jpeg"))
    assert await work.complete(lease, result)

    rest, _ = await asyncio.wait_for(proc.communicate(), PATIENCE)
    states = [json.loads(line) for line in rest.decode().splitlines()]
    assert [s["status"] for s in states] == ["processing", "processing", "completed"]
    assert states[1]["progress"] == {"percent": 50, "message": "resizing"}
    assert states[2]["result"]["metadata"]["format"] == "jpeg"
    assert proc.returncode == 0


async def test_watch_exit_codes_and_lines(env: dict[str, str], work: WorkQueue) -> None:
    failed = await submit(env)
    lease = await work.claim("test-worker")
    assert lease is not None and await work.fail(lease, "Source file not found: s3://x/y")
    run = await mend("watch", failed, env=env)
    assert run.code == 1
    assert run.out.split() == ["failed", "Source", "file", "not", "found:", "s3://x/y"]

    cancelled = await submit(env)
    assert (await mend("cancel", cancelled, env=env)).code == 0
    assert (await mend("watch", cancelled, env=env)).code == 2

    # submit --watch follows the job it queued.
    done = await mend(
        "submit", "resize", SOURCE, DEST, "--width", "5", "--watch", "--max-wait", "0.5", env=env
    )
    job_id, pending = done.out.splitlines()
    assert pending.startswith("pending     queue position 1")
    assert done.code == 4 and f"job {job_id} did not finish within 0.5s" in done.err


async def test_errors_are_messages_not_tracebacks(env: dict[str, str]) -> None:
    bad = await mend(
        "submit", "resize", "my-bucket/in.jpg", "my-bucket//out.jpg", "--quality", "0", env=env
    )
    assert bad.code == 3 and bad.out == ""
    assert bad.err.startswith("mend: error: invalid request:")
    assert "  parameters.image_resize.width: width or height is required" in bad.err
    assert "  parameters.image_resize.quality: must be between 1 and 100, got 0" in bad.err
    assert "Traceback" not in bad.err

    as_json = await mend("get", "not-a-uuid", "--json", env=env)
    error = json.loads(as_json.err)
    assert as_json.code == 3 and error["code"] == "INVALID_ARGUMENT"
    assert error["violations"] == [{"field": "id", "description": "must be a job id (a UUID v4)"}]

    missing = await mend("get", "0b0e5d8e-2a4e-4b59-9d53-1b7b1b0c1f00", env=env)
    assert missing.code == 3 and "not found" in missing.err

    job_id = await submit(env)
    await mend("cancel", job_id, env=env)
    again = await mend("cancel", job_id, env=env)
    assert again.code == 3 and f"job {job_id} is already cancelled" in again.err

    unauth = await mend("stats", env={**env, "MEND_API_KEY": "wrong-key"})
    assert unauth.code == 3 and unauth.err.startswith("mend: error:")
    down = await mend("stats", "--address", f"127.0.0.1:{free_port()}", env=env)
    assert down.code == 3 and "Traceback" not in down.err

    usage = await mend("submit", "resize", "no-slash", DEST, env=env)
    assert usage.code == 64 and "expected BUCKET/KEY" in usage.err


async def test_output_to_a_closed_pipe_is_no_traceback(env: dict[str, str]) -> None:
    for _ in range(30):
        await submit(env)
    # `mend list | head -1`: the reader leaves after one line, as a newcomer's shell does.
    proc = await asyncio.create_subprocess_shell(
        f"'{MEND}' list --limit 0 | head -1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), PATIENCE)
    assert len(out.decode().splitlines()) == 1
    assert "Traceback" not in err.decode(), err.decode()


def test_a_completed_job_without_an_output_image_says_what_it_made() -> None:
    """An audio job's line names its codec and length, a palette its colours: not 0x0."""
    from mend.v1 import jobs_pb2 as pb
    from mend_client import Job
    from mend_client.cli import _state_line

    audio = pb.Job(id="a", status=pb.JOB_STATUS_COMPLETED)
    audio.result.output_url = "file:///out/talk.mp3"
    audio.result.file_size = 321036
    audio.result.audio.codec = "mp3"
    audio.result.audio.duration_seconds = 20.0
    line = _state_line(Job.from_proto(audio))
    assert "0x0" not in line and "audio mp3 20" in line and "321036 bytes" in line, line

    colors = pb.Job(id="c", status=pb.JOB_STATUS_COMPLETED)
    colors.result.colors.add(hex="#8c7e63", red=140, green=126, blue=99, percent=82.1)
    line = _state_line(Job.from_proto(colors))
    assert "(no output file)" in line and "1 colors #8c7e63" in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--limit", "-1"], "argument --limit: expected 0 or a positive count, got '-1'"),
        (["--timeout", "0", "stats"], "argument --timeout: expected a positive number of seconds"),
        (["watch", "x", "--max-wait", "-2"], "argument --max-wait: expected a positive number"),
    ],
)
def test_counts_and_deadlines_that_cannot_work_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative --limit used to list nothing and exit 0; a deadline of 0 or less failed
    every call with a bare "Deadline Exceeded"."""
    from mend_client.cli import main

    with pytest.raises(SystemExit) as exited:
        main([*args, "--address", f"127.0.0.1:{free_port()}"])
    assert exited.value.code == 64
    assert message in capsys.readouterr().err
