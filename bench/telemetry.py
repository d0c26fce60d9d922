"""`python -m bench telemetry`: what metrics and tracing cost the gRPC server.

In one run on one machine: a redis-server (AOF, as `make run`), four `mend-server`s on
it, identical but for their telemetry — `off` (the defaults), `off-2` (the same again: the
noise between two identical servers), `metrics` (MEND_METRICS_PORT set: the gRPC
interceptor and the endpoint; tracing off) and `tracing-1%` (metrics too, plus
OTEL_TRACES_EXPORTER=otlp with OTEL_TRACES_SAMPLER=parentbased_traceidratio at 0.01,
exporting to an OTLP/HTTP sink in this process) — and the api benchmark's load generator
(bench/loadgen.py). Scenarios: SubmitImageResize and GetJob at 100 in flight. Each round
measures every server once, rotating which goes first; the table shows medians over the
rounds, each server's calls/s divided by `off`'s in the same round and `off`'s server CPU
per call divided by the server's (the throughput ratio when the server's CPU is the
bottleneck, steadier than calls/s on a shared machine), each the median of the rounds'
ratios, against the goals of issue 11 (metrics >= 0.95x, tracing at 1% >= 0.9x)."""

from __future__ import annotations

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import report
from bench.api import Fleet, Scenario, measure
from bench.services import Process, start_mend_server
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer

NAME = "telemetry"
SCENARIOS = (Scenario("SubmitImageResize", "submit", 100), Scenario("GetJob", "get", 100))
GOALS = {"metrics": 0.95, "tracing-1%": 0.9}


class OtlpSink:
    """Accepts OTLP/HTTP exports and drops them (what a collector costs is not ours)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def variants(sink: OtlpSink) -> dict[str, dict[str, str]]:
    return {
        "off": {},
        "off-2": {},
        "metrics": {"MEND_METRICS_PORT": str(free_port())},
        "tracing-1%": {
            "MEND_METRICS_PORT": str(free_port()),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        },
    }


class Stack:
    """What bench.api.measure needs: the servers, Redis and the load generators."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.stopping: list[Any] = []
        self.servers: dict[str, Process] = {}
        self.ports: dict[str, int] = {}
        try:
            self.redis = self._own(RedisServer())
            sink = self._own(OtlpSink())
            for name, env in variants(sink).items():
                server, port = start_mend_server(self.redis.url, extra_env=env)
                self.servers[name], self.ports[name] = self._own(server), port
            self.targets = list(self.servers)
            self.fleet = self._own(Fleet(1, uvloop=False))
            for name in self.targets:
                self.fleet.connect(name, self.ports[name], args.channels)
        except BaseException:
            self.stop()
            raise

    def connections(self, target: str) -> list[int]:
        return []

    def _own(self, thing: Any) -> Any:
        self.stopping.append(thing)
        return thing

    def stop(self) -> None:
        for thing in reversed(self.stopping):
            thing.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args)
    results: dict[str, Any] = {}
    try:
        for s in SCENARIOS:
            for t in stack.targets:
                stack.fleet.run(t, s.method, s.in_flight, args.warmup)
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t in stack.targets}
            for i in range(args.rounds):
                k = i % len(stack.targets)
                for t in stack.targets[k:] + stack.targets[:k]:
                    runs[t].append(measure(stack, t, s, args.seconds))  # type: ignore[arg-type]
                    stack.servers[t].check_alive()
            base = [r["calls_per_s"] for r in runs["off"]]
            base_cpu = [r["cpu_us_per_call"]["server"] for r in runs["off"]]
            summary = {}
            for t in stack.targets:
                rates = [r["calls_per_s"] for r in runs[t]]
                cpus = [r["cpu_us_per_call"]["server"] for r in runs[t]]
                summary[t] = {
                    "calls_per_s": report.median(rates),
                    "ratio": report.median([x / b for x, b in zip(rates, base, strict=True)]),
                    "p99_ms": report.median([r["p99_ms"] for r in runs[t]]),
                    "server_us_per_call": report.median(cpus),
                    "cpu_ratio": report.median(
                        [b / x for x, b in zip(cpus, base_cpu, strict=True)]
                    ),
                    "errors": sum(sum(r["errors"].values()) for r in runs[t]),
                    "runs": runs[t],
                }
                print(f"  {s.rpc:18} {t:11} {summary[t]['calls_per_s']:8,.0f}/s "
                      f"x{summary[t]['ratio']:.3f} {summary[t]['server_us_per_call']:6.0f} µs/call "
                      f"x{summary[t]['cpu_ratio']:.3f}",
                      flush=True)
            results[s.rpc] = summary
    finally:
        stack.stop()
    return results


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["RPC", "server", "calls/s (median)", "/ off", "server µs CPU/call",
              "off's µs / this", "p99 ms", "goal", "met (calls/s, CPU)"]
    rows = []
    for rpc, by_target in results.items():
        for t, r in by_target.items():
            goal = GOALS.get(t)
            met = "" if goal is None else ", ".join(
                "yes" if ratio >= goal else "no" for ratio in (r["ratio"], r["cpu_ratio"])
            )
            rows.append([
                rpc, t, f"{r['calls_per_s']:,.0f}", f"{r['ratio']:.3f}",
                f"{r['server_us_per_call']:.0f}", f"{r['cpu_ratio']:.3f}", f"{r['p99_ms']:.1f}",
                "" if goal is None else f">= {goal}", met,
            ])
    return header, rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench telemetry", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=9, help="measured rounds (default 9)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of a run (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up per server (default 2)")
    p.add_argument("--channels", type=int, default=4, help="gRPC channels (default 4)")
    p.add_argument("--no-record", action="store_true", help="do not write bench/results/")
    args = p.parse_args(argv)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = run(args)
    header, rows = table(results)
    print()
    print(report.text_table(header, rows))
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench telemetry", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "settings": vars(args),
        "loadavg_at_start": loadavg,
        "results": results,
    }
    if not args.no_record:
        md = (f"# telemetry\n\n`{data['command']}` — {data['date']}, load average at start "
              f"{loadavg}\n\n{__doc__}\n\n{report.markdown_table(header, rows)}\n")
        json_path, md_path = report.record(NAME, data, md)
        print(f"\nrecorded {md_path} and {json_path.name}")
    errors = sum(r["errors"] for by in results.values() for r in by.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
