"""`python -m bench cluster`: Mend on a Redis Cluster against one Redis, P partitions
against one, and a queue of 1,000,000 pending jobs against an empty one (issue 12).

Part 1 (spread and cost), three deployments side by side, each a Redis and a `mend-server`
(1 process) of its own, on loopback:
- `cluster`: mend_devkit's RedisCluster (3 masters, 1 replica each), MEND_PARTITIONS=12;
- `single`: one redis-server, MEND_PARTITIONS=12 (the default);
- `single-p1`: one redis-server, MEND_PARTITIONS=1: every key under `{jobs}`, the layout
  before partitions; it stands in for the pre-partition code.
Each round takes every deployment in turn (rotating which goes first) through: a drain
(Redis emptied, --drain-jobs jobs enqueued through JobStore, not timed, then `mend-worker
--processes 2` started; the rate runs from the first completion seen to the last, as in
bench drain), SubmitImageResize and GetJob at 100 in flight for --seconds each (bench
api's load generator). Measured: the rate, and the CPU time per operation of the server
(or the workers) and of the Redis masters (replicas apart). On the cluster, the share of
the job hashes each master holds after the round, and of the commands each served
(INFO total_commands_processed deltas) during each operation.

Part 2 (scale), two more redis-servers (P=12) with a `mend-server` each: one filled with
--scale-jobs pending jobs (JobStore.submit, 1,000 specs a call, not timed, no workers),
one empty. Rounds of SubmitImageResize, GetJob (of the load generator's own pending jobs,
at the back of the queue: queue_position counts the whole queue ahead) and ListJobs
(first page of 20) at 10 in flight, alternating the two; p99 and CPU per call, the
Redis commands' own time (INFO commandstats), and used_memory per pending job."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import report
from bench.api import Fleet
from bench.drain import WORKERS, default_storage_dir, make_source, tree_cpu_seconds
from bench.services import (
    API_KEY,
    BIN,
    Process,
    cpu_seconds,
    machine_busy_seconds,
    start_mend_server,
)
from bench.services import tree_cpu_seconds as server_cpu_seconds
from mend_devkit.redis_cluster import RedisCluster
from mend_devkit.redis_server import RedisServer

NAME = "cluster"
DEPLOYMENTS = {"cluster": 12, "single": 12, "single-p1": 1}  # name -> MEND_PARTITIONS
LABELS = {"cluster": "cluster (3 masters), P=12", "single": "one Redis, P=12",
          "single-p1": "one Redis, P=1"}
# (contender, baseline, goal on contender/baseline)
COMPARISONS = (("cluster", "single", 0.9), ("single", "single-p1", 0.95))
OPS = ("submit", "get", "drain")
OP_LABELS = {"submit": "SubmitImageResize", "get": "GetJob", "list": "ListJobs",
             "drain": "drain"}
IN_FLIGHT = 100
SCALE_OPS = ("submit", "get", "list")
SCALE_IN_FLIGHT = 10
SCALE_GOAL = 1.5  # p99 with the full queue / p99 with an empty one
SPREAD_JOBS_GOAL, SPREAD_COMMANDS_GOAL = 0.05, 0.10  # |share - 1/masters|
CHANNELS = 4
MASTERS = 3
FILL_CHUNK = 1_000  # specs per JobStore.submit call while filling
FILL_CONCURRENCY = 4
DRAIN_CHUNK = 500
SAMPLE_SECONDS = 0.05
STALL_SECONDS = 60.0
JOB_PATTERN = "mend:*:job:*"
SOURCE = ("bench", "src.jpg")  # bench drain's source image


# ------------------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """A Redis (one server, or a cluster) with a mend-server on it. `masters` are plain
    clients, one per master, for counting what each holds and serves."""

    name: str
    partitions: int
    url: str
    masters: list[RedisServer]
    replicas: list[RedisServer]
    owner: Any  # what stop() stops: the RedisServer or the RedisCluster
    clients: list[redis.Redis] = field(default_factory=list)
    server: Process | None = None
    port: int = 0
    # Per master: the partitions' `stats` keys it holds (summed for the drain's progress).
    stats_keys: list[list[str]] = field(default_factory=list)

    @property
    def redis_pids(self) -> list[int]:
        return [n.pid for n in self.masters]

    @property
    def replica_pids(self) -> list[int]:
        return [n.pid for n in self.replicas]

    def flush(self) -> None:
        for client in self.clients:
            client.flushall()

    def commands(self) -> list[int]:
        return [int(c.info("stats")["total_commands_processed"]) for c in self.clients]

    def completed(self) -> int:
        """Finished image_resize jobs: the partitions' counters, one pipeline per master."""
        done = 0
        for client, keys in zip(self.clients, self.stats_keys, strict=True):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, "image_resize:completed", "image_resize:failed")
            for completed, failed in pipe.execute():
                if int(failed or 0):
                    raise RuntimeError(f"{self.name}: jobs failed")
                done += int(completed or 0)
        return done

    def jobs_per_master(self) -> list[int]:
        return [sum(1 for _ in c.scan_iter(match=JOB_PATTERN, count=1000)) for c in self.clients]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for client in self.clients:
            client.close()
        self.owner.stop()


