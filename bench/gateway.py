"""`python -m bench gateway`: the REST gateway's overhead against gRPC, in the same run.

One run starts, on loopback: a redis-server (AOF on, fsync every second), one `mend-server`
process and one `mend-gateway` process in front of it. Every REST figure has its gRPC
counterpart measured on that same server, alternating which goes first:

1. Unary calls: POST /api/v1/jobs/image/resize against SubmitImageResize, and
   GET /api/v1/jobs/{id} against GetJob (pending jobs), N in flight. REST load comes from
   bench/gateway_load.py (HTTP/1.1 keep-alive, a pool of --connections, a raw asyncio
   client by default), gRPC load from bench/loadgen.py (as `bench api`), each a process of
   its own. Reported: calls/s, p50/p99 (medians of --runs runs), REST/gRPC, and the CPU time
   per call of the gateway, the server, Redis and the load generator, from /proc.
2. SSE fan-out: N streams of GET /api/v1/jobs/{id}/stream held through the gateway
   (bench/gateway_sse.py, one connection per stream) against N WatchJob streams held by
   bench/watch.py's watcher processes. The benchmark process plays the workers with
   WorkQueue (claim -> progress -> complete; bench.watch.drive, at a fixed pace) and each
   delivery's latency is measured from just before the transition's call, and from the
   job's updated_at (Redis TIME in the script, ms; for SSE read back from the job's event
   log), to the client holding the event. A bare pub/sub subscriber gives the floor.

SSE runs first, on an empty queue (the driver claims whatever is pending); the unary
scenarios then leave their jobs pending."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import profile, report, watch
from bench.api import Fleet, LoadGen
from bench.services import (
    API_KEY,
    BIN,
    ROOT,
    Process,
    cpu_seconds,
    machine_busy_seconds,
    partitions,
    python_module,
    start_mend_server,
    wait_for_port,
)
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer

NAME = "gateway"
MAX_CALLS_PER_RUN = 500_000  # a bound besides --seconds
READY_TIMEOUT = 180.0
ROUND_TIMEOUT = 180.0
SETTLE_MAX_SECONDS = 15.0
LABELS = {"rest": "REST", "httpx": "REST (httpx)", "grpc": "gRPC"}


# --- processes ---------------------------------------------------------------------------


def start_gateway(redis_url: str, grpc_port: int) -> tuple[Process, int]:
    """The real `mend-gateway` (its console script) on a free port, in front of grpc_port."""
    port = free_port()
    env = {
        **os.environ,
        "MEND_REDIS_URL": redis_url,
        "MEND_GRPC_HOST": "127.0.0.1",
        "MEND_GRPC_PORT": str(grpc_port),
        "MEND_HTTP_HOST": "127.0.0.1",
        "MEND_HTTP_PORT": str(port),
        "MEND_API_KEYS": API_KEY,
    }
    process = Process("mend-gateway", [str(BIN / "mend-gateway")], env=env)
    wait_for_port(process, port)
    return process, port


class HttpLoadGen(LoadGen):
    """bench/gateway_load.py, spoken to like bench/loadgen.py."""

    def __init__(self, client: str) -> None:
        self.popen = subprocess.Popen(
            python_module("bench.gateway_load", "--client", client),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        self.pid = self.popen.pid


class HttpFleet(Fleet):
    def __init__(self, client: str) -> None:
        self.gens = [HttpLoadGen(client)]


class SseChild(watch.Child):
    """bench/gateway_sse.py, spoken to like bench/watch.py's watcher."""

    def __init__(self, port: int) -> None:
        self.popen = subprocess.Popen(
            python_module("bench.gateway_sse", "127.0.0.1", str(port), API_KEY),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


class Stack:
    def __init__(self) -> None:
        self.stopping: list[Any] = []
        try:
            self.redis = self._own(RedisServer())
            # One server process: its CPU is that of one /proc entry.
            self.server, self.grpc_port = start_mend_server(
                self.redis.url, extra_env={"MEND_SERVER_PROCESSES": "1"}
            )
            self._own(self.server)
            self.gateway, self.http_port = start_gateway(self.redis.url, self.grpc_port)
            self._own(self.gateway)
        except BaseException:
            self.stop()
            raise

    def _own(self, thing: Any) -> Any:
        self.stopping.append(thing)
        return thing

    def check_alive(self) -> None:
        self.server.check_alive()
        self.gateway.check_alive()

    def stop(self) -> None:
        for thing in reversed(self.stopping):
            thing.stop()


def cpu_of(pids: list[int]) -> float:
    return sum(map(cpu_seconds, pids))


# --- 1. unary calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class Unary:
    route: str
    rpc: str
    method: str  # the load generators' name for it
    in_flight: int

    @property
    def key(self) -> str:
        return f"{self.method}@{self.in_flight}"


def unary_scenarios(in_flight: int) -> tuple[Unary, ...]:
    return (
        Unary("POST /api/v1/jobs/image/resize", "SubmitImageResize", "submit", in_flight),
        Unary("GET /api/v1/jobs/{id}", "GetJob", "get", in_flight),
        Unary("GET /api/v1/jobs/{id}", "GetJob", "get", 10),
    )


def measure(stack: Stack, fleet: Fleet, target: str, s: Unary, seconds: float) -> dict[str, Any]:
    """One timed run, with the CPU each process used during it."""
    pids = {
        "gateway": [stack.gateway.pid],
        "server": [stack.server.pid],
        "redis": [stack.redis.pid],
        "client": fleet.pids,
    }
    cpu0 = {k: cpu_of(v) for k, v in pids.items()}
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    out = fleet.run(target, s.method, s.in_flight, seconds)
    wall = time.monotonic() - t0
    cpu = {k: cpu_of(v) - cpu0[k] for k, v in pids.items()}
    # Whatever else ran meanwhile (other people's tests on a shared machine): the noise.
    cpu["others"] = max(0.0, machine_busy_seconds() - busy0 - sum(cpu.values()))
    lat, calls = out["latencies_us"], out["calls"]
    return {
        "calls": calls,
        "errors": out["errors"],
        "calls_per_s": calls / out["elapsed"],
        "p50_ms": report.percentile(lat, 50) / 1000,
        "p99_ms": report.percentile(lat, 99) / 1000,
        "max_ms": (lat[-1] if lat else float("nan")) / 1000,
        "cpu_pct": {k: round(100 * v / wall, 1) for k, v in cpu.items()},
        # CPU time per call hardly depends on what else runs, unlike calls/s.
        "cpu_us_per_call": {
            k: round(1e6 * v / max(calls, 1), 1) for k, v in cpu.items() if k != "others"
        },
    }


def summarise_unary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        f: round(report.median([r[f] for r in runs]), 3)
        for f in ("calls_per_s", "p50_ms", "p99_ms", "max_ms")
    }
    for table in ("cpu_pct", "cpu_us_per_call"):
        out[table] = {k: round(report.median([r[table][k] for r in runs]), 1)
                      for k in runs[0][table]}
    out["errors"] = sum(sum(r["errors"].values()) for r in runs)
    out["calls"] = sum(r["calls"] for r in runs)
    return out


