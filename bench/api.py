"""`python -m bench api`: throughput and latency of Mend's gRPC API against a no-op ceiling.

In one run on one machine it starts a redis-server (AOF on, fsync every second), the real
`mend-server`, the no-op ceiling server (bench/noop_server.py: the same RPCs answered with
a constant, no Redis, no interceptors) and one or more load generator processes
(bench/loadgen.py), all on loopback. Each server runs once per `--server-processes` count
(N processes sharing the port with SO_REUSEPORT; Mend through MEND_SERVER_PROCESSES=N), and
each is compared with the no-op ceiling of the same count. Each scenario is warmed up,
then measured `--runs` times for `--seconds` against each server in turn (rotating which
goes first); the table shows medians, Mend / ceiling, and the goals of issue #2."""

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
    connections_by_process,
    cpu_seconds,
    machine_busy_seconds,
    process_tree,
    python_module,
    start_mend_server,
    tree_cpu_seconds,
    wait_for_listeners,
    wait_for_port,
)
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer

NAME = "api"
MAX_CALLS_PER_RUN = 500_000  # a bound besides --seconds
# Reconnections tried until a multi-process server holds an even share of the
# connections (SO_REUSEPORT hashes them, so 4 connections land 2+2 only 3 times in 8).
BALANCE_ATTEMPTS = 30


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
    "CPU time per call (server: all its processes, supervisor included; Redis), then the\n"
    "share of one core used during the runs by the server, Redis, the load generator(s) and\n"
    "everything else on the machine (others: the noise). Medians. Per-call CPU hardly\n"
    "depends on that noise, calls/s does."
)
KINDS = ("mend", "noop")
LABELS = {"mend": "Mend", "noop": "no-op"}


def target_name(kind: str, processes: int) -> str:
    return f"{kind}x{processes}"


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


def start_noop_server(processes: int) -> tuple[Process, int]:
    port = free_port()
    process = Process(
        "noop-server",
        python_module("bench.noop_server", str(port), "--processes", str(processes)),
    )
    try:
        wait_for_port(process, port)
        if processes > 1:
            wait_for_listeners(process, port, processes)
    except BaseException:
        process.stop()
        raise
    return process, port


class Stack:
    """Everything a measurement needs, started in one go and stopped in reverse: Redis,
    Mend and the no-op server once per process count, the load generators."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.stopping: list[Any] = []
        self.targets = [target_name(k, n) for n in args.server_processes for k in KINDS]
        self.servers: dict[str, Process] = {}
        self.ports: dict[str, int] = {}
        self.processes: dict[str, int] = {}
        try:
            self.redis = self._own(RedisServer())
            for n in args.server_processes:
                for kind in KINDS:
                    name = target_name(kind, n)
                    if kind == "mend":
                        server, port = start_mend_server(self.redis.url, processes=n)
                    else:
                        server, port = start_noop_server(n)
                    self.servers[name], self.ports[name] = self._own(server), port
                    self.processes[name] = n
            self.fleet = self._own(Fleet(args.clients, args.client_uvloop))
            for name in self.targets:
                self.connect(name, args.channels)
        except BaseException:
            self.stop()
            raise

    def server_pids(self, target: str) -> list[int]:
        """The processes that serve calls: the server itself, or the supervisor's children."""
        root, *children = process_tree(self.servers[target].pid)
        return [root] if self.processes[target] == 1 else sorted(children)

    def connections(self, target: str) -> list[int]:
        return connections_by_process(self.server_pids(target), self.ports[target])

    def connect(self, target: str, channels: int) -> None:
        """Connects the load generators; with several server processes, reconnects until
        each process holds an even share of the connections, so that none idles."""
        for _ in range(BALANCE_ATTEMPTS):
            self.fleet.connect(target, self.ports[target], channels)
            split = self.connections(target)
            if self.processes[target] == 1 or max(split) - min(split) <= 1:
                return
        print(f"  {target}: connections stay uneven after {BALANCE_ATTEMPTS} tries: {split}")

    def _own(self, thing: Any) -> Any:
        self.stopping.append(thing)
        return thing

    def stop(self) -> None:
        for thing in reversed(self.stopping):
            thing.stop()


