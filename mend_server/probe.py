"""Health probes for container health checks: `python -m mend_server.probe [ROLE]`.

  grpc     the gRPC server beside it answers grpc.health.v1 Check SERVING for
           mend.v1.JobService (NOT_SERVING while Redis is down or it is stopping)
  http     the REST gateway beside it answers 200 on /health/ready (Redis and the gRPC
           server reachable)
  worker   a worker of this host registered in Redis lately (its housekeeping loop runs
           and Redis is reachable)

Without ROLE, the role of what PID 1 runs (`mend-server`, `mend-gateway`, `mend-worker`),
so one image-wide HEALTHCHECK fits every entry point. Settings are the process's own
MEND_* variables (the probe runs inside the container); a wildcard bind (0.0.0.0) is
dialled on loopback. Exit 0 when healthy, 1 with the reason on stderr when not, 2 when
the role is unknown. There is no grpc_health_probe binary in the image: this is it."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from mend_core.settings import Settings
from mend_server.addresses import dial_address

TIMEOUT_SECONDS = 3.0
ROLES = {"mend-server": "grpc", "mend-gateway": "http", "mend-worker": "worker"}


class Unhealthy(Exception):
    pass


def role_of(argv: Sequence[str]) -> str | None:
    """The probe for a process's command line: the first Mend entry point named in it
    (`python /usr/local/bin/mend-server ...` is a server)."""
    for arg in argv:
        role = ROLES.get(Path(arg).name)
        if role is not None:
            return role
    return None


def _pid1_argv() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


async def probe_grpc(settings: Settings) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from mend_server.server import SERVICE_NAME
    from mend_server.tls import upstream_credentials, upstream_options

    # The gateway's channel settings: TLS when the server serves TLS (MEND_TLS_CERT), with
    # MEND_TLS_CA as roots and, under mutual TLS, MEND_GATEWAY_TLS_CERT/KEY.
    target = dial_address(settings.grpc_host, settings.grpc_port)
    credentials = upstream_credentials(settings)
    options = upstream_options(settings)
    channel = (
        grpc.aio.secure_channel(target, credentials, options)
        if credentials is not None
        else grpc.aio.insecure_channel(target, options)
    )
    async with channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as err:
            raise Unhealthy(f"gRPC {target}: {err.code().name}: {err.details()}") from None
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        raise Unhealthy(f"gRPC {target}: {SERVICE_NAME} is {status}")


def probe_http(settings: Settings) -> None:
    url = f"http://{dial_address(settings.http_host, settings.http_port)}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            answer.read()
    except urllib.error.HTTPError as err:  # 503 carries the reason
        raise Unhealthy(f"{url}: {err.code} {err.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as err:
        raise Unhealthy(f"{url}: {err}") from None


async def probe_worker(settings: Settings) -> None:
    import redis.exceptions

    from mend_core.jobstate.queue import WorkQueue
    from mend_core.redis_client import connect
    from mend_worker.worker import worker_host

    client = connect(settings.redis_url, shared=False)
    queue = WorkQueue.from_settings(client, settings)
    host = socket.gethostname()
    try:
        # The window the server counts workers live in (three leases); a worker
        # registers every second while its loop runs, busy or idle.
        live = await asyncio.wait_for(
            queue.live_workers(settings.lease_seconds * 3), TIMEOUT_SECONDS
        )
    except (redis.exceptions.RedisError, TimeoutError) as err:
        raise Unhealthy(f"redis: {err or type(err).__name__}") from None
    finally:
        await client.aclose()
    if not any(worker_host(worker) == host for worker in live):
        window = settings.lease_seconds * 3
        raise Unhealthy(f"no worker of host {host} registered in the last {window:g}s")


def check(role: str, settings: Settings) -> None:
    """Raises Unhealthy with the reason."""
    if role == "grpc":
        asyncio.run(probe_grpc(settings))
    elif role == "http":
        probe_http(settings)
    else:
        asyncio.run(probe_worker(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mend_server.probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("role", nargs="?", choices=sorted(set(ROLES.values())))
    args = parser.parse_args(argv)
    role = args.role or role_of(_pid1_argv())
    if role is None:
        print(
            "probe: PID 1 runs no Mend entry point; name the role (grpc, http, worker)",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        check(role, Settings())
    except Unhealthy as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
