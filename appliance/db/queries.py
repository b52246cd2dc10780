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

from appliance.domain import Stream, StreamFields, StreamState

_STREAM_COLUMNS = (
    "id, title, summary, tags, image, status, created_at, started_at, ended_at, "
    "peak_viewers, total_viewers"
)


def _stream(row: tuple[Any, ...]) -> Stream:
    return Stream(
        id=row[0],
        title=row[1],
        summary=row[2],
        tags=tuple(json.loads(row[3])),
        image=row[4],
        status=StreamState(row[5]),
        created_at=row[6],
        started_at=row[7],
        ended_at=row[8],
        peak_viewers=row[9],
        total_viewers=row[10],
    )


# ---- streams -------------------------------------------------------------------------------


def insert_stream(
    db: Database, stream_id: str, fields: StreamFields, key_hash: str
) -> Stream:
    now = time.time()
    db.execute(
        "INSERT INTO streams (id, title, summary, tags, image, status, key_hash, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 'created', ?, ?, ?)",
        (stream_id, fields.title, fields.summary, json.dumps(list(fields.tags)), fields.image,
         key_hash, now, now),
    )
    stream = get_stream(db, stream_id)
    assert stream is not None
    return stream


def update_stream_fields(db: Database, stream_id: str, fields: StreamFields) -> None:
    db.execute(
        "UPDATE streams SET title = ?, summary = ?, tags = ?, image = ?, updated_at = ? "
        "WHERE id = ?",
        (fields.title, fields.summary, json.dumps(list(fields.tags)), fields.image, time.time(),
         stream_id),
    )


def get_stream(db: Database, stream_id: str) -> Stream | None:
    row = db.execute(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE id = ? AND deleted_at IS NULL",
                     (stream_id,)).fetchone()
    return _stream(row) if row else None


def list_streams(db: Database, status: StreamState | None = None,
                 limit: int = 500) -> list[Stream]:
    if status is None:
        rows = db.execute(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE deleted_at IS NULL "
            "ORDER BY created_at DESC LIMIT ?", (limit,)
        )
    else:
        rows = db.execute(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE status = ? AND deleted_at IS NULL "
            "ORDER BY created_at DESC LIMIT ?",
            (status.value, limit),
        )
    return [_stream(r) for r in rows]


def key_hashes(db: Database) -> dict[str, str]:
    """``key_hash → stream id`` for every stream that may still publish (not ended)."""
    rows = db.execute(
        "SELECT key_hash, id FROM streams WHERE status != 'ended' AND deleted_at IS NULL")
    return {r[0]: r[1] for r in rows}


def set_key_hash(db: Database, stream_id: str, key_hash: str) -> None:
    db.execute(
        "UPDATE streams SET key_hash = ?, updated_at = ? WHERE id = ?",
        (key_hash, time.time(), stream_id),
    )


def mark_live(db: Database, stream_id: str, at: float) -> None:
    db.execute(
        "UPDATE streams SET status = 'live', started_at = COALESCE(started_at, ?), "
        "updated_at = ? WHERE id = ? AND status != 'ended'",
        (at, at, stream_id),
    )


def mark_ended(db: Database, stream_id: str, at: float) -> None:
    db.execute(
        "UPDATE streams SET status = 'ended', ended_at = ?, updated_at = ? "
        "WHERE id = ? AND status != 'ended'",
        (at, at, stream_id),
    )


def mark_deleted(db: Database, stream_id: str, at: float) -> None:
    db.execute("UPDATE streams SET deleted_at = ?, updated_at = ? WHERE id = ?",
               (at, at, stream_id))


def record_viewers(db: Database, stream_id: str, peak: int, total: int) -> None:
    db.execute(
        "UPDATE streams SET peak_viewers = MAX(peak_viewers, ?), "
        "total_viewers = MAX(total_viewers, ?) WHERE id = ?",
        (peak, total, stream_id),
    )


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


def insert_ingest_session(db: Database, stream_id: str, remote: str,
                          at: float) -> int:
    cur = db.execute(
        "INSERT INTO ingest_sessions (stream_id, remote, started_at) VALUES (?, ?, ?)",
        (stream_id, remote, at),
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


def list_ingest_sessions(db: Database, stream_id: str,
                         limit: int = 20) -> list[dict[str, Any]]:
    cur = db.execute(
        "SELECT * FROM ingest_sessions WHERE stream_id = ? ORDER BY id DESC LIMIT ?",
        (stream_id, limit),
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