def measure(
    stack: Stack, target: str, scenario: Scenario, seconds: float
) -> dict[str, Any]:
    """One timed run, with the CPU share each process used during it (a server's
    supervisor and all its children count as the server)."""
    server = stack.servers[target].pid

    def cpu_now() -> dict[str, float]:
        return {
            "server": tree_cpu_seconds(server),
            "redis": cpu_seconds(stack.redis.pid),
            "client": sum(map(cpu_seconds, stack.fleet.pids)),
        }

    cpu0 = cpu_now()
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    out = stack.fleet.run(target, scenario.method, scenario.in_flight, seconds)
    wall = time.monotonic() - t0
    cpu = {k: 100 * (v - cpu0[k]) / wall for k, v in cpu_now().items()}
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
        # Connections per server process: SO_REUSEPORT's split of the load.
        "connections": stack.connections(target),
        # CPU time per call hardly depends on what else runs, unlike calls/s.
        "cpu_us_per_call": {
            k: round(cpu[k] * wall * 10_000 / max(out["calls"], 1), 1)
            for k in ("server", "redis", "client")
        },
    }


def profile_mend(stack: Stack, out_dir: Path, seconds: float) -> None:
    """One unrecorded run per scenario with py-spy sampling a Mend server process (of
    the Mend server with the fewest processes)."""
    from bench import profile

    out_dir.mkdir(parents=True, exist_ok=True)
    target = min((t for t in stack.targets if t.startswith("mend")),
                 key=lambda t: stack.processes[t])
    for s in SCENARIOS:
        stacks = out_dir / f"api-{s.rpc}-{s.in_flight}.txt"
        spy = profile.record(stack.server_pids(target)[0], stacks, seconds=seconds)
        time.sleep(0.5)  # let py-spy attach before the load starts
        stack.fleet.run(target, s.method, s.in_flight, seconds + 1)
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
    header = ["RPC", "in flight", "processes", "Mend calls/s", "no-op calls/s", "Mend/no-op",
              "Mend p50 ms", "Mend p99 ms", "no-op p50 ms", "no-op p99 ms", "goal", "met"]
    rows, cpu_rows = [], []
    for s in SCENARIOS:
        for procs, r in results[s.key]["by_processes"].items():
            m, n = r["mend"], r["noop"]
            met = "yes" if s.met(m) else "NO"
            if m["errors"] or n["errors"]:
                met += f" ({m['errors'] + n['errors']} errors)"
            rows.append([
                s.rpc, str(s.in_flight), procs, _fmt_rate(m["calls_per_s"]),
                _fmt_rate(n["calls_per_s"]), f"{r['ratio']:.2f}", _fmt_ms(m["p50_ms"]),
                _fmt_ms(m["p99_ms"]), _fmt_ms(n["p50_ms"]), _fmt_ms(n["p99_ms"]), s.goal, met,
            ])
            for kind in KINDS:
                c, u = r[kind]["cpu_pct"], r[kind]["cpu_us_per_call"]
                cpu_rows.append([s.rpc, str(s.in_flight), LABELS[kind], procs,
                                 f"{u['server']:.0f}", f"{u['redis']:.0f}", f"{c['server']:.0f}",
                                 f"{c['redis']:.0f}", f"{c['client']:.0f}", f"{c['other']:.0f}"])
    cpu_header = ["RPC", "in flight", "server", "processes", "server µs/call", "redis µs/call",
                  "server %", "redis %", "client %", "others %"]
    return header, rows, cpu_header, cpu_rows


def connection_note(results: dict[str, dict[str, Any]]) -> str:
    """How SO_REUSEPORT split the connections among the processes of each server."""
    splits: dict[str, set[str]] = {}
    for r in results.values():
        for procs, by in r["by_processes"].items():
            if procs == "1":
                continue
            for kind in KINDS:
                label = f"{LABELS[kind]} x{procs}"
                splits.setdefault(label, set()).update(
                    "+".join(map(str, run["connections"])) for run in by["runs"][kind]
                )
    return "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in splits.items()) or "-"


