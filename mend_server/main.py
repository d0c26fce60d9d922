"""`mend-server`: the gRPC server, with settings from MEND_* environment variables.
With MEND_SERVER_PROCESSES=N (or --processes N) it runs N processes sharing the port."""

from __future__ import annotations

import argparse
import os
import sys

import uvloop

from mend_core.logs import configure_logging
from mend_core.settings import Settings
from mend_server.server import serve
from mend_worker.supervisor import Program, Supervisor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mend-server", description=__doc__)
    parser.add_argument("--processes", type=int, help="server processes (MEND_SERVER_PROCESSES)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    processes = args.processes or settings.server_processes
    if processes == 1:
        uvloop.run(serve(settings))
        return
    env = dict(os.environ, MEND_SERVER_PROCESSES="1", MEND_GRPC_REUSE_PORT="true")
    programs = [
        Program(f"server-{i + 1}", [sys.executable, sys.argv[0]], env=env, stop_grace=15)
        for i in range(processes)
    ]
    sys.exit(Supervisor(programs).run())


if __name__ == "__main__":
    main()
