"""Webhook delivery. The job scripts queue a delivery in the stream `mend:{jobs}:webhooks`
whenever a job completes or fails and when a batch finishes; each server process runs a
WebhookDispatcher that reads it through one consumer group, so deliveries are shared, never
block job processing, and survive a process that dies mid-delivery (its entries are
claimed again after CLAIM_IDLE_MS).

Each delivery is a POST with `User-Agent: Mend-Webhook/1.0`, `X-Mend-Timestamp` (Unix
seconds) and, when a secret is configured, `X-Mend-Signature: sha256=<hex>` where the hex is
HMAC-SHA256(secret, "<timestamp>." + body). Up to max_attempts tries with exponential
backoff; 2xx is success."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis.exceptions
from redis.asyncio import Redis

from mend_core.job import Job
from mend_core.keys import Keys
from mend_core.settings import Settings

log = logging.getLogger(__name__)

GROUP = "webhooks"
CLAIM_IDLE_MS = 60_000
CONCURRENCY = 16
USER_AGENT = "Mend-Webhook/1.0"
COLOURS = {"job.completed": 3066993, "job.failed": 15158332, "batch.completed": 3447003}
TITLES = {
    "job.completed": "✅ Job Completed",
    "job.failed": "❌ Job Failed",
    "batch.completed": "📦 Batch Completed",
}

# Renders a job as the REST API shows it, so webhook payloads match GET /api/v1/jobs/{id}.
JobRenderer = Callable[[Job], dict[str, Any]]


class RefusedTarget(Exception):
    pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _utc(ms: int | None = None) -> str:
    at = dt.datetime.fromtimestamp((ms or time.time() * 1000) / 1000, dt.UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


async def check_target(url: str, allow_private: bool) -> None:
    """Refuses targets that resolve to private, loopback, link-local or reserved addresses
    (unless allowed), so a webhook cannot be aimed at the service's own network."""
    if allow_private:
        return
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise RefusedTarget(f"{host} resolves to non-public address {address}")


class WebhookDispatcher:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        render_job: JobRenderer,
        consumer: str,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._stream = keys.webhooks
        self._render_job = render_job
        self._consumer = consumer
        self._secret = settings.webhook_secret
        self._attempts = settings.webhook_max_attempts
        self._allow_private = settings.webhook_allow_private
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False
        # Base of the exponential backoff between attempts (1 s, 2 s, 4 s ...).
        self.backoff_seconds = 1.0

    async def _create_group(self) -> None:
        with contextlib.suppress(redis.exceptions.ResponseError):  # BUSYGROUP: exists
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)

    async def run(self) -> None:
        # The consumer group is created on the first NOGROUP answer, so a Redis that is
        # down at start only delays deliveries.
        while not self._closed:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except redis.exceptions.RedisError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted (FLUSHALL, by hand)
                    await self._create_group()
                    continue
                log.warning("webhook dispatcher: %s; retrying", exc)
                await asyncio.sleep(1)

    async def _read_once(self) -> None:
        # Entries another process took and never acknowledged (it died) come first.
        _, claimed, _ = await self._redis.xautoclaim(
            self._stream, GROUP, self._consumer, CLAIM_IDLE_MS, count=CONCURRENCY
        )
        entries = list(claimed)
        if not entries:
            read = await self._redis.xreadgroup(
                GROUP, self._consumer, {self._stream: ">"}, count=CONCURRENCY, block=5000
            )
            entries = [entry for _, batch in read for entry in batch]
        for entry_id, fields in entries:
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver_and_ack(entry_id, fields))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _deliver_and_ack(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            await self.deliver(fields)
        except Exception as exc:  # never let one bad delivery stop the others
            log.warning("webhook %s to %s dropped: %s", fields.get("event"), fields.get("url"), exc)
        finally:
            self._slots.release()
            with contextlib.suppress(redis.exceptions.RedisError):
                await self._redis.xack(self._stream, GROUP, entry_id)
                await self._redis.xdel(self._stream, entry_id)

    async def deliver(self, fields: dict[str, str]) -> bool:
        """Posts one webhook, retrying with backoff; True once a 2xx answer came back."""
        url, event = fields["url"], fields["event"]
        payload = await self._payload(event, fields)
        if payload is None:
            return False  # the job or batch expired before delivery
        if fields.get("style") == "discord":
            payload = discord_payload(event, payload)
        await check_target(url, self._allow_private)
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Mend-Timestamp": timestamp}
            if self._secret:
                headers["X-Mend-Signature"] = sign(self._secret, timestamp, body)
            try:
                response = await self._http.post(url, content=body, headers=headers)
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.info("webhook %s to %s: attempt %d failed: %s", event, url, attempt, problem)
            if attempt < self._attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        return False

    async def _payload(self, event: str, fields: dict[str, str]) -> dict[str, Any] | None:
        now = _utc()
        if event == "batch.completed":
            batch = await self._redis.hgetall(  # type: ignore[misc]
                self._keys.batch(fields["tenant"], fields["batch_id"])
            )
            if not batch:
                return None
            counts = {k: int(batch.get(k, 0)) for k in ("completed", "failed", "cancelled")}
            return {
                "event": event,
                "timestamp": now,
                "batch": {
                    "batch_id": fields["batch_id"],
                    "total_jobs": int(batch["total"]),
                    **counts,
                },
            }
        job_fields = await self._redis.hgetall(self._keys.job(fields["job_id"]))  # type: ignore[misc]
        if not job_fields:
            return None
        return {
            "event": event,
            "timestamp": now,
            "job": self._render_job(Job.from_fields(job_fields)),
        }

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
