"""`python -m bench memory`: the Redis memory each finished job keeps for its retention
period, Mend vs Celery with results kept, on the same redis-server.

Each system runs --jobs tiny jobs (the drain benchmark's: a 16x16 JPEG resized to 8x8 by
the same code, 2 worker processes) on an emptied Redis; `used_memory` is read before the
jobs are submitted and after the last one finished and the workers stopped, so what is
left is what the finished jobs keep. Mend's event log outlives a job's end only briefly
(lua/_lib.lua, EVENTS_GRACE_MS): the figure that counts is read once the logs are gone,
the one just after the last job is reported too. The per-job figure leaves out Redis's
Lua script cache (loaded once per server, not per job).

Also reported, per kind of key (Mend's KEYS table; Celery's result and broker keys):
how many keys, their MEMORY USAGE per job, and their encodings; and one finished job's
hash as it is stored (its fields' sizes), which is what a GetJob reads."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench import report
from bench.drain import (
    SYSTEMS,
    Context,
    default_storage_dir,
    drain,
    ensure_peers_venv,
    make_source,
    peer_versions,
)
from mend_core.jobstate.keys import KEYS
from mend_devkit.redis_server import RedisServer

NAME = "memory"
GOAL = 1.0  # Mend / Celery bytes per finished job
LABELS = {"mend": "Mend", "celery": "Celery"}
LOG_WAIT_SECONDS = 300  # logs that expire within this are waited for


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[a-z_]+\}", template)
    return re.compile("^" + ".+?".join(re.escape(p) for p in parts) + "$")


# Most specific first, so that `tenant:{tenant}:stats` is not taken for an index.
_MEND_KINDS = sorted(
    ((name, _template_pattern(t)) for name, (t, _, _) in KEYS.items()),
    key=lambda kind: -len(re.sub(r"\{[a-z_]+\}", "", KEYS[kind[0]][0])),
)


def kind_of(key: str) -> str:
    """A key's kind: Mend's name for it in the KEYS table (whatever its prefix and hash
    tag), Celery's result keys and its broker's, or "other"."""
    if key.startswith("celery-task-meta-"):
        return "celery result"
    if key.startswith(("_kombu", "unacked", "celery")):
        return "celery broker"
    rest = key.split("}:", 1)[1] if "}:" in key else key.removeprefix("mend:")
    for name, pattern in _MEND_KINDS:
        if pattern.match(rest):
            return name
    return "other"


def memory_used(client: redis.Redis) -> dict[str, int]:
    info = client.info("memory")
    return {
        "used_memory": int(info["used_memory"]),
        # The Lua script cache: one copy per server, whatever the number of jobs.
        "scripts": int(info.get("used_memory_scripts_eval", info.get("used_memory_scripts", 0))),
    }


def settle(client: redis.Redis) -> dict[str, int]:
    """used_memory once the AOF buffer was written out (fsync every second)."""
    time.sleep(1.5)
    return memory_used(client)


def breakdown(client: redis.Redis, jobs: int) -> dict[str, dict[str, Any]]:
    """Per kind of key: count, MEMORY USAGE per job, encodings."""
    kinds: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(count=1000):
        name = key.decode()
        kind = kinds.setdefault(kind_of(name), {"keys": 0, "bytes": 0, "encodings": Counter()})
        kind["keys"] += 1
        kind["bytes"] += int(client.memory_usage(name, samples=0) or 0)
        kind["encodings"][client.object("encoding", name).decode()] += 1
    return {
        k: {
            "keys": v["keys"],
            "bytes_per_job": round(v["bytes"] / jobs, 1),
            "encodings": dict(v["encodings"]),
        }
        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["bytes"])
    }


def sample_job(client: redis.Redis) -> dict[str, Any] | None:
    """One finished Mend job's hash as stored: its size, encoding and fields."""
    for key in client.scan_iter(count=1000):
        name = key.decode()
        if kind_of(name) == "job":
            from mend_core.jobstate.encoding import full_names

            fields = client.hgetall(name)
            stored = {k.decode(): k.decode() for k in fields}
            names = full_names(stored)  # full name -> stored name
            return {
                "memory_usage": client.memory_usage(name, samples=0),
                "encoding": client.object("encoding", name).decode(),
                "fields": {
                    full if full == short else f"{full} ({short})": len(fields[short.encode()])
                    for full, short in names.items()
                },
                "value_bytes": sum(len(k) + len(v) for k, v in fields.items()),
            }
    return None