def start_deployment(name: str, partitions: int, redis_extra: dict[str, str] | None = None,
                     ) -> Deployment:
    from mend_core.jobstate.partitions import Partitions

    if name == "cluster":
        cluster = RedisCluster(MASTERS, 1)
        masters = sorted(cluster.masters(), key=lambda n: n.port)
        replicas = [n for n in cluster.nodes if n not in masters]
        d = Deployment(name, partitions, cluster.url, masters, replicas, cluster)
        owners = [cluster.master_of(k.stats) for k in Partitions(partitions).keys]
    else:
        server = RedisServer(redis_extra)
        d = Deployment(name, partitions, server.url, [server], [], server)
        owners = [server] * partitions
    try:
        d.clients = [redis.Redis(port=n.port) for n in d.masters]
        d.stats_keys = [
            [k.stats for k, o in zip(Partitions(partitions).keys, owners, strict=True) if o is n]
            for n in d.masters
        ]
        d.server, d.port = start_mend_server(
            d.url, extra_env={"MEND_PARTITIONS": str(partitions)}
        )
    except BaseException:
        d.stop()
        raise
    return d


# ------------------------------------------------------------------------------ enqueue


def tenant() -> str:
    """The tenant of the load generator's key, so its calls see the jobs filled in."""
    from mend_core.tenancy import parse_api_keys

    return parse_api_keys(API_KEY)[0].tenant


def enqueue(url: str, partitions: int, jobs: int, bucket: str, *, chunk: int,
            concurrency: int = 1, progress: Callable[[int], None] | None = None) -> None:
    """`jobs` pending image_resize jobs of the bench tenant, through JobStore.submit
    (`chunk` specs a call: single jobs, each in a random partition, no batch)."""
    from mend_core.job import JobSpec
    from mend_core.jobstate.partitions import Partitions
    from mend_core.jobstate.store import JobStore
    from mend_core.operations.image_resize import ResizeParams
    from mend_core.redis_client import connect

    owner = tenant()

    async def submit() -> None:
        client = connect(url)
        store = JobStore(client, Partitions(partitions), retention_completed_seconds=86400,
                         retention_failed_seconds=86400, worker_liveness_seconds=30)
        starts = iter(range(0, jobs, chunk))
        done = 0

        async def one() -> None:
            nonlocal done
            for start in starts:
                specs = [
                    JobSpec(type="image_resize", source_bucket=SOURCE[0], source_key=SOURCE[1],
                            dest_bucket=bucket, dest_key=f"out/{i}.jpg",
                            params=ResizeParams(width=8, height=8))
                    for i in range(start, min(start + chunk, jobs))
                ]
                await store.submit(owner, specs)
                done += len(specs)
                if progress is not None:
                    progress(done)

        try:
            await asyncio.gather(*(one() for _ in range(concurrency)))
        finally:
            await client.aclose()

    asyncio.run(submit())


# ---------------------------------------------------------------------------- measuring


def cpu(pids: Sequence[int]) -> float:
    return sum(map(cpu_seconds, pids))


def shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [round(c / total, 4) if total else float("nan") for c in counts]