def run_unary(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    fleets: dict[str, Fleet] = {}
    try:
        grpc_fleet = Fleet(1, False)
        fleets["grpc"] = grpc_fleet
        grpc_fleet.connect("grpc", stack.grpc_port, args.channels)
        for client in args.http_clients:
            target = "rest" if client == "raw" else "httpx"
            fleets[target] = HttpFleet(client)
            fleets[target].connect(target, stack.http_port, args.connections)
        results: dict[str, Any] = {}
        for s in unary_scenarios(args.in_flight):
            for t, fleet in fleets.items():
                fleet.run(t, s.method, s.in_flight, args.warmup)
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t in fleets}
            order = list(fleets)
            for i in range(args.runs):
                for t in order[i % len(order):] + order[: i % len(order)]:  # rotate
                    runs[t].append(measure(stack, fleets[t], t, s, args.seconds))
                    stack.check_alive()
            summary = {t: summarise_unary(r) for t, r in runs.items()}
            g = summary["grpc"]
            for t in fleets:
                if t != "grpc":
                    summary[t]["ratio"] = round(summary[t]["calls_per_s"] / g["calls_per_s"], 3)
            results[s.key] = {**asdict(s), **summary, "runs": runs}
            r = summary["rest" if "rest" in summary else "httpx"]
            print(f"  {s.key:10} REST {r['calls_per_s']:7,.0f}/s p99 {r['p99_ms']:7.2f} ms | "
                  f"gRPC {g['calls_per_s']:7,.0f}/s p99 {g['p99_ms']:7.2f} ms | "
                  f"gateway {r['cpu_us_per_call']['gateway']:5.0f} µs CPU/call", flush=True)
        if args.profile:
            profile_gateway(stack, fleets["rest" if "rest" in fleets else "httpx"],
                            "rest" if "rest" in fleets else "httpx", args)
        return results
    finally:
        for fleet in fleets.values():
            fleet.stop()


