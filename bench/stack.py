"""`python -m bench stack`: the whole Mend stack against plain Pillow on real work.

40 photographic 12 MP JPEGs (generated from mend_devkit.sample.photo, cached in
bench/.data/stack/) are resized to fit 800x600, JPEG q85, two ways, in turns:

- Mend: redis-server (AOF on, fsync every second, as `make run`), one `mend-server`
  process, `mend-gateway`, `mend-worker --processes 2` (two workers, each with its
  executor child), file storage. One POST /api/v1/jobs/batch of the 40 jobs, then one SSE
  stream per job (GET /api/v1/jobs/{id}/stream) through the gateway, read until its
  `complete` event. Wall time: from before the submit to the last completion seen.
- plain Pillow: two warm Python processes (bench/stack_plain.py) splitting the 40 files,
  each doing the same read, decode (with the draft and reduce steps Mend's imaging uses),
  resize, encode, temp file, fsync and rename. Wall time: from the go to the last done.
  The outputs are checked to be byte for byte the same as Mend's.

Every process is up and idle before a run (workers blocked in Redis, plain processes
waiting on stdin); one unrecorded round warms both up. Each round runs both systems,
alternating which goes first; the table shows medians and the ratio Mend / plain.
Each run also records the CPU time every process used (from /proc), per job: the server,
the gateway, the workers' asyncio processes, their executor children, Redis, the client
(this benchmark's process) and the plain processes; and, from the jobs' results, how
long the executor children were busy with a job (download, resize, upload) against the
wall time they had: the rest is the gaps between jobs.

The sources and outputs live on a tmpfs (/dev/shm) by default, as for `bench drain`:
the fsyncs cost nothing there; --storage-dir DIR on a disk measures them too."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from PIL import Image, ImageChops

from bench import drain, gateway, report
from bench.gateway_sse import SseStream
from bench.resize import source as base_photo
from bench.services import (
    API_KEY,
    BIN,
    ROOT,
    Process,
    machine_busy_seconds,
    partitions,
    python_module,
    run_seconds,
    tree_cpu_seconds,
)

NAME = "stack"
DATA = Path(__file__).parent / ".data" / "stack"
JOBS = 40
WORKERS = 2
BOX = (800, 600)
QUALITY = 85
GOAL = 1.04  # Mend / plain wall time, at most
SOURCES = ("photos", "src")  # bucket, key prefix: ROOT/photos/src/i.jpg
READY_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0


# ------------------------------------------------------------------------------ sources


def sources(count: int) -> list[Path]:
    """`count` distinct 12 MP q90 JPEGs: the resize benchmark's photo, shifted (with
    wrap-around) by a different offset each, so no two files hold the same pixels."""
    paths = [DATA / f"photo-4000x3000-{i}.jpg" for i in range(count)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"  generating {len(missing)} 12 MP sources in {DATA} (once) ...", flush=True)
        DATA.mkdir(parents=True, exist_ok=True)
        with Image.open(io.BytesIO(base_photo("12MP"))) as img:
            base = img.convert("RGB")
        for path in missing:
            i = int(path.stem.rpartition("-")[2])
            shifted = ImageChops.offset(base, i * 97, i * 61)
            tmp = path.with_suffix(".tmp")
            shifted.save(tmp, "JPEG", quality=90)
            tmp.rename(path)
    return paths


# -------------------------------------------------------------------------------- stack


class Stack(gateway.Stack):
    """bench gateway's stack (Redis, one server process, the gateway) and two workers on
    file storage at root."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        try:
            self.client = redis.Redis(port=self.redis.port)
            env = {
                **os.environ,
                "MEND_STORAGE": "file",
                "MEND_STORAGE_ROOT": str(root),
                "MEND_REDIS_URL": self.redis.url,
                "MEND_WORKERS": str(WORKERS),
            }
            self.workers = self._own(
                Process(
                    "mend-worker",
                    [str(BIN / "mend-worker"), "--processes", str(WORKERS)],
                    env=env,
                )
            )
            self._wait_for_workers()
        except BaseException:
            self.stop()
            raise

    def _wait_for_workers(self) -> None:
        """Until both workers are registered and both executor children run."""
        key = partitions().workers
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            kinds = [drain.role(p, self.workers.pid) for p in drain.descendants(self.workers.pid)]
            if self.client.zcard(key) >= WORKERS and kinds.count("executor child") >= WORKERS:
                return
            self.workers.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready:\n{self.workers.tail()}")
            time.sleep(0.1)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each kind of process of the stack, and the client."""
        out = {
            "server": tree_cpu_seconds(self.server.pid, run_seconds),
            "gateway": tree_cpu_seconds(self.gateway.pid, run_seconds),
            "redis": run_seconds(self.redis.pid),
            "client": run_seconds(os.getpid()),
        }
        for kind, seconds in drain.tree_cpu_seconds(self.workers.pid, run_seconds).items():
            out["worker supervisor" if kind == "main" else kind] = seconds
        return out

    def check_alive(self) -> None:
        super().check_alive()
        self.workers.check_alive()

    def stop(self) -> None:
        super().stop()
        if hasattr(self, "client"):
            self.client.close()


async def _http_json(port: int, method: str, path: str, body: bytes = b"") -> Any:
    """One request on its own connection (Connection: close); the JSON answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n"
        f"Connection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    raw = await reader.read()
    writer.close()
    header, _, payload = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in header.lower():
        chunks, rest = [], payload
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2 :]
        payload = b"".join(chunks)
    if header[9:10] != b"2":
        raise RuntimeError(f"{method} {path}: {header[:12]!r} {payload[:500]!r}")
    return json.loads(payload)


