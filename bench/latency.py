"""`python -m bench latency`: submit -> COMPLETED seen by a WatchJob, one tiny job at a time,
with the workers hot (busy a moment ago) and idle (0.5 s since the last job), and beside them
the machine's own floor for the same two cases.

The stack, on loopback: a redis-server with AOF on (fsync every second, as `make run`), the
real `mend-server` (gRPC), `mend-worker --processes 2` (as deployed: a supervisor and two
worker processes, each with its executor child; file storage). The client is this process:
one grpc.aio channel; per job it calls SubmitImageResize (a 16x16 JPEG to 8x8), then opens
WatchJob on the id it got and reads until the COMPLETED state arrives. Latency is from just
before the submit call to that arrival.

Modes, interleaved in every round (their order rotates), so both see the same machine:
- hot: each job is submitted as soon as the previous one was seen completed;
- idle: IDLE seconds (0.5) of nothing before each job.

Per job, where the time went, from the client's clocks and the job's own timestamps (Redis
TIME, whole milliseconds, so each of those stages reads up to 1 ms off):
submit (the SubmitImageResize round trip), queue (created_at -> started_at: the wake-up of an
idle worker and its claim), processing (started_at -> completed_at: the executor child's round
trip and the work), seen (completed_at -> arrival on the stream: the change feed and gRPC).

The floor, measured in the same rounds with the same gap: a bare Python ping-pong between two
processes over a socketpair (what waking a sleeping process costs here) and a bare BLPOP wake
through the same redis-server (a process blocked in BLPOP, woken by an RPUSH, answering with
an RPUSH its peer BLPOPs), plus a fixed piece of CPU work (decode and resize the same 16x16
JPEG with Pillow, in this process) run hot and after the same sleep: what a cold CPU costs."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from PIL import Image

from bench import report
from bench.drain import SOURCE, default_storage_dir, filesystem, make_source
from bench.services import (
    API_KEY,
    BIN,
    ROOT,
    Process,
    process_tree,
    python_module,
    run_seconds,
    start_mend_server,
    wait_for_port,
)
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer

NAME = "latency"
GOAL_P50_MS, GOAL_P99_MS = 3.0, 10.0
WORKERS = 2
AUTH = (("x-api-key", API_KEY),)
JOB_TIMEOUT = 30.0  # catches a hang; times nothing
MODES = ("hot", "idle")
QUIET_SECONDS = 1.0  # per round: the stacks' CPU with no job at all
STAGES = ("submit", "queue", "processing", "seen")

# The echo side of the ping-pong floor: a second Python process answering each byte.
ECHO = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
while (b := s.recv(1)):
    s.send(b)
"""
# The waiter of the BLPOP floor: blocks on `ping`, answers on `pong`.
BLPOP_WAITER = """
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
r.rpush("floor:ready", 1)
while True:
    key, value = r.blpop(["floor:ping"])
    if value == b"stop":
        break
    r.rpush("floor:pong", value)
"""


# --- Mend --------------------------------------------------------------------------------


