"""GET /health (each dependency's status and latency), /health/live and /health/ready.

/health answers 200 when healthy or degraded (storage unreachable: jobs are still
accepted, they wait or retry) and 503 when unhealthy (Redis or the gRPC server down: no
job can be accepted). /health/ready is the same question for load balancers: 503 and an
"error" when Redis or the gRPC server is down. /health/live is 200 while the process runs.
No key is needed for any of them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse

from mend_core.settings import Settings

CHECK_TIMEOUT_SECONDS = 2.0
# The dependencies without which no job can be accepted.
CRITICAL = ("redis", "grpc")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _version() -> str:
    try:
        return metadata.version("mend-server")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Check:
    ok: bool
    latency_ms: float
    last_check: str
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "healthy" if self.ok else "unhealthy",
            "latency_ms": self.latency_ms,
            "last_check": self.last_check,
        }
        if self.error:
            out["error"] = self.error
        return out


async def _timed(probe: Callable[[], Awaitable[None]]) -> Check:
    started = time.perf_counter()
    error = ""
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        error = f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as exc:  # any failure of a dependency is its status, not ours
        error = str(exc) or type(exc).__name__
    latency = round((time.perf_counter() - started) * 1000, 2)
    return Check(ok=not error, latency_ms=latency, last_check=utc_now(), error=error)


class Health:
    def __init__(self, settings: Settings, redis: Redis, channel: grpc.aio.Channel) -> None:
        self._settings = settings
        self._redis = redis
        self._grpc = health_pb2_grpc.HealthStub(channel)
        # Made at start, not in the first probe: creating a boto3 client can take longer
        # than a probe may.
        self._s3: Any = self._s3_client() if settings.storage == "s3" else None
        self._version = _version()

    def _s3_client(self) -> Any:
        import boto3.session
        from botocore.config import Config

        config = Config(
            connect_timeout=CHECK_TIMEOUT_SECONDS,
            read_timeout=CHECK_TIMEOUT_SECONDS,
            retries={"total_max_attempts": 1},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self._settings.s3_endpoint_url or None,
            region_name=self._settings.s3_region or None,
            config=config,
        )

    async def _redis_probe(self) -> None:
        await self._redis.ping()  # type: ignore[misc]

    async def _grpc_probe(self) -> None:
        try:
            answer = await self._grpc.Check(
                health_pb2.HealthCheckRequest(service="mend.v1.JobService"),
                timeout=CHECK_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            raise RuntimeError(f"{err.code().name}: {err.details()}") from None
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    async def _storage_probe(self) -> None:
        if self._settings.storage == "file":
            root = self._settings.storage_root
            if not root.is_dir():
                raise RuntimeError(f"storage root {root} does not exist")
            if not os.access(root, os.W_OK | os.X_OK):
                raise RuntimeError(f"storage root {root} is not writable")
            return
        await asyncio.to_thread(self._s3_probe)

    def _s3_probe(self) -> None:
        # Blocking boto3, run in a thread with its own short timeouts. An AccessDenied
        # answer still proves the endpoint is up and speaks S3.
        from botocore.exceptions import ClientError

        try:
            self._s3.list_buckets()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "AccessDenied":
                raise

    async def _checks(self, names: tuple[str, ...]) -> dict[str, Check]:
        probes = {
            "redis": self._redis_probe,
            "storage": self._storage_probe,
            "grpc": self._grpc_probe,
        }
        results = await asyncio.gather(*(_timed(probes[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def health(self, request: Request) -> JSONResponse:
        checks = await self._checks(("redis", "storage", "grpc"))
        if not all(checks[n].ok for n in CRITICAL):
            status, code = "unhealthy", 503
        elif not all(c.ok for c in checks.values()):
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        dependencies = {name: check.to_json() for name, check in checks.items()}
        dependencies["storage"]["backend"] = self._settings.storage
        body = {
            "status": status,
            "version": self._version,
            "timestamp": utc_now(),
            "dependencies": dependencies,
        }
        return JSONResponse(body, status_code=code)

    async def ready(self, request: Request) -> JSONResponse:
        checks = await self._checks(CRITICAL)
        down = {n: c for n, c in checks.items() if not c.ok}
        if down:
            error = "; ".join(f"{n} is unavailable: {c.error}" for n, c in down.items())
            return JSONResponse(
                {"status": "not_ready", "error": error, "code": "UNAVAILABLE"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()
