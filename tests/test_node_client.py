"""A Node client built from protos/ alone: @grpc/proto-loader loads Mend's protos and the
google/api and google/rpc ones vendored beside them, and @grpc/grpc-js calls a real server
with what it loaded (tests/node/call_mend.js; `make test-tools` installs its packages)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from mend_server.server import MendServer
from tests.conftest import API_KEY
from tests.helpers import is_uuid4

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "@grpc" / "proto-loader").is_dir(),
    reason="node or tests/node/node_modules missing: run `make test-tools`",
)

REQUEST = {
    "sourceBucket": "my-bucket",
    "sourceKey": "images/input.jpg",
    "destBucket": "my-bucket",
    "destKey": "images/output.jpg",
    "width": 800,
    "height": 600,
    "fit": "FIT_MODE_COVER",
}


async def call_mend(server: MendServer, request: dict) -> dict:
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE, str(NODE_DIR / "call_mend.js"), f"127.0.0.1:{server.port}", API_KEY,
        str(ROOT / "protos"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(json.dumps(request).encode()), 60)
    assert process.returncode == 0, err.decode()
    result: dict = json.loads(out)
    return result


async def test_node_loads_the_protos_and_submits_a_job(mend_server: MendServer, stub) -> None:
    result = await call_mend(mend_server, REQUEST)
    assert "error" not in result, result
    assert result["services"] == ["mend.v1.JobService"]
    job_id = result["submitted"]["jobId"]
    assert is_uuid4(job_id)
    assert result["submitted"]["status"] == "JOB_STATUS_PENDING"
    job = result["job"]
    assert job["id"] == job_id and job["destKey"] == "images/output.jpg"
    resize = job["parameters"]["imageResize"]
    assert (resize["width"], resize["height"], resize["fit"]) == (800, 600, "FIT_MODE_COVER")


async def test_node_gets_the_servers_error(mend_server: MendServer) -> None:
    result = await call_mend(mend_server, {**REQUEST, "width": -1})
    assert result["error"]["code"] == 3  # INVALID_ARGUMENT
    assert "width" in result["error"]["details"]