# Layers of the gateway a sample can be under, outermost first; a sample counts for every
# layer it is under ("under it %"), and is charged to the innermost one ("charged %").
LAYERS = (
    ("uvicorn + h11 (HTTP/1.1)", re.compile(r"\((uvicorn|h11)/")),
    ("starlette", re.compile(r"\(starlette/")),
    # main.py is the root of every stack, not work of its own.
    ("gateway code", re.compile(r"\(mend_server/gateway/(?!main\.py)")),
    ("json", re.compile(r"\(json/|\(_json\.")),
    ("protobuf", re.compile(r"\(google/|_upb|protobuf")),
    ("grpc", re.compile(r"\(grpc[\w]*/|\(src/python/grpcio|cygrpc")),
    ("event loop", re.compile(r"\(asyncio/|uvloop|_asynciomodule")),
)


def layer_summary(path: Path) -> str:
    """Where the gateway's CPU goes, by layer (py-spy raw stacks, idle samples dropped)."""
    under: dict[str, int] = {name: 0 for name, _ in LAYERS}
    charged: dict[str, int] = {name: 0 for name, _ in LAYERS} | {"other": 0}
    total = 0
    for frames, n in profile.busy_stacks(path):
        total += n
        hit = [name for name, pattern in LAYERS if any(pattern.search(f) for f in frames)]
        for name in hit:
            under[name] += n
        innermost = "other"
        for f in reversed(frames):
            innermost = next((name for name, pattern in LAYERS if pattern.search(f)), "")
            if innermost:
                break
        charged[innermost or "other"] += n
    if not total:
        return f"{path}: no samples"
    rows = [[name, f"{100 * charged[name] / total:.1f}", f"{100 * under.get(name, 0) / total:.1f}"]
            for name in charged]
    return f"{path.name}: {total} busy samples\n" + report.text_table(
        ["layer", "charged %", "under it %"], rows)


def profile_gateway(stack: Stack, fleet: Fleet, target: str, args: argparse.Namespace) -> None:
    """One unrecorded REST run per scenario with py-spy sampling the gateway."""
    args.profile.mkdir(parents=True, exist_ok=True)
    for s in unary_scenarios(args.in_flight):
        stacks = args.profile / f"gateway-{s.method}-{s.in_flight}.txt"
        # Python frames only: with native ones py-spy charged ~40 % of the gateway's
        # samples to write(2) while /proc showed its system time at ~10 %.
        spy = profile.record(stack.gateway.pid, stacks, seconds=args.seconds, native=False)
        time.sleep(0.5)  # let py-spy attach before the load starts
        fleet.run(target, s.method, s.in_flight, args.seconds + 1)
        _, err = spy.communicate()
        if spy.returncode != 0 or not stacks.exists():
            print(f"py-spy failed on {s.key}: {err.decode(errors='replace')[-500:]}")
            continue
        print_profile(stacks, f"{s.route} at {s.in_flight} in flight")


