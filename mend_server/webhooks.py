"""Webhook delivery. Each server process runs a WebhookDispatcher that takes deliveries
from the queue in Redis (mend_core.jobstate.webhook_queue: the job scripts add one when a job
completes or fails and when a batch finishes), shared with the other processes through one
consumer group, so deliveries never block job processing and survive a process that dies.

Each attempt is a POST with `User-Agent: Mend-Webhook/1.0`, `X-Mend-Delivery` (the same id
on every attempt and replay of one delivery, for receivers to deduplicate on),
`X-Mend-Timestamp` (Unix seconds) and, when a secret is configured,
`X-Mend-Signature: sha256=<hex>` where the hex is HMAC-SHA256(secret, "<timestamp>." + body).
2xx is success. A failed attempt waits in Redis for the next (settings.webhook_retry_seconds);
the last failure, or a target refused at delivery time, ends in the dead letters, which an
operator lists and replays with `mend-admin webhooks`.

The target's host is resolved and checked once per attempt and the POST goes to the
checked addresses with the URL's own Host header and TLS server name, so the HTTP client
never resolves the name again (no DNS-rebinding window)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import redis.exceptions

from mend_core.errors import TargetRefused, UnresolvedHost
from mend_core.job import Job
from mend_core.jobstate.store import JobStore
from mend_core.jobstate.webhook_queue import Delivery, WebhookQueue
from mend_core.settings import Settings
from mend_core.telemetry.metrics import JobMetrics
from mend_core.webhook_target import Target, WebhookTargets

log = logging.getLogger(__name__)

CONCURRENCY = 16
# Due retries moved into the stream per promotion, and the longest a dispatcher waits
# before looking for due retries scheduled by another process.
PROMOTE_BATCH = 100
PROMOTE_POLL_SECONDS = 1.0
USER_AGENT = "Mend-Webhook/1.0"
COLOURS = {"job.completed": 3066993, "job.failed": 15158332, "batch.completed": 3447003}
TITLES = {
    "job.completed": "✅ Job Completed",
    "job.failed": "❌ Job Failed",
    "batch.completed": "📦 Batch Completed",
}

# Renders a job as the REST API shows it, so webhook payloads match GET /api/v1/jobs/{id}.
JobRenderer = Callable[[Job], dict[str, Any]]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _utc(ms: int | None = None) -> str:
    at = dt.datetime.fromtimestamp((ms or time.time() * 1000) / 1000, dt.UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


async def post_pinned(
    http: httpx.AsyncClient, target: Target, body: bytes, headers: Mapping[str, str]
) -> httpx.Response:
    """POSTs to the target's checked addresses, trying the next only when connecting to
    one failed (nothing was sent). The Host header, and for https the TLS server name
    (SNI and certificate check), stay those of the URL."""
    url = httpx.URL(target.url)
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    failure: httpx.TransportError | None = None
    for address in target.addresses:
        try:
            return await http.post(
                url.copy_with(host=str(address)),
                content=body,
                headers=headers,
                extensions=extensions,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc
    assert failure is not None  # a Target has at least one address
    raise failure


class WebhookDispatcher:
    def __init__(
        self,
        store: JobStore,
        queues: Sequence[WebhookQueue],
        settings: Settings,
        render_job: JobRenderer,
        consumer: str,
        targets: WebhookTargets,
        metrics: JobMetrics | None = None,
    ) -> None:
        self._store = store
        # One per partition (mend_core.jobstate.partitions), each read by its own loop: a
        # blocking read names one stream, so one slot of a cluster.
        self._queues = list(queues)
        self._render_job = render_job
        self._consumer = consumer
        self._targets = targets
        self._deliveries = (metrics or JobMetrics()).webhook_deliveries
        self._secret = settings.webhook_secret
        self._retry_seconds = settings.webhook_retry_seconds
        # An attempt holds its entry for at most about the HTTP timeout; entries pending
        # much longer belong to a process that died, and are taken over.
        self._claim_idle_ms = int(max(60.0, 3 * settings.webhook_timeout_seconds) * 1000)
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            # Connect to the checked address itself, not through a proxy from the
            # environment; and no kept-alive connections, which httpx pools by address:
            # one opened for a host's TLS name would carry another host's request.
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._inflight: set[asyncio.Task[None]] = set()
        self._retry_scheduled = [asyncio.Event() for _ in self._queues]
        self._closed = False

    async def run(self) -> None:
        await asyncio.gather(
            *(self._forever(self._read_once, queue) for queue in self._queues),
            *(self._forever(self._promote_once, queue) for queue in self._queues),
        )

    async def _forever(
        self, step: Callable[[WebhookQueue], Awaitable[None]], queue: WebhookQueue
    ) -> None:
        # The consumer group is created on the first NOGROUP answer, so a Redis that is
        # down at start only delays deliveries.
        while not self._closed:
            try:
                await step(queue)
            except asyncio.CancelledError:
                raise
            except redis.exceptions.RedisError as exc:
                if "NOGROUP" in str(exc):  # no stream yet, or it was deleted (FLUSHALL)
                    await queue.create_group()
                    continue
                log.warning("webhook dispatcher: %s; retrying", exc)
                await asyncio.sleep(1)

    async def _read_once(self, queue: WebhookQueue) -> None:
        deliveries = await queue.take(
            self._consumer, CONCURRENCY, block_ms=5000, claim_idle_ms=self._claim_idle_ms
        )
        for delivery in deliveries:
            await self._slots.acquire()
            if self._closed:  # stopping: what was read stays pending, for another process
                self._slots.release()
                return
            task = asyncio.create_task(self._handle(delivery))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _promote_once(self, queue: WebhookQueue) -> None:
        moved, next_due = await queue.promote(PROMOTE_BATCH)
        if moved == PROMOTE_BATCH:
            return  # more may be due already
        wait = PROMOTE_POLL_SECONDS if next_due is None else min(next_due, PROMOTE_POLL_SECONDS)
        scheduled = self._retry_scheduled[queue.partition]
        scheduled.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await scheduled.wait()

    async def _handle(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except asyncio.CancelledError:
            raise  # closing: the entry stays pending and is taken over later
        except redis.exceptions.RedisError as exc:  # likewise: taken over, tried again
            log.warning("webhook %s to %s: %s", delivery.event, delivery.url, exc)
        except Exception as exc:  # a bug must not lose the delivery: keep it for replay
            log.exception("webhook %s to %s failed", delivery.event, delivery.url)
            with contextlib.suppress(redis.exceptions.RedisError):
                queue = self._queues[delivery.partition]
                await queue.bury(delivery, f"internal error: {exc!r}", None)
        finally:
            self._slots.release()

    async def _attempt(self, delivery: Delivery) -> None:
        """One attempt; then the delivery is done, waits for its next attempt, or is
        dead-lettered."""
        body = delivery.body
        if body is None:
            body = await self._render(delivery)
            if body is None:
                await self._bury(delivery, "the job or batch no longer exists", None)
                return
        try:
            problem = await self._send(delivery, await self._targets.resolve(delivery.url), body)
        except UnresolvedHost as exc:
            problem = str(exc)  # perhaps for now: retry
        except TargetRefused as exc:
            await self._bury(delivery, f"refused: {exc}", body)
            return
        if problem is None:
            await self._queues[delivery.partition].delivered(delivery)
            self._deliveries.labels("delivered").inc()
            return
        log.info(
            "webhook %s %s to %s: attempt %d failed: %s",
            delivery.event,
            delivery.delivery_id,
            delivery.url,
            delivery.attempt,
            problem,
        )
        if delivery.attempt <= len(self._retry_seconds):
            delay = self._retry_seconds[delivery.attempt - 1]
            await self._queues[delivery.partition].retry_later(delivery, delay, body)
            self._deliveries.labels("retry").inc()
            self._retry_scheduled[delivery.partition].set()
        else:
            await self._bury(delivery, f"{delivery.attempt} attempts failed; last: {problem}", body)

    async def _send(self, delivery: Delivery, target: Target, body: str) -> str | None:
        """Posts one attempt; None on a 2xx answer, else what went wrong."""
        data = body.encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Mend-Delivery": delivery.delivery_id,
            "X-Mend-Timestamp": timestamp,
        }
        if self._secret:
            headers["X-Mend-Signature"] = sign(self._secret, timestamp, data)
        try:
            response = await post_pinned(self._http, target, data, headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"

    async def _bury(self, delivery: Delivery, error: str, body: str | None) -> None:
        dead = await self._queues[delivery.partition].bury(delivery, error, body)
        self._deliveries.labels("dead").inc()
        log.warning(
            "webhook %s %s to %s dead-lettered as %s: %s",
            delivery.event,
            delivery.delivery_id,
            delivery.url,
            dead,
            error,
        )

    async def _render(self, delivery: Delivery) -> str | None:
        """The payload as JSON, or None when its job or batch expired before delivery."""
        payload = await self._payload(delivery.event, delivery.fields)
        if payload is None:
            return None
        if delivery.fields.get("style") == "discord":
            payload = discord_payload(delivery.event, payload)
        return json.dumps(payload, separators=(",", ":"))

    async def _payload(self, event: str, fields: Mapping[str, str]) -> dict[str, Any] | None:
        now = _utc()
        if event == "batch.completed":
            batch = await self._store.batch(fields["tenant"], fields["batch_id"])
            if batch is None:
                return None
            return {
                "event": event,
                "timestamp": now,
                "batch": {
                    "batch_id": fields["batch_id"],
                    "total_jobs": batch.total,
                    "completed": batch.completed,
                    "failed": batch.failed,
                    "cancelled": batch.cancelled,
                },
            }
        job = await self._store.find(fields["job_id"])
        if job is None:
            return None
        return {"event": event, "timestamp": now, "job": self._render_job(job)}

    async def close(self) -> None:
        self._closed = True
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._http.aclose()


def discord_payload(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Discord embed: title, colour and the fields Job ID / Type / Status."""
    if "job" in payload:
        job = payload["job"]
        fields = [
            {"name": "Job ID", "value": job["id"], "inline": True},
            {"name": "Type", "value": job.get("type", ""), "inline": True},
            {"name": "Status", "value": job.get("status", ""), "inline": True},
        ]
        if job.get("error"):
            fields.append({"name": "Error", "value": job["error"][:1024], "inline": False})
    else:
        batch = payload["batch"]
        fields = [
            {"name": "Batch ID", "value": batch["batch_id"], "inline": True},
            {"name": "Jobs", "value": str(batch["total_jobs"]), "inline": True},
            {"name": "Failed", "value": str(batch["failed"]), "inline": True},
        ]
    embed = {
        "title": TITLES[event],
        "color": COLOURS[event],
        "fields": fields,
        "timestamp": payload["timestamp"],
    }
    return {"username": "Mend", "embeds": [embed]}
