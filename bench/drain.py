"""`python -m bench drain`: how fast 2 worker processes drain a queue of tiny jobs, Mend
vs Celery vs Dramatiq, on the same redis-server (AOF on, fsync every second).

Each job reads a 16x16 JPEG from file storage, resizes it to 8x8 and writes the output
atomically (temp file, fsync, rename). All three run exactly the same code for that
(mend_core.imaging + mend_core.storage; the peers call it through bench/peers/work.py),
so the difference is the job system: Mend with leases, fencing, an event log per job and
status counters; Celery (prefork, --concurrency 2, acks_late, results in Redis); Dramatiq
(2 processes x 1 thread, default middleware).

A run enqueues every job first (not timed), then starts the workers and samples the
number of finished jobs every 50 ms: Mend's completed counter in Redis, the peers'
output files. The drain rate is the jobs finished between the first sample that saw one
and the last, over that time, so worker start-up is not counted for anyone. Systems
take turns, in a rotating order, for --runs runs; the table shows medians.

The peers live in their own virtualenv, bench/.venv-peers, which this benchmark creates
from bench/requirements-peers.txt on first use (PyPI access needed once)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from PIL import Image

from bench import report
from bench.profile import busy_stacks, record
from bench.services import BIN, ROOT, Process, cpu_seconds, partitions
from mend_devkit.redis_server import RedisServer

NAME = "drain"  # bench/results/drain.md; drain-disk.md when the storage is not on tmpfs
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEERS_REQUIREMENTS = ROOT / "bench" / "requirements-peers.txt"
SOURCE = ("bench", "src.jpg")
OUT_SIZE = (8, 8)
WORKERS = 2
SAMPLE_SECONDS = 0.05
STALL_SECONDS = 60.0  # no progress for this long: the system is broken, stop the run
GOALS = {"celery": 3.0, "dramatiq": 1.0}  # Mend / peer
LABELS = {"mend": "Mend", "celery": "Celery", "dramatiq": "Dramatiq"}
SUBMIT_BATCH = 500


# ----------------------------------------------------------------------------- peers venv


def ensure_peers_venv() -> Path:
    """bench/.venv-peers with the peers installed; (re)installed when the requirements
    file changes. Returns its bin directory."""
    bindir = PEERS_VENV / "bin"
    stamp = PEERS_VENV / ".installed"
    digest = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (bindir / "python").exists():
        return bindir
    print(f"  installing the peers into {PEERS_VENV} (once) ...", flush=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    if not (bindir / "python").exists():
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(bindir / "pip"), "install", "--quiet", "-r", str(PEERS_REQUIREMENTS)], check=True
    )
    stamp.write_text(digest)
    return bindir


def peer_versions(bindir: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            str(bindir / "python"),
            "-c",
            "import celery, dramatiq, kombu, PIL; "
            "print(celery.__version__, kombu.__version__, dramatiq.__version__, PIL.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return dict(zip(("celery", "kombu", "dramatiq", "pillow"), out, strict=True))


# ----------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    """pid and every live process below it (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def role(pid: int, root: int) -> str:
    """What a process of a system's tree does: Mend's executor children and workers are
    told apart by their command line; otherwise the root is "main", the rest "pool"."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    if b"--executor-fd" in argv:
        return "executor child"
    if b"--single" in argv:
        return "worker"
    return "main" if pid == root else "pool"


def tree_cpu_seconds(
    pid: int, measure: Callable[[int], float] = cpu_seconds
) -> dict[str, float]:
    """CPU seconds used so far by the live processes under pid, by role, each by `measure`
    (bench.services.cpu_seconds or run_seconds)."""
    out: dict[str, float] = {}
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError):  # exited meanwhile
            kind = role(p, pid)
            out[kind] = out.get(kind, 0.0) + measure(p)
    return out


@dataclass
class Context:
    redis: RedisServer
    root: Path  # file storage root
    jobs: int
    peers_bin: Path | None
    # One connection for all the sampling: a new redis-py client costs ~10 ms of CPU
    # (it reads its package metadata), which would load the machine being measured.
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis(port=self.redis.port)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BENCH_REDIS_URL": self.redis.url,
            "BENCH_STORAGE_ROOT": str(self.root),
            "BENCH_WIDTH": str(OUT_SIZE[0]),
            "BENCH_HEIGHT": str(OUT_SIZE[1]),
            "MEND_REDIS_URL": self.redis.url,
            "MEND_STORAGE": "file",
            "MEND_STORAGE_ROOT": str(self.root),
            "MEND_WORKERS": str(WORKERS),
        }


# -------------------------------------------------------------------------------- systems


@dataclass
class System:
    name: str
    enqueue: Callable[[Context, str], None]
    start: Callable[[Context], Process]
    # Jobs finished so far in the run's destination bucket.
    finished: Callable[[Context, str], int]
    failed: Callable[[Context], int] = field(default=lambda ctx: 0)


def mend_enqueue(ctx: Context, bucket: str) -> None:
    from mend_core.job import JobSpec
    from mend_core.jobstate.store import JobStore
    from mend_core.operations.image_resize import ResizeParams
    from mend_core.redis_client import connect

    async def submit() -> None:
        client = connect(ctx.redis.url)
        store = JobStore(
            client,
            partitions(),
            retention_completed_seconds=86400,
            retention_failed_seconds=86400,
            worker_liveness_seconds=30,
        )
        try:
            for start in range(0, ctx.jobs, SUBMIT_BATCH):
                specs = [
                    JobSpec(
                        type="image_resize",
                        source_bucket=SOURCE[0],
                        source_key=SOURCE[1],
                        dest_bucket=bucket,
                        dest_key=f"out/{i}.jpg",
                        params=ResizeParams(width=OUT_SIZE[0], height=OUT_SIZE[1]),
                    )
                    for i in range(start, min(start + SUBMIT_BATCH, ctx.jobs))
                ]
                await store.submit("bench", specs)
        finally:
            await client.aclose()

    asyncio.run(submit())


def _mend_counter(ctx: Context, status: str) -> int:
    pipe = ctx.client.pipeline(transaction=False)
    for keys in partitions().keys:  # the partitions' counters, summed
        pipe.hget(keys.stats, f"image_resize:{status}")
    return sum(int(n or 0) for n in pipe.execute())


def mend_start(ctx: Context) -> Process:
    return Process(
        "mend-worker", [str(BIN / "mend-worker"), "--processes", str(WORKERS)], env=ctx.env()
    )


def peer_enqueue(module: str) -> Callable[[Context, str], None]:
    def enqueue(ctx: Context, bucket: str) -> None:
        assert ctx.peers_bin is not None
        env = ctx.env()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        subprocess.run(
            [str(ctx.peers_bin / "python"), "-m", module, str(ctx.jobs), "/".join(SOURCE), bucket],
            env=env,
            cwd=ROOT,
            check=True,
        )

    return enqueue


def celery_start(ctx: Context) -> Process:
    assert ctx.peers_bin is not None
    return Process(
        "celery",
        [
            str(ctx.peers_bin / "celery"),
            "-A",
            "bench.peers.celery_app",
            "worker",
            "--concurrency",
            str(WORKERS),
            "-P",
            "prefork",
            "--loglevel",
            "WARNING",
            # Cluster chatter a single worker does not need (and Celery's own docs suggest
            # turning off for throughput).
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=ctx.env(),
    )


def dramatiq_start(ctx: Context) -> Process:
    assert ctx.peers_bin is not None
    return Process(
        "dramatiq",
        [
            str(ctx.peers_bin / "dramatiq"),
            "bench.peers.dramatiq_app",
            "--processes",
            str(WORKERS),
            "--threads",
            "1",
        ],
        env=ctx.env(),
    )


def count_outputs(ctx: Context, bucket: str) -> int:
    try:
        return sum(1 for e in os.scandir(ctx.root / bucket / "out") if e.name[0] != ".")
    except FileNotFoundError:
        return 0


SYSTEMS = {
    "mend": System(
        "mend",
        mend_enqueue,
        mend_start,
        lambda ctx, _bucket: _mend_counter(ctx, "completed"),
        lambda ctx: _mend_counter(ctx, "failed"),
    ),
    "celery": System("celery", peer_enqueue("bench.peers.celery_app"), celery_start, count_outputs),
    "dramatiq": System(
        "dramatiq", peer_enqueue("bench.peers.dramatiq_app"), dramatiq_start, count_outputs
    ),
}


# ------------------------------------------------------------------------------ one run


def drain(ctx: Context, system: System, run: int, profile: Path | None = None) -> dict[str, Any]:
    """Enqueue, start the workers, wait until every job is finished; one run's figures.
    With `profile`, py-spy samples the workers' processes into that file (raw format)."""
    ctx.client.flushall()
    bucket = f"{system.name}-{run}"
    t0 = time.monotonic()
    system.enqueue(ctx, bucket)
    enqueue_s = time.monotonic() - t0
    redis_cpu0 = cpu_seconds(ctx.redis.pid)
    process = system.start(ctx)
    spawned = time.monotonic()
    spy = None
    first: tuple[float, int, dict[str, float], float] | None = None
    last_change, last_count = spawned, 0
    try:
        while True:
            time.sleep(SAMPLE_SECONDS)
            now, done = time.monotonic(), system.finished(ctx, bucket)
            if done and first is None:
                first = (now, done, tree_cpu_seconds(process.pid), cpu_seconds(ctx.redis.pid))
                if profile is not None:  # from here on: start-up is not of interest
                    spy = record(
                        process.pid, profile, rate=100, native=False, subprocesses=True
                    )
            if done >= ctx.jobs:
                break
            if system.failed(ctx):
                raise RuntimeError(f"{system.name}: jobs failed:\n{process.tail()}")
            if done != last_count:
                last_change, last_count = now, done
            elif now - last_change > STALL_SECONDS:
                raise RuntimeError(
                    f"{system.name}: stuck at {done}/{ctx.jobs} jobs:\n{process.tail()}"
                )
            process.check_alive()
        workers_cpu = tree_cpu_seconds(process.pid)
        redis_cpu = cpu_seconds(ctx.redis.pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            spy.communicate(timeout=60)
        process.stop(30)
    assert first is not None
    t_first, n_first, workers_cpu0, redis_cpu_first = first
    elapsed = now - t_first
    jobs = ctx.jobs - n_first
    by_role = {
        k: round(1000 * (v - workers_cpu0.get(k, 0.0)) / jobs, 3) for k, v in workers_cpu.items()
    }
    outputs = count_outputs(ctx, bucket)
    if outputs != ctx.jobs:
        raise RuntimeError(f"{system.name}: {outputs} outputs for {ctx.jobs} jobs")
    check_outputs(ctx.root, bucket, ctx.jobs)
    shutil.rmtree(ctx.root / bucket, ignore_errors=True)
    return {
        "jobs_per_s": jobs / elapsed if elapsed > 0 else float("nan"),
        "drain_seconds": round(elapsed, 3),
        "with_startup_seconds": round(now - spawned, 3),
        "enqueue_seconds": round(enqueue_s, 3),
        # CPU per job while draining: the workers (all their processes) and Redis.
        "workers_cpu_ms_per_job": sum(by_role.values()),
        "workers_cpu_ms_per_job_by_role": by_role,
        "redis_cpu_ms_per_job": 1000 * (redis_cpu - redis_cpu_first) / jobs,
        "redis_cpu_incl_enqueue_ms_per_job": 1000 * (redis_cpu - redis_cpu0) / ctx.jobs,
        "loadavg_1m": os.getloadavg()[0],
    }


def make_source(root: Path) -> None:
    from mend_devkit.sample import photo

    path = root.joinpath(*SOURCE)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    photo(16, 16).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())
    with Image.open(path) as img:
        assert img.size == (16, 16)


def check_outputs(root: Path, bucket: str, jobs: int) -> None:
    """Spot check: the last output decodes as an 8x8 JPEG."""
    with Image.open(root / bucket / "out" / f"{jobs - 1}.jpg") as img:
        assert img.size == OUT_SIZE and img.format == "JPEG", (img.size, img.format)


# ------------------------------------------------------------------------------- report


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "jobs_per_s",
        "drain_seconds",
        "with_startup_seconds",
        "enqueue_seconds",
        "workers_cpu_ms_per_job",
        "redis_cpu_ms_per_job",
    )
    out: dict[str, Any] = {k: round(report.median([r[k] for r in runs]), 3) for k in keys}
    roles = {k for r in runs for k in r["workers_cpu_ms_per_job_by_role"]}
    out["workers_cpu_ms_per_job_by_role"] = {
        k: round(report.median([r["workers_cpu_ms_per_job_by_role"].get(k, 0.0) for r in runs]), 3)
        for k in sorted(roles)
    }
    return out


