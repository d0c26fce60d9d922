"""The wait estimate's arithmetic (mend_core.jobstate.estimate), from given figures."""

from __future__ import annotations

import pytest

from mend_core.jobstate.estimate import Ahead, SlotTimes, wait_seconds

TIMES = SlotTimes({"slow": 1.0, "fast": 0.1})


def test_jobs_ahead_go_to_the_worker_free_first() -> None:
    # Two workers: one frees up in 0.5 s, the other is idle. slow -> idle worker (free at
    # 1.0), fast -> the first at 0.5 (free at 0.6), slow -> at 0.6 (1.6): ours at 1.0.
    running = [("slow", 0.5)]
    assert wait_seconds(["slow", "fast", "slow"], running, 2, TIMES) == pytest.approx(1.0)


def test_a_job_past_its_average_may_end_any_moment_and_unknown_types_use_the_mean() -> None:
    assert wait_seconds([], [("slow", 3.0)], 1, TIMES) == 0.0
    assert wait_seconds(["new-type"], [], 1, TIMES) == pytest.approx(0.55)


def test_many_jobs_ahead_by_tenant_mix() -> None:
    # 10 slow and 10 fast ahead on 2 idle workers: 20 jobs of 0.55 s on average, ours
    # starts after 10 rounds of them.
    ahead = [Ahead(10, {"slow": 4}), Ahead(10, {"fast": 7})]
    assert wait_seconds(ahead, [], 2, TIMES) == pytest.approx(5.5)
    assert wait_seconds(ahead, [], 0, TIMES) == pytest.approx(11.0)  # no worker: one