def print_profile(stacks: Path, what: str) -> None:
    if not stacks.exists():
        print(f"py-spy recorded nothing for {what}")
        return
    summary = layer_summary(stacks) + "\n\n" + profile.summarise(stacks)
    stacks.with_suffix(".summary.txt").write_text(summary + "\n")
    print(f"\nprofile of the gateway, {what}:\n{summary}", flush=True)


# --- 2. SSE fan-out ----------------------------------------------------------------------


def sse_scenarios(streams: list[int], spread_rate: float, fanout_rate: float
                  ) -> list[watch.Scenario]:
    out = []
    for n in streams:
        out.append(watch.Scenario(f"spread {n}", jobs=n, watchers_per_job=1, progress_steps=1,
                                  transitions_per_s=spread_rate))
        if n >= 100:
            out.append(watch.Scenario(f"fan-out {n}", jobs=n // 100, watchers_per_job=100,
                                      progress_steps=2, transitions_per_s=fanout_rate))
    return out


async def settle(pids: list[int]) -> None:
    """Waits until the gateway and the server are idle: streams just opened are set up
    upstream (the gateway starts its WatchJob after the client has its first event)."""
    deadline = time.monotonic() + SETTLE_MAX_SECONDS
    while time.monotonic() < deadline:
        c0 = cpu_of(pids)
        await asyncio.sleep(0.25)
        if cpu_of(pids) - c0 < 0.02:  # under 8 % of a core each quarter second
            return


async def updated_at(redis: Any, job_ids: list[str]) -> dict[tuple[str, int], int]:
    """(job id, version) -> updated_at ms, from each job's event log."""
    from mend_core.jobstate.encoding import full_names, log_entry

    parts = partitions()
    out: dict[tuple[str, int], int] = {}
    for start in range(0, len(job_ids), 200):
        chunk = job_ids[start : start + 200]
        pipe = redis.pipeline(transaction=False)
        for job_id in chunk:
            pipe.lrange(parts.job_keys(job_id).events(job_id), 0, -1)
        for job_id, entries in zip(chunk, await pipe.execute(), strict=True):
            for version, fields in map(log_entry, entries):
                out[(job_id, version)] = int(full_names(fields)["updated_at"])
    return out