IDLE_FRAMES = re.compile(r"\((selectors|threading|queue)\.py|select \(|poll \(|wait \(")


def summarise_profile(path: Path, top: int = 25) -> str:
    """Markdown: per process role, the functions holding the largest share of the busy
    samples (inclusive), from py-spy's raw output. Samples whose leaf waits for work
    (epoll, condition variables) are left out."""
    by_role: dict[str, Counter[str]] = {}
    busy: Counter[str] = Counter()
    for frames, n in busy_stacks(path, idle=IDLE_FRAMES):
        procs = [f for f in frames if f.startswith("process ")]
        if not procs:
            continue
        cmd = procs[-1]
        kind = (
            "executor child"
            if "--executor-fd" in cmd
            else "worker"
            if "--single" in cmd
            else "supervisor"
        )
        busy[kind] += n
        seen = set()
        for f in frames:
            if f.startswith("process "):
                continue
            name = re.sub(r":\d+\)$", ")", f).replace(str(ROOT) + "/", "")
            name = re.sub(r"\S*/(site-packages|python3\.\d+)/", "", name)
            if name not in seen:
                seen.add(name)
                by_role.setdefault(kind, Counter())[name] += n
    out = []
    for kind in ("worker", "executor child"):
        if kind not in by_role:
            continue
        total = busy[kind]
        out.append(f"### {kind} ({total} busy samples)\n")
        out.append("| share | function (inclusive) |\n|---|---|")
        for name, n in by_role[kind].most_common(top):
            out.append(f"| {100 * n / total:.1f}% | `{name}` |")
        out.append("")
    return "\n".join(out)