def rpc(d: Deployment, fleet: Fleet, method: str, in_flight: int, seconds: float,
        commandstats: bool = False) -> dict[str, Any]:
    """One timed load generator run against a deployment: rate, latency, CPU per call
    (server, Redis masters, replicas, load generator), what else ran, commands per master."""
    assert d.server is not None

    def now() -> dict[str, float]:
        return {"server": server_cpu_seconds(d.server.pid), "redis": cpu(d.redis_pids),
                "replicas": cpu(d.replica_pids), "client": cpu(fleet.pids)}

    stats0 = d.clients[0].info("commandstats") if commandstats else {}
    commands0, cpu0 = d.commands(), now()
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    out = fleet.run(d.name, method, in_flight, seconds)
    wall = time.monotonic() - t0
    used = {k: v - cpu0[k] for k, v in now().items()}
    other = max(0.0, machine_busy_seconds() - busy0 - sum(used.values()))
    commands = [b - a for a, b in zip(commands0, d.commands(), strict=True)]
    lat, calls = out["latencies_us"], max(out["calls"], 1)
    result = {
        "calls": out["calls"],
        "errors": out["errors"],
        "rate": out["calls"] / out["elapsed"],
        "p50_ms": report.percentile(lat, 50) / 1000,
        "p99_ms": report.percentile(lat, 99) / 1000,
        "cpu_us": {k: round(1e6 * v / calls, 1) for k, v in used.items()},
        "others_pct": round(100 * other / wall),
        "commands_per_master": commands,
        "command_shares": shares(commands),
    }
    if commandstats:
        result["redis_usec_per_call"] = command_times(stats0, d.clients[0].info("commandstats"))
    return result


