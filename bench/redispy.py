"""`python -m bench redispy`: what each redis-py version costs the client per command, the
figure behind pyproject.toml's `redis` bounds.

Each version gets a virtualenv of its own (bench/.venv-redispy-VERSION, kept between runs),
with the same interpreter and the same hiredis as .venv, and runs bench/redispy_probe.py
against one redis-server: GET, HSET, HGETALL of a 20-field hash and EVALSHA of a one-line
script, one command per round trip and 100 per pipeline, through the client the server
opens (mend_core.redis_client.connect: redis.asyncio, its socket timeouts, its pool). The
versions take turns, in a rotated order each run; reported are the medians of the client's
CPU µs per command, and each version's ratio to the baseline (the first)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from mend_devkit.redis_server import RedisServer

NAME = "redispy"
HERE = Path(__file__).resolve().parent
PROBE = HERE / "redispy_probe.py"
# The floor pyproject.toml allowed, the version .venv had, then each newer minor's latest.
VERSIONS = ("7.0.1", "6.4.0", "7.1.1", "7.4.1", "8.1.0")


def version_venv(version: str) -> Path:
    """The python of a virtualenv holding redis==version and .venv's hiredis."""
    home = HERE / f".venv-redispy-{version}"
    python = home / "bin" / "python"
    if not python.exists():
        venv.create(home, with_pip=True)
    hiredis = metadata.version("hiredis")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"redis=={version}",
         f"hiredis=={hiredis}"],
        check=True,
    )  # fmt: skip
    return python


def probe(python: Path, port: int, seconds: float) -> dict[str, Any]:
    # The repository alone on the path: the probe takes Mend's Redis client from it.
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out = subprocess.run(
        [str(python), str(PROBE), str(port), str(seconds)],
        check=True, capture_output=True, text=True, timeout=600, env=env,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def summarise(runs: dict[str, list[dict[str, Any]]], baseline: str) -> dict[str, dict]:
    """scenario -> version -> median CPU and wall µs per command, and CPU / baseline's."""
    scenarios = list(runs[baseline][0]["results"])
    out: dict[str, dict] = {}
    for scenario in scenarios:
        row: dict[str, dict] = {}
        for version, results in runs.items():
            row[version] = {
                "cpu_us": report.median([r["results"][scenario]["cpu_us"] for r in results]),
                "wall_us": report.median([r["results"][scenario]["wall_us"] for r in results]),
            }
        for figures in row.values():
            figures["cpu_ratio"] = figures["cpu_us"] / row[baseline]["cpu_us"]
        out[scenario] = row
    return out


def tables(summary: dict[str, dict], versions: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["command", *(f"{v} µs CPU" for v in versions), *(f"{v} / {versions[0]}"
                                                            for v in versions[1:])]
    rows = []
    for scenario, row in summary.items():
        rows.append([
            scenario,
            *(f"{row[v]['cpu_us']:.1f}" for v in versions),
            *(f"{row[v]['cpu_ratio']:.2f}" for v in versions[1:]),
        ])  # fmt: skip
    return header, rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench redispy", description=__doc__)
    parser.add_argument("--versions", default=",".join(VERSIONS),
                        help="redis-py versions, the first is the baseline (%(default)s)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.6, help="per scenario and run")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]

    pythons = {v: version_venv(v) for v in versions}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
    redis_server = RedisServer()
    try:
        for run in range(args.runs):
            order = versions[run % len(versions):] + versions[:run % len(versions)]
            for version in order:
                result = probe(pythons[version], redis_server.port, args.seconds)
                runs[version].append(result)
                print(f"run {run + 1}/{args.runs} redis-py {version}: " + ", ".join(
                    f"{k} {v['cpu_us']:.1f}" for k, v in result["results"].items()
                ), flush=True)  # fmt: skip
    finally:
        redis_server.stop()

    summary = summarise(runs, versions[0])
    header, rows = tables(summary, versions)
    print()
    print(report.text_table(header, rows))
    if args.no_record:
        return 0
    parsers = {v: r[0]["parser"] for v, r in runs.items()}
    command = f"python -m bench redispy --versions {','.join(versions)} --runs {args.runs} " \
              f"--seconds {args.seconds}"
    data = {"command": command, "date": report.now_utc(), "machine": report.machine(),
            "parsers": parsers, "summary": summary, "runs": runs}
    markdown = "\n\n".join([
        f"# redispy — client CPU per command by redis-py version\n\n`{command}`",
        f"{data['date']}, {json.dumps(data['machine'])}, parser: {parsers[versions[0]]}",
        "Medians of the client process's CPU µs per command (Mend's client: "
        "mend_core.redis_client.connect; one redis-server on loopback); pipelined: 100 per "
        "round trip.",
        report.markdown_table(header, rows),
    ])  # fmt: skip
    json_path, md_path = report.record(NAME, data, markdown)
    print(f"\nrecorded {md_path.relative_to(HERE.parent)} and {json_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
