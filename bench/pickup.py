"""`python -m bench pickup`: how fast an idle Mend worker picks a job up, and how long a
job held by a SIGKILLed worker takes to run again elsewhere.

Both against a real redis-server (AOF on, fsync every second) and real `mend-worker
--single` processes with the file storage backend.

Pickup: one idle worker, blocked in Redis; jobs are submitted one at a time (through
JobStore.submit, the code behind the gRPC submit RPCs), each after the previous one
completed and the worker went idle again. Latency is from just before the submit call to
the arrival of the job's `processing` change on the changes channel (so it includes the
submit round trip and the pub/sub delivery: an upper bound). The job's started_at minus
created_at (both Redis TIME, in whole ms) is shown too.

Recovery: two idle workers; a slow job (a 24 MP JPEG re-encoded as a large PNG) is
submitted, and the worker that claimed it is SIGKILLed as soon as the job is processing.
Recovery is from the SIGKILL to the job being processing again, on the other worker; the
job must then complete. Expected: about the lease (MEND_LEASE_SECONDS, 10 s) plus at most
one reaper interval (1 s)."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench import report
from bench.services import BIN, Process, partitions
from mend_core.jobstate.encoding import FIELDS, full_names, log_entry
from mend_devkit.redis_server import RedisServer

NAME = "pickup"
TENANT = "bench"
SMALL = ("bench", "small.jpg")
LARGE = ("bench", "large.jpg")
GOAL_P50_MS, GOAL_P99_MS, GOAL_RECOVERY_S = 5.0, 20.0, 15.0


def spec(source: tuple[str, str], dest_key: str, width: int, height: int) -> Any:
    from mend_core.job import JobSpec
    from mend_core.operations.image_resize import ResizeParams

    return JobSpec(
        type="image_resize",
        source_bucket=source[0],
        source_key=source[1],
        dest_bucket="out",
        dest_key=dest_key,
        params=ResizeParams(width=width, height=height),
        max_attempts=3,
    )


class Changes:
    """The changes channel, read into a queue of (monotonic arrival, job id, version)."""

    def __init__(self, redis_url: str) -> None:
        from bench.sharded_pubsub import ShardedPubSub
        from mend_core.redis_client import connect

        self.client = connect(redis_url)
        self.pubsub = ShardedPubSub(self.client.connection_pool)
        self.queue: asyncio.Queue[tuple[float, str, int]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for keys in partitions().keys:
            await self.pubsub.ssubscribe(keys.changes_channel)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "smessage":
                job_id, _, version = message["data"].rpartition(":")
                self.queue.put_nowait((time.perf_counter(), job_id, int(version)))

    async def until(
        self, job_id: str, status: str, timeout: float, after_version: int = 0
    ) -> tuple[float, int]:
        """Arrival time of the first change of job_id past after_version that made its
        status `status` (read from the job's event log at that version), and the version."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job_id} did not become {status} in {timeout} s")
            try:
                at, jid, version = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                continue
            if jid != job_id or version <= after_version:
                continue
            log = await self.client.lrange(partitions().job_keys(job_id).events(job_id), 0, -1)
            entry = dict(log_entry(raw) for raw in log).get(version, {})
            if entry.get("status") == status:
                return at, version

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.pubsub.aclose()
        await self.client.aclose()


def start_worker(redis_url: str, root: Path) -> Process:
    env = {
        **os.environ,
        "MEND_REDIS_URL": redis_url,
        "MEND_STORAGE": "file",
        "MEND_STORAGE_ROOT": str(root),
    }
    return Process("mend-worker", [str(BIN / "mend-worker"), "--single"], env=env)


def worker_id(process: Process, timeout: float = 20.0) -> str:
    """The id a worker logs when it starts ("worker <id> started")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            m = re.search(r"worker (\S+) started", process.log.read_text(errors="replace"))
        except OSError:
            m = None
        if m:
            return m.group(1)
        time.sleep(0.02)
    raise RuntimeError(f"worker did not start:\n{process.tail()}")


async def submit(store: Any, job_spec: Any) -> str:
    (submitted,) = await store.submit(TENANT, [job_spec])
    return str(submitted.job_id)


async def run_job(store: Any, changes: Changes, dest: str) -> tuple[str, float, float]:
    """Submits one small job; returns (id, submit->processing ms, submit->completed ms)."""
    changes.drain()
    t0 = time.perf_counter()
    job_id = await submit(store, spec(SMALL, dest, 8, 8))
    processing, version = await changes.until(job_id, "processing", 10)
    completed, _ = await changes.until(job_id, "completed", 30, version)
    return job_id, 1000 * (processing - t0), 1000 * (completed - t0)


async def pickup(
    store: Any, changes: Changes, redis: Any, jobs: int, warmup: int, idle_ms: tuple[float, float]
) -> dict[str, Any]:
    for i in range(warmup):  # the first job also starts the worker's executor child
        await run_job(store, changes, f"warm/{i}.jpg")
    client_ms, redis_ms, total_ms = [], [], []
    for i in range(jobs):
        # Let the worker go back to blocking in Redis (it finishes reporting the previous
        # job, finds the queue empty and blocks).
        await asyncio.sleep(random.uniform(*idle_ms) / 1000)
        job_id, to_processing, to_completed = await run_job(store, changes, f"p/{i}.jpg")
        created, started = await redis.hmget(
            partitions().job_keys(job_id).job(job_id), [FIELDS["created_at"], FIELDS["started_at"]]
        )
        client_ms.append(to_processing)
        total_ms.append(to_completed)
        redis_ms.append(int(started) - int(created))
    client_ms.sort()
    redis_ms.sort()
    total_ms.sort()
    return {
        "jobs": jobs,
        "p50_ms": round(report.percentile(client_ms, 50), 3),
        "p90_ms": round(report.percentile(client_ms, 90), 3),
        "p99_ms": round(report.percentile(client_ms, 99), 3),
        "max_ms": round(client_ms[-1], 3),
        "redis_p50_ms": report.percentile(redis_ms, 50),
        "redis_p99_ms": report.percentile(redis_ms, 99),
        "redis_max_ms": redis_ms[-1],
        "submit_to_completed_p50_ms": round(report.percentile(total_ms, 50), 3),
        "latencies_ms": [round(x, 3) for x in client_ms],
    }


async def recovery_once(
    store: Any, changes: Changes, redis: Any, workers: dict[str, Process], n: int
) -> dict[str, Any]:
    changes.drain()
    # Slow enough to be killed mid-job: full decode, Lanczos to 4000 wide, PNG encode.
    job_id = await submit(store, spec(LARGE, f"slow/{n}.png", 4000, 0))
    _, version = await changes.until(job_id, "processing", 20)
    key = partitions().job_keys(job_id).job(job_id)
    holder = await redis.hget(key, FIELDS["worker"])
    victim = workers.pop(holder)
    victim.popen.send_signal(signal.SIGKILL)
    t_kill = time.perf_counter()
    redis_kill_ms = await redis_time_ms(redis)
    victim.popen.wait()
    victim.stop()
    again, version = await changes.until(job_id, "processing", 60, version)
    fields = full_names(await redis.hgetall(key))
    rescuer = fields.get("worker")
    if fields.get("attempt") != "2" or rescuer == holder or rescuer not in workers:
        raise RuntimeError(f"unexpected recovery of {job_id}: {fields}")
    await changes.until(job_id, "completed", 60, version)
    return {
        "recovery_s": round(again - t_kill, 3),
        "recovery_redis_s": round((int(fields["started_at"]) - redis_kill_ms) / 1000, 3),
        "killed": holder,
        "rescued_by": rescuer,
    }


async def redis_time_ms(redis: Any) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def wait_idle(redis: Any, count: int, timeout: float = 30.0) -> None:
    """Until `count` workers have registered (their housekeeping runs at start-up)."""
    deadline = time.monotonic() + timeout
    while await redis.zcard(partitions().workers) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers registered")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # and are blocked waiting for work


async def measure(
    args: argparse.Namespace, redis_server: RedisServer, root: Path
) -> dict[str, Any]:
    from mend_core.jobstate.store import JobStore
    from mend_core.redis_client import connect

    redis = connect(redis_server.url)
    store = JobStore(
        redis,
        partitions(),
        retention_completed_seconds=86400,
        retention_failed_seconds=86400,
        worker_liveness_seconds=30,
    )
    changes = Changes(redis_server.url)
    await changes.start()
    processes: list[Process] = []
    try:
        first = start_worker(redis_server.url, root)
        processes.append(first)
        worker_id(first)
        await wait_idle(redis, 1)
        out: dict[str, Any] = {}
        if args.jobs:
            print(f"  pickup: {args.jobs} jobs, one at a time, 1 idle worker", flush=True)
            out["pickup"] = await pickup(
                store, changes, redis, args.jobs, args.warmup, (args.idle_min_ms, args.idle_max_ms)
            )
            p = out["pickup"]
            print(
                f"  pickup: p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, "
                f"max {p['max_ms']:.2f} ms",
                flush=True,
            )
        kills = []
        workers = {worker_id(first): first}
        for n in range(args.kills):
            while len(workers) < 2:
                w = start_worker(redis_server.url, root)
                processes.append(w)
                workers[worker_id(w)] = w
            await redis.delete(partitions().workers)  # forget the killed ones
            await wait_idle(redis, 2)
            r = await recovery_once(store, changes, redis, workers, n)
            kills.append(r)
            print(f"  recovery {n + 1}: {r['recovery_s']:.2f} s after SIGKILL", flush=True)
        if kills:
            out["recovery"] = {
                "kills": kills,
                "median_s": round(report.median([k["recovery_s"] for k in kills]), 3),
                "max_s": max(k["recovery_s"] for k in kills),
            }
        return out
    finally:
        for p in processes:
            p.stop()
        await changes.close()
        await redis.aclose()


def make_sources(root: Path) -> None:
    from bench.resize import source
    from mend_devkit.sample import photo

    small = root.joinpath(*SMALL)
    small.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    photo(16, 16).save(buf, "JPEG", quality=90)
    small.write_bytes(buf.getvalue())
    root.joinpath(*LARGE).write_bytes(source("24MP"))
    with Image.open(root.joinpath(*LARGE)) as img:
        assert img.size == (6000, 4000)


def markdown(data: dict[str, Any]) -> str:
    m, s, r = data["machine"], data["settings"], data["results"]
    rows = []
    if "pickup" in r:
        p = r["pickup"]
        rows.append(
            [
                "pickup p50 (submit -> processing)",
                f"{p['p50_ms']:.2f} ms",
                f"< {GOAL_P50_MS:g} ms",
                "yes" if p["p50_ms"] < GOAL_P50_MS else "NO",
            ]
        )
        rows.append(
            [
                "pickup p99",
                f"{p['p99_ms']:.2f} ms",
                f"< {GOAL_P99_MS:g} ms",
                "yes" if p["p99_ms"] < GOAL_P99_MS else "NO",
            ]
        )
        rows.append(["pickup p90 / max", f"{p['p90_ms']:.2f} / {p['max_ms']:.2f} ms", "", ""])
        rows.append(
            [
                "started_at - created_at (Redis ms) p50 / p99 / max",
                f"{p['redis_p50_ms']:g} / {p['redis_p99_ms']:g} / {p['redis_max_ms']:g}",
                "",
                "",
            ]
        )
        rows.append(
            [
                "submit -> completed p50 (16x16 -> 8x8)",
                f"{p['submit_to_completed_p50_ms']:.2f} ms",
                "",
                "",
            ]
        )
    if "recovery" in r:
        rec = r["recovery"]
        runs = ", ".join(f"{k['recovery_s']:.2f}" for k in rec["kills"])
        rows.append(
            [
                "recovery after SIGKILL (median; runs)",
                f"{rec['median_s']:.2f} s ({runs})",
                f"<= {GOAL_RECOVERY_S:g} s",
                "yes" if rec["max_s"] <= GOAL_RECOVERY_S else "NO",
            ]
        )
    return f"""# Pickup latency and recovery after SIGKILL (Mend workers)

- command: `{data["command"]}`
- date: {data["date"]}
- machine: nproc {m["nproc"]}, {m["cpu"]}; redis-server {m["redis_server"]} (AOF on,
  appendfsync everysec); load average at start {data["loadavg"]} (shared machine)
- pickup: {s["jobs"]} jobs one at a time after {s["warmup"]} warm-up jobs, 1 idle
  `mend-worker --single` blocked in Redis; {s["idle_min_ms"]:g}-{s["idle_max_ms"]:g} ms idle
  before each submit; latency from before JobStore.submit to the `processing` change
  arriving on the changes channel (includes the submit round trip and pub/sub delivery)
- recovery: {s["kills"]} times, 2 idle workers, the one holding a slow job (24 MP JPEG ->
  4000 px PNG) SIGKILLed once the job is processing; time until it is processing again on
  the other worker (it then completes); lease {data["lease_seconds"]:g} s, heartbeat 1 s,
  reaper every 1 s

| measure | value | goal | met |
|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in rows)}

All latencies are in `pickup.json`.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench pickup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--jobs", type=int, default=200, help="pickup jobs (default 200)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up jobs (default 5)")
    p.add_argument("--idle-min-ms", type=float, default=10, help="idle before submit, min")
    p.add_argument("--idle-max-ms", type=float, default=30, help="idle before submit, max")
    p.add_argument("--kills", type=int, default=3, help="SIGKILL recoveries (default 3)")
    p.add_argument(
        "--no-record",
        action="store_true",
        help="print only; do not write bench/results/pickup.{json,md}",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    from mend_core.settings import Settings

    lease = Settings().lease_seconds
    loadavg = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mend-bench-pickup-"))
    redis_server = RedisServer()
    try:
        make_sources(root)
        results = asyncio.run(measure(args, redis_server, root))
    finally:
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench pickup", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
        "lease_seconds": lease,
        "settings": vars(args),
        "results": results,
    }
    md = markdown(data)
    print()
    print("\n".join(line for line in md.splitlines() if line.startswith("|")))
    report.save(NAME, data, md, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
