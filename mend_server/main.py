"""`mend-server`: the gRPC server, with settings from MEND_* environment variables.
With MEND_SERVER_PROCESSES=N (or --processes N) it runs N processes sharing the port."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import uvloop

from mend_core.logs import configure_logging
from mend_core.settings import Settings
from mend_core.telemetry.exposition import children_metrics
from mend_core.telemetry.tracing import tracing_from_env
from mend_server.server import queue_gauges, serve
from mend_worker.supervisor import Program, Supervisor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mend-server", description=__doc__)
    parser.add_argument("--processes", type=int, help="server processes (MEND_SERVER_PROCESSES)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    processes = args.processes or settings.server_processes
    if processes == 1:
        uvloop.run(serve(settings, tracing_from_env("mend-server")))
        return
    env = dict(os.environ, MEND_SERVER_PROCESSES="1", MEND_GRPC_REUSE_PORT="true")
    with contextlib.ExitStack() as stack:
        if settings.metrics_port is not None:
            # One endpoint for all the processes, served by this supervisor.
            gauges = queue_gauges(settings)
            stack.callback(gauges.close)
            env.update(
                stack.enter_context(
                    children_metrics(settings.metrics_host, settings.metrics_port, gauges)
                )
            )
        programs = [
            Program(f"server-{i + 1}", [sys.executable, sys.argv[0]], env=env, stop_grace=15)
            for i in range(processes)
        ]
        code = Supervisor(programs).run()
    sys.exit(code)


if __name__ == "__main__":
    main()
