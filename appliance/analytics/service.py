"""The analytics service: request hooks, periodic flush through the Store, admin reads.

Hooks (:meth:`AnalyticsService.hls_hit`, :meth:`~AnalyticsService.webrtc_hit`, …) are called
on the request path and only update dicts (:mod:`appliance.analytics.tracker`). A task flushes
the aggregates every ``analytics.flush_interval`` seconds with one Store write; a broadcast's
end (bus ``BroadcastChanged`` ENDED) and shutdown flush at once. A flush walks every open
session, so it runs in bounded steps with the loop free in between (:func:`sliced`): 20,000
open sessions held it for over 100 ms at once. Chat messages are counted from the
bus (``ChatChanged`` NEW). Nothing here touches SQLite on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from appliance.analytics.tracker import LIVE_KINDS, AnalyticsTracker, Gaps, Steps, TallyDelta
from appliance.api.schema import (
    AnalyticsDay,
    AnalyticsMinute,
    AnalyticsSplit,
    BroadcastAnalytics,
    BroadcastAnalyticsLine,
    ChannelAnalytics,
    ChatChange,
    DeviceClass,
    PlayerKind,
)
from appliance.bus import BroadcastChanged, BroadcastReason, Bus, ChatChanged, Event
from appliance.config import AnalyticsConfig, HlsConfig
from appliance.db import Store
from appliance.db import analytics_queries as aq
from appliance.db import queries as q
from appliance.domain import Broadcast
from appliance.periodic import sleep_to_grid
from appliance.tasks import BackgroundTasks

logger = logging.getLogger(__name__)

MAX_TIMELINE = 20_160
"""Points in a broadcast's timeline (two weeks of minutes)."""
MAX_DAYS = 3650
CHAT_KIND = 1311
PRUNE_SECONDS = 3600.0
VOD_KNOWN = 10_000
"""Broadcast ids whose recording playlist was served (only those count recording playback)."""

_T = TypeVar("_T")


async def sliced(steps: Steps[_T]) -> _T:
    """Run ``steps`` (a tracker flush), letting the event loop run between two of them; if
    cancelled, the steps are closed where they stand (each leaves the tracker consistent)."""
    try:
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                result: _T = stop.value
                return result
            await asyncio.sleep(0)
    finally:
        steps.close()


def hls_gap(hls: HlsConfig) -> float:
    """Silence that ends an HLS session: three target durations (a plain client fetches a
    segment per target duration), and at least two watch-page beacon intervals (5 s), so a
    viewer whose media comes from an edge cache is not split (appliance/api/hls.py)."""
    return max(3.0 * math.ceil(hls.segment_target), 10.0)