class Client:
    """One grpc.aio channel to the server; run() times one job."""

    def __init__(self, port: int, name: str) -> None:
        from mend.v1 import jobs_pb2 as pb
        from mend.v1 import jobs_pb2_grpc

        self.pb = pb
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = jobs_pb2_grpc.JobServiceStub(self.channel)
        self.count = 0
        self.name = name

    async def run(self) -> dict[str, float]:
        pb = self.pb
        self.count += 1
        request = pb.SubmitImageResizeRequest(
            source_bucket=SOURCE[0], source_key=SOURCE[1],
            dest_bucket="out", dest_key=f"lat/{self.name}/{self.count}.jpg", width=8, height=8,
        )
        t0_wall = time.time_ns()
        t0 = time.perf_counter()
        reply = await self.stub.SubmitImageResize(request, metadata=AUTH, timeout=JOB_TIMEOUT)
        t1 = time.perf_counter()
        call = self.stub.WatchJob(pb.WatchJobRequest(id=reply.job_id), metadata=AUTH,
                                  timeout=JOB_TIMEOUT)
        first = None
        async for message in call:
            if not message.HasField("job"):
                continue
            if first is None:
                first = time.perf_counter()
            job = message.job
            if job.status == pb.JOB_STATUS_COMPLETED:
                t2 = time.perf_counter()
                t2_wall = time.time_ns()
                call.cancel()
                break
            if job.status in (pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED):
                raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}")
        else:
            raise RuntimeError(f"job {reply.job_id}: stream ended before completion")
        assert first is not None
        created = job.created_at.ToMilliseconds()
        started = job.started_at.ToMilliseconds()
        completed = job.completed_at.ToMilliseconds()
        return {
            "total": 1000 * (t2 - t0),
            "submit": 1000 * (t1 - t0),
            "watch_open": 1000 * (first - t1),  # the stream's first message after submit
            "commit": created - t0_wall / 1e6,  # submit call -> the job's created_at
            "queue": float(started - created),
            "processing": float(completed - started),
            "seen": t2_wall / 1e6 - completed,
        }

    async def close(self) -> None:
        await self.channel.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Stack:
    """A redis-server, `mend-server` and `mend-worker --processes 2` running the Mend code
    at `code` (this tree, or --baseline's), with a client."""

    def __init__(self, name: str, code: Path, storage: Path) -> None:
        self.name = name
        self.redis = RedisServer()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(code), str(code / "clients")]),
            "MEND_REDIS_URL": self.redis.url,
            "MEND_STORAGE": "file",
            "MEND_STORAGE_ROOT": str(storage),
            "MEND_WORKERS": str(WORKERS),
        }
        self.server, port = start_mend_server(self.redis.url, extra_env=env, root=code)
        self.workers = Process(
            "mend-worker", [str(BIN / "mend-worker"), "--processes", str(WORKERS)],
            env=env, root=code,
        )
        self.client = Client(port, name)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each part of the stack (the supervisor's children are the
        workers; theirs, the executor children)."""
        workers = _children(self.workers.pid)
        executors = [c for w in workers for c in _children(w)]
        return {
            "server": sum(map(run_seconds, process_tree(self.server.pid))),
            "redis": run_seconds(self.redis.pid),
            "worker": sum(map(run_seconds, workers)),
            "executor child": sum(map(run_seconds, executors)),
            "client": run_seconds(os.getpid()),
        }

    async def close(self) -> None:
        await self.client.close()
        self.workers.stop()
        self.server.stop()
        self.redis.stop()


# --- the floor ---------------------------------------------------------------------------


class PipePingPong:
    """A second Python process echoing one byte over a socketpair."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-c", ECHO, str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),))
        theirs.close()

    async def run(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.sock.send(b"x")
        self.sock.recv(1)
        return {"total": 1000 * (time.perf_counter() - t0)}

    def close(self) -> None:
        self.sock.close()
        self.proc.wait(10)


class BlpopPingPong:
    """A second process blocked in BLPOP; woken by an RPUSH, it answers with an RPUSH that
    this one BLPOPs (redis-py, synchronous on both sides)."""

    def __init__(self, port: int) -> None:
        import redis

        self.redis = redis.Redis(port=port)
        self.proc = subprocess.Popen([sys.executable, "-c", BLPOP_WAITER, str(port)])
        self.redis.blpop(["floor:ready"], timeout=30)

    async def run(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.redis.rpush("floor:ping", 1)
        self.redis.blpop(["floor:pong"], timeout=10)
        return {"total": 1000 * (time.perf_counter() - t0)}

    def close(self) -> None:
        self.redis.rpush("floor:ping", "stop")
        self.proc.wait(10)
        self.redis.close()


class GrpcNoop:
    """SubmitImageResize against the no-op server (bench/noop_server.py: grpc.aio on uvloop
    with the server's options, answering a constant), over its own channel."""

    def __init__(self) -> None:
        from mend.v1 import jobs_pb2 as pb
        from mend.v1 import jobs_pb2_grpc

        port = free_port()
        self.server = Process("noop-server", python_module("bench.noop_server", str(port)))
        wait_for_port(self.server, port)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = jobs_pb2_grpc.JobServiceStub(self.channel)
        self.request = pb.SubmitImageResizeRequest(
            source_bucket=SOURCE[0], source_key=SOURCE[1], dest_bucket="out", dest_key="x.jpg",
            width=8, height=8,
        )

    async def run(self) -> dict[str, float]:
        t0 = time.perf_counter()
        await self.stub.SubmitImageResize(self.request, metadata=AUTH, timeout=JOB_TIMEOUT)
        return {"total": 1000 * (time.perf_counter() - t0)}

    async def close(self) -> None:
        await self.channel.close()
        self.server.stop()


class ColdCompute:
    """A fixed piece of CPU work in this process: decode the 16x16 JPEG, resize to 8x8,
    encode (what the executor child does, without the storage)."""

    def __init__(self, source: bytes) -> None:
        self.source = source

    async def run(self) -> dict[str, float]:
        t0 = time.perf_counter()
        with Image.open(io.BytesIO(self.source)) as img:
            out = io.BytesIO()
            img.resize((8, 8), Image.Resampling.LANCZOS).save(out, "JPEG", quality=85)
        return {"total": 1000 * (time.perf_counter() - t0)}


# --- the rounds --------------------------------------------------------------------------


async def series(
    run: Callable[[], Awaitable[dict[str, float]]], count: int, idle: float
) -> list[dict[str, float]]:
    """count samples of run(); before each, `idle` seconds of sleep (0: back to back)."""
    out = []
    for _ in range(count):
        if idle:
            time.sleep(idle)  # a plain sleep: nothing of this process wakes meanwhile
        out.append(await run())
    return out


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(samples)}
    for key in samples[0]:
        values = sorted(s[key] for s in samples)
        out[key] = {
            f"p{q}": round(report.percentile(values, q), 3) for q in (50, 90, 99)
        } | {"mean": round(sum(values) / len(values), 3)}
    return out


async def measure(args: argparse.Namespace, root: Path) -> Any:
    stacks = {"mend": Stack("mend", ROOT, root)}
    if args.baseline:
        stacks["baseline"] = Stack("baseline", Path(args.baseline), root)
    floor_redis = stacks["mend"].redis
    pipe = PipePingPong()
    blpop = BlpopPingPong(floor_redis.port)
    noop = GrpcNoop()
    compute = ColdCompute(root.joinpath(*SOURCE).read_bytes())
    subjects: dict[str, tuple[Callable[[], Awaitable[dict[str, float]]], int]] = {
        **{name: (stack.client.run, args.jobs) for name, stack in stacks.items()},
        "pipe": (pipe.run, args.floor_samples),
        "blpop": (blpop.run, args.floor_samples),
        "grpc": (noop.run, args.floor_samples),
        "compute": (compute.run, args.floor_samples),
    }
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {mode: [] for mode in MODES} for name in subjects
    }
    cpu_used = {name: {mode: defaultdict[str, float](float) for mode in MODES} for name in stacks}
    # What each stack uses with no job at all (housekeeping, Redis's cron, timers): taken
    # out of the idle mode's CPU, whose jobs are IDLE seconds apart.
    quiet = {name: defaultdict[str, float](float) for name in stacks}
    quiet_seconds = 0.0
    try:
        for stack in stacks.values():
            # Warm-up: the executor children start, every partition gets used.
            await series(stack.client.run, args.warmup, 0)
            await series(stack.client.run, 3, args.idle)
        for r in range(args.rounds):
            befores = {name: stack.cpu() for name, stack in stacks.items()}
            time.sleep(QUIET_SECONDS)
            quiet_seconds += QUIET_SECONDS
            for name, stack in stacks.items():
                for who, seconds in stack.cpu().items():
                    quiet[name][who] += seconds - befores[name][who]
            order = [(name, mode) for name in subjects for mode in MODES]
            shift = r % len(order)
            for name, mode in order[shift:] + order[:shift]:
                run, count = subjects[name]
                if not count:
                    continue
                idle = args.idle if mode == "idle" else 0.0
                timed = stacks.get(name)
                before = timed.cpu() if timed else {}
                samples[name][mode] += await series(run, count, idle)
                if timed:
                    for who, seconds in timed.cpu().items():
                        cpu_used[name][mode][who] += seconds - before[who]
            line = []
            for name, stack in stacks.items():
                stack.workers.check_alive()
                hot, idle_ = (summary(samples[name][m])["total"] for m in MODES)
                line.append(f"{name} hot p50 {hot['p50']:.2f} p99 {hot['p99']:.2f}, idle p50 "
                            f"{idle_['p50']:.2f} p99 {idle_['p99']:.2f} ms")
            print(f"  round {r + 1}/{args.rounds}: {'; '.join(line)} "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        pipe.close()
        blpop.close()
        await noop.close()
        for stack in stacks.values():
            await stack.close()

    def background(name: str, who: str, mode: str) -> float:
        if mode != "idle":
            return 0.0  # hot jobs have no gaps
        return quiet[name][who] / quiet_seconds * args.idle * len(samples[name][mode])

    return {
        name: {mode: summary(s) for mode, s in by_mode.items() if s}
        for name, by_mode in samples.items()
    } | {"cpu_ms_per_job": {
        name: {
            mode: {
                who: round(1000 * (s - background(name, who, mode)) / len(samples[name][mode]), 3)
                for who, s in used[mode].items()
            }
            for mode in MODES
        }
        for name, used in cpu_used.items()
    }, "cpu_quiet_percent": {
        name: {who: round(100 * s / quiet_seconds, 2) for who, s in q.items()}
        for name, q in quiet.items()
    }} | {"raw_ms": {
        name: {mode: [round(s["total"], 3) for s in samples[name][mode]] for mode in MODES}
        for name in stacks
    }}


# --- the record --------------------------------------------------------------------------


def _ms(x: float) -> str:
    return f"{x:.2f}"


STACK_LABELS = {"mend": "Mend (this tree)", "baseline": "Mend (--baseline)"}
FLOOR_LABELS = {
    "pipe": "ping-pong over a socketpair (2 Python processes)",
    "blpop": "BLPOP wake and answer through Redis (2 processes)",
    "grpc": "gRPC unary call to a no-op server (grpc.aio both sides)",
    "compute": "decode + resize + encode 16x16 JPEG (in process)",
}
STAGE_NAMES = ("submit", "watch_open", "commit", "queue", "processing", "seen", "total")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(data: dict[str, Any]) -> str:
    s, r, m = data["settings"], data["results"], data["machine"]
    stacks = [n for n in STACK_LABELS if n in r]
    goal, floor = [], []
    for name in stacks:
        for mode in MODES:
            t = r[name][mode]["total"]
            met = t["p50"] < GOAL_P50_MS and t["p99"] < GOAL_P99_MS
            goal.append(_row([STACK_LABELS[name], mode, _ms(t["p50"]), _ms(t["p90"]),
                              _ms(t["p99"]), f"p50 < {GOAL_P50_MS:g}, p99 < {GOAL_P99_MS:g}",
                              "yes" if met else "no"]))
    columns = [(name, mode) for name in stacks for mode in MODES]
    head = ["stage", *(f"{name} {mode}" for name, mode in columns)]
    stages = [_row(head), _row(["---"] * len(head))]
    for stage in STAGE_NAMES:
        cells = [r[n][mode][stage] for n, mode in columns]
        stages.append(_row([stage, *(f"{_ms(c['p50'])} / {_ms(c['p99'])} / {_ms(c['mean'])}"
                                     for c in cells)]))
    cpu = r["cpu_ms_per_job"]
    quiet = "; ".join(
        f"{name} " + ", ".join(f"{who} {pct:.2f}" for who, pct in parts.items())
        for name, parts in r["cpu_quiet_percent"].items()
    )
    head = ["part", *(f"{name} {mode}" for name, mode in columns)]
    cpu_rows = [_row(head), _row(["---"] * len(head))]
    for who in cpu["mend"]["hot"]:
        cpu_rows.append(_row([who, *(f"{cpu[n][mode][who]:.2f}" for n, mode in columns)]))
    for name, label in {**STACK_LABELS, **FLOOR_LABELS}.items():
        if name in r and set(MODES) <= set(r[name]):
            hot, idle = r[name]["hot"]["total"], r[name]["idle"]["total"]
            floor.append(_row([label, _ms(hot["p50"]), _ms(hot["p99"]), _ms(idle["p50"]),
                               _ms(idle["p99"]), f"{idle['p50'] - hot['p50']:+.2f}"]))
    baseline = (f"\n- baseline: in the same rounds, the same stack running the Mend tree at\n"
                f"  `{s['baseline']}` (--baseline)" if s.get("baseline") else "")
    return f"""# Submit -> COMPLETED seen by a WatchJob (one 16x16 job at a time), hot and idle

- command: `{data["command"]}`
- date: {data["date"]}
- machine: nproc {m["nproc"]}, {m["cpu"]}; python {m["python"]}, grpcio {m["grpcio"]},
  redis-server {m["redis_server"]}; load average at start {data["loadavg"]}, at the end
  {data["loadavg_end"]} (shared machine)
- stack: redis-server (AOF, fsync every second), `mend-server`, `mend-worker --processes
  {WORKERS}` (file storage on {data["storage_fs"]}); client: this process, one grpc.aio
  channel, SubmitImageResize (16x16 JPEG -> 8x8) then WatchJob until COMPLETED{baseline}
- {s["rounds"]} rounds; per round and mode {s["jobs"]} jobs and {s["floor_samples"]} samples
  of each floor; hot: back to back; idle: {s["idle"]:g} s of sleep before each; the order of
  the modes rotates from round to round

| stack | mode | p50 ms | p90 ms | p99 ms | goal | met |
|---|---|---|---|---|---|---|
{chr(10).join(goal)}

Where the time goes, per stage, ms p50 / p99 / mean (submit, watch_open, total: client
clocks; commit, queue, processing, seen: the job's timestamps, whole ms of Redis TIME, so each
reads up to 1 ms off, and their percentiles do not add up to the total's):

{chr(10).join(stages)}

- submit: the SubmitImageResize call; watch_open: submit's return -> the stream's first
  message; commit: before the submit call -> the job's created_at; queue: created_at ->
  started_at (an idle worker wakes in BLPOP and claims); processing: started_at ->
  completed_at (the executor child's round trip and the work); seen: completed_at -> the
  COMPLETED state read from the stream.

CPU time per job, ms, by part of the stack (all the process's threads, from
/proc/PID/task/*/schedstat, over the jobs of each mode; idle: less what the part uses with
no job at all, measured for {QUIET_SECONDS:g} s a round, times the gaps — that use, % of a
core: {quiet}):

{chr(10).join(cpu_rows)}

The floor, same rounds, same gap (ms):

| what | hot p50 | hot p99 | idle p50 | idle p99 | idle - hot, p50 |
|---|---|---|---|---|---|
{chr(10).join(floor)}

Every latency is in `latency.json` (`raw_ms`).
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench latency", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    p.add_argument("--jobs", type=int, default=30, help="Mend jobs per round and mode (30)")
    p.add_argument("--floor-samples", type=int, default=10,
                   help="samples of each floor per round and mode (10; 0: no floor)")
    p.add_argument("--idle", type=float, default=0.5, help="idle gap, seconds (0.5)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up jobs (20)")
    p.add_argument("--storage-dir", default=default_storage_dir(),
                   help="where the file storage lives (default /dev/shm: a tmpfs, so the "
                   "output's fsyncs cost nothing and the figures are Mend's, not the disk's)")
    p.add_argument("--baseline", metavar="DIR",
                   help="a second Mend tree (e.g. `git worktree add /tmp/main main`) run as a "
                   "second stack in the same rounds, for before/after figures")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/latency.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
    loadavg = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mend-bench-latency-", dir=args.storage_dir))
    try:
        make_source(root)
        results = asyncio.run(measure(args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data = report.run_data(
        NAME, argv, args, loadavg, {}, results,
        storage_fs=filesystem(Path(args.storage_dir or tempfile.gettempdir())),
        loadavg_end=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
    md = markdown(data)
    print()
    print("\n".join(line for line in md.splitlines() if line.startswith("|")))
    report.save(NAME, data, md, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
