"""Queue gauges read from Redis when Prometheus scrapes: cluster-wide figures, so every
server replica reports the same ones. Read at most once per `cache_seconds`, so that
several scrapers (or a scrape per replica) cost Redis one small pipeline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import redis
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.store import _counts_by_type as counts_by_type
from mend_core.jobstate.store import _sum_hashes as sum_hashes
from mend_core.redis_client import connect_sync

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
# The states a job waits or runs in: the queue's depth. Finished jobs are counted by
# mend_jobs_finished_total.
DEPTH_STATES = ("pending", "processing")


class QueueGauges(Collector):
    """A custom collector: prometheus_client calls collect() on each scrape, from the
    metrics endpoint's thread, hence the synchronous Redis client."""

    def __init__(
        self,
        redis_url: str,
        parts: Partitions,
        *,
        worker_liveness_seconds: float,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._redis = connect_sync(redis_url, timeout=2.0)
        self._parts = parts
        self._liveness_ms = int(worker_liveness_seconds * 1000)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._cache_seconds:
                self._families = self._read()
                self._read_at = time.monotonic()
            return iter(self._families)

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "mend_queue_stats_up", "1 when the last read of the queue figures from Redis worked."
        )
        try:
            now_ms = int(time.time() * 1000)
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcount(self._parts.workers, now_ms - self._liveness_ms, "+inf")
                for keys in self._parts.keys:  # the partitions' figures, summed
                    pipe.hgetall(keys.stats)
                    pipe.zcard(keys.scheduled)
                workers, *rest = pipe.execute()
            counters = sum_hashes(rest[0::2])
            scheduled = sum(int(n) for n in rest[1::2])
        except redis.RedisError as exc:
            log.warning("queue metrics: cannot read Redis: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        depth = GaugeMetricFamily(
            "mend_queue_jobs",
            "Jobs waiting (pending, including scheduled retries) or running (processing), "
            "by state and job type; all tenants.",
            labels=["state", "type"],
        )
        for job_type, counts in sorted(counts_by_type(counters).items()):
            for state in DEPTH_STATES:
                depth.add_metric([state, job_type], getattr(counts, state))
        return [
            up,
            depth,
            GaugeMetricFamily(
                "mend_queue_scheduled_jobs",
                "Pending jobs waiting for a retry backoff to elapse.",
                value=int(scheduled),
            ),
            GaugeMetricFamily(
                "mend_workers",
                "Worker processes that announced themselves within the liveness window.",
                value=int(workers),
            ),
        ]

    def close(self) -> None:
        self._redis.close()

