"""`python -m bench watch`: WatchJob latency with 1,000 concurrent streams on one server.

In one run on one machine it starts a redis-server (AOF on, fsync every second), the real
`mend-server`, watcher processes holding 1,000 WatchJob streams between them, and a bare
Redis pub/sub subscriber; all on loopback. The benchmark process plays the workers: it moves
jobs through claim -> progress -> complete with WorkQueue (the workers' own code), at a
fixed pace, and notes the time just before each call.

Latency is measured per delivery (one transition reaching one stream), two ways:
- from the call: receive time minus the time just before the transition's script was called
  (includes the script's own round trip; the conservative figure, compared with the goal);
- from the commit: receive time minus the job's updated_at, which the script takes from
  Redis TIME inside the transition (millisecond resolution, truncated: up to 1 ms high).
All processes read the same clock (CLOCK_REALTIME on one machine).

The floor, measured in the same rounds, is the bare subscriber: the time from the call to a
redis-py subscriber receiving the transition's PUBLISH, which any design built on Redis
pub/sub pays before it can do anything. Scenarios differ in how the 1,000 streams are spread
over jobs: one watcher per job, 100 per job, and all on one job (the widest fan-out).
A last scenario, **burst**, opens 3,000 streams on one job at once (every watcher process
opens all of its streams in one go, as clients reconnecting together after a restart would)
and also measures how long each stream took to get its first message."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import report
from bench.services import (
    API_KEY,
    cpu_seconds,
    machine_busy_seconds,
    partitions,
    python_module,
    start_mend_server,
)
from mend_devkit.redis_server import RedisServer

NAME = "watch"
GOAL_P99_MS = 50.0
AUTH = (("x-api-key", API_KEY),)
# gRPC core rejects calls arriving faster than the server takes them beyond
# grpc.server.max_pending_requests (1,000); watchers open their streams in waves below it.
OPEN_WAVE = 250
# Bounds that catch hangs; they time nothing.
READY_TIMEOUT = 120.0
ROUND_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    watchers_per_job: int
    progress_steps: int  # progress updates between claim and complete
    transitions_per_s: float
    burst: bool = False  # open every stream at once (not in waves), timing the first message

    @property
    def streams(self) -> int:
        return self.jobs * self.watchers_per_job

    @property
    def transitions(self) -> int:
        return self.jobs * (self.progress_steps + 2)

    @property
    def deliveries(self) -> int:
        return self.transitions * self.watchers_per_job

    def describe(self) -> str:
        jobs = "1 job" if self.jobs == 1 else f"{self.jobs:,} jobs"
        opened = "opened in one burst" if self.burst else "opened in waves"
        return (
            f"{jobs}, {self.watchers_per_job:,} stream(s) on each, {opened}; claim, "
            f"{self.progress_steps} progress update(s), complete: {self.transitions:,} "
            f"transitions at {self.transitions_per_s:g}/s, "
            f"{self.deliveries:,} deliveries per round"
        )


SCENARIOS = (
    Scenario("spread", jobs=1000, watchers_per_job=1, progress_steps=1, transitions_per_s=600),
    Scenario("fan-out", jobs=10, watchers_per_job=100, progress_steps=2, transitions_per_s=20),
    Scenario("one job", jobs=1, watchers_per_job=1000, progress_steps=8, transitions_per_s=5),
    Scenario("burst", jobs=1, watchers_per_job=3000, progress_steps=2, transitions_per_s=5,
             burst=True),
)
GOAL_FIRST_P99_MS = 500.0  # burst: first message p99 (issue #13)


# --- child processes ------------------------------------------------------------------


async def _stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _watch(call: grpc.aio.UnaryStreamCall, out: list[list[Any]]) -> None:
    """Notes every state that follows the first (the one current at open) until the end."""
    while (message := await call.read()) is not grpc.aio.EOF:
        recv_ns = time.time_ns()
        if message.HasField("job"):
            job = message.job
            out.append([job.id, job.version, job.updated_at.ToMilliseconds(), recv_ns])


async def watcher(port: int, channels: int) -> None:
    """Per round: {"jobs": [id per stream], "burst": bool} -> opens the streams (in waves,
    or all at once with the time each took to get its first message), says "ready",
    collects until every stream has ended, then says the samples."""
    from mend.v1 import jobs_pb2 as pb
    from mend.v1 import jobs_pb2_grpc

    # Distinct channel arguments: each channel gets its own HTTP/2 connection.
    chans = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("bench.channel", i)])
        for i in range(channels)
    ]
    stubs = [jobs_pb2_grpc.JobServiceStub(ch) for ch in chans]
    stdin = await _stdin_lines()
    while line := await stdin.readline():
        order = json.loads(line)
        job_ids: list[str] = order["jobs"]
        samples: list[list[Any]] = []
        tasks = []
        errors = 0
        if order.get("burst"):
            first_ms, tasks, errors = await _burst(stubs, job_ids, samples)
            _say(ready=len(tasks), first_ms=first_ms, open_errors=errors)
        else:
            for start in range(0, len(job_ids), OPEN_WAVE):
                wave = [
                    stubs[i % len(stubs)].WatchJob(
                        pb.WatchJobRequest(id=job_ids[i]), metadata=AUTH
                    )
                    for i in range(start, min(start + OPEN_WAVE, len(job_ids)))
                ]
                await asyncio.gather(*(c.read() for c in wave))
                tasks += [asyncio.create_task(_watch(call, samples)) for call in wave]
            _say(ready=len(tasks))
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                errors += 1
                print(f"watch stream failed: {result!r}", file=sys.stderr)
        _say(samples=samples, errors=errors)
    for ch in chans:
        await ch.close()


async def _burst(
    stubs: list[Any], job_ids: list[str], samples: list[list[Any]]
) -> tuple[list[float], list[asyncio.Task[None]], int]:
    """Opens every stream at once; the ms from the burst's start to each first message."""
    from mend.v1 import jobs_pb2 as pb

    first_ms: list[float] = []

    async def first(call: grpc.aio.UnaryStreamCall) -> None:
        await call.read()
        first_ms.append((time.monotonic_ns() - t0) / 1e6)

    t0 = time.monotonic_ns()
    calls = [
        stubs[i % len(stubs)].WatchJob(pb.WatchJobRequest(id=job_id), metadata=AUTH)
        for i, job_id in enumerate(job_ids)
    ]
    opened = await asyncio.gather(*(first(c) for c in calls), return_exceptions=True)
    tasks, errors = [], 0
    for call, result in zip(calls, opened, strict=True):
        if isinstance(result, BaseException):
            errors += 1
            print(f"watch stream failed to open: {result!r}", file=sys.stderr)
        else:
            tasks.append(asyncio.create_task(_watch(call, samples)))
    return first_ms, tasks, errors


