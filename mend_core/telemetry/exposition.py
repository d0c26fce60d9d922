"""Serving metrics: one HTTP endpoint per process kind and host.

A process that runs alone serves its own registry. Processes under a supervisor (the
workers of a `mend-worker` host, `mend-server --processes N`) use prometheus_client's
multiprocess mode: each writes its values to files in a directory the supervisor made
(PROMETHEUS_MULTIPROC_DIR, set in the children's environment) and the supervisor alone
serves their sum. Chosen over the supervisor scraping each child because the counts of a
child that died and was replaced stay in the sum (its files remain), so counters never
go backwards, and no child needs a port of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def supervised() -> bool:
    """True in a child whose supervisor serves the metrics (prometheus_client reads the
    same variable when it starts, to write values to files)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class MetricsEndpoint:
    """GET /metrics (any path, as prometheus_client serves it) on host:port, from a
    daemon thread; port 0 picks a free port (see `.port`)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def children_metrics(host: str, port: int, *extra: Collector) -> Iterator[dict[str, str]]:
    """For a supervisor: makes the children's metrics directory, serves the sum of their
    values (and `extra` collectors) on host:port while the block runs, and yields the
    environment entries the children need."""
    path = Path(tempfile.mkdtemp(prefix="mend-metrics-"))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    for collector in extra:
        registry.register(collector)
    endpoint = MetricsEndpoint(host, port, registry)
    try:
        yield {MULTIPROC_ENV: str(path)}
    finally:
        endpoint.close()
        shutil.rmtree(path, ignore_errors=True)