def command_times(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per Redis command run meanwhile: calls and µs per call (its own time in Redis)."""
    out = {}
    for name, a in after.items():
        b = before.get(name, {"calls": 0, "usec": 0})
        calls = int(a["calls"]) - int(b["calls"])
        if calls:
            usec = int(a["usec"]) - int(b["usec"])
            out[name.removeprefix("cmdstat_")] = {"calls": calls,
                                                  "usec_per_call": round(usec / calls, 2)}
    return out


def drain(d: Deployment, jobs: int, root: Path, run: str) -> dict[str, Any]:
    """Empties the deployment's Redis, enqueues `jobs` (not timed), starts the workers and
    waits until every job is finished; the rate, CPU per job and commands per master from
    the first completion seen to the last."""
    d.flush()
    bucket = f"{d.name}-{run}"
    enqueue(d.url, d.partitions, jobs, bucket, chunk=DRAIN_CHUNK)
    env = {
        **os.environ,
        "MEND_REDIS_URL": d.url,
        "MEND_PARTITIONS": str(d.partitions),
        "MEND_STORAGE": "file",
        "MEND_STORAGE_ROOT": str(root),
        "MEND_WORKERS": str(WORKERS),
    }
    workers = Process("mend-worker", [str(BIN / "mend-worker"), "--processes", str(WORKERS)],
                      env=env)
    first: tuple[float, int, float, float, float, list[int], float, int] | None = None
    last_change, last_count = time.monotonic(), 0
    try:
        while True:
            time.sleep(SAMPLE_SECONDS)
            now, done = time.monotonic(), d.completed()
            if first is None and done:
                first = (now, done, sum(tree_cpu_seconds(workers.pid).values()),
                         cpu(d.redis_pids), cpu(d.replica_pids), d.commands(),
                         machine_busy_seconds(), 0)
                samples = 0
            elif first is not None:
                samples += 1
            if done >= jobs:
                break
            if done != last_count:
                last_change, last_count = now, done
            elif now - last_change > STALL_SECONDS:
                raise RuntimeError(f"{d.name}: drain stuck at {done}/{jobs}:\n{workers.tail()}")
            workers.check_alive()
        workers_cpu = sum(tree_cpu_seconds(workers.pid).values())
        redis_cpu, replicas_cpu, commands = cpu(d.redis_pids), cpu(d.replica_pids), d.commands()
        busy = machine_busy_seconds()
    finally:
        workers.stop(30)
        shutil.rmtree(root / bucket, ignore_errors=True)
    assert first is not None
    t_first, n_first, w0, r0, rr0, c0, busy0, _ = first
    elapsed, drained = now - t_first, jobs - n_first
    # Take out the progress reads sent meanwhile (one HMGET per stats key per sample),
    # and the INFO read between.
    mine = [samples * len(keys) + 1 for keys in d.stats_keys]
    served = [max(0, b - a - m) for a, b, m in zip(c0, commands, mine, strict=True)]
    used = {"server": workers_cpu - w0, "redis": redis_cpu - r0, "replicas": replicas_cpu - rr0}
    return {
        "calls": drained,
        "errors": {},
        "rate": drained / elapsed if elapsed > 0 else float("nan"),
        "cpu_us": {k: round(1e6 * v / drained, 1) for k, v in used.items()},
        "others_pct": round(100 * max(0.0, busy - busy0 - sum(used.values())) / elapsed),
        "commands_per_master": served,
        "command_shares": shares(served),
    }


def cpu_per_op(r: dict[str, Any]) -> float:
    """Server (or workers) + Redis masters, µs per operation: what bounds the rate when the
    machine is the limit (replicas apart: another host's in a real deployment)."""
    return float(r["cpu_us"]["server"] + r["cpu_us"]["redis"])


# --------------------------------------------------------------------------- the parts


def part_cost(args: argparse.Namespace) -> dict[str, Any]:
    names = list(DEPLOYMENTS)
    root = Path(tempfile.mkdtemp(prefix="mend-bench-cluster-", dir=args.storage_dir))
    deployments: dict[str, Deployment] = {}
    fleet = None
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        n: {op: [] for op in OPS} for n in names
    }
    job_spread: list[dict[str, Any]] = []
    try:
        make_source(root)
        for n in names:
            deployments[n] = start_deployment(n, DEPLOYMENTS[n])
        fleet = Fleet(1, False)
        for n in names:
            fleet.connect(n, deployments[n].port, CHANNELS)
            for method in ("submit", "get"):
                fleet.run(n, method, IN_FLIGHT, args.warmup)
        for i in range(args.rounds):
            for n in names[i % len(names):] + names[: i % len(names)]:
                d = deployments[n]
                r = {"drain": drain(d, args.drain_jobs, root, str(i))}
                fleet.connect(n, d.port, CHANNELS)  # the ids it kept were flushed
                for method in ("submit", "get"):
                    r[method] = rpc(d, fleet, method, IN_FLIGHT, args.seconds)
                for op in OPS:
                    runs[n][op].append(r[op])
                if n == "cluster":
                    held = d.jobs_per_master()
                    job_spread.append({"jobs_per_master": held, "shares": shares(held)})
                assert d.server is not None
                d.server.check_alive()
                print(f"  round {i + 1} {n:9} " + "  ".join(
                    f"{op} {r[op]['rate']:6,.0f}/s {cpu_per_op(r[op]):5,.0f} µs"
                    for op in OPS) + f"  (others {r['drain']['others_pct']}%)", flush=True)
            if job_spread:
                print(f"           cluster shares: jobs {job_spread[-1]['shares']}, drain "
                      f"commands {runs['cluster']['drain'][-1]['command_shares']}", flush=True)
    finally:
        if fleet is not None:
            fleet.stop()
        for d in deployments.values():
            d.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {"runs": runs, "job_spread": job_spread, **summarise_cost(runs, job_spread)}


def summarise_cost(runs: dict[str, dict[str, list[dict[str, Any]]]],
                   job_spread: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {
        n: {op: {
            "rate": round(report.median([r["rate"] for r in by[op]]), 1),
            "cpu_us": {k: round(report.median([r["cpu_us"][k] for r in by[op]]), 1)
                       for k in by[op][0]["cpu_us"]},
            "p99_ms": round(report.median([r.get("p99_ms", float("nan")) for r in by[op]]), 2),
            "errors": sum(sum(r["errors"].values()) for r in by[op]),
        } for op in OPS}
        for n, by in runs.items()
    }
    ratios = {}
    for contender, baseline, goal in COMPARISONS:
        for op in OPS:
            pairs = list(zip(runs[contender][op], runs[baseline][op], strict=True))
            by_rate = report.median([c["rate"] / b["rate"] for c, b in pairs])
            by_cpu = report.median([cpu_per_op(b) / cpu_per_op(c) for c, b in pairs])
            ratios[f"{contender}/{baseline}:{op}"] = {
                "by_rate": round(by_rate, 3), "by_cpu": round(by_cpu, 3), "goal": goal,
                "met_by_rate": by_rate >= goal, "met_by_cpu": by_cpu >= goal,
            }
    cluster = runs["cluster"]
    spread = {
        "jobs": [report.median([s["shares"][m] for s in job_spread]) for m in range(MASTERS)],
        **{f"commands_{op}": [report.median([r["command_shares"][m] for r in cluster[op]])
                              for m in range(MASTERS)] for op in OPS},
    }
    worst = {k: round(max(abs(s - 1 / MASTERS) for s in v), 4) for k, v in spread.items()}
    return {"summary": summary, "ratios": ratios, "spread": spread, "spread_worst": worst,
            "spread_met": {"jobs": worst["jobs"] <= SPREAD_JOBS_GOAL,
                           "commands_drain": worst["commands_drain"] <= SPREAD_COMMANDS_GOAL}}


def settled_memory(client: redis.Redis) -> int:
    """used_memory without the Lua script cache, once no AOF rewrite runs."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        p = client.info("persistence")
        if not (int(p.get("aof_rewrite_in_progress", 0)) or int(p.get("aof_rewrite_scheduled", 0))):
            break
        time.sleep(1)
    time.sleep(1.5)
    m = client.info("memory")
    scripts = int(m.get("used_memory_scripts_eval", m.get("used_memory_scripts", 0)))
    return int(m["used_memory"]) - scripts


def memory_by_kind(client: redis.Redis, jobs: int, samples: int = 1000) -> dict[str, float]:
    """Bytes per pending job by kind of key (bench memory's kinds): the per-job keys (a
    job's hash, its event log) from MEMORY USAGE of RANDOMKEY samples times their count,
    the shared ones (queues, indexes, counters) exactly."""
    from bench.memory import kind_of

    sampled: dict[str, list[int]] = {}
    for _ in range(samples):
        key = client.randomkey()
        if key is not None:
            sampled.setdefault(kind_of(key.decode()), []).append(
                int(client.memory_usage(key) or 0))
    counts: dict[str, int] = {}
    shared: dict[str, int] = {}
    for key in client.scan_iter(count=10_000):
        kind = kind_of(key.decode())
        counts[kind] = counts.get(kind, 0) + 1
        if kind not in ("job", "events"):
            shared[kind] = shared.get(kind, 0) + int(client.memory_usage(key, samples=0) or 0)
    out = {k: report.median(sampled[k]) * counts[k] / jobs
           for k in ("job", "events") if k in sampled and k in counts}
    out.update({k: v / jobs for k, v in shared.items()})
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    names = ("empty", "full")
    deployments: dict[str, Deployment] = {}
    fleet = None
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        n: {op: [] for op in SCALE_OPS} for n in names
    }
    try:
        for n in names:
            deployments[n] = start_deployment(n, DEPLOYMENTS["single"])
        full = deployments["full"]
        before = settled_memory(full.clients[0])
        t0, last = time.monotonic(), [0.0]

        def progress(done: int) -> None:
            if time.monotonic() - last[0] > 15:
                last[0] = time.monotonic()
                print(f"    filled {done:,} jobs ({time.monotonic() - t0:.0f} s)", flush=True)

        print(f"  filling a Redis with {args.scale_jobs:,} pending jobs (not timed)", flush=True)
        enqueue(full.url, full.partitions, args.scale_jobs, "fill", chunk=FILL_CHUNK,
                concurrency=FILL_CONCURRENCY, progress=progress)
        fill_seconds = time.monotonic() - t0
        after = settled_memory(full.clients[0])
        memory = {
            "jobs": args.scale_jobs,
            "fill_seconds": round(fill_seconds, 1),
            "used_memory_grown": after - before,
            "bytes_per_pending_job": round((after - before) / args.scale_jobs, 1),
            "by_kind": memory_by_kind(full.clients[0], args.scale_jobs),
        }
        print(f"  filled in {fill_seconds:.0f} s; {memory['bytes_per_pending_job']:,.0f} bytes "
              "of used_memory per pending job", flush=True)
        fleet = Fleet(1, False)
        for n in names:
            fleet.connect(n, deployments[n].port, CHANNELS)
            for method in SCALE_OPS:
                fleet.run(n, method, SCALE_IN_FLIGHT, args.warmup)
        for i in range(args.rounds):
            for n in names[i % 2:] + names[: i % 2]:
                for method in SCALE_OPS:
                    runs[n][method].append(rpc(deployments[n], fleet, method, SCALE_IN_FLIGHT,
                                               args.seconds, commandstats=True))
            print(f"  round {i + 1} " + "  ".join(
                f"{OP_LABELS[op]} p99 {runs['empty'][op][-1]['p99_ms']:.1f} / "
                f"{runs['full'][op][-1]['p99_ms']:.1f} ms" for op in SCALE_OPS
            ) + " (empty / full)", flush=True)
        depth = {n: queue_depth(deployments[n]) for n in names}
    finally:
        if fleet is not None:
            fleet.stop()
        for d in deployments.values():
            d.stop()
    summary: dict[str, Any] = {}
    for op in SCALE_OPS:
        pairs = list(zip(runs["full"][op], runs["empty"][op], strict=True))
        p99 = report.median([f["p99_ms"] / e["p99_ms"] for f, e in pairs])
        summary[op] = {
            **{n: {"p50_ms": round(report.median([r["p50_ms"] for r in runs[n][op]]), 2),
                   "p99_ms": round(report.median([r["p99_ms"] for r in runs[n][op]]), 2),
                   "rate": round(report.median([r["rate"] for r in runs[n][op]]), 1),
                   "cpu_us": {k: round(report.median([r["cpu_us"][k] for r in runs[n][op]]), 1)
                              for k in ("server", "redis")},
                   "errors": sum(sum(r["errors"].values()) for r in runs[n][op])}
               for n in names},
            "p99_ratio": round(p99, 3),
            "cpu_ratio": round(report.median([cpu_per_op(f) / cpu_per_op(e)
                                              for f, e in pairs]), 3),
            "met": p99 <= SCALE_GOAL,
            "redis_usec_per_call": {n: median_command_times(runs[n][op]) for n in names},
        }
    return {"memory": memory, "queue_depth_at_end": depth, "summary": summary, "runs": runs}


def queue_depth(d: Deployment) -> int:
    """Pending image_resize jobs: the partitions' counters."""
    total = 0
    for client, keys in zip(d.clients, d.stats_keys, strict=True):
        for key in keys:
            total += int(client.hget(key, "image_resize:pending") or 0)
    return total


def median_command_times(runs: list[dict[str, Any]]) -> dict[str, float]:
    names = {c for r in runs for c in r["redis_usec_per_call"]}
    return {
        c: round(report.median([r["redis_usec_per_call"][c]["usec_per_call"]
                                for r in runs if c in r["redis_usec_per_call"]]), 2)
        for c in sorted(names)
    }


# ------------------------------------------------------------------------------ report


def _pct(values: Sequence[float]) -> str:
    return " / ".join(f"{100 * v:.1f}%" for v in values)


def cost_tables(cost: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str],
                                                list[list[str]], list[str], list[list[str]]]:
    s = cost["summary"]
    header = ["operation", *(LABELS[n] for n in DEPLOYMENTS)]
    rows = []
    for op in OPS:
        unit = "jobs/s" if op == "drain" else "calls/s"
        rows.append([f"{OP_LABELS[op]} {unit}", *(f"{s[n][op]['rate']:,.0f}" for n in DEPLOYMENTS)])
        who = "workers" if op == "drain" else "server"
        rows.append([f"{OP_LABELS[op]} µs CPU/op: {who} + Redis masters (replicas)", *(
            f"{s[n][op]['cpu_us']['server']:,.0f} + {s[n][op]['cpu_us']['redis']:,.0f}"
            + (f" ({s[n][op]['cpu_us']['replicas']:,.0f})" if n == "cluster" else "")
            for n in DEPLOYMENTS)])
    ratio_header = ["contender / baseline", "operation", "by rate", "by CPU per op", "goal",
                    "met"]
    ratio_rows = []
    for contender, baseline, goal in COMPARISONS:
        for op in OPS:
            r = cost["ratios"][f"{contender}/{baseline}:{op}"]
            met = ("yes" if r["met_by_rate"] else "NO") + " / " + (
                "yes" if r["met_by_cpu"] else "NO")
            ratio_rows.append([f"{LABELS[contender]} / {LABELS[baseline]}", OP_LABELS[op],
                               f"{r['by_rate']:.2f}x", f"{r['by_cpu']:.2f}x", f">= {goal:g}x",
                               met])
    spread_header = ["what (cluster, per master)", "shares", "worst |share - 33.3%|", "goal",
                     "met"]
    sp, worst = cost["spread"], cost["spread_worst"]
    spread_rows = [["job hashes held", _pct(sp["jobs"]), f"{100 * worst['jobs']:.1f}%",
                    "± 5%", "yes" if cost["spread_met"]["jobs"] else "NO"]]
    for op in OPS:
        key = f"commands_{op}"
        goal = "± 10%" if op == "drain" else ""
        met = ("yes" if cost["spread_met"]["commands_drain"] else "NO") if op == "drain" else ""
        spread_rows.append([f"commands served during {OP_LABELS[op]}", _pct(sp[key]),
                            f"{100 * worst[key]:.1f}%", goal, met])
    return header, rows, ratio_header, ratio_rows, spread_header, spread_rows


def scale_table(scale: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["RPC (10 in flight)", "p50 ms empty / full", "p99 ms empty / full", "p99 full/empty",
              "goal", "met", "µs CPU/call empty / full (server + Redis)", "calls/s empty / full"]
    rows = []
    for op in SCALE_OPS:
        s = scale["summary"][op]
        e, f = s["empty"], s["full"]
        rows.append([
            OP_LABELS[op], f"{e['p50_ms']:.1f} / {f['p50_ms']:.1f}",
            f"{e['p99_ms']:.1f} / {f['p99_ms']:.1f}", f"{s['p99_ratio']:.2f}x",
            f"<= {SCALE_GOAL:g}x", "yes" if s["met"] else "NO",
            f"{cpu_per_op(e):,.0f} / {cpu_per_op(f):,.0f}",
            f"{e['rate']:,.0f} / {f['rate']:,.0f}",
        ])
    return header, rows


def command_rows(scale: dict[str, Any]) -> list[list[str]]:
    """The Redis commands each RPC ran, with their own time in Redis, empty vs full."""
    rows = []
    for op in SCALE_OPS:
        by = scale["summary"][op]["redis_usec_per_call"]
        for c in sorted(set(by["empty"]) | set(by["full"])):
            if c in ("info",):
                continue
            e, f = by["empty"].get(c), by["full"].get(c)
            rows.append([OP_LABELS[op], c, "-" if e is None else f"{e:.1f}",
                         "-" if f is None else f"{f:.1f}"])
    return rows


def markdown(data: dict[str, Any]) -> str:
    m, st = data["machine"], data["settings"]
    out = [f"""# Cluster benchmark: partitions, Redis Cluster, a queue of {st['scale_jobs']:,}

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; Python {m['python']}, grpcio {m['grpcio']},
  redis-server {m['redis_server']} (AOF on, appendfsync everysec, every node); load average
  at start {data['loadavg']} (the machine is shared: read "others %" in the JSON)
- every figure is the median of {st['rounds']} rounds; ratios are medians of the rounds'
  ratios. "by rate" compares calls/s (or jobs/s) measured side by side; "by CPU per op"
  compares the CPU time per operation of the server (for the drain: the workers) plus the
  Redis masters, the throughput ratio when that CPU is the limit: steadier on a shared
  machine than the rates. The cluster's replicas are left out of it (another host's work
  in a real deployment) and shown in brackets.
"""]
    if "cost" in data["results"]:
        cost = data["results"]["cost"]
        h, rows, rh, rrows, sh, srows = cost_tables(cost)
        out.append(f"""## Spread and cost of partitioning

Three deployments side by side, each with its own `mend-server` (1 process): a Redis
Cluster of 3 masters with a replica each and `MEND_PARTITIONS=12`; one redis-server with
`MEND_PARTITIONS=12`; one redis-server with `MEND_PARTITIONS=1` (every key under `{{jobs}}`,
the layout before partitions: it stands in for the pre-partition code). Per round and
deployment: a drain of {st['drain_jobs']:,} tiny jobs by `mend-worker --processes 2`
(bench drain's job: a 16x16 JPEG to 8x8; enqueued first, not timed), then
SubmitImageResize and GetJob at {IN_FLIGHT} in flight for {st['seconds']:g} s each.

{report.markdown_table(h, rows)}

{report.markdown_table(rh, rrows)}

{report.markdown_table(sh, srows)}
""")
    if "scale" in data["results"]:
        scale = data["results"]["scale"]
        mem, depth = scale["memory"], scale["queue_depth_at_end"]
        h, rows = scale_table(scale)
        by_kind = ", ".join(f"`{k}` {v:,.0f}" for k, v in mem.get("by_kind", {}).items())
        out.append(f"""## A queue of {mem['jobs']:,} pending jobs

Two redis-servers (`MEND_PARTITIONS=12`) with a `mend-server` each, alternated: one filled
with {mem['jobs']:,} pending jobs of the bench tenant (JobStore.submit, {FILL_CHUNK:,} single
jobs a call; {mem['fill_seconds']:,.0f} s, not timed; no workers), one empty. GetJob reads the
load generator's own jobs, submitted after the fill: at the back of the queue, so
`queue_position` counts every job ahead. ListJobs: the first page of 20, newest first.
Pending jobs at the end: {depth['empty']:,} (empty) and {depth['full']:,} (full).

{report.markdown_table(h, rows)}

**Memory:** {mem['bytes_per_pending_job']:,.0f} bytes of Redis `used_memory` per pending job
({mem['used_memory_grown'] / 2**20:,.0f} MiB for {mem['jobs']:,}; the Lua script cache left
out). By kind of key (MEMORY USAGE; a job's hash and event log from 1,000 random keys, the
shared keys exactly), bytes per pending job: {by_kind}.

Redis' own time per command (INFO commandstats, µs per call, median of the rounds):

{report.markdown_table(["RPC", "Redis command", "µs empty", "µs full"], command_rows(scale))}
""")
    return "\n".join(out)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of an RPC run (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up per RPC (default 1)")
    p.add_argument("--drain-jobs", type=int, default=3_000,
                   help="jobs per drain (default 3000)")
    p.add_argument("--scale-jobs", type=int, default=1_000_000,
                   help="pending jobs of the scale part (default 1000000: ~2 min, ~5.5 GB)")
    p.add_argument("--skip", default="", help="cost or scale: a part not to run")
    p.add_argument("--storage-dir", default=default_storage_dir(),
                   help="where the drains' files go (default /dev/shm, a tmpfs)")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/cluster.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    skip = report.selected(args.skip, ["cost", "scale"], "parts") if args.skip else []
    if skip is None:
        return 2
    loadavg = os.getloadavg()
    results: dict[str, Any] = {}
    print(f"bench cluster: {args.rounds} rounds; drains of {args.drain_jobs:,} jobs; "
          f"{args.scale_jobs:,} pending jobs", flush=True)
    if "cost" not in skip:
        results["cost"] = part_cost(args)
    if "scale" not in skip:
        results["scale"] = part_scale(args)
    data = report.run_data(NAME, argv, args, loadavg, {}, results)
    md = markdown(data)
    print()
    print(md)
    report.save(NAME, data, md, args.no_record)
    errors = 0
    if "cost" in results:
        errors += sum(v[op]["errors"] for v in results["cost"]["summary"].values() for op in OPS)
    if "scale" in results:
        errors += sum(v[n]["errors"] for v in results["scale"]["summary"].values()
                      for n in ("empty", "full"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
