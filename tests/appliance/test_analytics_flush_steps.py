"""The analytics flush in bounded steps (appliance/analytics/tracker.py ``flush_steps``).

Its figures are checked against the earlier flush, which did everything at once (kept here,
verbatim, as ``reference_flush``): the same deltas when nothing happens in between, the same
persisted figures when requests arrive between its steps. How much one step does is checked
by counting, not timing: the lines of tracker code run between two steps, and the loop
iterations that run during a flush (the box running the tests is slow and shared).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analytics import tracker as tracker_module
from appliance.analytics.service import sliced
from appliance.analytics.tracker import (
    LIVE_KINDS,
    MINUTE,
    AnalyticsTracker,
    Gaps,
    Tally,
    TallyDelta,
    finish,
)
from appliance.api.schema import DeviceClass, PlayerKind

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute boundary
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GAPS = {PlayerKind.HLS: 6.0, PlayerKind.LLHLS: 6.0, PlayerKind.WEBRTC: 15.0,
        PlayerKind.VOD: 60.0}


# ---- the earlier flush (the oracle) -----------------------------------------------------

def reference_flush(t: Tally, now: float, *, final: bool = False) -> TallyDelta:
    """``Tally.flush`` before it was split into steps, on the tally's own state."""
    for key, s in list(t.sessions.items()):
        if final or now - s.last > s.gap:
            t._close(key, s)
        else:
            t._account(s)
    _reference_finalize_minutes(t, now, final)
    delta, t._delta = t._delta, TallyDelta(t.broadcast_id)
    return delta


def _reference_finalize_minutes(t: Tally, now: float, final: bool) -> None:
    if t._next_minute is None:
        return
    horizon = float("inf") if final else now - t._max_gap
    intervals = [*t._closed, *((s.first, s.last) for s in t.sessions.values()
                               if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT)]
    minute = t._next_minute
    while intervals and minute + MINUTE <= horizon:
        active = [(a, b) for a, b in intervals if a < minute + MINUTE and b >= minute]
        if not active:
            later = [a for a, _ in intervals if a >= minute + MINUTE]
            if not later:
                minute += MINUTE
                break
            minute = int(min(later) // MINUTE) * MINUTE
            continue
        viewers, at = _reference_max_concurrency(active, minute)
        t._delta.minutes.append((minute, viewers))
        t._note_peak(viewers, at)
        minute += MINUTE
        intervals = [(a, b) for a, b in intervals if b >= minute]
    t._next_minute = minute
    t._closed = [(a, b) for a, b in t._closed if b >= minute]
    if not final:
        current = int(now // MINUTE) * MINUTE
        while intervals and minute <= current:
            active = [(a, b) for a, b in intervals if a < minute + MINUTE and b >= minute]
            if active:
                viewers, at = _reference_max_concurrency(active, minute)
                t._delta.minutes.append((minute, viewers))
                t._note_peak(viewers, at)
            minute += MINUTE


def _reference_max_concurrency(intervals: list[tuple[float, float]],
                               start: float) -> tuple[int, float]:
    events: list[tuple[float, int]] = []
    for a, b in intervals:
        events.append((max(a, start), 0))
        events.append((b, 1))
    events.sort()
    best, at, count = 0, start, 0
    for t, kind in events:
        if kind == 0:
            count += 1
            if count > best:
                best, at = count, t
        else:
            count -= 1
    return best, at


# ---- random traffic ---------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One request-path call on a tally, ``dt`` seconds after the previous one."""

    dt: float
    what: str  # "hit", "leave", "low_latency", "chat"
    session: int
    kind: PlayerKind = PlayerKind.HLS
    device: DeviceClass = DeviceClass.DESKTOP
    viewer: int = 0


# Times are multiples of 1/4 s so that watch-second sums are exact in any order.
_dt = st.integers(0, 40).map(lambda n: n / 4)


def _ops(what: list[str]) -> st.SearchStrategy[Op]:
    return st.builds(
        Op, dt=_dt, what=st.sampled_from(what), session=st.integers(0, 11),
        kind=st.sampled_from([PlayerKind.HLS, PlayerKind.LLHLS, PlayerKind.WEBRTC,
                              PlayerKind.VOD]),
        device=st.sampled_from([DeviceClass.DESKTOP, DeviceClass.MOBILE, DeviceClass.BOT]),
        viewer=st.integers(0, 5))


_batch = st.tuples(st.lists(_ops(["hit"] * 6 + ["leave", "low_latency", "chat"]),
                            max_size=25),
                   st.one_of(st.integers(0, 10), st.integers(0, 150)).map(lambda n: n / 2))
"""Requests, then a flush that many seconds after the last of them (often within a session
gap, so that sessions are open)."""
_during = st.lists(st.tuples(st.integers(0, 12), _ops(["hit", "leave", "low_latency"])),
                   max_size=12)
"""Requests, each after that many steps of a flush."""


def apply(t: Tally, op: Op, now: float) -> None:
    key = f"s{op.session}"
    if op.what == "hit":
        t.hit(now, key, op.kind, GAPS[op.kind], lambda: (f"v{op.viewer}", op.device))
    elif op.what == "leave":
        t.leave(key)
    elif op.what == "low_latency":
        t.low_latency(key)
    else:
        t.chat(f"c{op.viewer}")


@contextmanager
def step_size(n: int) -> Iterator[None]:
    """Tiny steps, so that a few sessions already make many of them."""
    with mock.patch.object(tracker_module, "FLUSH_STEP", n):
        yield


@dataclass
class Persisted:
    """What appliance/db/analytics_queries.py ``apply_delta`` makes of a series of deltas."""

    minutes: dict[int, int] = field(default_factory=dict)
    peak: int = 0
    peak_at: float | None = None
    sums: dict[str, float] = field(default_factory=dict)
    first_view: float | None = None
    last_view: float | None = None

    def add(self, d: TallyDelta) -> None:
        if d.peak > self.peak:
            self.peak_at = d.peak_at
        elif d.peak == self.peak and d.peak > 0 and d.peak_at is not None:
            self.peak_at = d.peak_at if self.peak_at is None else min(self.peak_at, d.peak_at)
        self.peak = max(self.peak, d.peak)
        for name in ("unique_viewers", "chat_messages", "chatters"):
            self.sums[name] = self.sums.get(name, 0) + getattr(d, name)
        for (kind, device), s in d.split.items():
            for name in ("sessions", "viewers", "watch_seconds"):
                k = f"{kind.value}/{device.value}/{name}"
                self.sums[k] = self.sums.get(k, 0) + getattr(s, name)
        for minute, n in d.minutes:
            self.minutes[minute] = max(self.minutes.get(minute, 0), n)
        if d.first_view is not None:
            self.first_view = min(d.first_view, self.first_view or d.first_view)
        if d.last_view is not None:
            self.last_view = max(d.last_view, self.last_view or d.last_view)


def _tallies() -> tuple[Tally, Tally]:
    return (Tally("b1", max_sessions=10**6, max_keys=10**6),
            Tally("b1", max_sessions=10**6, max_keys=10**6))


@settings(max_examples=150, deadline=None)
@given(st.lists(_batch, min_size=1, max_size=8), st.integers(1, 4))
def test_the_same_deltas_as_the_flush_at_once(batches: list[tuple[list[Op], float]],
                                              step: int) -> None:
    old, new = _tallies()
    now = T0
    with step_size(step):
        for ops, wait in batches:
            for op in ops:
                now += op.dt
                apply(old, op, now)
                apply(new, op, now)
            now += wait
            assert finish(new.flush_steps(now)) == reference_flush(old, now)
            assert new._next_minute == old._next_minute
            assert new._closed == old._closed
        now += 1.0
        assert finish(new.flush_steps(now, final=True)) == reference_flush(old, now,
                                                                            final=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_batch, _during), min_size=1, max_size=8), st.integers(1, 4))
