"""Dramatiq doing the drain work: Redis broker with its default middleware (acks after
the job, heartbeats that requeue a dead worker's messages, time limits, retries).

Worker: `dramatiq bench.peers.dramatiq_app --processes 2 --threads 1`.
Enqueue: `python -m bench.peers.dramatiq_app COUNT SOURCE_BUCKET/KEY DEST_BUCKET`."""

from __future__ import annotations

import os
import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.peers.work import enqueue_all, resize_one

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_resize")
def resize(source_bucket: str, source_key: str, dest_bucket: str, dest_key: str) -> None:
    resize_one(source_bucket, source_key, dest_bucket, dest_key)


if __name__ == "__main__":
    count, source, dest_bucket = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    enqueue_all(resize.send, count, source, dest_bucket)
