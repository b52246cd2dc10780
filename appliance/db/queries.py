"""Named read and write functions. Each takes a ``sqlite_utils.Database`` and runs synchronously.

They are called only through :class:`appliance.db.Store` (writes on its single writer thread,
inside ``BEGIN IMMEDIATE … COMMIT``) and tested directly against in-memory databases.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from appliance.domain import Broadcast, BroadcastStatus, Channel, ChannelFields, Visibility

_CHANNEL_COLUMNS = ("id, title, summary, tags, image, record, retention_days, created_at, "
                    "visibility, password_hash IS NOT NULL, ladder")
_BROADCAST_SELECT = (
    "SELECT b.id, b.channel_id, COALESCE(b.title, c.title), c.summary, c.tags, c.image, "
    "b.status, b.created_at, b.starts, b.started_at, b.ended_at, b.peak_viewers, "
    "b.total_viewers, b.end_reason, b.reconnects, b.health, "
    "COALESCE(b.visibility, c.visibility), b.visibility "
    "FROM broadcasts b JOIN channels c ON c.id = b.channel_id WHERE c.deleted_at IS NULL"
)


def _channel(row: tuple[Any, ...]) -> Channel:
    return Channel(id=row[0], title=row[1], summary=row[2], tags=tuple(json.loads(row[3])),
                   image=row[4], record=bool(row[5]), retention_days=row[6], created_at=row[7],
                   visibility=Visibility(row[8]), has_password=bool(row[9]),
                   ladder=tuple(n for n in row[10].split(",") if n))


def _broadcast(row: tuple[Any, ...]) -> Broadcast:
    return Broadcast(
        id=row[0], channel_id=row[1], title=row[2], summary=row[3],
        tags=tuple(json.loads(row[4])), image=row[5], status=BroadcastStatus(row[6]),
        created_at=row[7], starts=row[8], started_at=row[9], ended_at=row[10],
        peak_viewers=row[11], total_viewers=row[12], end_reason=row[13], reconnects=row[14],
        health=json.loads(row[15]) if row[15] else None,
        visibility=Visibility(row[16]),
        own_visibility=Visibility(row[17]) if row[17] else None,
    )


# ---- channels ------------------------------------------------------------------------------


def insert_channel(db: Database, channel_id: str, fields: ChannelFields,
                   key_hash: str) -> Channel:
    now = time.time()
    db.execute(
        "INSERT INTO channels (id, title, summary, tags, image, key_hash, record, "
        "retention_days, created_at, updated_at, visibility, ladder) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (channel_id, fields.title, fields.summary, json.dumps(list(fields.tags)), fields.image,
         key_hash, int(fields.record), fields.retention_days, now, now,
         fields.visibility.value, ",".join(fields.ladder)),
    )
    channel = get_channel(db, channel_id)
    assert channel is not None
    return channel


def update_channel_fields(db: Database, channel_id: str, fields: ChannelFields) -> None:
    db.execute(
        "UPDATE channels SET title = ?, summary = ?, tags = ?, image = ?, record = ?, "
        "retention_days = ?, visibility = ?, ladder = ?, updated_at = ? WHERE id = ?",
        (fields.title, fields.summary, json.dumps(list(fields.tags)), fields.image,
         int(fields.record), fields.retention_days, fields.visibility.value,
         ",".join(fields.ladder), time.time(),
         channel_id),
    )


def get_channel(db: Database, channel_id: str) -> Channel | None:
    row = db.execute(
        f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE id = ? AND deleted_at IS NULL",
        (channel_id,)).fetchone()
    return _channel(row) if row else None


def list_channels(db: Database, limit: int = 500) -> list[Channel]:
    rows = db.execute(f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE deleted_at IS NULL "
                      "ORDER BY created_at DESC LIMIT ?", (limit,))
    return [_channel(r) for r in rows]


def key_hashes(db: Database) -> dict[str, str]:
    """``key_hash → channel id`` for every channel (a channel's key lasts until rotated)."""
    rows = db.execute("SELECT key_hash, id FROM channels WHERE deleted_at IS NULL")
    return {r[0]: r[1] for r in rows}


def channel_ladders(db: Database) -> dict[str, tuple[str, ...]]:
    """``channel id → ladder presets`` for every channel whose ladder is on."""
    rows = db.execute("SELECT id, ladder FROM channels WHERE deleted_at IS NULL AND ladder != ''")
    return {cid: tuple(n for n in ladder.split(",") if n) for cid, ladder in rows}


def set_key_hash(db: Database, channel_id: str, key_hash: str) -> None:
    db.execute("UPDATE channels SET key_hash = ?, updated_at = ? WHERE id = ?",
               (key_hash, time.time(), channel_id))


def mark_channel_deleted(db: Database, channel_id: str, at: float) -> None:
    db.execute("UPDATE channels SET deleted_at = ?, updated_at = ? WHERE id = ?",
               (at, at, channel_id))


@dataclass(frozen=True, slots=True)
class Counts:
    """What ``/v1/status`` counts (deleted channels and their broadcasts excluded)."""

    channels: int
    broadcasts_live: int
    broadcasts_planned: int


def counts(db: Database) -> Counts:
    channels = db.execute("SELECT COUNT(*) FROM channels WHERE deleted_at IS NULL").fetchone()[0]
    by_status = dict(db.execute(
        "SELECT b.status, COUNT(*) FROM broadcasts b JOIN channels c ON c.id = b.channel_id "
        "WHERE c.deleted_at IS NULL GROUP BY b.status").fetchall())
    return Counts(channels=channels, broadcasts_live=by_status.get("live", 0),
                  broadcasts_planned=by_status.get("planned", 0))


# ---- broadcasts ----------------------------------------------------------------------------


def insert_planned(db: Database, broadcast_id: str, channel_id: str, title: str | None,
                   starts: float | None, visibility: Visibility | None = None) -> Broadcast:
    """A planned broadcast; ``title`` None follows the channel's, ``starts`` None means "the
    channel's next publish, whenever" (what a pre-channels stream that never aired became);
    ``visibility`` None follows the channel's."""
    now = time.time()
    db.execute(
        "INSERT INTO broadcasts (id, channel_id, title, status, created_at, updated_at, starts, "
        "visibility) VALUES (?, ?, ?, 'planned', ?, ?, ?, ?)",
        (broadcast_id, channel_id, title, now, now, starts,
         visibility.value if visibility else None),
    )
    b = get_broadcast(db, broadcast_id)
    assert b is not None
    return b


def start_broadcast(db: Database, broadcast_id: str, channel_id: str, at: float) -> None:
    """Mark the channel's planned broadcast ``broadcast_id`` live, or insert a new live one."""
    cur = db.execute(
        "UPDATE broadcasts SET status = 'live', started_at = COALESCE(started_at, ?), "
        "updated_at = ? WHERE id = ? AND status = 'planned'", (at, at, broadcast_id))
    if cur.rowcount == 0:
        db.execute(
            "INSERT OR IGNORE INTO broadcasts (id, channel_id, title, status, created_at, "
            "updated_at, started_at) VALUES (?, ?, NULL, 'live', ?, ?, ?)",
            (broadcast_id, channel_id, at, at, at))


def end_broadcast(db: Database, broadcast_id: str, at: float, reason: str) -> None:
    """End a broadcast; its title and visibility are frozen (later channel edits do not
    rename the past, nor publish or hide it)."""
    db.execute(
        "UPDATE broadcasts SET status = 'ended', ended_at = ?, end_reason = ?, updated_at = ?, "
        "title = COALESCE(title, (SELECT c.title FROM channels c WHERE c.id = channel_id)), "
        "visibility = COALESCE(visibility, "
        "(SELECT c.visibility FROM channels c WHERE c.id = channel_id)) "
        "WHERE id = ? AND status != 'ended'",
        (at, reason, at, broadcast_id),
    )


def get_broadcast(db: Database, broadcast_id: str) -> Broadcast | None:
    row = db.execute(f"{_BROADCAST_SELECT} AND b.id = ?", (broadcast_id,)).fetchone()
    return _broadcast(row) if row else None


def list_broadcasts(db: Database, channel_id: str | None = None,
                    status: BroadcastStatus | None = None, limit: int = 500) -> list[Broadcast]:
    """Newest first: by start (or planned start, for planned ones), then creation."""
    sql, args = _BROADCAST_SELECT, []
    if channel_id is not None:
        sql += " AND b.channel_id = ?"
        args.append(channel_id)
    if status is not None:
        sql += " AND b.status = ?"
        args.append(status.value)
    sql += " ORDER BY COALESCE(b.started_at, b.starts, b.created_at) DESC, b.rowid DESC LIMIT ?"
    return [_broadcast(r) for r in db.execute(sql, (*args, limit))]


def latest_broadcast(db: Database, channel_id: str) -> Broadcast | None:
    """The channel's live broadcast, else its most recently started one."""
    row = db.execute(
        f"{_BROADCAST_SELECT} AND b.channel_id = ? AND b.status != 'planned' "
        "ORDER BY b.status = 'live' DESC, b.started_at DESC LIMIT 1", (channel_id,)).fetchone()
    return _broadcast(row) if row else None


def set_broadcast_visibility(db: Database, broadcast_id: str,
                             visibility: Visibility | None) -> None:
    """A broadcast's own visibility (None: follow its channel again; an ended broadcast
    then takes the channel's current one, frozen)."""
    db.execute(
        "UPDATE broadcasts SET visibility = CASE WHEN ? IS NULL AND status = 'ended' "
        "THEN (SELECT c.visibility FROM channels c WHERE c.id = channel_id) ELSE ? END, "
        "updated_at = ? WHERE id = ?",
        (visibility.value if visibility else None, visibility.value if visibility else None,
         time.time(), broadcast_id))


def visibilities(db: Database) -> tuple[dict[str, Visibility],
                                        dict[str, tuple[str, Visibility | None]]]:
    """Every live channel's visibility, and every broadcast's ``(channel id, own visibility)``
    (loaded once at start; :class:`appliance.channels.ChannelService` keeps them current)."""
    channels = {r[0]: Visibility(r[1]) for r in db.execute(
        "SELECT id, visibility FROM channels WHERE deleted_at IS NULL")}
    broadcasts = {r[0]: (r[1], Visibility(r[2]) if r[2] else None) for r in db.execute(
        "SELECT b.id, b.channel_id, b.visibility FROM broadcasts b "
        "JOIN channels c ON c.id = b.channel_id WHERE c.deleted_at IS NULL")}
    return channels, broadcasts


def retention_days_by_broadcast(db: Database) -> dict[str, int | None]:
    """Each broadcast's channel ``retention_days`` (None: the global recording age)."""
    return dict(db.execute(
        "SELECT b.id, c.retention_days FROM broadcasts b "
        "JOIN channels c ON c.id = b.channel_id").fetchall())


def record_viewers(db: Database, broadcast_id: str, peak: int, total: int) -> None:
    db.execute(
        "UPDATE broadcasts SET peak_viewers = MAX(peak_viewers, ?), "
        "total_viewers = MAX(total_viewers, ?) WHERE id = ?",
        (peak, total, broadcast_id),
    )


def set_broadcast_health(db: Database, broadcast_id: str, health: dict[str, Any],
                         reconnects: int) -> None:
    db.execute("UPDATE broadcasts SET health = ?, reconnects = ? WHERE id = ?",
               (json.dumps(health, separators=(",", ":")), reconnects, broadcast_id))


# ---- ingest sessions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestHealthRow:
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: float | None = None
    keyframe_interval: float | None = None
    bframes: bool | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bytes_in: int = 0


def insert_ingest_session(db: Database, channel_id: str, broadcast_id: str, remote: str,
                          at: float) -> int:
    cur = db.execute(
        "INSERT INTO ingest_sessions (channel_id, broadcast_id, remote, started_at) "
        "VALUES (?, ?, ?, ?)",
        (channel_id, broadcast_id, remote, at),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def update_ingest_session(db: Database, session_id: int, health: IngestHealthRow,
                          ended_at: float | None = None, end_reason: str | None = None) -> None:
    db.execute(
        "UPDATE ingest_sessions SET video_codec = ?, width = ?, height = ?, fps = ?, "
        "bitrate_kbps = ?, keyframe_interval = ?, bframes = ?, audio_codec = ?, "
        "sample_rate = ?, channels = ?, bytes_in = ?, ended_at = COALESCE(?, ended_at), "
        "end_reason = COALESCE(?, end_reason) WHERE id = ?",
        (health.video_codec, health.width, health.height, health.fps, health.bitrate_kbps,
         health.keyframe_interval, None if health.bframes is None else int(health.bframes),
         health.audio_codec, health.sample_rate, health.channels, health.bytes_in, ended_at,
         end_reason, session_id),
    )


def close_open_ingest_sessions(db: Database, at: float, reason: str) -> int:
    cur = db.execute(
        "UPDATE ingest_sessions SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL",
        (at, reason),
    )
    return cur.rowcount


def list_ingest_sessions(db: Database, broadcast_id: str,
                         limit: int = 20) -> list[dict[str, Any]]:
    cur = db.execute(
        "SELECT * FROM ingest_sessions WHERE broadcast_id = ? ORDER BY id DESC LIMIT ?",
        (broadcast_id, limit),
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


# ---- event log -----------------------------------------------------------------------------

EVENT_LOG_KEEP = 10_000


def insert_event(db: Database, level: str, kind: str, message: str,
                 stream_id: str | None = None, at: float | None = None) -> int:
    """Append to the bounded event log; returns the new row's id."""
    row_id = db.execute(
        "INSERT INTO events (at, level, kind, stream_id, message) VALUES (?, ?, ?, ?, ?)",
        (time.time() if at is None else at, level, kind, stream_id, message),
    ).lastrowid
    # Bounded log: a flood of bad-key attempts must not grow the database without limit.
    db.execute(
        "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (EVENT_LOG_KEEP,)
    )
    assert row_id is not None  # an INSERT always has one
    return row_id


def list_events(db: Database, limit: int = 100,
                stream_id: str | None = None) -> list[dict[str, Any]]:
    if stream_id is None:
        cur = db.execute(
            "SELECT id, at, level, kind, stream_id, message FROM events ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    else:
        cur = db.execute(
            "SELECT id, at, level, kind, stream_id, message FROM events WHERE stream_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (stream_id, limit),
        )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


# ---- views ----------------------------------------------------------------------------------


def active_broadcasts(db: Database, channel_id: str | None = None) -> list[Broadcast]:
    """Live and planned broadcasts (of one channel, or all), for channel views."""
    sql = f"{_BROADCAST_SELECT} AND b.status != 'ended'"
    args: tuple[Any, ...] = ()
    if channel_id is not None:
        sql += " AND b.channel_id = ?"
        args = (channel_id,)
    return [_broadcast(r) for r in db.execute(sql + " ORDER BY b.starts", args)]


def next_planned(db: Database, channel_id: str | None = None) -> dict[str, Broadcast]:
    """Each channel's next planned broadcast (earliest start; unscheduled ones first)."""
    sql = f"{_BROADCAST_SELECT} AND b.status = 'planned'"
    args: tuple[Any, ...] = ()
    if channel_id is not None:
        sql += " AND b.channel_id = ?"
        args = (channel_id,)
    rows = db.execute(sql + " ORDER BY b.channel_id, COALESCE(b.starts, 0) DESC", args)
    return {b.channel_id: b for b in map(_broadcast, rows)}  # the last (earliest) wins


def latest_broadcasts(db: Database) -> dict[str, Broadcast]:
    """Each channel's live broadcast, else its most recently started one."""
    rows = db.execute(
        f"{_BROADCAST_SELECT} AND b.status != 'planned' "
        "ORDER BY b.channel_id, b.status = 'live', b.started_at")
    return {b.channel_id: b for b in map(_broadcast, rows)}  # the last row per channel wins
