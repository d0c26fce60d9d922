"""image_optimize, image_watermark and image_colors end to end: submitted over gRPC (flat
and nested) and over REST with Mend's flat bodies, run by a real `mend-worker` on the file
backend, outputs decoded; bad parameters and ungranted watermark buckets are refused
naming the field, a bad watermark image fails the job and the worker lives on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from PIL import Image, ImageChops

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, make_settings
from tests.helpers import bad_request, violated_fields
from tests.images import decode, encode
from tests.test_cli import env_for, mend
from tests.test_gateway_support import RunningGateway, gateway_settings, start_gateway
from tests.test_image_operations import BLUE, RED, YELLOW, delta_e, three_colours
from tests.workers import wait_terminal, worker_pool

LOCATION = {"source_bucket": "my-bucket", "source_key": "in/photo.jpg"}
GRANTS = "acme=my-bucket|logos,globex=*"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The file backend: a JPEG photo, a three-colour PNG and a white logo."""
    root = tmp_path / "storage"
    (root / "my-bucket" / "in").mkdir(parents=True)
    (root / "logos").mkdir()
    (root / "my-bucket" / "in" / "photo.jpg").write_bytes(
        encode(photo(640, 480), "JPEG", quality=95)
    )
    (root / "my-bucket" / "in" / "bands.heic").write_bytes(
        encode(three_colours(), "HEIF", quality=90)
    )
    logo = Image.new("RGBA", (200, 100), (255, 255, 255, 255))
    (root / "logos" / "logo.png").write_bytes(encode(logo, "PNG"))
    return root


@pytest.fixture
async def server(redis_server, redis_client) -> AsyncIterator[MendServer]:
    server = MendServer(make_settings(redis_server.url, tenant_buckets=GRANTS))
    await server.start()
    yield server
    await server.stop(grace=0)


@pytest.fixture
async def jobs(server: MendServer) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


@pytest.fixture
async def http(server: MendServer, root: Path) -> AsyncIterator[httpx.AsyncClient]:
    gateway: RunningGateway = await start_gateway(
        gateway_settings(server.settings, server.port, root)
    )
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as client:
        yield client
    await gateway.stop()


def worker_env(root: Path) -> dict[str, str]:
    return {
        "MEND_STORAGE": "file",
        "MEND_STORAGE_ROOT": str(root),
        "MEND_TENANT_BUCKETS": GRANTS,
    }


def check_watermarked(root: Path, key: str) -> None:
    """The white logo, scaled to a quarter of the width, in the bottom-right corner."""
    source = decode((root / "my-bucket" / "in" / "photo.jpg").read_bytes()).convert("RGB")
    out = decode((root / "my-bucket" / key).read_bytes()).convert("RGB")
    diff = ImageChops.difference(source, out).convert("L").point(lambda v: 255 if v > 40 else 0)
    box = diff.getbbox()
    assert box is not None
    assert abs(box[0] - (640 - 20 - 160)) <= 2 and abs(box[2] - 620) <= 2, box  # 160 = 640/4
    assert box[1] >= 480 - 20 - 80 - 2 and abs(box[3] - 460) <= 2, box


def check_palette(colors: list[dict[str, Any]]) -> None:
    assert len(colors) == 3
    for color, known in zip(colors, (BLUE, RED, YELLOW), strict=True):
        assert delta_e((color["red"], color["green"], color["blue"]), known) < 3, color


async def test_each_operation_over_grpc(jobs, redis_server, root: Path) -> None:
    async with worker_pool(redis_server.url, **worker_env(root)) as workers:
        workers.start()
        optimize = await jobs.SubmitImageOptimize(
            pb.SubmitImageOptimizeRequest(
                **LOCATION,
                dest_bucket="my-bucket",
                dest_key="out/photo.webp",
                format=pb.IMAGE_FORMAT_WEBP,
                quality=75,
                max_width=320,
            ),
            metadata=AUTH,
        )
        watermark = await jobs.SubmitJob(
            pb.SubmitJobRequest(
                **LOCATION,
                dest_bucket="my-bucket",
                dest_key="out/marked.png",
                parameters=pb.JobParameters(
                    image_watermark=pb.ImageWatermarkParameters(
                        watermark_bucket="logos",
                        watermark_key="logo.png",
                        position=pb.WATERMARK_POSITION_SOUTH_EAST,
                        scale=0.25,
                        opacity=1.0,
                        margin=20,
                    )
                ),
            ),
            metadata=AUTH,
        )
        colors = await jobs.SubmitImageColors(
            pb.SubmitImageColorsRequest(
                source_bucket="my-bucket", source_key="in/bands.heic", count=3
            ),
            metadata=AUTH,
        )
        done = {
            name: await wait_terminal(jobs, response.job_id)
            for name, response in (
                ("optimize", optimize),
                ("watermark", watermark),
                ("colors", colors),
            )
        }
    for name, job in done.items():
        assert job.status == pb.JOB_STATUS_COMPLETED, (name, job.error, workers.outputs())

    job = done["optimize"]
    data = (root / "my-bucket" / "out" / "photo.webp").read_bytes()
    img = decode(data)
    assert (img.format, img.size) == ("WEBP", (320, 240))
    assert job.type == pb.JOB_TYPE_IMAGE_OPTIMIZE
    assert job.result.metadata == pb.ImageMetadata(width=320, height=240, format="webp")
    source_size = (root / "my-bucket" / "in" / "photo.jpg").stat().st_size
    assert job.result.optimization.input_bytes == source_size
    assert job.result.optimization.output_bytes == len(data) == job.result.file_size
    assert not job.result.optimization.kept_source
    assert job.result.optimization.saving_percent > 0

    job = done["watermark"]
    assert job.parameters.image_watermark.watermark_key == "logo.png"
    assert job.result.metadata.format == "png"
    check_watermarked(root, "out/marked.png")

    job = done["colors"]
    assert job.result.output_url == "" and job.result.file_size == 0
    assert job.dest_bucket == "" and job.parameters.image_colors.count == 3
    check_palette([{"red": c.red, "green": c.green, "blue": c.blue} for c in job.result.colors])
    assert [round(c.percent) for c in job.result.colors] == [50, 30, 20]