def test_requests_between_steps_persist_the_same_figures(
        batches: list[tuple[tuple[list[Op], float], list[tuple[int, Op]]]], step: int) -> None:
    """Requests that arrive while the flush is under way (after its ``n``-th step) are, for
    the earlier flush, requests just after it: once the broadcast ended, what the two have
    handed out adds up to the same persisted figures.

    A request on a session the walk has not reached is in fact as if it came before the
    flush, which changes two figures that depend on when flushes happen, also with the
    earlier flush: the distinct viewers of a player kind (a session counted as HLS by a
    flush and upgraded to LL-HLS after it counts its viewer in both), not compared here
    (nor is a split whose figures add up to zero);
    and a blocking playlist reload on a session that has expired but is not closed yet
    upgrades that session (``Tally.low_latency`` has no clock), before the flush, or else
    the session's successor: such reloads are left out.
    """
    old, new = _tallies()
    old_out, new_out = Persisted(), Persisted()
    now = T0
    with step_size(step):
        for (ops, wait), during in batches:
            for op in ops:
                now += op.dt
                apply(old, op, now)
                apply(new, op, now)
            now += wait
            old_out.add(reference_flush(old, now))
            steps = new.flush_steps(now)
            during.sort(key=lambda x: x[0])
            later, n, done = now, 0, False
            applied: list[tuple[Op, float]] = []
            for after, op in during:
                while n < after and not done:
                    try:
                        next(steps)
                        n += 1
                    except StopIteration as stop:
                        new_out.add(stop.value)
                        done = True
                later += op.dt
                s = new.sessions.get(f"s{op.session}")
                if not (op.what == "low_latency" and s is not None and later - s.last > s.gap):
                    apply(new, op, later)
                    applied.append((op, later))
            if not done:
                new_out.add(finish(steps))
            for op, at in applied:  # the same requests, at the same instants, after the flush
                apply(old, op, at)
            now = later
        now += 1.0
        old_out.add(reference_flush(old, now, final=True))
        new_out.add(finish(new.flush_steps(now, final=True)))
    for out in (new_out, old_out):
        out.sums = {k: v for k, v in out.sums.items() if v and not k.endswith("/viewers")}
    assert new_out == old_out