async def _until_complete(stream: SseStream) -> float:
    """perf_counter() when the stream delivered the job's `complete` event."""
    async for _version, event, _ns in stream.events():
        if event == "complete":
            return time.perf_counter()
        if event == "error":
            raise RuntimeError(f"job {stream.job_id} failed or was cancelled")
    raise RuntimeError(f"stream of {stream.job_id} ended without completing")


async def mend_run(port: int, bucket: str) -> dict[str, Any]:
    """Submit the batch, follow every job over SSE until all are completed."""
    jobs = [
        {
            "type": "image_resize",
            "source_bucket": SOURCES[0],
            "source_key": f"{SOURCES[1]}/{i}.jpg",
            "dest_bucket": bucket,
            "dest_key": f"out/{i}.jpg",
            "parameters": {"width": BOX[0], "height": BOX[1], "quality": QUALITY},
        }
        for i in range(JOBS)
    ]
    body = json.dumps({"jobs": jobs}).encode()
    t0 = time.perf_counter()
    reply = await _http_json(port, "POST", "/api/v1/jobs/batch", body)
    submitted = time.perf_counter()
    streams = [SseStream(job_id) for job_id in reply["job_ids"]]
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await asyncio.gather(*(s.open("127.0.0.1", port, API_KEY) for s in streams))
            opened = time.perf_counter()
            completions = sorted(await asyncio.gather(*map(_until_complete, streams)))
    finally:
        for s in streams:
            s.close()
    ids = "&".join(f"ids={i}" for i in reply["job_ids"])
    done = await _http_json(port, "GET", f"/api/v1/jobs:batchGet?{ids}")
    durations = [job["result"]["duration"] for job in done["jobs"]]
    return {
        "wall_s": completions[-1] - t0,
        "submit_ms": 1000 * (submitted - t0),
        "streams_open_ms": 1000 * (opened - t0),
        "first_completion_ms": 1000 * (completions[0] - t0),
        # The executor children's time in jobs (download, resize, upload) per job.
        "job_duration_ms": 1000 * sum(durations) / JOBS,
    }


# -------------------------------------------------------------------------------- plain


class Plain:
    """WORKERS warm bench/stack_plain.py processes."""

    def __init__(self, root: Path) -> None:
        self.procs = [
            subprocess.Popen(
                python_module("bench.stack_plain", str(root), str(k), str(WORKERS)),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
            )
            for k in range(WORKERS)
        ]
        for p in self.procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a plain Pillow process did not start")

    def run(self, out: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(f"{'/'.join(SOURCES)} {out} {JOBS}\n")
            p.stdin.flush()
        for p in self.procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "done":
                raise RuntimeError(f"a plain Pillow process failed (exit {p.poll()})")
        return {"wall_s": time.perf_counter() - t0}

    def cpu(self) -> dict[str, float]:
        return {"plain process": sum(run_seconds(p.pid) for p in self.procs)}

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(10)


# ----------------------------------------------------------------------------- one round


def per_job_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(1000 * (v - before.get(k, 0.0)) / JOBS, 3) for k, v in after.items()}


