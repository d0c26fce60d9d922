"""Celery doing the drain work: Redis broker, acks_late (a job whose worker dies is
redelivered, as with Mend's leases), results in Redis unless BENCH_CELERY_RESULTS=0.

Worker: `celery -A bench.peers.celery_app worker --concurrency 2 -P prefork`.
Enqueue: `python -m bench.peers.celery_app COUNT SOURCE_BUCKET/KEY DEST_BUCKET`."""

from __future__ import annotations

import os
import sys

from celery import Celery

from bench.peers.work import enqueue_all, resize_one

_redis = os.environ["BENCH_REDIS_URL"]
_results = os.environ.get("BENCH_CELERY_RESULTS", "1") == "1"

app = Celery("mendbench", broker=_redis, backend=_redis if _results else None)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=not _results,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.resize")
def resize(source_bucket: str, source_key: str, dest_bucket: str, dest_key: str) -> dict:
    return resize_one(source_bucket, source_key, dest_bucket, dest_key)


if __name__ == "__main__":
    count, source, dest_bucket = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    enqueue_all(lambda *a: resize.apply_async(a), count, source, dest_bucket)
