"""The work of one drain job, shared by every peer: exactly what a Mend worker's executor
does per job (mend_worker/execute.py): read the source from file storage, resize it
with Mend's resize_image (Pillow), write the output atomically (temp file, fsync, rename).

Configured from the environment: BENCH_STORAGE_ROOT, BENCH_WIDTH, BENCH_HEIGHT."""

from __future__ import annotations

import os
from pathlib import Path

from mend_core.imaging import resize_image
from mend_core.storage import FileStorage

MAX_SOURCE_BYTES = 100 * 1024 * 1024  # Mend's defaults
MAX_PIXELS = 100_000_000

_storage = FileStorage(Path(os.environ["BENCH_STORAGE_ROOT"]))
_width = int(os.environ.get("BENCH_WIDTH", "8"))
_height = int(os.environ.get("BENCH_HEIGHT", "8"))


def resize_one(source_bucket: str, source_key: str, dest_bucket: str, dest_key: str) -> dict:
    data = _storage.get(source_bucket, source_key, MAX_SOURCE_BYTES)
    image = resize_image(
        data, width=_width, height=_height, dest_key=dest_key, max_pixels=MAX_PIXELS
    )
    url = _storage.put(dest_bucket, dest_key, image.data, image.content_type)
    return {"output_url": url, "file_size": len(image.data)}


def enqueue_all(send: object, count: int, source: str, dest_bucket: str) -> None:
    """Calls send(source_bucket, source_key, dest_bucket, dest_key) for jobs 0..count-1."""
    bucket, _, key = source.partition("/")
    for i in range(count):
        send(bucket, key, dest_bucket, f"out/{i}.jpg")  # type: ignore[operator]
