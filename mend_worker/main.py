"""`mend-worker`: runs MEND_WORKERS worker processes (one per CPU core by default) and
replaces any that dies. `--single` runs one worker in this process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop
from redis import exceptions as redis_errors

from mend_core.jobstate.queue import WorkQueue
from mend_core.logs import configure_logging
from mend_core.redis_client import connect
from mend_core.settings import Settings
from mend_core.telemetry.exposition import MetricsEndpoint, children_metrics, supervised
from mend_core.telemetry.metrics import JobMetrics
from mend_core.telemetry.tracing import tracing_from_env
from mend_worker.executor import ChildExecutor, child_main
from mend_worker.supervisor import Program, Supervisor
from mend_worker.worker import Worker


def self_command() -> list[str]:
    """How to start this program again, keeping `mend-worker` in the command line so
    operators find every worker process with `ps`."""
    script = Path(sys.executable).with_name("mend-worker")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "mend_worker"]


async def run_worker(settings: Settings) -> None:
    redis = connect(settings.redis_url, shared=False)
    queue = WorkQueue.from_settings(redis, settings)
    # A deployment keeps the partition count it was created with (checked once Redis answers).
    while True:
        try:
            await queue.partitions.claim(redis)
            break
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            logging.getLogger(__name__).warning("redis unavailable (%s); retrying in 1s", exc)
            await asyncio.sleep(1)
    metrics = JobMetrics()
    endpoint = None
    if settings.worker_metrics_port is not None and not supervised():
        # A worker on its own (`--single`) serves its own metrics.
        endpoint = MetricsEndpoint(
            settings.metrics_host, settings.worker_metrics_port, metrics.registry
        )
    tracing = tracing_from_env("mend-worker")
    worker = Worker(
        settings,
        queue,
        ChildExecutor(settings, self_command()),
        metrics=metrics,
        tracing=tracing,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    logging.getLogger(__name__).info("worker %s started", worker.worker_id)
    try:
        await worker.run()
    finally:
        await redis.aclose()
        tracing.shutdown()
        if endpoint is not None:
            endpoint.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mend-worker", description=__doc__)
    parser.add_argument("--processes", type=int, help="worker processes (default MEND_WORKERS)")
    parser.add_argument("--single", action="store_true", help="run one worker in this process")
    parser.add_argument("--executor-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.executor_fd is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent worker decides when to stop
        child_main(args.executor_fd)
        return
    settings = Settings()
    configure_logging(settings)
    if args.single:
        uvloop.run(run_worker(settings))
        return
    count = args.processes or settings.workers
    grace = settings.shutdown_grace_seconds + 5
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if settings.worker_metrics_port is not None:
            # One endpoint for all this host's workers, served by this supervisor.
            env.update(
                stack.enter_context(
                    children_metrics(settings.metrics_host, settings.worker_metrics_port)
                )
            )
        programs = [
            Program(f"worker-{i + 1}", [*self_command(), "--single"], env=env, stop_grace=grace)
            for i in range(count)
        ]
        code = Supervisor(programs).run()
    sys.exit(code)


if __name__ == "__main__":
    main()
