"""What every benchmark shares for reporting: medians, percentiles, plain-text and
markdown tables, and the record written to bench/results/NAME.{json,md}."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_version() -> str:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=True
        ).stdout
        return next((w.partition("=")[2] for w in out.split() if w.startswith("v=")), out.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    import grpc

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "redis_server": _redis_version(),
        "platform": platform.platform(),
    }


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def record(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Writes bench/results/NAME.json (everything, per run) and NAME.md (for people)."""
    RESULTS.mkdir(exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def selected(text: str, known: Sequence[str], what: str) -> list[str] | None:
    """The comma-separated names of a --option; None, after saying which, when one is not
    in `known`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if unknown := [n for n in names if n not in known]:
        print(f"unknown {what} {unknown}; known: {', '.join(known)}", file=sys.stderr)
        return None
    return names


def run_data(
    name: str, argv: Sequence[str], settings: Any, loadavg: Sequence[float],
    versions: dict[str, str], results: dict[str, Any], **extra: Any,
) -> dict[str, Any]:
    """What a benchmark's record holds: the command, date, machine, load, versions,
    settings (its parsed arguments) and results."""
    return {
        "benchmark": name,
        "command": " ".join([f"python -m bench {name}", *argv]),
        "date": now_utc(),
        "machine": machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
        "versions": versions,
        "settings": vars(settings),
        "results": results,
        **extra,
    }


def save(name: str, data: dict[str, Any], markdown: str, no_record: bool) -> None:
    """record() unless --no-record, saying where."""
    if not no_record:
        json_path, md_path = record(name, data, markdown)
        print(f"\nrecorded {md_path} and {json_path.name}")