def _cpu_per_job(summary: dict[str, Any]) -> float:
    return float(summary["workers_cpu_ms_per_job"] + summary["redis_cpu_ms_per_job"])


def tables(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "system",
        "jobs/s (median)",
        "runs jobs/s",
        "Mend/system",
        "goal",
        "met",
        "worker CPU ms/job",
        "Redis CPU ms/job",
        "Mend/system by CPU",
    ]
    rows = []
    summary = data["summary"]
    for name in data["settings"]["systems"]:
        s = summary[name]
        runs = ", ".join(f"{r['jobs_per_s']:.0f}" for r in data["runs"][name])
        ratio = data["ratios"].get(name)
        goal = GOALS.get(name)
        by_cpu = ""
        if "mend" in summary and name != "mend":
            # What the ratio would be with the machine saturated by the system alone.
            by_cpu = f"{_cpu_per_job(s) / _cpu_per_job(summary['mend']):.2f}x"
        rows.append(
            [
                LABELS[name],
                f"{s['jobs_per_s']:,.0f}",
                runs,
                f"{ratio:.2f}x" if ratio else "",
                f">= {goal:g}x" if goal else "",
                ("yes" if ratio >= goal else "NO") if goal and ratio else "",
                f"{s['workers_cpu_ms_per_job']:.2f}",
                f"{s['redis_cpu_ms_per_job']:.3f}",
                by_cpu,
            ]
        )
    return header, rows