class AnalyticsService:
    """See the module docstring. ``clock`` is wall-clock seconds (injected in tests)."""

    def __init__(self, config: AnalyticsConfig, store: Store, bus: Bus, *,
                 hls: HlsConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.clock = clock
        self.tracker = AnalyticsTracker(clock, gaps=Gaps(hls=hls_gap(hls or HlsConfig())))
        self._vod_known: dict[str, None] = {}
        self._tasks = BackgroundTasks("analytics")
        self._stack = contextlib.AsyncExitStack()
        self._last_prune = 0.0
        self._flushing = asyncio.Lock()  # the tracker's flushes must not overlap
        self.flushes = 0

    async def start(self) -> None:
        events = await self._stack.enter_async_context(
            self.bus.subscribe(BroadcastChanged, ChatChanged, maxsize=10_000))
        self._tasks.spawn(self._consume(events), "analytics-events")
        self._tasks.spawn(self._flush_loop(), "analytics-flush")

    async def close(self) -> None:
        """Stop, then write everything still in memory (open sessions end at their last
        request)."""
        await self._tasks.close()
        await self._stack.aclose()
        async with self._flushing:
            deltas = await sliced(self.tracker.flush_steps(final=True))
        with contextlib.suppress(RuntimeError):  # the store closed first (tests)
            await self._write(deltas)

    # ---- hooks (request path: dict updates only) ----------------------------------------

    def hls_hit(self, broadcast_id: str, session: str, address: str, user_agent: str, *,
                low_latency: bool = False) -> None:
        """A part/segment fetch or a watch-page beacon (``low_latency``: the page says it
        plays LL-HLS)."""
        kind = PlayerKind.LLHLS if low_latency else PlayerKind.HLS
        self.tracker.hit(broadcast_id, session, kind, address, user_agent)

    def blocking_reload(self, broadcast_id: str, session: str) -> None:
        """A playlist request with ``_HLS_msn`` (rfc8216bis §6.2.5.2): the session is LL-HLS."""
        self.tracker.low_latency(broadcast_id, session)

    def webrtc_hit(self, broadcast_id: str, session: str, address: str,
                   user_agent: str) -> None:
        self.tracker.hit(broadcast_id, session, PlayerKind.WEBRTC, address, user_agent)

    def webrtc_leave(self, broadcast_id: str, session: str) -> None:
        self.tracker.leave(broadcast_id, session)

    def vod_known(self, broadcast_id: str) -> None:
        """The recording playlist of ``broadcast_id`` was served (it exists)."""
        self._vod_known[broadcast_id] = None
        if len(self._vod_known) > VOD_KNOWN:
            del self._vod_known[next(iter(self._vod_known))]

    def vod_hit(self, broadcast_id: str, session: str, address: str, user_agent: str) -> None:
        """A recording segment fetch; counted only for recordings whose playlist was served."""
        if broadcast_id in self._vod_known:
            self.tracker.hit(broadcast_id, "v:" + session, PlayerKind.VOD, address, user_agent)

    def current(self, broadcast_id: str) -> int:
        return self.tracker.current(broadcast_id)

    # ---- flushing ---------------------------------------------------------------------------

    async def _consume(self, events: Any) -> None:
        async for event in events:
            await self._on_event(event)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, ChatChanged):
            m = event.message
            if event.reason is ChatChange.NEW and m.kind == CHAT_KIND:
                self.tracker.chat(event.stream_id, m.pubkey)
        elif isinstance(event, BroadcastChanged) and event.reason is BroadcastReason.ENDED:
            async with self._flushing:
                delta = await sliced(self.tracker.end_steps(event.broadcast_id))
            if delta is not None:
                await self._write([delta])

    async def _flush_loop(self) -> None:
        while True:
            await sleep_to_grid(self.config.flush_interval)  # appliance/periodic.py
            try:
                await self.flush()
            except Exception:
                logger.exception("analytics: flush failed (figures kept for the next one)")

    async def flush(self) -> None:
        """Write what accumulated (one transaction), and prune old per-minute rows hourly."""
        async with self._flushing:
            deltas = await sliced(self.tracker.flush_steps())
        now = self.clock()
        prune_before: float | None = None
        if self.config.retention_days and now - self._last_prune >= PRUNE_SECONDS:
            self._last_prune = now
            prune_before = now - self.config.retention_days * 86400
        await self._write(deltas, prune_before)

    async def _write(self, deltas: list[TallyDelta], prune_before: float | None = None) -> None:
        if not deltas and prune_before is None:
            return
        now = self.clock()

        def tx(db: Any) -> None:
            for d in deltas:
                aq.apply_delta(db, d, now)
            if prune_before is not None:
                aq.prune_minutes(db, prune_before)

        await self.store.write(tx)
        self.flushes += 1

    # ---- reads (admin API) ------------------------------------------------------------------

    async def broadcast(self, broadcast_id: str) -> BroadcastAnalytics | None:
        """One broadcast's figures; None if there is no such broadcast."""
        def read(db: Any) -> tuple[Broadcast | None, dict[str, aq.SummaryRow],
                                   list[aq.SplitRow], list[tuple[int, int]]]:
            b = q.get_broadcast(db, broadcast_id)
            if b is None:
                return None, {}, [], []
            return (b, aq.summaries(db, [b.id]), aq.splits(db, [b.id]),
                    aq.minutes(db, b.id, MAX_TIMELINE))

        b, summary, split_rows, minutes = await self.store.read(read)
        if b is None:
            return None
        s = summary.get(b.id)
        live = _live_totals(split_rows)
        vod = _vod_totals(split_rows)
        return BroadcastAnalytics(
            broadcast_id=b.id, channel_id=b.channel_id, title=b.title, status=b.status.value,
            started_at=b.started_at, ended_at=b.ended_at, current_viewers=self.current(b.id),
            peak=s.peak if s else 0, peak_at=s.peak_at if s else None,
            unique_viewers=s.unique_viewers if s else 0, sessions=live[0],
            watch_seconds=round(live[2], 1), average_watch_seconds=_average(live),
            vod_sessions=vod[0], vod_viewers=vod[1], vod_watch_seconds=round(vod[2], 1),
            chat_messages=s.chat_messages if s else 0, chatters=s.chatters if s else 0,
            split=_split_dtos(split_rows), timeline=self._timeline(b, minutes),
            updated_at=s.updated_at if s else None)

    def _timeline(self, b: Broadcast, rows: list[tuple[int, int]]) -> list[AnalyticsMinute]:
        """A point per minute from start to end (or now), zeros filled in; empty once the
        detail passed retention."""
        now = self.clock()
        retention = self.config.retention_days * 86400
        if b.started_at is None or (retention and (b.ended_at or now) < now - retention):
            return [AnalyticsMinute(minute=m, viewers=v) for m, v in rows]
        first = int(b.started_at // 60) * 60
        if rows:
            first = min(first, rows[0][0])
        last = int((b.ended_at if b.ended_at is not None else now) // 60) * 60
        if rows:
            last = max(last, rows[-1][0])
        first = max(first, last - (MAX_TIMELINE - 1) * 60)
        if retention:  # older minutes were pruned: do not show them as zeros
            first = max(first, int((now - retention) // 60 + 1) * 60)
        by_minute = dict(rows)
        return [AnalyticsMinute(minute=m, viewers=by_minute.get(m, 0))
                for m in range(first, last + 60, 60)]

    async def channel(self, channel_id: str, days: int) -> ChannelAnalytics | None:
        """The broadcasts of a channel that started in the last ``days`` days, rolled up."""
        since = self.clock() - days * 86400

        def read(db: Any) -> tuple[Any, list[Broadcast], dict[str, aq.SummaryRow],
                                   list[aq.SplitRow]]:
            channel = q.get_channel(db, channel_id)
            if channel is None:
                return None, [], {}, []
            ids = aq.channel_broadcast_ids(db, channel_id, since)
            bs = [b for i in ids if (b := q.get_broadcast(db, i)) is not None]
            return channel, bs, aq.summaries(db, ids), aq.splits(db, ids)

        channel, broadcasts, summaries, split_rows = await self.store.read(read)
        if channel is None:
            return None
        live = _live_totals(split_rows)
        vod = _vod_totals(split_rows)
        watch_by: dict[str, float] = {}
        for r in split_rows:
            if PlayerKind(r.kind) in LIVE_KINDS and r.device != DeviceClass.BOT:
                watch_by[r.broadcast_id] = watch_by.get(r.broadcast_id, 0.0) + r.watch_seconds
        empty = aq.SummaryRow("", 0, None, 0, 0, 0, None)
        lines = [_line(b, summaries.get(b.id, empty), watch_by.get(b.id, 0.0))
                 for b in broadcasts]
        top = max(lines, key=lambda x: x.peak, default=None)
        return ChannelAnalytics(
            channel_id=channel_id, title=channel.title, days=days, broadcasts=len(lines),
            peak=top.peak if top else 0,
            peak_at=summaries[top.broadcast_id].peak_at
            if top and top.broadcast_id in summaries else None,
            unique_viewers=sum(x.unique_viewers for x in lines), sessions=live[0],
            watch_seconds=round(live[2], 1), average_watch_seconds=_average(live),
            vod_sessions=vod[0], vod_watch_seconds=round(vod[2], 1),
            chat_messages=sum(x.chat_messages for x in lines),
            chatters=sum(s.chatters for s in summaries.values()),
            split=_split_dtos(split_rows), per_day=_per_day(lines), per_broadcast=lines)


def _line(b: Broadcast, s: aq.SummaryRow, watch: float) -> BroadcastAnalyticsLine:
    return BroadcastAnalyticsLine(
        broadcast_id=b.id, title=b.title, started_at=b.started_at, ended_at=b.ended_at,
        peak=s.peak, unique_viewers=s.unique_viewers, watch_seconds=round(watch, 1),
        chat_messages=s.chat_messages)


def _per_day(lines: list[BroadcastAnalyticsLine]) -> list[AnalyticsDay]:
    days: dict[str, list[BroadcastAnalyticsLine]] = {}
    for x in lines:
        if x.started_at is not None:
            day = datetime.fromtimestamp(x.started_at, UTC).strftime("%Y-%m-%d")
            days.setdefault(day, []).append(x)
    return [AnalyticsDay(day=d, broadcasts=len(xs), peak=max(x.peak for x in xs),
                         unique_viewers=sum(x.unique_viewers for x in xs),
                         watch_seconds=round(sum(x.watch_seconds for x in xs), 1))
            for d, xs in sorted(days.items())]


def _totals(rows: list[aq.SplitRow], live: bool) -> tuple[int, int, float]:
    sessions = viewers = 0
    watch = 0.0
    for r in rows:
        if r.device == DeviceClass.BOT or (PlayerKind(r.kind) in LIVE_KINDS) != live:
            continue
        sessions += r.sessions
        viewers += r.viewers
        watch += r.watch_seconds
    return sessions, viewers, watch


def _live_totals(rows: list[aq.SplitRow]) -> tuple[int, int, float]:
    return _totals(rows, True)


def _vod_totals(rows: list[aq.SplitRow]) -> tuple[int, int, float]:
    return _totals(rows, False)


def _average(totals: tuple[int, int, float]) -> float:
    return round(totals[2] / totals[0], 1) if totals[0] else 0.0


def _split_dtos(rows: list[aq.SplitRow]) -> list[AnalyticsSplit]:
    merged: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        acc = merged.setdefault((r.kind, r.device), [0, 0, 0.0])
        acc[0] += r.sessions
        acc[1] += r.viewers
        acc[2] += r.watch_seconds
    return [AnalyticsSplit(kind=PlayerKind(k), device=DeviceClass(d), sessions=int(a[0]),
                           viewers=int(a[1]), watch_seconds=round(a[2], 1))
            for (k, d), a in sorted(merged.items()) if a[0] > 0]


