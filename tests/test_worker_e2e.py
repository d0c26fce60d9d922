"""Workers end to end, as real `mend-worker` processes: jobs submitted over gRPC are
resized from the file and S3 backends, outputs decoded; idle workers are woken by Redis;
finished jobs expire after their retention."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from mend_worker.worker import WAIT_TIMEOUT_SECONDS
from tests.faulty_s3 import S3Service
from tests.helpers import events_key, job_key, resize_request
from tests.images import encode, padded_icc, px, red_blue_swapped_icc
from tests.workers import (
    eventually,
    get_job,
    history,
    ps_args,
    statuses,
    submit,
    wait_terminal,
    worker_pool,
)

WEEK = 7 * 24 * 3600


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()  # a truncated output would fail here
    return img


def storage_env(root: Path) -> dict[str, str]:
    return {"MEND_STORAGE": "file", "MEND_STORAGE_ROOT": str(root)}


async def test_resize_end_to_end_with_the_file_backend(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    source = root / "my-bucket" / "images" / "input.jpg"
    source.parent.mkdir(parents=True)
    source.write_bytes(encode(photo(1600, 1200), "JPEG", quality=90))

    async with worker_pool(redis_server.url, **storage_env(root)) as workers:
        worker = workers.start()
        job_id = await submit(stub, resize_request())  # 800x600 into images/output.jpg
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())

        output = root / "my-bucket" / "images" / "output.jpg"
        data = output.read_bytes()
        img = decoded(data)
        assert (img.format, img.size, img.mode) == ("JPEG", (800, 600), "RGB")
        assert job.result.output_url == output.resolve().as_uri()
        assert job.result.file_size == len(data)
        assert job.result.metadata == pb.ImageMetadata(width=800, height=600, format="jpeg")
        assert job.result.duration > 0
        assert job.duration_seconds > 0
        assert job.HasField("started_at") and job.HasField("completed_at")
        assert job.attempt == 1
        assert job.progress.percent == 100
        assert statuses(await history(stub, job_id)) == ["pending", "processing", "completed"]
        # Completed jobs are kept for the default retention: 7 days.
        assert WEEK - 60 < redis_client.ttl(job_key(job_id)) <= WEEK

        # Operators find workers, and the child running their jobs, with `ps`.
        assert "mend-worker --single" in ps_args(worker.pid)
        (executor,) = worker.executors()
        assert "mend-worker --executor-fd" in ps_args(executor)

        # The same worker handles other shapes and formats.
        cases = [
            (dict(width=400, height=0, dest_key="thumbs/w400.webp"), (400, 300), "WEBP"),
            (
                dict(width=300, height=300, fit=pb.FIT_MODE_COVER, dest_key="sq.png"),
                (300, 300),
                "PNG",
            ),
            (
                dict(
                    width=500,
                    height=100,
                    fit=pb.FIT_MODE_FILL,
                    format=pb.IMAGE_FORMAT_PNG,
                    dest_key="strip.bin",
                ),
                (500, 100),
                "PNG",
            ),
            (dict(width=200, height=200, dest_key="inside.jpg"), (200, 150), "JPEG"),
        ]
        for overrides, size, fmt in cases:
            job = await wait_terminal(stub, await submit(stub, resize_request(**overrides)))
            assert job.status == pb.JOB_STATUS_COMPLETED, (overrides, job.error)
            img = decoded((root / "my-bucket" / str(overrides["dest_key"])).read_bytes())
            assert (img.format, img.size) == (fmt, size), overrides
            assert (job.result.metadata.width, job.result.metadata.height) == size
            assert job.result.metadata.format == fmt.lower()
        assert worker.alive and worker.executors() == [executor]


async def test_resize_end_to_end_with_s3(stub, redis_server: RedisServer, s3: S3Service) -> None:
    bucket = s3.new_bucket()
    s3.put(bucket, "in/photo.jpg", encode(photo(1200, 900, seed=3), "JPEG", quality=90))
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        workers.start()
        job_id = await submit(
            stub,
            resize_request(
                source_bucket=bucket,
                source_key="in/photo.jpg",
                dest_bucket=bucket,
                dest_key="out/photo.webp",
                width=600,
                height=0,
            ),
        )
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    data, content_type = s3.get(bucket, "out/photo.webp")
    assert content_type == "image/webp"
    img = decoded(data)
    assert (img.format, img.size) == ("WEBP", (600, 450))
    assert job.result.output_url == f"s3://{bucket}/out/photo.webp"
    assert job.result.file_size == len(data)
    assert job.result.metadata == pb.ImageMetadata(width=600, height=450, format="webp")


async def test_large_colour_profiles_end_to_end_with_s3(
    stub, redis_server: RedisServer, s3: S3Service
) -> None:
    # Issue 8 items 22 and 23: a 5 MB profile, in a JPEG and in a PNG's iCCP chunk. It
    # swaps red and blue, so a source stored red must come out blue, untagged and small.
    bucket = s3.new_bucket()
    icc = padded_icc(red_blue_swapped_icc(), 5_000_000)
    red = Image.new("RGB", (400, 300), (255, 0, 0))
    s3.put(bucket, "in/big-icc.jpg", encode(red, "JPEG", quality=95, icc_profile=icc))
    s3.put(bucket, "in/big-icc.png", encode(red, "PNG", icc_profile=icc))
    async with worker_pool(redis_server.url, **s3.env()) as workers:
        workers.start()
        for ext in ("jpg", "png"):
            request = resize_request(
                source_bucket=bucket,
                source_key=f"in/big-icc.{ext}",
                dest_bucket=bucket,
                dest_key=f"out/big-icc.{ext}",
                width=100,
                height=75,
            )
            job = await wait_terminal(stub, await submit(stub, request))
            assert job.status == pb.JOB_STATUS_COMPLETED, (ext, job.error, workers.outputs())
            data, _ = s3.get(bucket, f"out/big-icc.{ext}")
            img = decoded(data)
            assert (img.size, img.mode) == ((100, 75), "RGB"), ext
            assert "icc_profile" not in img.info, ext
            assert len(data) == job.result.file_size < 5_000, ext
            r, g, b = px(img, 50, 37)
            assert r < 20 and g < 20 and b > 235, (ext, r, g, b)


def blocked_in_blpop(redis_client) -> dict | None:
    """The worker's connection while it waits in BLPOP, as Redis reports it."""
    for client in redis_client.client_list():
        if client.get("cmd") == "blpop" and "b" in client.get("flags", ""):
            return client
    return None


