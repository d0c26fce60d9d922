"""`python -m bench [NAME [options]]`: runs one benchmark, or every one in turn.

A benchmark is a module of this package with `main(argv: list[str]) -> int`; adding one
is one line in BENCHMARKS."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "api": "bench.api",  # gRPC API throughput and latency against a no-op ceiling
    "batch": "bench.batch",  # SubmitBatch of 100 jobs: jobs stored per second
    "resize": "bench.resize",  # resize throughput per core against libvips
    "drain": "bench.drain",  # queue drain rate against Celery and Dramatiq
    "stack": "bench.stack",  # the whole stack on 40 12 MP photos against plain Pillow
    "pickup": "bench.pickup",  # idle-worker pickup latency, recovery after SIGKILL
    "watch": "bench.watch",  # WatchJob delivery latency with 1,000 streams on one server
    "gateway": "bench.gateway",  # REST gateway vs gRPC: submit/get throughput, SSE fan-out
    "redispy": "bench.redispy",  # client CPU per Redis command, by redis-py version
    "telemetry": "bench.telemetry",  # metrics and tracing cost: Submit, GetJob calls/s
    "media": "bench.media",  # video/thumbnail and audio/convert against the ffmpeg CLI
    "optimize": "bench.optimize",  # image/optimize to WebP and AVIF against libvips
    "colors": "bench.colors",  # image/colors against colorthief
    "memory": "bench.memory",  # Redis bytes per finished job against Celery's results
    "cluster": "bench.cluster",  # Redis Cluster spread, cost of partitions, 1M pending jobs
    "latency": "bench.latency",  # submit -> completed seen by WatchJob, hot and idle, vs the floor
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS), "(`python -m bench NAME --help` for options)")
        return 0
    if argv:
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        return int(importlib.import_module(BENCHMARKS[name]).main(rest))
    failed = []
    for name, module in BENCHMARKS.items():
        print(f"\n=== bench {name} ===", flush=True)
        if importlib.import_module(module).main([]) != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