async def test_each_operation_over_rest_with_flat_bodies(
    http: httpx.AsyncClient, redis_server, root: Path
) -> None:
    bodies = {
        "optimize": {**LOCATION, "dest_bucket": "my-bucket", "dest_key": "rest/photo.jpg"},
        "watermark": {
            **LOCATION,
            "dest_bucket": "my-bucket",
            "dest_key": "rest/marked.jpg",
            "watermark_bucket": "logos",
            "watermark_key": "logo.png",
            "position": "south_east",
            "scale": 0.25,
            "opacity": 1,
            "margin": 20,
        },
        "colors": {
            "source_bucket": "my-bucket",
            "source_key": "in/bands.heic",
            "dest_bucket": "my-bucket",
            "dest_key": "rest/palette.json",
            "count": 3,
        },
    }
    ids = {}
    for name, body in bodies.items():
        response = await http.post(f"/api/v1/jobs/image/{name}", json=body)
        assert response.status_code == 202, response.text
        ids[name] = response.json()["job_id"]
    async with worker_pool(redis_server.url, **worker_env(root)) as workers:
        workers.start()
        done = {}
        for name, job_id in ids.items():
            for _ in range(300):
                job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
                if job["status"] in ("completed", "failed"):
                    break
                await _sleep()
            done[name] = job
    for name, job in done.items():
        assert job["status"] == "completed", (name, job, workers.outputs())

    job = done["optimize"]
    assert job["type"] == "image_optimize"
    data = (root / "my-bucket" / "rest" / "photo.jpg").read_bytes()
    img = decode(data)
    assert (img.format, img.size, img.info.get("progressive")) == ("JPEG", (640, 480), 1)
    optimization = job["result"]["optimization"]
    assert int(optimization["output_bytes"]) == len(data) <= int(optimization["input_bytes"])

    assert done["watermark"]["parameters"]["position"] == "south_east"
    check_watermarked(root, "rest/marked.jpg")

    colors = done["colors"]["result"]["colors"]
    check_palette(colors)
    written = json.loads((root / "my-bucket" / "rest" / "palette.json").read_bytes())
    assert written == {"colors": colors}


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


# ------------------------------------------------------------------------- bad input