def logs_left(client: redis.Redis) -> tuple[int, int]:
    """Event logs still in Redis, and the longest time one of them has left (ms; -1: one
    never expires)."""
    count, longest = 0, 0
    for key in client.scan_iter(count=1000):
        if kind_of(key.decode()) == "events":
            count += 1
            ttl = int(client.pttl(key))
            longest = -1 if ttl == -1 or longest == -1 else max(longest, ttl)
    return count, longest


def per_job(before: dict[str, int], after: dict[str, int], jobs: int) -> float:
    grown = after["used_memory"] - before["used_memory"]
    return (grown - (after["scripts"] - before["scripts"])) / jobs


def measure(ctx: Context, name: str, run: int, wait_logs: bool = True) -> dict[str, Any]:
    ctx.client.flushall()
    before = settle(ctx.client)
    drained = drain(ctx, SYSTEMS[name], run)
    just_finished = settle(ctx.client)
    out: dict[str, Any] = {
        "jobs_per_s": round(drained["jobs_per_s"], 1),
        "used_memory_before": before["used_memory"],
        "bytes_per_job_just_finished": round(per_job(before, just_finished, ctx.jobs), 1),
    }
    logs, longest = logs_left(ctx.client) if name == "mend" else (0, 0)
    if wait_logs and logs and 0 <= longest <= LOG_WAIT_SECONDS * 1000:
        print(f"    waiting {longest / 1000:.0f} s for {logs} event logs to expire", flush=True)
        deadline = time.monotonic() + longest / 1000 + 30
        while logs_left(ctx.client)[0] and time.monotonic() < deadline:
            time.sleep(1)
    out["event_logs_kept"] = logs_left(ctx.client)[0] if name == "mend" else 0
    kept = settle(ctx.client)
    out["used_memory_after"] = kept["used_memory"]
    out["bytes_per_job"] = round(per_job(before, kept, ctx.jobs), 1)
    out["keys"] = breakdown(ctx.client, ctx.jobs)
    if name == "mend":
        out["sample_job"] = sample_job(ctx.client)
    return out


def markdown(data: dict[str, Any]) -> str:
    s, m, summary = data["settings"], data["machine"], data["summary"]
    header, rows = table(data)
    warmup = "a warm-up run of each" if s["warmup"] else "no warm-up"
    kinds = []
    for name in s["systems"]:
        for kind, v in data["runs"][name][-1]["keys"].items():
            enc = ", ".join(f"{e} {n}" for e, n in v["encodings"].items())
            kinds.append([LABELS[name], kind, f"{v['keys']:,}", f"{v['bytes_per_job']:,.1f}", enc])
    sample = ""
    if "mend" in summary and (job := data["runs"]["mend"][-1].get("sample_job")):
        by_size = sorted(job["fields"].items(), key=lambda f: -f[1])
        fields = ", ".join(f"{k} {n}" for k, n in by_size)
        sample = (
            f"\nOne finished Mend job's hash: MEMORY USAGE {job['memory_usage']} bytes, "
            f"{job['encoding']}, {len(job['fields'])} fields, {job['value_bytes']} bytes of "
            f"names and values (value bytes: {fields}).\n"
        )
    return f"""# Memory benchmark: Redis bytes per finished job, Mend vs Celery

- command: `{data["command"]}`
- date: {data["date"]}
- machine: nproc {m["nproc"]}; redis-server {m["redis_server"]} (AOF on, as `make run`)
- versions: Celery {data["versions"].get("celery")} (kombu {data["versions"].get("kombu")})
  in bench/.venv-peers
- work: {s["jobs"]:,} tiny jobs per run (the drain benchmark's: 16x16 JPEG → 8x8, 2 worker
  processes), {s["runs"]} runs per system after {warmup} on the same redis-server,
  emptied before each run
- bytes per job: (`used_memory` after − before − the Lua script cache's growth) / jobs,
  with the workers stopped; "kept" once Mend's event logs expired (a short grace after the
  job's end), "just finished" right after the last job; Celery keeps its results
  (`celery-task-meta-<id>`, 1 day) and Mend its jobs (the retention period, 7 days)

{report.markdown_table(header, rows)}

By kind of key (the last run, after the logs expired; MEMORY USAGE per job):

{report.markdown_table(["system", "key kind", "keys", "bytes per job", "encodings"], kinds)}
{sample}"""