@given(st.sampled_from(["leave", "expired", "reload"]), st.booleans())
def test_a_session_closed_during_the_walk_is_counted_once(how: str, passed: bool) -> None:
    """Three sessions, a step each; one of them closes between two steps, after the walk
    passed it or before it reached it (the cases the random traffic above rarely hits)."""
    old, new = _tallies()
    for t in (old, new):
        for key in ("a", "b", "c"):
            t.hit(T0 + 1, key, PlayerKind.HLS, 6.0, lambda: ("v", DeviceClass.DESKTOP))
    with step_size(1):
        steps = new.flush_steps(T0 + 5)
        next(steps)
        key = "a" if passed else "c"
        assert (key in (new._walked or {})) is passed
        if how == "leave":
            new.leave(key)
        elif how == "expired":  # a request after more than the gap: a new session
            new.hit(T0 + 8, key, PlayerKind.HLS, 6.0, lambda: ("v", DeviceClass.DESKTOP))
        else:
            new.hit(T0 + 6, key, PlayerKind.HLS, 6.0, lambda: ("v", DeviceClass.DESKTOP))
        delta = finish(steps)
    assert delta.minutes == [(int(T0), 3)] and delta.peak == 3
    assert delta.minutes == reference_flush(old, T0 + 5).minutes
    assert sum(s.sessions for s in delta.split.values()) == 3


# ---- the size of a step -----------------------------------------------------------------

def _open_sessions(n: int) -> AnalyticsTracker:
    """``n`` HLS sessions joining over two minutes, each with a request in the last 5 s
    (a gap long enough that all are open)."""
    clock = [T0]
    tracker = AnalyticsTracker(lambda: clock[0], gaps=Gaps(hls=130.0), max_sessions=n)
    for i in range(n):
        clock[0] = T0 + 120.0 * i / n
        tracker.hit("b1", f"s{i}", PlayerKind.HLS, f"198.51.{i // 250}.{i % 250}", FIREFOX)
    clock[0] = T0 + 120.0
    for i in range(n):
        clock[0] = T0 + 120.0 + 5.0 * i / n
        tracker.hit("b1", f"s{i}", PlayerKind.HLS, "", "")
    clock[0] = T0 + 125.0
    return tracker


def _lines_per_step(steps: tracker_module.Steps[Any]) -> tuple[list[int], Any]:
    """Lines of appliance/analytics/tracker.py run in each step of ``steps``, and the
    result."""
    path = tracker_module.__file__
    counts = [0]

    def local(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
        if event == "line":
            counts[-1] += 1
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        return local if frame.f_code.co_filename == path else None

    sys.settrace(calls)
    try:
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return counts, stop.value
            counts.append(0)
    finally:
        sys.settrace(None)


def test_a_flush_of_20000_open_sessions_is_done_in_bounded_steps() -> None:
    """No step runs more than a bounded number of lines of tracker code per
    :data:`FLUSH_STEP` sessions, intervals or events (the flush runs about 50 lines per open
    session in all, which the flush at once ran in one step)."""
    n, step = 20_000, 100
    tracker = _open_sessions(n)
    with step_size(step):
        counts, (delta,) = _lines_per_step(tracker.flush_steps())
    assert delta.minutes and max(v for _, v in delta.minutes) == n  # it did the work
    assert len(counts) > 2 * n // step  # the walk, the index, and more
    assert sum(counts) > 10 * n
    assert max(counts) <= 40 * step  # the walk: about 30 lines per session


async def test_the_event_loop_runs_between_the_steps_of_a_flush() -> None:
    n = 20_000
    tracker = _open_sessions(n)
    ticks = 0
    flushing = True

    async def tick() -> None:
        nonlocal ticks
        while flushing:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    (delta,) = await sliced(tracker.flush_steps())
    flushing = False
    await ticker
    assert sum(s.sessions for s in delta.split.values()) == n
    assert ticks >= 2 * n // tracker_module.FLUSH_STEP  # once per step of the walk and index


async def test_a_cancelled_flush_loses_nothing() -> None:
    """Cancelled halfway (shutdown stops the flush task), the next flush hands out all."""
    tracker, whole = _open_sessions(3000), _open_sessions(3000)
    with step_size(100):
        task = asyncio.create_task(sliced(tracker.flush_steps()))
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert tracker.tallies["b1"]._walked is None
        out, expected = Persisted(), Persisted()
        for d in tracker.flush(final=True):
            out.add(d)
        for d in whole.flush(final=True):
            expected.add(d)
    assert out == expected
