"""`python -m bench batch`: how many jobs per second SubmitBatch stores, 100 jobs a call.

One run starts, on loopback: a redis-server with AOF on (`appendfsync everysec`), the real
`mend-server` (one process) and the load generator `bench/loadgen.py`, which keeps
`--in-flight` SubmitBatch calls of 100 image_resize jobs in flight over 4 channels. No
workers: the jobs stay pending. Reported: the medians over the runs of jobs stored per
second, the call's p50/p99, and the server's and Redis' CPU time per job.

Issue #13 asks to keep SubmitBatch of 100 jobs at ~13,000 jobs/s (its figure on the machine
the issue was written on; compare machines by the server's CPU per job)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench import report
from bench.api import Fleet
from bench.loadgen import BATCH_JOBS
from bench.services import cpu_seconds, start_mend_server, tree_cpu_seconds
from mend_devkit.redis_server import RedisServer

NAME = "batch"
CHANNELS = 4


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    redis_server = RedisServer()
    server, port = start_mend_server(redis_server.url, extra_env={"MEND_SERVER_PROCESSES": "1"})
    fleet = Fleet(1, False)
    runs = []
    try:
        fleet.connect("mend", port, CHANNELS)
        fleet.run("mend", "batch", args.in_flight, args.warmup)
        for i in range(args.runs):
            server0, redis0 = tree_cpu_seconds(server.pid), cpu_seconds(redis_server.pid)
            out = fleet.run("mend", "batch", args.in_flight, args.seconds)
            jobs = max(out["calls"] * BATCH_JOBS, 1)
            lat = out["latencies_us"]
            r = {
                "jobs_per_s": jobs / out["elapsed"],
                "p50_ms": report.percentile(lat, 50) / 1000,
                "p99_ms": report.percentile(lat, 99) / 1000,
                "server_us_per_job": 1e6 * (tree_cpu_seconds(server.pid) - server0) / jobs,
                "redis_us_per_job": 1e6 * (cpu_seconds(redis_server.pid) - redis0) / jobs,
                "errors": out["errors"],
            }
            print(f"  run {i + 1}: {r['jobs_per_s']:,.0f} jobs/s, server "
                  f"{r['server_us_per_job']:.1f} µs/job, Redis {r['redis_us_per_job']:.1f}",
                  flush=True)
            runs.append(r)
            redis_server.client().flushall()  # the next run starts on an empty Redis
    finally:
        fleet.stop()
        server.stop()
        redis_server.stop()
    return runs


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("jobs_per_s", "p50_ms", "p99_ms", "server_us_per_job", "redis_us_per_job")
    return {k: round(report.median([r[k] for r in runs]), 2) for k in keys}


def markdown(data: dict[str, Any]) -> str:
    s, st = data["results"]["summary"], data["settings"]
    row = [f"{s['jobs_per_s']:,.0f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}",
           f"{s['server_us_per_job']:.1f}", f"{s['redis_us_per_job']:.1f}"]
    return f"""# SubmitBatch benchmark: jobs stored per second, 100 jobs a call

- command: `{data['command']}`
- date: {data['date']}; load average at start: {data['loadavg']}
- machine: nproc {data['machine']['nproc']}; redis-server with AOF (everysec), one
  `mend-server` process, no workers
- {st['in_flight']} calls of {BATCH_JOBS} image_resize jobs in flight; {st['runs']} runs of
  {st['seconds']:g} s after {st['warmup']:g} s of warm-up; medians

{report.markdown_table(
    ["jobs/s", "call p50 ms", "call p99 ms", "server µs CPU/job", "Redis µs CPU/job"], [row])}
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of a run (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up (default 1)")
    p.add_argument("--in-flight", type=int, default=4, help="calls in flight (default 4)")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/batch.*")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    loadavg = os.getloadavg()
    runs = run(args)
    data = report.run_data(NAME, argv, args, loadavg, {}, {"runs": runs, "summary": summary(runs)})
    text = markdown(data)
    print()
    print(text)
    report.save(NAME, data, text, args.no_record)
    return 1 if any(r["errors"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