def table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "system", "bytes per job kept", "just finished", "Mend/system", "goal", "met",
    ]
    rows = []
    summary = data["summary"]
    for name in data["settings"]["systems"]:
        s = summary[name]
        ratio = data["ratios"].get(name)
        rows.append([
            LABELS[name],
            f"{s['bytes_per_job']:,.0f}",
            f"{s['bytes_per_job_just_finished']:,.0f}",
            f"{ratio:.2f}x" if ratio else "",
            f"<= {GOAL:g}x" if ratio else "",
            ("yes" if ratio <= GOAL else "NO") if ratio else "",
        ])
    return header, rows


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--jobs", type=int, default=1000, help="jobs per run (default 1000)")
    p.add_argument("--runs", type=int, default=1, help="runs per system (default 1)")
    p.add_argument(
        "--no-warmup", dest="warmup", action="store_false",
        help="measure from a fresh redis-server (one-off allocations counted)",
    )
    p.add_argument("--systems", default="mend,celery", help="mend,celery or one of them")
    p.add_argument("--no-record", action="store_true", help="print only")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    names = report.selected(args.systems, list(LABELS), "systems")
    if names is None:
        return 2
    args.systems = names
    peers_bin = ensure_peers_venv() if "celery" in names else None
    loadavg = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mend-bench-memory-", dir=default_storage_dir()))
    redis_server = RedisServer()
    ctx = Context(redis_server, root, args.jobs, peers_bin)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    print(f"bench memory: {args.jobs:,} jobs x {args.runs} runs x {', '.join(names)}", flush=True)
    try:
        make_source(root)
        # The first run of each system on a fresh redis-server leaves ~0.7 KB per job more
        # than the next runs do (Celery's as Mend's) though its keys are the same: memory
        # Redis allocates once, not per job. A warm-up run of each, not counted, first.
        for name in names:
            if args.warmup:
                r = measure(ctx, name, -1, wait_logs=False)
                print(f"  warm-up {LABELS[name]:7} {r['bytes_per_job']:8,.0f} bytes/job")
        for i in range(args.runs):
            for name in names[i % len(names):] + names[: i % len(names)]:
                r = measure(ctx, name, i)
                runs[name].append(r)
                print(
                    f"  run {i + 1} {LABELS[name]:7} {r['bytes_per_job']:8,.0f} bytes/job kept "
                    f"({r['bytes_per_job_just_finished']:,.0f} just finished)",
                    flush=True,
                )
    finally:
        ctx.client.close()
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)

    summary = {
        n: {
            k: report.median([r[k] for r in runs[n]])
            for k in ("bytes_per_job", "bytes_per_job_just_finished")
        }
        for n in names
    }
    ratios = {}
    if "mend" in summary:
        ratios = {
            n: round(summary["mend"]["bytes_per_job"] / summary[n]["bytes_per_job"], 3)
            for n in names
            if n != "mend"
        }
    data = report.run_data(
        NAME, argv, args, loadavg, peer_versions(peers_bin) if peers_bin else {},
        {}, summary=summary, ratios=ratios, runs=runs,
    )
    header, rows = table(data)
    print()
    print(report.text_table(header, rows))
    md = markdown(data)
    print(md.split("By kind of key", 1)[1] if "By kind of key" in md else "")
    report.save(NAME, data, md, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