def markdown(data: dict[str, Any]) -> str:
    header, rows = tables(data)
    m, s, v = data["machine"], data["settings"], data["versions"]
    return f"""# Drain benchmark: Mend vs Celery vs Dramatiq

- command: `{data["command"]}`
- date: {data["date"]}
- machine: nproc {m["nproc"]}, {m["cpu"]}; redis-server {m["redis_server"]} (AOF on,
  appendfsync everysec); load average at start {data["loadavg"]} (the machine is shared:
  other work ran alongside; the CPU per job columns are less sensitive to that than jobs/s)
- versions: Python {m["python"]}; peers in bench/.venv-peers: Celery {v.get("celery")}
  (kombu {v.get("kombu")}), Dramatiq {v.get("dramatiq")}, Pillow {v.get("pillow")}
- work: {s["jobs"]:,} jobs per run, each a 16x16 JPEG read from file storage, resized to
  8x8 and written atomically (fsync + rename) by the same code (mend_core) in every system;
  {WORKERS} worker processes; {s["runs"]} runs per system, rotating which goes first;
  file storage on {s["storage_fs"]} ({s["storage_dir"] or "the temp dir"})
- Mend: `mend-worker --processes 2` (leases with fencing, heartbeats, reaper, an event-log
  entry and a pub/sub message per transition, per-job INFO log lines, executor child per
  worker); completed counted from Redis
- Celery: `celery worker --concurrency 2 -P prefork --without-gossip --without-mingle
  --without-heartbeat`, acks_late, default prefetch, results stored in Redis
- Dramatiq: `dramatiq --processes 2 --threads 1`, Redis broker, default middleware
- drain rate: jobs finished from the first observed completion to the last, over that
  time (start-up excluded for every system)
- CPU per job: user + system time of all the system's processes (and of Redis) while
  draining, over the jobs drained; "Mend/system by CPU" is the peer's (workers + Redis) CPU
  per job over Mend's: the throughput ratio on a machine the system has to itself

{report.markdown_table(header, rows)}

CPU per job by process (median ms; Mend: the workers' asyncio processes and their
executor children; Celery: the main process and the prefork pool; Dramatiq: the main
process and the worker processes):

{
        report.markdown_table(
            ["system", "process", "CPU ms/job"],
            [
                [LABELS[n], k, f"{v:.3f}"]
                for n in s["systems"]
                for k, v in data["summary"][n]["workers_cpu_ms_per_job_by_role"].items()
            ],
        )
    }

Per-run figures (drain seconds, start-up included, enqueue time, CPU) are in the JSON file.
{data.get("profile_markdown", "")}"""