def markdown(data: dict[str, Any]) -> str:
    header, rows, cpu_header, cpu_rows = tables(data["results"])
    summary = {
        f"{k} x{procs}": {
            "ratio": v["ratio"],
            **{t: {f: v[t][f] for f in ("calls_per_s", "p50_ms", "p99_ms", "errors")}
               for t in KINDS},
        }
        for k, r in data["results"].items()
        for procs, v in r["by_processes"].items()
    }
    m, st = data["machine"], data["settings"]
    return f"""# API benchmark (gRPC)

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; Python {m['python']}, grpcio {m['grpcio']},
  redis-server {m['redis_server']} (AOF on, appendfsync everysec)
- settings: {st['runs']} runs of {st['seconds']:g} s per server after {st['warmup']:g} s of
  warm-up; server processes: {', '.join(map(str, st['server_processes']))} (Mend with
  MEND_SERVER_PROCESSES=N, the no-op ceiling with as many, sharing the port with
  SO_REUSEPORT); {st['clients']} load generator process(es), {st['channels']} channels each;
  event loop of the servers: uvloop, of the load generators:
  {'uvloop' if st['client_uvloop'] else 'asyncio'}
- connections per server process (SO_REUSEPORT's split, rebalanced by reconnecting):
  {connection_note(data['results'])}
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


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("process counts are at least 1")
    return sorted(set(counts))


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="measured runs per server (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of a run (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up per server (default 2)")
    p.add_argument("--clients", type=int, default=1, help="load generator processes (default 1)")
    p.add_argument("--channels", type=int, default=4,
                   help="gRPC channels per load generator (default 4)")
    p.add_argument("--server-processes", type=_counts, default=[1, 2], metavar="N[,N...]",
                   help="run Mend and the no-op ceiling with each of these process counts "
                        "(default 1,2)")
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
    n_targets = len(KINDS) * len(args.server_processes)
    estimate = len(SCENARIOS) * n_targets * (args.warmup + args.runs * (args.seconds + 0.2))
    print(f"bench api: {len(SCENARIOS)} scenarios x {n_targets} servers x {args.runs} runs "
          f"of {args.seconds:g} s (about {estimate:.0f} s)", flush=True)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    stack = Stack(args)
    targets = stack.targets
    results: dict[str, dict[str, Any]] = {}
    try:
        aof = stack.redis.info("persistence").get("aof_enabled")
        for s in SCENARIOS:
            for t in targets:
                stack.fleet.run(t, s.method, s.in_flight, args.warmup)
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
            for i in range(args.runs):
                # Rotate the order, so that no server always runs first (or after another).
                k = i % len(targets)
                for t in targets[k:] + targets[:k]:
                    runs[t].append(measure(stack, t, s, args.seconds))
                    stack.servers[t].check_alive()
            by_processes: dict[str, dict[str, Any]] = {}
            for procs in args.server_processes:
                mend, noop = target_name("mend", procs), target_name("noop", procs)
                m, n = summarise(runs[mend]), summarise(runs[noop])
                by_processes[str(procs)] = {
                    "met": s.met(m), "ratio": round(m["calls_per_s"] / n["calls_per_s"], 3),
                    "mend": m, "noop": n, "runs": {"mend": runs[mend], "noop": runs[noop]},
                }
                print(f"  {s.key:22} x{procs} Mend {m['calls_per_s']:8,.0f}/s "
                      f"p99 {m['p99_ms']:6.2f} ms {m['cpu_us_per_call']['server']:6.0f} µs | "
                      f"no-op {n['calls_per_s']:8,.0f}/s p99 {n['p99_ms']:6.2f} ms "
                      f"{n['cpu_us_per_call']['server']:6.0f} µs", flush=True)
            results[s.key] = {
                "rpc": s.rpc, "in_flight": s.in_flight, "goal": s.goal,
                "by_processes": by_processes,
            }
        if args.profile:
            profile_mend(stack, args.profile, args.seconds)
    finally:
        stack.stop()

    header, rows, cpu_header, cpu_rows = tables(results)
    print()
    print(report.text_table(header, rows))
    print(f"\n{CPU_NOTE} The machine has {os.cpu_count()} cores.")
    print(report.text_table(cpu_header, cpu_rows))
    print(f"\nconnections per server process: {connection_note(results)}")
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
    errors = sum(
        v[t]["errors"] for r in results.values() for v in r["by_processes"].values() for t in KINDS
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