async def subscriber(redis_url: str, channels: str) -> None:
    """Per round: "start" -> subscribes (to the space-separated sharded channels), says
    "ready"; "stop" -> says the samples."""
    from redis.asyncio import Redis

    from bench.sharded_pubsub import ShardedPubSub

    redis = Redis.from_url(redis_url, decode_responses=True)
    stdin = await _stdin_lines()
    while await stdin.readline():
        pubsub = ShardedPubSub(redis.connection_pool, ignore_subscribe_messages=True)
        for channel in channels.split():
            await pubsub.ssubscribe(channel)
        samples: list[list[Any]] = []

        async def listen(pubsub: Any = pubsub, samples: list[list[Any]] = samples) -> None:
            async for message in pubsub.listen():
                recv_ns = time.time_ns()
                if message["type"] == "smessage":
                    job_id, _, version = message["data"].rpartition(":")
                    samples.append([job_id, int(version), recv_ns])

        task = asyncio.create_task(listen())
        await pubsub.ping()  # the subscription is confirmed once this answers
        _say(ready=1)
        await stdin.readline()
        task.cancel()
        await pubsub.aclose()
        _say(samples=samples)
    await redis.aclose()


# --- the benchmark ----------------------------------------------------------------------


class Child:
    """A helper process spoken to in JSON lines."""

    def __init__(self, *args: str, module: str = "bench.watch") -> None:
        self.popen = subprocess.Popen(
            python_module(module, *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )

    def send(self, **message: Any) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(message) + "\n")
        self.popen.stdin.flush()

    async def receive(self, timeout: float) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.popen.stdout.readline), timeout)
        if not line:
            raise RuntimeError(f"bench.watch child exited with {self.popen.wait()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.popen.stdin:
            self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def server_redis_connections(server_pid: int, redis_port: int) -> int:
    """TCP connections from the server process to Redis, from /proc (no Redis command)."""
    inodes = set()
    for fd in Path(f"/proc/{server_pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            remote_port = int(cols[2].rpartition(":")[2], 16)
            if remote_port == redis_port and cols[9] in inodes and cols[3] == "01":
                count += 1
    return count


async def submit_jobs(stub: Any, count: int) -> list[str]:
    from mend.v1 import jobs_pb2 as pb

    request = pb.SubmitImageResizeRequest(
        source_bucket="bench", source_key="in.jpg", dest_bucket="bench", dest_key="out.jpg",
        width=100, height=100,
    )
    ids: list[str] = []
    for start in range(0, count, 100):
        replies = await asyncio.gather(
            *(stub.SubmitImageResize(request, metadata=AUTH)
              for _ in range(min(100, count - start)))
        )
        ids += [r.job_id for r in replies]
    return ids


async def drive(queue: Any, scenario: Scenario) -> dict[tuple[str, int], int]:
    """Moves every pending job through claim, progress and complete at the scenario's pace;
    returns the time just before each transition's call, by (job id, version)."""
    from mend_core.results import ImageMetadata, JobResult

    result = JobResult(output_url="file://bench/out.jpg", file_size=1, duration=0.01,
                       metadata=ImageMetadata(width=100, height=100, format="JPEG"))
    interval_ns = int(1e9 / scenario.transitions_per_s)
    called: dict[tuple[str, int], int] = {}
    next_ns = time.time_ns()

    async def paced() -> int:
        nonlocal next_ns
        delay = (next_ns - time.time_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        next_ns += interval_ns
        return time.time_ns()

    for _ in range(scenario.jobs):
        t = await paced()
        lease = await queue.claim("bench-worker")
        assert lease is not None, "no pending job to claim"
        version = lease.job.version
        called[(lease.job_id, version)] = t
        for step in range(scenario.progress_steps):
            t = await paced()
            assert await queue.progress(lease, (step + 1) * 10, f"step {step + 1}")
            version += 1
            called[(lease.job_id, version)] = t
        t = await paced()
        assert await queue.complete(lease, result)
        called[(lease.job_id, version + 1)] = t
    return called


def latencies(samples: list[list[Any]], called: dict[tuple[str, int], int]) -> dict[str, Any]:
    from_call = sorted((recv - called[(job, v)]) / 1e6 for job, v, _, recv in samples)
    from_commit = sorted(recv / 1e6 - updated_ms for _, _, updated_ms, recv in samples)
    return {
        "deliveries": len(samples),
        "p50_ms": report.percentile(from_call, 50),
        "p90_ms": report.percentile(from_call, 90),
        "p99_ms": report.percentile(from_call, 99),
        "max_ms": from_call[-1] if from_call else float("nan"),
        "commit_p50_ms": report.percentile(from_commit, 50),
        "commit_p99_ms": report.percentile(from_commit, 99),
    }


async def run_round(
    scenario: Scenario,
    stub: Any,
    queue: Any,
    watchers: list[Child],
    floor: Child,
    server_pid: int,
    redis_pid: int,
    redis_port: int,
    relay: Child | None = None,
) -> dict[str, Any]:
    """One round; with `relay`, the watchers are the bare relay's (bench/watch_relay.py),
    told where each job's streams end: submit is version 1, claim 2, then the progress
    updates and complete."""
    job_ids = await submit_jobs(stub, scenario.jobs)
    if relay is not None:
        relay.send(end={job_id: 3 + scenario.progress_steps for job_id in job_ids})
    streams = [job_id for job_id in job_ids for _ in range(scenario.watchers_per_job)]
    shares = [streams[i :: len(watchers)] for i in range(len(watchers))]
    opening = [server_pid, *(w.popen.pid for w in watchers)]
    open_cpu0, open_wall0 = [cpu_seconds(p) for p in opening], time.monotonic()
    for child, share in zip(watchers, shares, strict=True):
        child.send(jobs=share, burst=scenario.burst)
    ready = [await w.receive(READY_TIMEOUT) for w in watchers]
    open_errors = sum(r.get("open_errors", 0) for r in ready)
    assert sum(r["ready"] for r in ready) + open_errors == scenario.streams, ready
    first_ms = sorted(ms for r in ready for ms in r.get("first_ms", []))
    # CPU while the streams opened: the server's and the watchers' (per stream, µs).
    open_cpu = [cpu_seconds(p) - c for p, c in zip(opening, open_cpu0, strict=True)]
    open_wall = time.monotonic() - open_wall0
    floor.send(cmd="start")
    await floor.receive(READY_TIMEOUT)
    connections = server_redis_connections(server_pid, redis_port)

    ours = [server_pid, redis_pid, os.getpid(), floor.popen.pid, *(w.popen.pid for w in watchers)]
    cpu0, busy0, wall0 = [cpu_seconds(p) for p in ours], machine_busy_seconds(), time.monotonic()
    called = await drive(queue, scenario)
    outs = [await w.receive(ROUND_TIMEOUT) for w in watchers]
    elapsed = time.monotonic() - wall0
    cpu = [cpu_seconds(p) - c for p, c in zip(ours, cpu0, strict=True)]
    server_cpu, watchers_cpu = cpu[0], sum(cpu[4:])
    # Whatever else ran meanwhile (other people's work on a shared machine): the noise.
    others = max(0.0, machine_busy_seconds() - busy0 - sum(cpu))
    floor.send(cmd="stop")
    floor_samples = (await floor.receive(ROUND_TIMEOUT))["samples"]

    samples = [s for out in outs for s in out["samples"]]
    floor_ms = sorted(
        (recv - called[(job, v)]) / 1e6 for job, v, recv in floor_samples if (job, v) in called
    )
    firsts = {}
    if scenario.burst:
        firsts = {
            "first_p50_ms": report.percentile(first_ms, 50),
            "first_p99_ms": report.percentile(first_ms, 99),
            "first_max_ms": first_ms[-1] if first_ms else float("nan"),
            "open_wall_ms": 1000 * open_wall,
            "open_server_cpu_us_per_stream": 1e6 * open_cpu[0] / scenario.streams,
            "open_watchers_cpu_us_per_stream": 1e6 * sum(open_cpu[1:]) / scenario.streams,
        }
    return {
        **latencies(samples, called),
        **firsts,
        "missing": scenario.deliveries - len(samples),
        "errors": sum(out["errors"] for out in outs),  # open errors included
        "floor_p50_ms": report.percentile(floor_ms, 50),
        "floor_p99_ms": report.percentile(floor_ms, 99),
        "server_cpu_pct": 100 * server_cpu / elapsed,
        # CPU time per delivery hardly depends on what else runs, unlike latency.
        "server_cpu_us_per_delivery": 1e6 * server_cpu / max(len(samples), 1),
        "watchers_cpu_us_per_delivery": 1e6 * watchers_cpu / max(len(samples), 1),
        "others_pct": 100 * others / elapsed,
        "server_redis_connections": connections,
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    figures = [k for k in rounds[0] if k.endswith(("_ms", "_pct", "_per_delivery", "_per_stream"))]
    out: dict[str, Any] = {k: round(report.median([r[k] for r in rounds]), 2) for k in figures}
    out["ratio_p99"] = round(out["p99_ms"] / out["floor_p99_ms"], 1)
    for k in ("deliveries", "missing", "errors"):
        out[k] = sum(r[k] for r in rounds)
    out["server_redis_connections"] = max(r["server_redis_connections"] for r in rounds)
    return out


HEADER = ["scenario", "streams", "deliveries", "p50 ms", "p99 ms", "max ms",
          "commit p99 ms", "floor p99 ms", "p99/floor", f"goal p99 < {GOAL_P99_MS:g} ms"]
CPU_HEADER = ["scenario", "server CPU %", "server µs/delivery", "watchers µs/delivery",
              "others %", "server Redis conns"]


def rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    out = []
    for s in (s for s in SCENARIOS if s.name in results):
        r = results[s.name]
        met = "yes" if r["p99_ms"] < GOAL_P99_MS else "NO"
        if r["missing"] or r["errors"]:
            met += f" ({r['missing']} missing, {r['errors']} errors)"
        out.append([
            s.name, str(s.streams), f"{r['deliveries']:,}", f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}", f"{r['commit_p99_ms']:.2f}",
            f"{r['floor_p99_ms']:.2f}", f"{r['ratio_p99']:.1f}", met,
        ])
    return out


BURST_HEADER = ["scenario", "streams", "first message p50 ms", "p99 ms", "max ms",
                f"goal p99 < {GOAL_FIRST_P99_MS:g} ms", "server µs CPU/stream opened",
                "watchers µs/stream opened"]


def burst_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """How long the streams opened at once took to get their first message."""
    return [
        [s.name, f"{s.streams:,}", f"{r['first_p50_ms']:.0f}", f"{r['first_p99_ms']:.0f}",
         f"{r['first_max_ms']:.0f}", "yes" if r["first_p99_ms"] < GOAL_FIRST_P99_MS else "NO",
         f"{r['open_server_cpu_us_per_stream']:.0f}",
         f"{r['open_watchers_cpu_us_per_stream']:.0f}"]
        for s in SCENARIOS if s.burst and (r := results.get(s.name))
    ]


def cpu_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [
        [s.name, f"{r['server_cpu_pct']:.0f}", f"{r['server_cpu_us_per_delivery']:.0f}",
         f"{r['watchers_cpu_us_per_delivery']:.0f}", f"{r['others_pct']:.0f}",
         str(r["server_redis_connections"])]
        for s in SCENARIOS if (r := results.get(s.name))
    ]


RELAY_HEADER = ["scenario", "server µs CPU/delivery: Mend", "bare relay", "Mend/relay",
                "p99 ms: Mend", "bare relay", "burst first p99 ms: Mend", "bare relay"]


def relay_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Mend's server against the bare grpc.aio relay of the same pub/sub (the floor)."""
    out = []
    for s in (s for s in SCENARIOS if s.name in results):
        r, b = results[s.name], results[s.name]["relay"]
        mend_cpu, relay_cpu = r["server_cpu_us_per_delivery"], b["server_cpu_us_per_delivery"]
        first = [f"{r['first_p99_ms']:.0f}", f"{b['first_p99_ms']:.0f}"] if s.burst else ["", ""]
        out.append([s.name, f"{mend_cpu:.0f}", f"{relay_cpu:.0f}",
                    f"{mend_cpu / relay_cpu:.2f}x", f"{r['p99_ms']:.1f}", f"{b['p99_ms']:.1f}",
                    *first])
    return out


def markdown(data: dict[str, Any]) -> str:
    m, st = data["machine"], data["settings"]
    scenarios = "\n".join(f"- **{s['name']}**: {s['describe']}" for s in data["scenarios"])
    return f"""# WatchJob benchmark

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; Python {m['python']}, grpcio {m['grpcio']},
  redis-server {m['redis_server']} (AOF on, appendfsync everysec)
- settings: {st['rounds']} rounds per scenario; {st['watchers']} watcher processes with
  {st['channels']} channels each; one `mend-server` process (`MEND_SERVER_PROCESSES=1`)
- load average at start: {data['loadavg_at_start']} (the machine may be shared)
- Redis, the server, the watchers and the driver share the machine.

{scenarios}

Latency of each delivery (a transition reaching a stream): **p50/p99/max** from just before
the transition's script was called to the watcher receiving it; **commit p99** from the
job's `updated_at` (Redis TIME in the script, ms resolution); **floor p99** the same
measure for a bare redis-py subscriber to the change channel. Figures are medians over
the rounds; deliveries, missing and errors are totals.

{report.markdown_table(HEADER, rows(data["results"]))}

Streams opened in one burst: the time from the burst's start (in each watcher process,
just before it creates its calls) to each stream's first message (the job's current
state), medians over the rounds.

{report.markdown_table(BURST_HEADER, burst_rows(data["results"]))}

CPU while the transitions ran (medians of the rounds): the server's share of a core and its
CPU time per delivery (the steady figure on a shared machine; latency is not), the watcher
processes' CPU time per delivery, what everything else on the machine used ("others %",
the noise, in % of one core), and the server's TCP connections to Redis with the 1,000
streams open (its pool and one pub/sub subscription).

{report.markdown_table(CPU_HEADER, cpu_rows(data["results"]))}

The server side's floor, in the same rounds (alternated with Mend's): a bare grpc.aio
relay (`bench/watch_relay.py`) serving WatchJob from the same sharded pub/sub, with its own
watcher processes: no authentication, no job read, no event log, no resume; each
transition is one pub/sub message, encoded once and written to every stream of its job
through an identity serializer. What it costs per delivery is what one grpc.aio process
pays to send a message down a stream on this machine.

{report.markdown_table(RELAY_HEADER, relay_rows(data["results"]))}

Per-round figures are in `watch.json`.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench watch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds per scenario (default 3)")
    p.add_argument("--watchers", type=int, default=2, help="watcher processes (default 2)")
    p.add_argument("--channels", type=int, default=4,
                   help="gRPC channels per watcher process (default 4)")
    p.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS],
                   help="run only this scenario (repeatable)")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/watch.*")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="sample the server with py-spy during each scenario's first round "
                        "(slows it: implies --no-record); stacks and summaries go to DIR")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from mend.v1 import jobs_pb2_grpc
    from mend_core.jobstate.queue import WorkQueue
    from mend_core.redis_client import connect

    redis_server = RedisServer()
    server, port = start_mend_server(redis_server.url, extra_env={"MEND_SERVER_PROCESSES": "1"})
    watchers = [Child("_watcher", str(port), str(args.channels)) for _ in range(args.watchers)]
    parts = partitions()
    channels = " ".join(k.changes_channel for k in parts.keys)
    floor = Child("_subscriber", redis_server.url, channels)
    # The server side's floor: a bare grpc.aio relay of the same pub/sub, its own watchers.
    relay = Child(redis_server.url, channels, module="bench.watch_relay")
    relay_port = (await relay.receive(READY_TIMEOUT))["port"]
    relay_watchers = [Child("_watcher", str(relay_port), str(args.channels))
                      for _ in range(args.watchers)]
    redis = connect(redis_server.url)
    queue = WorkQueue(redis, parts, lease_seconds=300, retention_completed_seconds=3600,
                      retention_failed_seconds=3600)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    results: dict[str, Any] = {}
    try:
        for scenario in SCENARIOS:
            if args.scenario and scenario.name not in args.scenario:
                continue
            rounds, relay_rounds = [], []
            for i in range(args.rounds):
                spy = None
                if args.profile and i == 0:
                    from bench import profile

                    stacks = args.profile / f"watch-{scenario.name.replace(' ', '-')}.txt"
                    args.profile.mkdir(parents=True, exist_ok=True)
                    seconds = scenario.transitions / scenario.transitions_per_s + 5
                    if scenario.burst:
                        seconds = 2.5  # the streams opening, and the first transitions
                    spy = profile.record(server.pid, stacks, seconds=seconds)
                r = await run_round(scenario, stub, queue, watchers, floor, server.pid,
                                    redis_server.pid, redis_server.port)
                if spy is not None:
                    await asyncio.to_thread(spy.wait)
                    print(profile.summarise(stacks))
                server.check_alive()
                if scenario.burst:
                    print(f"{scenario.name} round {i + 1}: first message p50 "
                          f"{r['first_p50_ms']:.0f} ms, p99 {r['first_p99_ms']:.0f} ms")
                print(f"{scenario.name} round {i + 1}: p50 {r['p50_ms']:.2f} ms, "
                      f"p99 {r['p99_ms']:.2f} ms, floor p99 {r['floor_p99_ms']:.2f} ms, "
                      f"{r['missing']} missing", flush=True)
                rounds.append(r)
                rr = await run_round(scenario, stub, queue, relay_watchers, floor,
                                     relay.popen.pid, redis_server.pid, redis_server.port,
                                     relay=relay)
                print(f"{scenario.name} round {i + 1}, bare relay: p50 {rr['p50_ms']:.2f} ms, "
                      f"p99 {rr['p99_ms']:.2f} ms, {rr['server_cpu_us_per_delivery']:.0f} µs "
                      f"CPU/delivery (Mend {r['server_cpu_us_per_delivery']:.0f}), "
                      f"{rr['missing']} missing", flush=True)
                relay_rounds.append(rr)
            results[scenario.name] = {"rounds": rounds, **summarise(rounds),
                                      "relay": {"rounds": relay_rounds,
                                                **summarise(relay_rounds)}}
    finally:
        await channel.close()
        await redis.aclose()
        for child in [*watchers, *relay_watchers, floor, relay]:
            child.stop()
        server.stop()
        redis_server.stop()
    return results


def main(argv: list[str]) -> int:
    args = parse(argv)
    loadavg = os.getloadavg()
    results = asyncio.run(run(args))
    chosen = [s for s in SCENARIOS if s.name in results]
    print(report.text_table(HEADER, rows(results)))
    print()
    if burst_rows(results):
        print(report.text_table(BURST_HEADER, burst_rows(results)))
        print()
    print(report.text_table(CPU_HEADER, cpu_rows(results)))
    print()
    print(report.text_table(RELAY_HEADER, relay_rows(results)))
    data = {
        "command": " ".join(["python -m bench watch", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in loadavg),
        "settings": {"rounds": args.rounds, "watchers": args.watchers,
                     "channels": args.channels},
        "scenarios": [{**asdict(s), "describe": s.describe()} for s in chosen],
        "results": results,
    }
    if not (args.no_record or args.profile) and len(chosen) == len(SCENARIOS):
        json_path, md_path = report.record(NAME, data, markdown(data))
        print(f"\nrecorded {json_path} and {md_path}")
    # Latency on a shared machine is reported, not enforced; a lost delivery is a failure.
    return 1 if any(r["missing"] or r["errors"] or r["relay"]["missing"] or r["relay"]["errors"]
                    for r in results.values()) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_watcher"]:
        asyncio.run(watcher(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[1:2] == ["_subscriber"]:
        asyncio.run(subscriber(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(main(sys.argv[1:]))
