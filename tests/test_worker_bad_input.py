"""Bad input fails at once with a message a user can act on, and the worker process that
met it goes on with the next job: missing sources, bytes that are no image, a truncated
JPEG, a decompression bomb (a tiny PNG claiming 100000x100000), an oversized source."""

from __future__ import annotations

from pathlib import Path

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from tests.faulty_s3 import S3Service
from tests.helpers import resize_request
from tests.images import decode, encode, png_with_header_size
from tests.workers import history, statuses, submit, wait_terminal, worker_pool

MAX_SOURCE_BYTES = 200_000
MAX_PIXELS = 40_000_000
LIMITS = {"MEND_MAX_SOURCE_BYTES": str(MAX_SOURCE_BYTES), "MEND_MAX_PIXELS": str(MAX_PIXELS)}


def good_jpeg() -> bytes:
    return encode(photo(400, 300), "JPEG", quality=90)


async def assert_failed_at_once(stub, job_id: str) -> pb.Job:
    job = await wait_terminal(stub, job_id)
    assert job.status == pb.JOB_STATUS_FAILED, job
    # Permanent: no retry.
    assert job.attempt == 1
    assert statuses(await history(stub, job_id)) == ["pending", "processing", "failed"]
    assert not job.HasField("result")
    return job


async def test_bad_sources_in_s3_fail_clearly_and_the_worker_goes_on(
    stub, redis_server: RedisServer, s3: S3Service
) -> None:
    bucket = s3.new_bucket()
    jpeg = good_jpeg()
    assert len(jpeg) < MAX_SOURCE_BYTES
    sources = {
        "text.jpg": b"this is not an image, whatever its name says\n" * 20,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "bomb.png": png_with_header_size(100_000, 100_000),
        "huge.jpg": jpeg + b"\0" * MAX_SOURCE_BYTES,
        "good.jpg": jpeg,
    }
    for key, data in sources.items():
        s3.put(bucket, key, data)
    expected = {
        "images/input.jpg": f"Source file not found: s3://{bucket}/images/input.jpg",
        # These two go on with details from the decoder.
        "text.jpg": "not a supported image: unrecognised data",
        "truncated.jpg": "not a supported image: truncated or corrupt",
        "bomb.png": f"image too large: 100000x100000 exceeds {MAX_PIXELS} pixels",
        "huge.jpg": f"source exceeds {MAX_SOURCE_BYTES} bytes: s3://{bucket}/huge.jpg",
    }

    async with worker_pool(redis_server.url, **LIMITS, **s3.env()) as workers:
        worker = workers.start()
        for source_key, message in expected.items():
            job_id = await submit(
                stub,
                resize_request(
                    source_bucket=bucket,
                    source_key=source_key,
                    dest_bucket=bucket,
                    dest_key=f"out/{source_key}",
                ),
            )
            job = await assert_failed_at_once(stub, job_id)
            if source_key in ("text.jpg", "truncated.jpg"):
                assert job.error.startswith(message), (source_key, job.error)
            else:
                assert job.error == message, source_key
            assert not s3.exists(bucket, f"out/{source_key}")
            assert worker.alive, workers.outputs()

        # The same worker process then does good work.
        job_id = await submit(
            stub,
            resize_request(
                source_bucket=bucket,
                source_key="good.jpg",
                dest_bucket=bucket,
                dest_key="out/good.jpg",
                width=200,
                height=150,
            ),
        )
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert decode(s3.get(bucket, "out/good.jpg")[0]).size == (200, 150)
        assert worker.alive and workers.started == [worker]


async def test_bad_sources_in_the_file_backend_fail_clearly(
    stub, redis_server: RedisServer, tmp_path: Path
) -> None:
    root = (tmp_path / "storage").resolve()
    bucket_dir = root / "my-bucket"
    bucket_dir.mkdir(parents=True)
    (bucket_dir / "bomb.png").write_bytes(png_with_header_size(100_000, 100_000))
    (bucket_dir / "huge.jpg").write_bytes(b"\xff\xd8" + b"\0" * MAX_SOURCE_BYTES)
    (bucket_dir / "good.jpg").write_bytes(good_jpeg())
    missing = bucket_dir / "images" / "input.jpg"
    expected = {
        "images/input.jpg": f"Source file not found: {missing.as_uri()}",
        "bomb.png": f"image too large: 100000x100000 exceeds {MAX_PIXELS} pixels",
        "huge.jpg": f"source exceeds {MAX_SOURCE_BYTES} bytes: {bucket_dir.as_uri()}/huge.jpg",
    }
    assert expected["images/input.jpg"].startswith("Source file not found: file:///")

    async with worker_pool(
        redis_server.url, MEND_STORAGE="file", MEND_STORAGE_ROOT=str(root), **LIMITS
    ) as workers:
        worker = workers.start()
        for source_key, message in expected.items():
            job_id = await submit(
                stub, resize_request(source_key=source_key, dest_key=f"out/{source_key}")
            )
            job = await assert_failed_at_once(stub, job_id)
            assert job.error == message, source_key
            assert not (bucket_dir / "out" / source_key).exists()

        job_id = await submit(
            stub,
            resize_request(source_key="good.jpg", dest_key="out/good.webp", width=200, height=150),
        )
        job = await wait_terminal(stub, job_id)
        assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
        assert decode((bucket_dir / "out" / "good.webp").read_bytes()).size == (200, 150)
        assert worker.alive and workers.started == [worker]
