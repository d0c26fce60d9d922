"""One logging setup for every process (mend_core.logs): MEND_LOG_FORMAT=json writes one
JSON object per line, with job_id on each line of a job's work (the worker's and its
executor child's); MEND_LOG_LEVEL sets the lowest level written."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer, env_for
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.helpers import resize_request
from tests.images import encode
from tests.test_gateway_sse import gateway_command
from tests.test_server_lifecycle import ServerProcess
from tests.workers import WorkerProcess, submit, wait_terminal, worker_pool


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of output as JSON, each with the four fields every line has."""
    entries = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{output}") from None
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        assert datetime.fromisoformat(entry["time"]).utcoffset() is not None, line
        entries.append(entry)
    assert entries, "nothing was logged"
    return entries


async def run_one_job(
    stub: Any, redis_url: str, root: Path, **env: str
) -> tuple[str, str]:
    """A real worker resizes one PNG from the file backend, and stops: the job id, and
    what the worker (and its executor child) wrote."""
    source = root / "my-bucket" / "images" / "input.png"
    source.parent.mkdir(parents=True)
    source.write_bytes(encode(photo(64, 48), "PNG"))
    files = {"MEND_STORAGE": "file", "MEND_STORAGE_ROOT": str(root)}
    async with worker_pool(redis_url, **files, **env) as workers:
        worker = workers.start()
        job_id = await submit(
            stub, resize_request(source_key="images/input.png", width=32, height=24)
        )
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0, worker.output()
        return job_id, worker.output()


async def test_json_lines_carry_the_job_id_in_the_worker_and_its_executor(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    job_id, output = await run_one_job(
        stub, redis_server.url, tmp_path, MEND_LOG_FORMAT="json", MEND_LOG_LEVEL="DEBUG"
    )
    entries = json_lines(output)

    of_the_job = [e for e in entries if e.get("job_id") == job_id]
    loggers = {e["logger"] for e in of_the_job}
    # The worker's own lines (claim, completion) ...
    assert "mend_worker.worker" in loggers, entries
    # ... and the executor child's: Pillow's debug lines while it decodes the PNG.
    assert any(name.startswith("PIL.") for name in loggers), entries
    # Every line about the job names it; lines outside it (start, stop) carry none.
    assert all(e.get("job_id") == job_id for e in entries if job_id in e["message"])
    started = [e for e in entries if e["logger"] == "mend_worker.main"]
    assert started and "job_id" not in started[0], entries
    assert {e.get("job_id") for e in entries} == {job_id, None}


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
async def test_log_level(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path, level: str
) -> None:
    job_id, output = await run_one_job(stub, redis_server.url, tmp_path, MEND_LOG_LEVEL=level)
    info = [line for line in output.splitlines() if " INFO " in line]
    if level == "INFO":  # the default: start and completion are written (text lines)
        assert any(f"job {job_id}: completed" in line for line in info), output
    else:
        assert info == [], output


async def test_a_bad_log_setting_stops_the_worker_naming_it(redis_server: RedisServer) -> None:
    worker = WorkerProcess(env_for(redis_server.url, MEND_LOG_FORMAT="xml"))
    try:
        assert await worker.wait_exit() != 0
        assert "log_format" in worker.output()
    finally:
        await worker.aclose()


def test_json_lines_from_the_server(redis_server: RedisServer) -> None:
    server = ServerProcess(redis_server.url, MEND_LOG_FORMAT="json")
    try:
        server.wait_ready()
        assert server.stop(signal.SIGTERM) == 0
        entries = json_lines(server.output())
    finally:
        server.close()
    assert any(e["logger"].startswith("mend_server") for e in entries), entries
    assert all("job_id" not in e for e in entries)


async def test_json_lines_from_the_gateway_uvicorn_included(
    mend_server: MendServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with gateway_command(
        mend_server, redis_server, tmp_path, MEND_LOG_FORMAT="json"
    ) as (process, _):
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    entries = json_lines(err.decode())
    loggers = {e["logger"] for e in entries}
    assert "mend_server.gateway" in loggers, entries
    assert any(name.startswith("uvicorn") for name in loggers), entries
