"""The job metrics every Mend process may record, defined once. Bounded labels only: a job
type, a final status, an outcome; never an id or a tenant.

The server records submissions, cancellations and webhook deliveries; the workers record
the rest. Each process makes its own `JobMetrics` in main() (one registry per instance, so
several servers or workers can live in one test process); under a supervisor the values go
to prometheus_client's multiprocess files instead (exposition.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Jobs take from milliseconds (a small resize) to many minutes (a long video).
JOB_SECONDS_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600
)


class JobMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.submitted = Counter(
            "mend_jobs_submitted_total",
            "Jobs accepted by Submit calls (request_id replays excluded), by job type.",
            ["type"],
            registry=self.registry,
        )
        self.finished = Counter(
            "mend_jobs_finished_total",
            "Jobs that reached a final status: completed or failed by a worker, cancelled "
            "by CancelJob; by job type and status.",
            ["type", "status"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "mend_job_processing_seconds",
            "Time a worker spent on one attempt of a job (download, operation, upload), "
            "by job type.",
            ["type"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "mend_job_queue_wait_seconds",
            "Time from submission to the first attempt's start, by job type.",
            ["type"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "mend_job_retries_total",
            "Failed attempts scheduled for another try, by job type.",
            ["type"],
            registry=self.registry,
        )
        self.lease_expiries = Counter(
            "mend_job_lease_expiries_total",
            "Jobs recovered from dead workers (lease expired): requeued, or failed when "
            "out of attempts.",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "mend_webhook_deliveries_total",
            "Webhook delivery attempts by result: delivered, retry (will be tried again), "
            "dead (dead-lettered).",
            ["result"],
            registry=self.registry,
        )
