"""`mend-gateway`: serves the REST gateway with uvicorn, settings from MEND_* variables.

SIGINT/SIGTERM: open SSE streams are ended first (clients reconnect with Last-Event-ID),
then uvicorn stops accepting, drains requests for up to shutdown_grace_seconds_server, and
the lifespan closes the gRPC channel and the Redis client."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from mend_core.logs import configure_logging
from mend_core.settings import Settings
from mend_core.telemetry.tracing import tracing_from_env
from mend_server.gateway.app import Gateway

log = logging.getLogger("mend_server.gateway")


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gateway.begin_shutdown()
        super().handle_exit(sig, frame)


def build_server(settings: Settings, **options: object) -> GatewayServer:
    gateway = Gateway(settings, **options)  # type: ignore[arg-type]
    config = uvicorn.Config(
        gateway.app,
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        # uvicorn's lines go through the process's own logging setup (mend_core.logs).
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds_server)),
    )
    return GatewayServer(config, gateway)


def main() -> None:
    settings = Settings()
    configure_logging(settings)
    server = build_server(settings, tracing=tracing_from_env("mend-gateway"))
    upstream = server.gateway.upstream
    log.info(
        "mend REST gateway on http://%s:%d (gRPC server %s, %s)",
        settings.http_host,
        settings.http_port,
        upstream.target,
        "TLS" if upstream.credentials is not None else "plaintext",
    )
    # uvicorn re-raises the stop signal once it has shut down; ending here instead makes a
    # graceful stop exit 0 (a signal before uvicorn starts also just ends the process).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    server.run()


def _exit_cleanly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
