"""Builds and runs the gRPC server: JobService, health, reflection, auth, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from typing import Any

import grpc
import redis.exceptions
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, ProcessCollector

from mend.v1 import jobs_pb2
from mend_client.rest_json import message_to_json
from mend_core.job import Job
from mend_core.jobstate.partitions import Partitions, PartitionsMismatch
from mend_core.jobstate.store import JobStore, Quota
from mend_core.jobstate.webhook_queue import WebhookQueues
from mend_core.redis_client import connect
from mend_core.settings import Settings
from mend_core.tasks import cancel_and_wait
from mend_core.telemetry.exposition import MetricsEndpoint, supervised
from mend_core.telemetry.metrics import JobMetrics
from mend_core.telemetry.queue_gauges import QueueGauges
from mend_core.telemetry.tracing import TRACING_OFF, Tracing
from mend_core.validation import Limits
from mend_core.webhook_target import WebhookTargets
from mend_server import convert
from mend_server.auth import Authenticator, AuthInterceptor
from mend_server.call_observers import CallObserver, ObservingInterceptor
from mend_server.feed import ChangeFeed
from mend_server.grpc_metrics import GrpcMetrics
from mend_server.grpc_tracing import GrpcTracing
from mend_server.reflection import enable_reflection
from mend_server.servicer import JobService
from mend_server.servicer import add_to_server as add_job_service
from mend_server.stream_tokens import StreamTokens, derive_secret
from mend_server.tls import server_tls
from mend_server.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)
SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
HEALTH_PROBE_SECONDS = 1.0


def grpc_options(*, reuse_port: bool) -> list[tuple[str, int]]:
    """The server's channel options (the benchmark's no-op ceiling uses them too)."""
    return [
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        # Keep idle WatchJob streams alive through proxies and NAT.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        # Thousands of watchers reconnecting at once (after a restart) must queue, not be
        # refused with CANCELLED (the default allows 1,000 waiting calls).
        ("grpc.server.max_pending_requests", 10_000),
        ("grpc.server.max_pending_requests_hard_limit", 20_000),
        ("grpc.so_reuseport", int(reuse_port)),
    ]


def rest_job_json(job: Job) -> dict[str, Any]:
    """A job as GET /api/v1/jobs/{id} shows it (webhook payloads use the same shape)."""
    return message_to_json(convert.job_to_pb(job))


class MendServer:
    """The gRPC server and what it owns (Redis client, change feed, health reporter)."""

    def __init__(self, settings: Settings, *, tracing: Tracing = TRACING_OFF) -> None:
        if not settings.keys and not settings.auth_disabled:
            raise SystemExit(
                "MEND_API_KEYS is empty: set it (e.g. MEND_API_KEYS=my-key), "
                "or set MEND_AUTH_DISABLED=true to run without authentication"
            )
        self.settings = settings
        # Before anything else starts: a TLS file that is wrong stops the server at once.
        self.tls = server_tls(settings)
        self.redis = connect(settings.redis_url)
        self.partitions = Partitions(settings.partitions)
        self.store = JobStore(
            self.redis,
            self.partitions,
            retention_completed_seconds=settings.retention_completed_seconds,
            retention_failed_seconds=settings.retention_failed_seconds,
            worker_liveness_seconds=settings.lease_seconds * 3,
            quota=Quota(
                max_pending=settings.tenant_max_pending,
                submit_rate=settings.tenant_submit_rate,
                submit_burst=settings.tenant_submit_burst,
            ),
            replicas=settings.submit_replicas,
            replicas_timeout_seconds=settings.submit_replicas_timeout_seconds,
        )
        self.feed = ChangeFeed(self.redis, self.partitions)
        self.health = health.aio.HealthServicer()
        webhook_targets = WebhookTargets(
            allow_private=settings.webhook_allow_private,
            resolve_timeout_seconds=settings.webhook_resolve_timeout_seconds,
        )
        tokens = StreamTokens(
            derive_secret(settings.stream_token_secret, settings.keys),
            settings.stream_token_ttl_seconds,
        )
        # Metrics are always counted (cheap); served when MEND_METRICS_PORT is set, or by
        # the supervisor of several server processes (mend_core.telemetry.exposition).
        self.registry = CollectorRegistry()
        self.metrics = JobMetrics(self.registry)
        self.tracing = tracing
        observers: list[CallObserver] = []
        if settings.metrics_port is not None or supervised():
            observers.append(GrpcMetrics(self.registry))
        if tracing.enabled:
            observers.append(GrpcTracing(tracing))
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if observers:
            interceptors.append(ObservingInterceptor(*observers))
        interceptors.append(
            AuthInterceptor(Authenticator(settings.keys, disabled=settings.auth_disabled), tokens)
        )
        self.server = grpc.aio.server(
            interceptors=interceptors, options=grpc_options(reuse_port=settings.grpc_reuse_port)
        )
        add_job_service(
            JobService(
                self.store,
                self.feed,
                Limits.from_settings(settings),
                settings.bucket_grants(),
                webhook_targets,
                max_request_bytes=settings.max_request_bytes,
                watch_heartbeat_seconds=settings.watch_heartbeat_seconds,
                stream_tokens=tokens,
                metrics=self.metrics,
                tracing=tracing,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        enable_reflection((SERVICE_NAME, health.SERVICE_NAME), self.server)
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        self.port = (
            self.server.add_secure_port(address, self.tls.credentials)
            if self.tls is not None
            else self.server.add_insecure_port(address)
        )
        self.webhooks = WebhookDispatcher(
            self.store,
            WebhookQueues(
                self.redis,
                self.partitions,
                dead_retention_seconds=settings.retention_failed_seconds,
            ).queues,
            settings,
            render_job=rest_job_json,
            consumer=f"server-{os.getpid()}",
            targets=webhook_targets,
            metrics=self.metrics,
        )
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._queue_gauges: QueueGauges | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._partitions_checked = False

    async def start(self) -> None:
        await self._claim_partitions()
        await self.feed.start()
        await self.server.start()
        if self.settings.metrics_port is not None and not supervised():
            self._serve_metrics(self.settings.metrics_port)
        await self._report_health()
        self._tasks = [
            asyncio.create_task(self._probe_redis()),
            asyncio.create_task(self.webhooks.run()),
        ]
        security = self.tls.name if self.tls is not None else "plaintext"
        log.info(
            "mend gRPC server listening on %s:%d (%s)", self.settings.grpc_host, self.port, security
        )

    def _serve_metrics(self, port: int) -> None:
        ProcessCollector(registry=self.registry)
        self._queue_gauges = queue_gauges(self.settings)
        self.registry.register(self._queue_gauges)
        self.metrics_endpoint = MetricsEndpoint(self.settings.metrics_host, port, self.registry)
        log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, port)

    async def _claim_partitions(self) -> None:
        """A deployment keeps the partition count it was created with: checked at start,
        or, when Redis cannot be reached then, once it can (serving nothing before)."""
        try:
            await self.partitions.claim(self.redis)
            self._partitions_checked = True
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("cannot check the partition count in Redis yet: %s", exc)

    async def _report_health(self) -> None:
        if not self._partitions_checked:
            try:
                await self._claim_partitions()
            except PartitionsMismatch as exc:
                log.error("%s", exc)
        ok = self._partitions_checked and await self.store.ping()
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def _probe_redis(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_PROBE_SECONDS)
            await self._report_health()

    async def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING, new calls are refused, running calls get `grace`
        seconds to finish, then the background work stops and connections close."""
        if grace is None:
            grace = self.settings.shutdown_grace_seconds_server
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.webhooks.close()
        await self.feed.close()
        await cancel_and_wait(*self._tasks)
        await self.redis.aclose()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        if self._queue_gauges is not None:
            self._queue_gauges.close()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


def queue_gauges(settings: Settings) -> QueueGauges:
    """The cluster-wide queue figures, for whichever process serves the metrics."""
    return QueueGauges(
        settings.redis_url,
        Partitions(settings.partitions),
        worker_liveness_seconds=settings.lease_seconds * 3,
    )


async def serve(settings: Settings, tracing: Tracing = TRACING_OFF) -> None:
    server = MendServer(settings, tracing=tracing)
    # Before the port opens: a stop signal that comes while starting ends the process
    # cleanly once started, rather than killing it.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start()
    # Everything made while starting (modules, descriptors, the app) lives as long as the
    # process: out of the collector's sight, a burst of calls no longer has the cyclic GC
    # walk it over and over (5-13 % of the server's CPU during a fan-out before).
    gc.freeze()
    await stopping.wait()
    log.info(
        "shutting down: draining calls for up to %.0fs", settings.shutdown_grace_seconds_server
    )
    with contextlib.suppress(asyncio.CancelledError):
        await server.stop()
    tracing.shutdown()
