"""Timing contenders side by side, for the operation benchmarks: each round runs every
contender once, in a rotated order, and notes its wall time and the CPU time it cost (this
process's threads plus any child process it waited for, such as an ffmpeg CLI) and how
many cores everything else on the (shared) machine kept busy meanwhile."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import report


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (user, system, ...; not idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Runs:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # other processes' cores meanwhile
    output: Any = None  # the last run's result

    def summary(self) -> dict[str, Any]:
        wall, cpu = report.median(self.wall), report.median(self.cpu)
        return {
            "wall_ms": round(1000 * wall, 1),
            "cpu_ms": round(1000 * cpu, 1),
            "wall_runs_ms": [round(1000 * x, 1) for x in self.wall],
            "cpu_runs_ms": [round(1000 * x, 1) for x in self.cpu],
            "others_cores": round(report.median(self.others), 2),
            "others_cores_runs": [round(x, 2) for x in self.others],
        }


def alternate(
    contenders: Mapping[str, Callable[[], Any]], rounds: int, warmup: int = 1,
    progress: bool = True,
) -> dict[str, Runs]:
    """`warmup` unmeasured rounds, then `rounds` measured ones; round i starts with
    contender i mod n, so none always runs first (after another's cache misses)."""
    names = list(contenders)
    runs = {name: Runs() for name in names}
    for i in range(warmup + rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            m0, c0, t0 = machine_busy_seconds(), cpu_seconds(), time.perf_counter()
            out = contenders[name]()
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            others = max(0.0, machine_busy_seconds() - m0 - cpu) / wall
            runs[name].output = out
            if i >= warmup:
                runs[name].wall.append(wall)
                runs[name].cpu.append(cpu)
                runs[name].others.append(others)
        if progress and i >= warmup:
            print("    round", i - warmup + 1, " ".join(
                f"{n} {1000 * runs[n].wall[-1]:.0f} ms" for n in names),
                f"(others {runs[names[0]].others[-1]:.1f} cores)", flush=True)
    return runs


def ratio(baseline: float, ours: float) -> float:
    """How many times faster ours is than the baseline (time of theirs / time of ours)."""
    return round(baseline / ours, 3) if ours else float("inf")