def default_storage_dir() -> str | None:
    """tmpfs when there is one: the outputs' fsyncs are then free, so the figures measure
    the job systems rather than the disk (each job fsyncs its output file and directory,
    several ms on a virtual disk, the same for every system). --storage-dir DIR on a disk
    measures that too."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def filesystem(path: Path) -> str:
    """The type of the filesystem holding path, from /proc/mounts (longest mount prefix)."""
    best, fstype = "", "unknown"
    resolved = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            _, mount, kind, *_ = line.split()
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, fstype = mount, kind
    return fstype


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench drain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--jobs", type=int, default=10_000, help="jobs per run (default 10000)")
    p.add_argument("--runs", type=int, default=3, help="runs per system (default 3)")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma separated subset of mend,celery,dramatiq",
    )
    p.add_argument(
        "--storage-dir",
        default=default_storage_dir(),
        help="where the file storage root is made (default: /dev/shm, a tmpfs; "
        "give a directory on disk to include the outputs' fsyncs)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more Mend run with py-spy sampling the workers; the summary "
        "goes into the results",
    )
    p.add_argument(
        "--no-record",
        action="store_true",
        help="print only; do not write bench/results/drain.{json,md}",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := [s for s in names if s not in SYSTEMS]:
        print(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    args.systems = names
    peers = any(n != "mend" for n in names)
    peers_bin = ensure_peers_venv() if peers else None
    loadavg = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mend-bench-drain-", dir=args.storage_dir))
    redis_server = RedisServer()
    ctx = Context(redis_server, root, args.jobs, peers_bin)
    storage_fs = filesystem(root)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    print(f"bench drain: {args.jobs:,} jobs x {args.runs} runs x {', '.join(names)}", flush=True)
    try:
        make_source(root)
        for i in range(args.runs):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                r = drain(ctx, SYSTEMS[name], i)
                runs[name].append(r)
                print(
                    f"  run {i + 1} {LABELS[name]:9} {r['jobs_per_s']:7,.0f} jobs/s "
                    f"(drain {r['drain_seconds']:.1f} s, workers "
                    f"{r['workers_cpu_ms_per_job']:.2f} ms CPU/job, redis "
                    f"{r['redis_cpu_ms_per_job']:.3f}; load {r['loadavg_1m']:.1f})",
                    flush=True,
                )
        profile_md = ""
        if args.profile and "mend" in names:
            raw = root / "profile.txt"
            drain(ctx, SYSTEMS["mend"], args.runs, profile=raw)
            profile_md = (
                "\n## Profile of Mend's workers (py-spy, one extra run)\n\n"
                "Shares of py-spy's samples (wall clock, 100 Hz, waits in epoll left out): a "
                "blocking read or write still counts, so the executor child's `recv` is "
                "mostly waiting for its next task, and the socket writes include being "
                "switched out for the woken reader on a busy machine.\n\n" + summarise_profile(raw)
            )
        aof = redis_server.info("persistence").get("aof_enabled")
    finally:
        ctx.client.close()
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)

    summary = {n: summarise(runs[n]) for n in names}
    ratios = {}
    if "mend" in summary:
        for n in names:
            if n != "mend":
                ratios[n] = round(summary["mend"]["jobs_per_s"] / summary[n]["jobs_per_s"], 3)
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench drain", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
        "versions": peer_versions(peers_bin) if peers_bin else {},
        "settings": {**vars(args), "redis_aof_enabled": aof, "storage_fs": storage_fs},
        "summary": summary,
        "ratios": ratios,
        "runs": runs,
    }
    if profile_md:
        data["profile_markdown"] = profile_md
        print(profile_md)
    header, rows = tables(data)
    print()
    print(report.text_table(header, rows))
    name = NAME if storage_fs == "tmpfs" else f"{NAME}-disk"
    report.save(name, data, markdown(data), args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
