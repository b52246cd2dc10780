"""SQL of audience analytics (tables of migration ``m_analytics``; docs/analytics.md).

Writes are additive deltas from :mod:`appliance.analytics.tracker` (sums; minute rows and the
peak are maxima), so a flush repeated after a restart adds rather than overwrites. Only
aggregates are stored: never an address, a User-Agent or a viewer key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from appliance.analytics.tracker import TallyDelta


def apply_delta(db: Database, delta: TallyDelta, now: float) -> bool:
    """Add one broadcast's delta; False (nothing written) if the broadcast does not exist."""
    bid = delta.broadcast_id
    if db.execute("SELECT 1 FROM broadcasts WHERE id = ?", (bid,)).fetchone() is None:
        return False
    db.execute(
        "INSERT INTO analytics_broadcasts (broadcast_id, updated_at) VALUES (?, ?) "
        "ON CONFLICT (broadcast_id) DO NOTHING", (bid, now))
    db.execute(
        "UPDATE analytics_broadcasts SET "
        # A provisional minute may reach the peak later than the final figure does: on a tie
        # the earlier instant wins (all right-hand sides read the row before the update).
        "peak_at = CASE WHEN ? > peak THEN ? WHEN ? = peak AND ? > 0 "
        "  THEN MIN(COALESCE(peak_at, ?), ?) ELSE peak_at END, peak = MAX(peak, ?), "
        "unique_viewers = unique_viewers + ?, chat_messages = chat_messages + ?, "
        "chatters = chatters + ?, "
        "first_view_at = CASE WHEN ? IS NULL THEN first_view_at "
        "  ELSE MIN(COALESCE(first_view_at, ?), ?) END, "
        "last_view_at = CASE WHEN ? IS NULL THEN last_view_at "
        "  ELSE MAX(COALESCE(last_view_at, ?), ?) END, "
        "updated_at = ? WHERE broadcast_id = ?",
        (delta.peak, delta.peak_at, delta.peak, delta.peak, delta.peak_at, delta.peak_at,
         delta.peak, delta.unique_viewers, delta.chat_messages,
         delta.chatters, delta.first_view, delta.first_view, delta.first_view,
         delta.last_view, delta.last_view, delta.last_view, now, bid))
    for (kind, device), s in delta.split.items():
        db.execute(
            "INSERT INTO analytics_split (broadcast_id, kind, device, sessions, viewers, "
            "watch_seconds) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (broadcast_id, kind, device) "
            "DO UPDATE SET sessions = sessions + excluded.sessions, "
            "viewers = viewers + excluded.viewers, "
            "watch_seconds = watch_seconds + excluded.watch_seconds",
            (bid, kind.value, device.value, s.sessions, s.viewers, s.watch_seconds))
    db.conn.executemany(
        "INSERT INTO analytics_minutes (broadcast_id, minute, viewers) VALUES (?, ?, ?) "
        "ON CONFLICT (broadcast_id, minute) DO UPDATE SET "
        "viewers = MAX(viewers, excluded.viewers)",
        [(bid, minute, n) for minute, n in delta.minutes])
    return True


def prune_minutes(db: Database, before: float) -> int:
    """Delete per-minute rows older than ``before`` (retention); summaries stay."""
    return db.execute("DELETE FROM analytics_minutes WHERE minute < ?", (before,)).rowcount


@dataclass(frozen=True, slots=True)
class SummaryRow:
    broadcast_id: str
    peak: int
    peak_at: float | None
    unique_viewers: int
    chat_messages: int
    chatters: int
    updated_at: float | None


@dataclass(frozen=True, slots=True)
class SplitRow:
    broadcast_id: str
    kind: str
    device: str
    sessions: int
    viewers: int
    watch_seconds: float


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def summaries(db: Database, broadcast_ids: list[str]) -> dict[str, SummaryRow]:
    if not broadcast_ids:
        return {}
    rows = db.execute(
        "SELECT broadcast_id, peak, peak_at, unique_viewers, chat_messages, chatters, "
        f"updated_at FROM analytics_broadcasts WHERE broadcast_id IN "
        f"({_placeholders(len(broadcast_ids))})", broadcast_ids).fetchall()
    return {r[0]: SummaryRow(*r) for r in rows}


def splits(db: Database, broadcast_ids: list[str]) -> list[SplitRow]:
    if not broadcast_ids:
        return []
    rows = db.execute(
        "SELECT broadcast_id, kind, device, sessions, viewers, watch_seconds "
        f"FROM analytics_split WHERE broadcast_id IN ({_placeholders(len(broadcast_ids))}) "
        "ORDER BY broadcast_id, kind, device", broadcast_ids).fetchall()
    return [SplitRow(*r) for r in rows]


def minutes(db: Database, broadcast_id: str, limit: int = 20_160) -> list[tuple[int, int]]:
    """(minute, viewers) rows of a broadcast, oldest first (at most two weeks of minutes)."""
    rows: list[Any] = db.execute(
        "SELECT minute, viewers FROM analytics_minutes WHERE broadcast_id = ? "
        "ORDER BY minute LIMIT ?", (broadcast_id, limit)).fetchall()
    return [(int(m), int(v)) for m, v in rows]


def channel_broadcast_ids(db: Database, channel_id: str, since: float,
                          limit: int = 10_000) -> list[str]:
    """Broadcasts of a channel that started (or, never started, were created) since
    ``since``, newest first."""
    rows = db.execute(
        "SELECT id FROM broadcasts WHERE channel_id = ? AND status != 'planned' AND "
        "COALESCE(started_at, created_at) >= ? ORDER BY COALESCE(started_at, created_at) DESC "
        "LIMIT ?", (channel_id, since, limit)).fetchall()
    return [r[0] for r in rows]
