"""estimated_wait_seconds: when a pending job should start, from what Redis knows now.

The jobs claimed before it (its place in the fair claim order, grouped by tenant) each
take their type's moving average of slot time (claim to completion); the workers free up
as the jobs in flight reach their own type's average. Jobs ahead are given to the worker
that frees up first, as the workers' claims do; the job starts when the next one does."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mend_core.job import JobStatus

# A type no job of which has finished yet: the mean of the known averages, else this.
DEFAULT_SLOT_SECONDS = 1.0


@dataclass(frozen=True)
class Ahead:
    """`count` jobs of one tenant ahead, whose pending jobs have this mix of types."""

    count: int
    mix: Mapping[str, int]  # type -> pending jobs


def slot_averages(stats: Mapping[str, str]) -> dict[str, float]:
    """`<type>:avg_ms` fields of the stats hash -> seconds by type."""
    return {
        name.removesuffix(":avg_ms"): int(value) / 1000
        for name, value in stats.items()
        if name.endswith(":avg_ms")
    }


def pending_mix(stats: Mapping[str, str]) -> dict[str, int]:
    """`<type>:pending` counters -> pending jobs by type."""
    suffix = ":" + JobStatus.PENDING.value
    return {
        name.removesuffix(suffix): max(int(value), 0)
        for name, value in stats.items()
        if name.endswith(suffix)
    }


class SlotTimes:
    """Seconds a job of each type holds a worker."""

    def __init__(self, averages: Mapping[str, float]) -> None:
        self._averages = averages
        known = list(averages.values())
        self._default = sum(known) / len(known) if known else DEFAULT_SLOT_SECONDS

    def of(self, job_type: str) -> float:
        return self._averages.get(job_type, self._default)

    def mean(self, mix: Mapping[str, int]) -> float:
        total = sum(mix.values())
        if total == 0:
            return self._default
        return sum(n * self.of(t) for t, n in mix.items()) / total


def wait_seconds(
    ahead: Sequence[Ahead] | Sequence[str],
    running: Sequence[tuple[str, float]],
    workers: int,
    times: SlotTimes,
) -> float:
    """ahead: the jobs claimed before this one, by tenant, or (when few) their types in
    claim order; running: (type, seconds since it started) of each job in flight; workers:
    live workers (at least one is assumed)."""
    workers = max(workers, 1)
    # When each worker is free: the jobs in flight take their type's average (one past it
    # may end at any moment); a worker with no job is free now.
    free = sorted(max(0.0, times.of(t) - elapsed) for t, elapsed in running)[:workers]
    free = [0.0] * (workers - len(free)) + free  # sorted: a heap
    if all(isinstance(a, str) for a in ahead):
        # Each job ahead goes to the worker free first, as the claims will do.
        for job_type in ahead:
            heapq.heappush(free, heapq.heappop(free) + times.of(str(job_type)))
        return min(free)
    groups = [a for a in ahead if isinstance(a, Ahead)]
    count = sum(a.count for a in groups)
    if count == 0:
        return min(free)
    # The jobs ahead as `count` jobs of their mean slot time: the k-th of them starts at the
    # k-th smallest of {free_i + j * slot}. The job starts at the (count + 1)-th: the
    # smallest t by which count + 1 starts have come (bisection on t, O(workers) a step).
    slot = max(sum(a.count * times.mean(a.mix) for a in groups) / count, 1e-3)

    def starts_by(t: float) -> int:
        return sum(math.floor((t - f) / slot) + 1 for f in free if t >= f)

    low, high = 0.0, max(free) + (count + 1) * slot
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if starts_by(mid) < count + 1 else (low, mid)
    return high