async def test_idle_worker_is_woken_by_a_new_job(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    (root / "my-bucket" / "images").mkdir(parents=True)
    (root / "my-bucket" / "images" / "input.jpg").write_bytes(encode(photo(320, 240), "JPEG"))
    async with worker_pool(redis_server.url, **storage_env(root)) as workers:
        workers.start()
        # Idle: asleep inside Redis, in a BLPOP that began less than a second ago, so its
        # own timeout is still WAIT_TIMEOUT_SECONDS - 1 away.
        await eventually(
            lambda: (c := blocked_in_blpop(redis_client)) and int(c["idle"]) == 0,
            "the worker to block in BLPOP",
        )
        job_id = await submit(stub, resize_request(width=64, height=48))
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, job.error
    # Claimed long before the BLPOP would have ended by itself: the submit woke it.
    waited = job.started_at.ToMilliseconds() - job.created_at.ToMilliseconds()
    assert waited < (WAIT_TIMEOUT_SECONDS - 2) * 1000, waited


async def test_finished_jobs_expire_after_their_retention(
    stub, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    (root / "my-bucket" / "images").mkdir(parents=True)
    (root / "my-bucket" / "images" / "input.jpg").write_bytes(encode(photo(64, 48), "JPEG"))
    async with worker_pool(
        redis_server.url,
        MEND_RETENTION_COMPLETED_SECONDS="1000",
        MEND_RETENTION_FAILED_SECONDS="300",
        **storage_env(root),
    ) as workers:
        workers.start()
        done = await submit(stub, resize_request(width=32, height=24))
        failed = await submit(stub, resize_request(source_key="images/missing.jpg"))
        assert (await wait_terminal(stub, done)).status == pb.JOB_STATUS_COMPLETED
        assert (await wait_terminal(stub, failed)).status == pb.JOB_STATUS_FAILED

    for job_id, ttl in ((done, 1000), (failed, 300)):
        assert ttl - 30 < redis_client.ttl(job_key(job_id)) <= ttl
        # Its event log only for a short grace: a resume after it gets the final state.
        log = events_key(job_id)
        assert 0 < redis_client.ttl(log) <= 60, redis_client.ttl(log)
    # A pending job stays until it is processed.
    pending = await submit(stub, resize_request())
    assert redis_client.ttl(job_key(pending)) == -1
    assert (await get_job(stub, pending)).status == pb.JOB_STATUS_PENDING