async def test_bad_parameters_name_the_field_over_grpc_and_rest(jobs, http) -> None:
    nested = pb.SubmitJobRequest(
        **LOCATION,
        dest_bucket="my-bucket",
        dest_key="o.jpg",
        parameters=pb.JobParameters(
            image_watermark=pb.ImageWatermarkParameters(text="x", opacity=2)
        ),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitJob(nested, metadata=AUTH)
    assert violated_fields(info.value) == ["parameters.image_watermark.opacity"]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitImageOptimize(
            pb.SubmitImageOptimizeRequest(
                **LOCATION, dest_bucket="my-bucket", dest_key="o", quality=0
            ),
            metadata=AUTH,
        )
    assert violated_fields(info.value) == ["quality"]

    cases = [
        ("watermark", {"text": "x", "opacity": 1.5}, ["opacity"]),
        ("watermark", {"text": "x", "position": "middle"}, ["position"]),
        ("watermark", {}, ["text"]),
        ("watermark", {"text": "x", "color": "red", "scale": 2}, ["scale", "color"]),
        ("optimize", {"format": "avif", "lossless": True}, ["lossless"]),
        ("colors", {"count": 17}, ["count"]),
    ]
    for name, params, fields in cases:
        body = {**LOCATION, "dest_bucket": "my-bucket", "dest_key": "o.jpg", **params}
        response = await http.post(f"/api/v1/jobs/image/{name}", json=body)
        assert response.status_code == 400, (name, params, response.text)
        assert [d["field"] for d in response.json()["details"]] == fields, response.text
    # Without a destination, image_colors is accepted over REST too.
    response = await http.post("/api/v1/jobs/image/colors", json={**LOCATION, "count": 2})
    assert response.status_code == 202, response.text


async def test_colors_destination_is_optional_but_checked_when_given(jobs) -> None:
    request = pb.SubmitImageColorsRequest(**LOCATION, dest_bucket="my-bucket")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitImageColors(request, metadata=AUTH)
    assert violated_fields(info.value) == ["dest_key"]
    # Other operations still need a destination.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitImageOptimize(pb.SubmitImageOptimizeRequest(**LOCATION), metadata=AUTH)
    assert violated_fields(info.value) == ["dest_bucket", "dest_key"]


async def test_an_ungranted_watermark_bucket_is_refused_naming_the_field(jobs, http) -> None:
    params = {"watermark_bucket": "someone-elses", "watermark_key": "logo.png"}
    nested = pb.SubmitJobRequest(
        **LOCATION,
        dest_bucket="my-bucket",
        dest_key="o.jpg",
        parameters=pb.JobParameters(image_watermark=pb.ImageWatermarkParameters(**params)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitJob(nested, metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    fields = [v.field for v in bad_request(info.value).field_violations]
    assert fields == ["parameters.image_watermark.watermark_bucket"]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await jobs.SubmitBatch(pb.SubmitBatchRequest(jobs=[nested]), metadata=AUTH)
    fields = [v.field for v in bad_request(info.value).field_violations]
    assert fields == ["jobs[0].parameters.image_watermark.watermark_bucket"]

    body = {**LOCATION, "dest_bucket": "my-bucket", "dest_key": "o.jpg", **params}
    response = await http.post("/api/v1/jobs/image/watermark", json=body)
    assert response.status_code == 403, response.text
    assert "someone-elses" in response.json()["error"]
    assert [d["field"] for d in response.json()["details"]] == ["watermark_bucket"]


async def test_a_bad_watermark_image_fails_the_job_and_the_worker_lives_on(
    jobs, redis_server, root: Path
) -> None:
    (root / "logos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    bad = pb.SubmitImageWatermarkRequest(
        **LOCATION,
        dest_bucket="my-bucket",
        dest_key="o.jpg",
        watermark_bucket="logos",
        watermark_key="broken.png",
    )
    missing = pb.SubmitImageWatermarkRequest(
        **LOCATION,
        dest_bucket="my-bucket",
        dest_key="o.jpg",
        watermark_bucket="logos",
        watermark_key="nowhere.png",
    )
    good = pb.SubmitImageWatermarkRequest(
        **LOCATION, dest_bucket="my-bucket", dest_key="ok.jpg", text="fine"
    )
    async with worker_pool(redis_server.url, **worker_env(root)) as workers:
        worker = workers.start()
        ids = [
            (await jobs.SubmitImageWatermark(r, metadata=AUTH)).job_id for r in (bad, missing, good)
        ]
        bad_job, missing_job, good_job = [await wait_terminal(jobs, i) for i in ids]
        assert worker.pid in [w.pid for w in workers.started]
    assert bad_job.status == pb.JOB_STATUS_FAILED and "not a supported image" in bad_job.error
    assert bad_job.attempt == 1  # permanent: not retried
    assert missing_job.status == pb.JOB_STATUS_FAILED and "nowhere.png" in missing_job.error
    assert good_job.status == pb.JOB_STATUS_COMPLETED, good_job.error
    assert decode((root / "my-bucket" / "ok.jpg").read_bytes()).size == (640, 480)


async def test_the_cli_submits_each_operation(server: MendServer, jobs) -> None:
    env, src = env_for(server), "my-bucket/in/photo.jpg"
    commands = [
        [
            "optimize",
            "my-bucket/in/photo.jpg",
            "my-bucket/o.webp",
            "--format",
            "webp",
            "--lossless",
        ],
        [
            "watermark",
            "my-bucket/in/photo.jpg",
            "my-bucket/o.jpg",
            "--text",
            "hi",
            "--opacity",
            "0.3",
        ],
        ["colors", "my-bucket/in/photo.jpg", "--count", "4"],  # no destination
    ]
    for command in commands:
        run = await mend("submit", *command, env=env)
        assert run.code == 0, run.err
        job = await jobs.GetJob(pb.GetJobRequest(id=run.out.strip()), metadata=AUTH)
        assert pb.JobType.Name(job.type) == f"JOB_TYPE_IMAGE_{command[0].upper()}"
    assert job.parameters.image_colors.count == 4 and job.dest_bucket == ""
    run = await mend("submit", "watermark", src, "my-bucket/o.jpg", env=env)
    assert run.code != 0 and "text" in run.err