async def sse_round(
    side: str,
    scenario: watch.Scenario,
    stack: Stack,
    stub: Any,
    queue: Any,
    redis: Any,
    children: list[watch.Child],
    floor: watch.Child,
    spy_on: Path | None = None,
) -> dict[str, Any]:
    """One round of one side; with spy_on, py-spy samples the gateway while the
    transitions run and writes its stacks there."""
    job_ids = await watch.submit_jobs(stub, scenario.jobs)
    streams = [job_id for job_id in job_ids for _ in range(scenario.watchers_per_job)]
    for i, child in enumerate(children):
        child.send(jobs=streams[i :: len(children)])
    ready = [await c.receive(READY_TIMEOUT) for c in children]
    assert sum(r["ready"] for r in ready) == scenario.streams, ready
    floor.send(cmd="start")
    await floor.receive(READY_TIMEOUT)
    await settle([stack.gateway.pid, stack.server.pid])

    procs = {
        "gateway": [stack.gateway.pid],
        "server": [stack.server.pid],
        "redis": [stack.redis.pid],
        "clients": [c.popen.pid for c in children],
        "bench": [os.getpid(), floor.popen.pid],
    }
    cpu0, busy0, wall0 = {k: cpu_of(v) for k, v in procs.items()}, machine_busy_seconds(), \
        time.monotonic()
    spy = None
    if spy_on is not None:
        seconds = scenario.transitions / scenario.transitions_per_s + 0.5
        spy = profile.record(stack.gateway.pid, spy_on, seconds=seconds, native=False)
        await asyncio.sleep(0.5)  # let py-spy attach
    called = await watch.drive(queue, scenario)
    if spy is not None:
        await asyncio.to_thread(spy.wait)
    outs = [await c.receive(ROUND_TIMEOUT) for c in children]
    elapsed = time.monotonic() - wall0
    cpu = {k: cpu_of(v) - cpu0[k] for k, v in procs.items()}
    others = max(0.0, machine_busy_seconds() - busy0 - sum(cpu.values()))
    floor.send(cmd="stop")
    floor_samples = (await floor.receive(ROUND_TIMEOUT))["samples"]

    raw = [s for out in outs for s in out["samples"]]
    if side == "sse":
        commits = await updated_at(redis, job_ids)
        samples = [[job, v, commits[(job, v)], recv] for job, v, _event, recv in raw]
        events: dict[str, int] = {}
        for _, _, event, _ in raw:
            events[event] = events.get(event, 0) + 1
    else:
        samples, events = raw, {}
    floor_ms = sorted(
        (recv - called[(job, v)]) / 1e6 for job, v, recv in floor_samples if (job, v) in called
    )
    delivered = max(len(samples), 1)
    return {
        **watch.latencies(samples, called),
        "missing": scenario.deliveries - len(samples),
        "errors": sum(out["errors"] for out in outs),
        "events": events,
        "floor_p50_ms": report.percentile(floor_ms, 50),
        "floor_p99_ms": report.percentile(floor_ms, 99),
        **{f"{k}_cpu_pct": 100 * cpu[k] / elapsed for k in ("gateway", "server", "clients")},
        # CPU time per delivery hardly depends on what else runs, unlike latency.
        **{f"{k}_cpu_us_per_delivery": 1e6 * cpu[k] / delivered
           for k in ("gateway", "server", "redis", "clients")},
        "others_pct": 100 * others / elapsed,
    }


def summarise_sse(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    figures = [k for k in rounds[0] if k.endswith(("_ms", "_pct", "_per_delivery"))]
    out: dict[str, Any] = {k: round(report.median([r[k] for r in rounds]), 2) for k in figures}
    for k in ("deliveries", "missing", "errors"):
        out[k] = sum(r[k] for r in rounds)
    return out


async def run_sse(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    from mend.v1 import jobs_pb2_grpc
    from mend_core.jobstate.queue import WorkQueue
    from mend_core.redis_client import connect

    scenarios = sse_scenarios(args.streams, args.spread_rate, args.fanout_rate)
    sides: dict[str, list[watch.Child]] = {
        "sse": [SseChild(stack.http_port) for _ in range(args.watchers)],
        "grpc": [watch.Child("_watcher", str(stack.grpc_port), str(args.channels))
                 for _ in range(args.watchers)],
    }
    parts = partitions()
    floor = watch.Child(
        "_subscriber", stack.redis.url, " ".join(k.changes_channel for k in parts.keys)
    )
    redis = connect(stack.redis.url)
    queue = WorkQueue(redis, parts, lease_seconds=300, retention_completed_seconds=3600,
                      retention_failed_seconds=3600)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_port}")
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    results: dict[str, Any] = {}
    try:
        for scenario in scenarios:
            rounds: dict[str, list[dict[str, Any]]] = {"sse": [], "grpc": []}
            for i in range(args.rounds):
                for side in ("sse", "grpc") if i % 2 == 0 else ("grpc", "sse"):
                    r = await sse_round(side, scenario, stack, stub, queue, redis,
                                        sides[side], floor)
                    stack.check_alive()
                    rounds[side].append(r)
                    print(f"  {scenario.name:13} {side:4} round {i + 1}: p50 {r['p50_ms']:6.2f} "
                          f"ms, p99 {r['p99_ms']:7.2f} ms (floor {r['floor_p99_ms']:.2f}), "
                          f"{r['missing']} missing, {r['errors']} errors; CPU gateway "
                          f"{r['gateway_cpu_pct']:.0f} %, server {r['server_cpu_pct']:.0f} %, "
                          f"others {r['others_pct']:.0f} %", flush=True)
            if args.profile:  # one more round, not recorded: py-spy slows the gateway
                args.profile.mkdir(parents=True, exist_ok=True)
                stacks = args.profile / f"gateway-sse-{scenario.name.replace(' ', '-')}.txt"
                await sse_round("sse", scenario, stack, stub, queue, redis, sides["sse"], floor,
                                spy_on=stacks)
                print_profile(stacks, f"SSE, {scenario.describe()}")
            s, g = summarise_sse(rounds["sse"]), summarise_sse(rounds["grpc"])
            results[scenario.name] = {
                **asdict(scenario), "describe": scenario.describe(),
                "streams": scenario.streams, "sse": s, "grpc": g,
                "ratio_p50": round(s["p50_ms"] / g["p50_ms"], 2),
                "ratio_p99": round(s["p99_ms"] / g["p99_ms"], 2),
                "rounds": rounds,
            }
    finally:
        await channel.close()
        await redis.aclose()
        for child in [*sides["sse"], *sides["grpc"], floor]:
            child.stop()
    return results


# --- report ------------------------------------------------------------------------------


def _r(x: float) -> str:
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:.2f}"