def check_outputs(root: Path, stack_dir: Path, plain_dir: Path) -> None:
    """Every job's output exists in both, and the plain ones are Mend's, byte for byte."""
    for i in range(JOBS):
        mend = (stack_dir / f"{i}.jpg").read_bytes()
        plain = (plain_dir / f"{i}.jpg").read_bytes()
        if mend != plain:
            raise RuntimeError(f"output {i}: plain Pillow's differs from Mend's")
    with Image.open(stack_dir / "0.jpg") as img:
        assert img.format == "JPEG" and img.size == BOX, (img.format, img.size)


def run_mend(stack: Stack, bucket: str) -> dict[str, Any]:
    before, busy = stack.cpu(), machine_busy_seconds()
    result = asyncio.run(mend_run(stack.http_port, bucket))
    result["cpu_ms_per_job"] = per_job_ms(before, stack.cpu())
    result["machine_busy"] = _busy_share(busy, result["wall_s"])
    stack.check_alive()
    return result


def run_plain(plain: Plain, out: str) -> dict[str, Any]:
    before, busy = plain.cpu(), machine_busy_seconds()
    result = plain.run(out)
    result["cpu_ms_per_job"] = per_job_ms(before, plain.cpu())
    result["machine_busy"] = _busy_share(busy, result["wall_s"])
    return result


def _busy_share(busy_before: float, wall: float) -> float:
    """The share of the machine's cores busy (with anything) during a run of `wall` s."""
    return (machine_busy_seconds() - busy_before) / (wall * (os.cpu_count() or 1))


def round_(stack: Stack, plain: Plain, root: Path, i: int) -> dict[str, dict[str, Any]]:
    """One run of each system, Mend first on even rounds."""
    bucket, plain_out = f"mend-{i}", f"plain-{i}/out"
    runs: dict[str, dict[str, Any]] = {}
    for name in ("mend", "plain") if i % 2 == 0 else ("plain", "mend"):
        load = os.getloadavg()[0]
        runs[name] = run_mend(stack, bucket) if name == "mend" else run_plain(plain, plain_out)
        runs[name]["loadavg_1m"] = load
    check_outputs(root, root / bucket / "out", root / plain_out)
    shutil.rmtree(root / bucket)
    shutil.rmtree(root / plain_out.partition("/")[0])
    return runs


# ------------------------------------------------------------------------------- report


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: round(report.median([r[k] for r in runs]), 4)
        for k in runs[0]
        if isinstance(runs[0][k], float)
    }
    kinds = sorted({k for r in runs for k in r["cpu_ms_per_job"]})
    out["cpu_ms_per_job"] = {
        k: round(report.median([r["cpu_ms_per_job"].get(k, 0.0) for r in runs]), 3)
        for k in kinds
    }
    return out


# Processes in the order the CPU table lists them.
PROCESS_ORDER = (
    "executor child", "worker", "worker supervisor", "server", "gateway", "redis", "client",
    "plain process",
)


