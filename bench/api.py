"""`python -m bench api`: throughput and latency of Mend's gRPC API against a no-op ceiling.

In one run on one machine it starts a redis-server (AOF on, fsync every second), the real
`mend-server`, the no-op ceiling server (bench/noop_server.py: the same RPCs answered with
a constant, no Redis, no interceptors) and one or more load generator processes
(bench/loadgen.py), all on loopback. Each scenario is warmed up, then measured `--runs`
times for `--seconds` against each server in turn (alternating which goes first); the
table shows medians, Mend / ceiling, and the goals of issue #2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.services import (
    API_KEY,
    Process,
    RedisServer,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    python_module,
    start_mend_server,
    wait_for_port,
)

NAME = "api"
MAX_CALLS_PER_RUN = 500_000  # a bound besides --seconds


@dataclass(frozen=True)
class Scenario:
    rpc: str
    method: str  # the load generator's name for it
    in_flight: int
    goal_calls_per_s: float | None = None
    goal_p99_ms: float | None = None

    @property
    def key(self) -> str:
        return f"{self.rpc}@{self.in_flight}"

    @property
    def goal(self) -> str:
        if self.goal_calls_per_s is not None:
            return f">= {self.goal_calls_per_s:,.0f}/s"
        return f"p99 < {self.goal_p99_ms:g} ms"

    def met(self, mend: dict[str, float]) -> bool:
        if self.goal_calls_per_s is not None:
            return mend["calls_per_s"] >= self.goal_calls_per_s
        assert self.goal_p99_ms is not None
        return mend["p99_ms"] < self.goal_p99_ms


SCENARIOS = (
    Scenario("SubmitImageResize", "submit", 100, goal_calls_per_s=2_000),
    Scenario("GetJob", "get", 100, goal_calls_per_s=3_000),
    Scenario("GetJob", "get", 10, goal_p99_ms=10),
)
CPU_NOTE = (
    "CPU time per call (server, Redis), then the share of one core used during the runs by\n"
    "the server, Redis, the load generator(s) and everything else on the machine (others:\n"
    "the noise). Medians. Per-call CPU hardly depends on that noise, calls/s does."
)
TARGETS = ("mend", "noop")
LABELS = {"mend": "Mend", "noop": "no-op"}


class LoadGen:
    """One load generator process, spoken to in JSON lines (see bench/loadgen.py)."""

    def __init__(self, uvloop: bool) -> None:
        self.popen = subprocess.Popen(
            python_module("bench.loadgen", uvloop=uvloop),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        self.pid = self.popen.pid

    def send(self, **cmd: Any) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(cmd) + "\n")
        self.popen.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with {self.popen.wait()}")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                self.send(op="quit")
                self.popen.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()


class Fleet:
    """The load generators, driven together: a run's in-flight calls are split among them."""

    def __init__(self, clients: int, uvloop: bool) -> None:
        self.gens = [LoadGen(uvloop) for _ in range(clients)]

    @property
    def pids(self) -> list[int]:
        return [g.pid for g in self.gens]

    def connect(self, target: str, port: int, channels: int) -> None:
        for g in self.gens:
            g.send(op="connect", target=target, address=f"127.0.0.1:{port}",
                   channels=channels, api_key=API_KEY)
        for g in self.gens:
            g.receive()

    def run(self, target: str, method: str, in_flight: int, seconds: float) -> dict[str, Any]:
        n = len(self.gens)
        shares = [in_flight // n + (i < in_flight % n) for i in range(n)]
        for g, share in zip(self.gens, shares, strict=True):
            g.send(op="run", target=target, method=method, concurrency=share,
                   seconds=seconds, max_calls=MAX_CALLS_PER_RUN // n)
        answers = [g.receive() for g in self.gens]
        errors: dict[str, int] = {}
        for a in answers:
            for code, count in a["errors"].items():
                errors[code] = errors.get(code, 0) + count
        return {
            "calls": sum(a["calls"] for a in answers),
            "elapsed": max(a["elapsed"] for a in answers),
            "errors": errors,
            "latencies_us": sorted(x for a in answers for x in a["latencies_us"]),
        }

    def stop(self) -> None:
        for g in self.gens:
            g.stop()


class Stack:
    """Everything a measurement needs, started in one go and stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.stopping: list[Any] = []
        try:
            self.redis = self._own(RedisServer())
            self.mend, mend_port = start_mend_server(self.redis.url, uvloop=args.uvloop)
            self._own(self.mend)
            noop_port = free_port()
            self.noop = self._own(
                Process("noop-server", python_module("bench.noop_server", str(noop_port),
                                                      uvloop=args.uvloop))
            )
            wait_for_port(self.noop, noop_port)
            self.fleet = self._own(Fleet(args.clients, args.client_uvloop))
            self.fleet.connect("mend", mend_port, args.channels)
            self.fleet.connect("noop", noop_port, args.channels)
        except BaseException:
            self.stop()
            raise
        self.servers = {"mend": self.mend, "noop": self.noop}
        self.ports = {"mend": mend_port, "noop": noop_port}

    def _own(self, thing: Any) -> Any:
        self.stopping.append(thing)
        return thing

    def stop(self) -> None:
        for thing in reversed(self.stopping):
            thing.stop()


def measure(
    stack: Stack, target: str, scenario: Scenario, seconds: float
) -> dict[str, Any]:
    """One timed run, with the CPU share each process used during it."""
    pids = {
        "server": [stack.servers[target].pid],
        "redis": [stack.redis.pid],
        "client": stack.fleet.pids,
    }
    cpu0 = {k: sum(map(cpu_seconds, v)) for k, v in pids.items()}
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    out = stack.fleet.run(target, scenario.method, scenario.in_flight, seconds)
    wall = time.monotonic() - t0
    cpu = {k: 100 * (sum(map(cpu_seconds, v)) - cpu0[k]) / wall for k, v in pids.items()}
    # Whatever else ran meanwhile (other people's tests on a shared machine): the noise.
    cpu["other"] = max(0.0, 100 * (machine_busy_seconds() - busy0) / wall - sum(cpu.values()))
    lat = out["latencies_us"]
    return {
        "calls": out["calls"],
        "errors": out["errors"],
        "calls_per_s": out["calls"] / out["elapsed"],
        "p50_ms": report.percentile(lat, 50) / 1000,
        "p90_ms": report.percentile(lat, 90) / 1000,
        "p99_ms": report.percentile(lat, 99) / 1000,
        "max_ms": (lat[-1] if lat else float("nan")) / 1000,
        "cpu_pct": {k: round(v, 1) for k, v in cpu.items()},
        # CPU time per call hardly depends on what else runs, unlike calls/s.
        "cpu_us_per_call": {
            k: round(cpu[k] * wall * 10_000 / max(out["calls"], 1), 1)
            for k in ("server", "redis", "client")
        },
    }


def profile_mend(stack: Stack, out_dir: Path, seconds: float) -> None:
    """One unrecorded run per scenario with py-spy sampling the Mend server."""
    from bench import profile

    out_dir.mkdir(parents=True, exist_ok=True)
    for s in SCENARIOS:
        stacks = out_dir / f"api-{s.rpc}-{s.in_flight}.txt"
        spy = profile.record(stack.mend.pid, seconds, stacks)
        time.sleep(0.5)  # let py-spy attach before the load starts
        stack.fleet.run("mend", s.method, s.in_flight, seconds + 1)
        _, err = spy.communicate()
        if spy.returncode != 0 or not stacks.exists():
            print(f"py-spy failed on {s.key}: {err.decode(errors='replace')[-500:]}")
            continue
        summary = profile.summarise(stacks)
        stacks.with_suffix(".summary.txt").write_text(summary + "\n")
        print(f"\nprofile of Mend's server, {s.key}:\n{summary}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures = ("calls_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    out: dict[str, Any] = {f: round(report.median([r[f] for r in runs]), 3) for f in figures}
    for table in ("cpu_pct", "cpu_us_per_call"):
        out[table] = {
            k: round(report.median([r[table][k] for r in runs]), 1) for k in runs[0][table]
        }
    out["errors"] = sum(sum(r["errors"].values()) for r in runs)
    out["calls"] = sum(r["calls"] for r in runs)
    return out


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_ms(x: float) -> str:
    return f"{x:.2f}"


def tables(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]], list[str],
                                                        list[list[str]]]:
    header = ["RPC", "in flight", "Mend calls/s", "no-op calls/s", "Mend/no-op",
              "Mend p50 ms", "Mend p99 ms", "no-op p50 ms", "no-op p99 ms", "goal", "met"]
    rows, cpu_rows = [], []
    for s in SCENARIOS:
        r = results[s.key]
        m, n = r["mend"], r["noop"]
        met = "yes" if s.met(m) else "NO"
        if m["errors"] or n["errors"]:
            met += f" ({m['errors']} errors)"
        rows.append([
            s.rpc, str(s.in_flight), _fmt_rate(m["calls_per_s"]), _fmt_rate(n["calls_per_s"]),
            f"{r['ratio']:.2f}", _fmt_ms(m["p50_ms"]), _fmt_ms(m["p99_ms"]),
            _fmt_ms(n["p50_ms"]), _fmt_ms(n["p99_ms"]), s.goal, met,
        ])
        for t in TARGETS:
            c, u = r[t]["cpu_pct"], r[t]["cpu_us_per_call"]
            cpu_rows.append([s.rpc, str(s.in_flight), LABELS[t], f"{u['server']:.0f}",
                             f"{u['redis']:.0f}", f"{c['server']:.0f}", f"{c['redis']:.0f}",
                             f"{c['client']:.0f}", f"{c['other']:.0f}"])
    cpu_header = ["RPC", "in flight", "server", "server µs/call", "redis µs/call",
                  "server %", "redis %", "client %", "others %"]
    return header, rows, cpu_header, cpu_rows


def markdown(data: dict[str, Any]) -> str:
    header, rows, cpu_header, cpu_rows = tables(data["results"])
    summary = {
        k: {
            "ratio": v["ratio"],
            **{t: {f: v[t][f] for f in ("calls_per_s", "p50_ms", "p99_ms", "errors")}
               for t in TARGETS},
        }
        for k, v in data["results"].items()
    }
    m, st = data["machine"], data["settings"]
    return f"""# API benchmark (gRPC)

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; Python {m['python']}, grpcio {m['grpcio']},
  redis-server {m['redis_server']} (AOF on, appendfsync everysec)
- settings: {st['runs']} runs of {st['seconds']:g} s per server after {st['warmup']:g} s of
  warm-up; {st['clients']} load generator process(es), {st['channels']} channels each; event
  loop of the servers: {'uvloop' if st['uvloop'] else 'asyncio'}, of the load generators:
  {'uvloop' if st['client_uvloop'] else 'asyncio'}
- load average at start: {data['loadavg_at_start']} (the machine may be shared: see "others %")
- client, servers and Redis share the machine; figures are medians of the runs.

{report.markdown_table(header, rows)}

{CPU_NOTE}

{report.markdown_table(cpu_header, cpu_rows)}

Summary (per-run figures are in `api.json`):

```json
{json.dumps(summary, indent=2)}
```
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="measured runs per server (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of a run (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up per server (default 2)")
    p.add_argument("--clients", type=int, default=1, help="load generator processes (default 1)")
    p.add_argument("--channels", type=int, default=4,
                   help="gRPC channels per load generator (default 4)")
    p.add_argument("--uvloop", action="store_true",
                   help="run both servers on uvloop (pip install -r bench/requirements.txt)")
    p.add_argument("--client-uvloop", action="store_true",
                   help="run the load generators on uvloop")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="after the measured runs, profile the Mend server with py-spy during "
                        "one more run of each scenario; stacks and summaries go to DIR")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/api.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    estimate = len(SCENARIOS) * len(TARGETS) * (args.warmup + args.runs * (args.seconds + 0.2))
    print(f"bench api: {len(SCENARIOS)} scenarios x {len(TARGETS)} servers x {args.runs} runs "
          f"of {args.seconds:g} s (about {estimate:.0f} s)", flush=True)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    stack = Stack(args)
    results: dict[str, dict[str, Any]] = {}
    try:
        aof = stack.redis.info("persistence").get("aof_enabled")
        for s in SCENARIOS:
            for t in TARGETS:
                stack.fleet.run(t, s.method, s.in_flight, args.warmup)
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
            for i in range(args.runs):
                for t in TARGETS if i % 2 == 0 else reversed(TARGETS):
                    runs[t].append(measure(stack, t, s, args.seconds))
                    stack.servers[t].check_alive()
            m, n = summarise(runs["mend"]), summarise(runs["noop"])
            results[s.key] = {
                "rpc": s.rpc, "in_flight": s.in_flight, "goal": s.goal, "met": s.met(m),
                "ratio": round(m["calls_per_s"] / n["calls_per_s"], 3),
                "mend": m, "noop": n, "runs": runs,
            }
            print(f"  {s.key:22} Mend {m['calls_per_s']:8,.0f}/s p99 {m['p99_ms']:6.2f} ms | "
                  f"no-op {n['calls_per_s']:8,.0f}/s p99 {n['p99_ms']:6.2f} ms", flush=True)
        if args.profile:
            profile_mend(stack, args.profile, args.seconds)
    finally:
        stack.stop()

    header, rows, cpu_header, cpu_rows = tables(results)
    print()
    print(report.text_table(header, rows))
    print(f"\n{CPU_NOTE} The machine has {os.cpu_count()} cores.")
    print(report.text_table(cpu_header, cpu_rows))
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench api", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "settings": {**vars(args), "redis_aof_enabled": aof},
        "loadavg_at_start": loadavg,
        "results": results,
    }
    if not args.no_record:
        json_path, md_path = report.record(NAME, data, markdown(data))
        print(f"\nrecorded {md_path} and {json_path.name}")
    errors = sum(r[t]["errors"] for r in results.values() for t in TARGETS)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