UNARY_HEADER = ["REST route / RPC", "in flight", "REST calls/s", "gRPC calls/s", "REST/gRPC",
                "REST p50 ms", "REST p99 ms", "gRPC p50 ms", "gRPC p99 ms", "errors"]
UNARY_CPU_HEADER = ["call", "in flight", "via", "gateway µs/call", "server µs/call",
                    "redis µs/call", "client µs/call", "gateway %", "server %", "redis %",
                    "client %", "others %"]
SSE_HEADER = ["scenario", "streams", "deliveries per side", "SSE p50 ms", "SSE p99 ms",
              "gRPC p50 ms", "gRPC p99 ms", "SSE/gRPC p99", "SSE commit p99",
              "gRPC commit p99", "floor p99 ms", "missing/errors"]
SSE_CPU_HEADER = ["scenario", "via", "gateway µs/delivery", "server µs/delivery",
                  "clients µs/delivery", "gateway %", "server %", "others %"]


def unary_rows(results: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    rows, cpu_rows = [], []
    for r in results.values():
        g = r["grpc"]
        for t in ("rest", "httpx"):
            if t not in r:
                continue
            m = r[t]
            route = r["route"] + (" (httpx)" if t == "httpx" else "") + f" / {r['rpc']}"
            rows.append([route, str(r["in_flight"]), _r(m["calls_per_s"]),
                         _r(g["calls_per_s"]), f"{m['ratio']:.2f}", _ms(m["p50_ms"]),
                         _ms(m["p99_ms"]), _ms(g["p50_ms"]), _ms(g["p99_ms"]),
                         f"{m['errors']}/{g['errors']}"])
        for t in ("rest", "httpx", "grpc"):
            if t not in r:
                continue
            u, c = r[t]["cpu_us_per_call"], r[t]["cpu_pct"]
            cpu_rows.append([r["method"], str(r["in_flight"]), LABELS[t], _r(u["gateway"]),
                             _r(u["server"]), _r(u["redis"]), _r(u["client"]),
                             _r(c["gateway"]), _r(c["server"]), _r(c["redis"]),
                             _r(c["client"]), _r(c["others"])])
    return rows, cpu_rows


def sse_rows(results: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    rows, cpu_rows = [], []
    for name, r in results.items():
        s, g = r["sse"], r["grpc"]
        rows.append([name, str(r["streams"]), f"{s['deliveries']:,}", _ms(s["p50_ms"]),
                     _ms(s["p99_ms"]), _ms(g["p50_ms"]), _ms(g["p99_ms"]),
                     f"{r['ratio_p99']:.1f}", _ms(s["commit_p99_ms"]), _ms(g["commit_p99_ms"]),
                     _ms(report.median([s["floor_p99_ms"], g["floor_p99_ms"]])),
                     f"{s['missing'] + g['missing']}/{s['errors'] + g['errors']}"])
        for side, label in (("sse", "SSE"), ("grpc", "gRPC")):
            x = r[side]
            cpu_rows.append([name, label, _r(x["gateway_cpu_us_per_delivery"]),
                             _r(x["server_cpu_us_per_delivery"]),
                             _r(x["clients_cpu_us_per_delivery"]), _r(x["gateway_cpu_pct"]),
                             _r(x["server_cpu_pct"]), _r(x["others_pct"])])
    return rows, cpu_rows


def overhead_lines(unary: dict[str, Any]) -> list[str]:
    """The gateway's cost per REST call, in CPU time (steady on a shared machine)."""
    out = []
    for r in unary.values():
        if "rest" not in r:
            continue
        rest, g = r["rest"]["cpu_us_per_call"], r["grpc"]["cpu_us_per_call"]
        total_rest = rest["gateway"] + rest["server"]
        out.append(
            f"- {r['route']} at {r['in_flight']} in flight: the gateway spends "
            f"{rest['gateway']:,.0f} µs of CPU per call; gateway + server {total_rest:,.0f} µs "
            f"against {g['server']:,.0f} µs for the server alone over gRPC "
            f"({total_rest / max(g['server'], 1):.1f}x)"
        )
    return out


UNARY_NOTE = (
    "CPU time per call of each process (medians of the runs), then the share of one core\n"
    "each used during the runs; others % is everything else on the machine (the noise:\n"
    "other people's work). Over gRPC the gateway is idle; its few µs are its own timers."
)
SSE_NOTE = (
    "Latency of each delivery (one transition reaching one stream): p50/p99 from just before\n"
    "the transition's script was called to the client holding the event; commit p99 from the\n"
    "job's updated_at (Redis TIME in the script, ms resolution); floor p99 the same measure\n"
    "for a bare redis-py subscriber to the change channel. Medians over the rounds."
)


def markdown(data: dict[str, Any]) -> str:
    m, st = data["machine"], data["settings"]
    rows, cpu_rows = unary_rows(data["unary"])
    srows, scpu_rows = sse_rows(data["sse"])
    scenarios = "\n".join(f"- **{name}**: {r['describe']}" for name, r in data["sse"].items())
    clients = ", ".join(st["http_clients"])
    return f"""# REST gateway benchmark (vs gRPC, same run)

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; Python {m['python']}, grpcio {m['grpcio']},
  redis-server {m['redis_server']} (AOF on, appendfsync everysec)
- one `mend-server` process and one `mend-gateway` process (uvicorn) in front of it
- unary: {st['runs']} runs of {st['seconds']:g} s per client after {st['warmup']:g} s of warm-up;
  REST load generator `bench/gateway_load.py` ({clients}), {st['connections']} keep-alive
  connections; gRPC load generator `bench/loadgen.py`, {st['channels']} channels
- SSE: {st['rounds']} rounds per scenario and side; {st['watchers']} client processes per side
  (SSE: one HTTP/1.1 connection per stream; gRPC: bench/watch.py's watchers, {st['channels']}
  channels each)
- load average at start: {data['loadavg_at_start']} (the machine is shared: see "others %")

## Unary calls: REST through the gateway vs gRPC direct

{report.markdown_table(UNARY_HEADER, rows)}

{UNARY_NOTE}

{report.markdown_table(UNARY_CPU_HEADER, cpu_rows)}

The gateway's overhead in CPU:

{chr(10).join(overhead_lines(data["unary"]))}

## SSE fan-out vs WatchJob streams

{scenarios}

{SSE_NOTE}

{report.markdown_table(SSE_HEADER, srows)}

CPU while the transitions ran (medians of the rounds): CPU time per delivery of the
gateway, the server and the client processes, the share of a core of the gateway and the
server, and everything else on the machine (others %).

{report.markdown_table(SSE_CPU_HEADER, scpu_rows)}

Per-run figures are in `gateway.json`.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    def clients(text: str) -> list[str]:
        out = [x for x in text.split(",") if x]
        if not out or any(x not in ("raw", "httpx") for x in out):
            raise argparse.ArgumentTypeError("raw, httpx or raw,httpx")
        return out

    p = argparse.ArgumentParser(prog="python -m bench gateway", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="unary: runs per client (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="unary: run length (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="unary: warm-up (default 2)")
    p.add_argument("--in-flight", type=int, default=100,
                   help="unary: calls in flight (default 100; GetJob also runs at 10)")
    p.add_argument("--connections", type=int, default=50,
                   help="unary: REST keep-alive connections (default 50)")
    p.add_argument("--channels", type=int, default=4,
                   help="gRPC channels per load generator / watcher (default 4)")
    p.add_argument("--http-clients", type=clients, default=["raw"],
                   help="REST load generator(s): raw, httpx or raw,httpx (default raw)")
    p.add_argument("--streams", type=ints, default=[200, 1000],
                   help="SSE: stream counts, comma separated (default 200,1000)")
    p.add_argument("--rounds", type=int, default=3, help="SSE: rounds per side (default 3)")
    p.add_argument("--watchers", type=int, default=2,
                   help="SSE: client processes per side (default 2)")
    p.add_argument("--spread-rate", type=float, default=300,
                   help="SSE: transitions/s with one stream per job (default 300)")
    p.add_argument("--fanout-rate", type=float, default=10,
                   help="SSE: transitions/s with 100 streams per job (default 10)")
    p.add_argument("--skip", choices=("unary", "sse"), action="append", default=[],
                   help="leave out a part (implies --no-record)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="after the unary runs, sample the gateway with py-spy during one more "
                        "REST run of each scenario; stacks and summaries go to DIR")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/gateway.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"bench gateway: load average {loadavg}", flush=True)
    stack = Stack()
    unary: dict[str, Any] = {}
    sse: dict[str, Any] = {}
    try:
        aof = stack.redis.info("persistence").get("aof_enabled")
        if "sse" not in args.skip:  # first: the driver claims whatever is pending
            print("SSE fan-out:", flush=True)
            sse = asyncio.run(run_sse(stack, args))
        if "unary" not in args.skip:
            print("unary calls:", flush=True)
            unary = run_unary(stack, args)
    finally:
        stack.stop()

    if unary:
        rows, cpu_rows = unary_rows(unary)
        print()
        print(report.text_table(UNARY_HEADER, rows))
        print(f"\n{UNARY_NOTE}")
        print(report.text_table(UNARY_CPU_HEADER, cpu_rows))
        print("\n" + "\n".join(overhead_lines(unary)))
    if sse:
        rows, cpu_rows = sse_rows(sse)
        print(f"\n{SSE_NOTE}")
        print(report.text_table(SSE_HEADER, rows))
        print()
        print(report.text_table(SSE_CPU_HEADER, cpu_rows))
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench gateway", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "settings": {**vars(args), "redis_aof_enabled": aof},
        "loadavg_at_start": loadavg,
        "unary": unary,
        "sse": sse,
    }
    if not (args.no_record or args.skip):
        json_path, md_path = report.record(NAME, data, markdown(data))
        print(f"\nrecorded {md_path} and {json_path.name}")
    errors = sum(r[t]["errors"] for r in unary.values() for t in ("rest", "httpx", "grpc")
                 if t in r)
    errors += sum(r[s]["errors"] + r[s]["missing"] for r in sse.values() for s in ("sse", "grpc"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
