"""Periodic jobs sleep to a shared grid, so an idle appliance wakes about once a second
(appliance/periodic.py): checked on both event loops ``hearth serve`` runs on."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st

from appliance.periodic import EARLY, every, seconds_to_grid, sleep_to_grid


@given(st.floats(0.001, 3600), st.floats(0, 1e7))
def test_the_next_grid_point_is_ahead_by_at_most_one_period(period: float, now: float) -> None:
    left = seconds_to_grid(period, now)
    assert 0 < left <= period * (1 + 1e-9) + 1e-6
    at = (now + left) / period
    assert abs(at - round(at)) < 1e-6 * max(1.0, at)


@pytest.mark.parametrize("period", [0.0, -1.0, math.nan])
def test_a_period_must_be_positive(period: float) -> None:
    with pytest.raises(ValueError):
        seconds_to_grid(period, 10.0)


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.mark.parametrize("make_loop", LOOPS.values(), ids=LOOPS.keys())
def test_jobs_started_apart_wake_together_and_each_grid_point_runs_once(
        make_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """Jobs of 0.05, 0.1 and 0.25 s started at unrelated instants: every run of the longer
    ones falls on a run of the 0.05 s job (one wake-up), no job runs twice for one grid
    point, and a job that raises keeps its schedule."""
    runs: dict[float, list[float]] = {0.05: [], 0.1: [], 0.25: []}
    failures = 0

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def job(period: float) -> Callable[[], None]:
            def run() -> None:
                nonlocal failures
                runs[period].append(loop.time())
                if period == 0.1 and len(runs[period]) == 2:
                    failures += 1
                    raise RuntimeError("logged, and the next period runs as usual")
            return run

        tasks = []
        for delay, period in ((0.0, 0.05), (0.013, 0.1), (0.031, 0.25)):
            await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(every(period, job(period))))
        await asyncio.sleep(0.8)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    loop = make_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert failures == 1 and len(runs[0.1]) >= 4
    for period, times in runs.items():
        assert len(times) >= 0.8 / period / 2, (period, times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) > period / 2, (period, gaps)  # never twice for one point
        points = [round(t / period) for t in times]
        assert len(set(points)) == len(points)
    fast = runs[0.05]
    for period in (0.1, 0.25):
        for t in runs[period]:
            assert min(abs(t - f) for f in fast) <= EARLY, (period, t)


def test_a_timer_that_fires_early_does_not_run_its_point_again() -> None:
    """The point is counted from EARLY ahead: woken 1 ms before it, the next sleep is to
    the point after."""
    async def main() -> float:
        loop = asyncio.get_running_loop()
        period = 0.2
        # Start 1 ms before a grid point, as an early timer would leave us.
        await asyncio.sleep(seconds_to_grid(period, loop.time()) - 0.001)
        before = loop.time()
        await sleep_to_grid(period)
        return loop.time() - before

    assert asyncio.run(main()) > 0.15