def markdown(data: dict[str, Any]) -> str:
    s, m = data["summary"], data["machine"]
    mend, plain = s["mend"], s["plain"]
    wall_rows = [
        [
            label,
            f"{s[name]['wall_s']:.3f}",
            ", ".join(f"{r['wall_s']:.3f}" for r in data["runs"][name]),
            f"{100 * s[name]['machine_busy']:.0f} %",
            f"{data['ratio']:.3f}x" if name == "mend" else "",
            f"<= {GOAL:g}x" if name == "mend" else "",
            ("yes" if data["ratio"] <= GOAL else "NO") if name == "mend" else "",
        ]
        for name, label in (("mend", "Mend (whole stack)"), ("plain", "plain Pillow"))
    ]
    cpu = {**mend["cpu_ms_per_job"], **plain["cpu_ms_per_job"]}
    cpu_rows = [[k, f"{cpu[k]:.2f}"] for k in PROCESS_ORDER if k in cpu]
    overhead = sum(v for k, v in mend["cpu_ms_per_job"].items() if k not in ("executor child",))
    gap = WORKERS * 1000 * mend["wall_s"] / JOBS - mend["job_duration_ms"]
    return f"""# Stack benchmark: the whole stack vs plain Pillow

- command: `{data["command"]}`
- date: {data["date"]}
- machine: nproc {m["nproc"]}, {m["cpu"]}; redis-server {m["redis_server"]} (AOF on,
  appendfsync everysec); load average at start {data["loadavg"]}, per run in the JSON file
  (the machine is shared: the ratio, from runs side by side, is the figure that carries over)
- work: {JOBS} photographic 12 MP JPEGs (q90) -> fit {BOX[0]}x{BOX[1]}, JPEG q{QUALITY}; {WORKERS}
  workers vs {WORKERS} plain Pillow processes; outputs byte for byte equal; file storage on
  {data["settings"]["storage_fs"]}; {data["settings"]["rounds"]} rounds (after one warm-up),
  alternating which system goes first
- Mend: one POST /api/v1/jobs/batch, then an SSE stream per job through the gateway until
  its `complete` event; wall time from before the submit to the last completion seen

{report.markdown_table(
    ["system", "wall s (median)", "runs", "cores busy", "Mend/plain", "goal", "met"], wall_rows
)}

Mend / plain is the median of the rounds' ratios (each round runs both side by side).
"Cores busy" is the share of the machine's {m["nproc"]} cores busy with anything (other
helpers' work included) during the run, from /proc/stat.

Where a Mend run's time goes (medians): the submit answered after {mend["submit_ms"]:.1f} ms,
all {JOBS} streams open after {mend["streams_open_ms"]:.1f} ms, first completion seen after
{mend["first_completion_ms"]:.0f} ms. The executor children spent {mend["job_duration_ms"]:.1f} ms
per job in the job itself (download, resize, upload: Mend's own measure), out of the
{WORKERS * 1000 * mend["wall_s"] / JOBS:.1f} ms of wall time per job the {WORKERS} of them had:
{gap:.1f} ms per job went to everything else (passing the job to the child and back,
transitions in Redis, pickup, waiting for a core the other processes held, the first
pickup and the last completion's delivery).

CPU per job of every process (median ms over the runs; the stack's processes other than
the executor children spent {overhead:.2f} ms per job, client included):

{report.markdown_table(["process", "CPU ms/job"], cpu_rows)}
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=7, help="measured rounds (default 7)")
    p.add_argument(
        "--storage-dir",
        default=drain.default_storage_dir(),
        help="where the file storage root is made (default: /dev/shm, a tmpfs)",
    )
    p.add_argument(
        "--no-record", action="store_true",
        help="print only; do not write bench/results/stack.{json,md}",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    paths = sources(JOBS)
    loadavg = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mend-bench-stack-", dir=args.storage_dir))
    src = root.joinpath(*SOURCES)
    src.mkdir(parents=True)
    for i, path in enumerate(paths):
        shutil.copyfile(path, src / f"{i}.jpg")
    storage_fs = drain.filesystem(root)
    runs: dict[str, list[dict[str, Any]]] = {"mend": [], "plain": []}
    stack = plain = None
    print(f"bench stack: {JOBS} jobs x {args.rounds} rounds, storage on {storage_fs}", flush=True)
    try:
        stack, plain = Stack(root), Plain(root)
        round_(stack, plain, root, -1)  # warm-up: caches, the executors' first imports
        for i in range(args.rounds):
            r = round_(stack, plain, root, i)
            for name in runs:
                runs[name].append(r[name])
            mend = r["mend"]
            print(
                f"  round {i + 1}: Mend {mend['wall_s']:.3f} s, plain {r['plain']['wall_s']:.3f} s"
                f" -> {mend['wall_s'] / r['plain']['wall_s']:.3f}x; executor child "
                f"{mend['cpu_ms_per_job'].get('executor child', 0):.1f} ms CPU/job, the rest "
                f"{sum(v for k, v in mend['cpu_ms_per_job'].items() if k != 'executor child'):.1f}"
                f" (load {mend['loadavg_1m']:.2f})",
                flush=True,
            )
    finally:
        if plain is not None:
            plain.stop()
        if stack is not None:
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = {name: summarise(r) for name, r in runs.items()}
    ratio = report.median(
        [m["wall_s"] / p["wall_s"] for m, p in zip(runs["mend"], runs["plain"], strict=True)]
    )
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench stack", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
        "settings": {**vars(args), "storage_fs": storage_fs, "jobs": JOBS, "workers": WORKERS},
        "summary": summary,
        "ratio": round(ratio, 4),
        "goal": GOAL,
        "runs": runs,
    }
    text = markdown(data)
    print()
    print(text)
    report.save(NAME, data, text, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
