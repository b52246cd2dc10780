"""Restream target table (migration ``m_restream_targets``; issue 16 §1).

Synchronous functions taking a ``sqlite_utils.Database``; writes run only through
:class:`appliance.db.Store`. ``stream_key`` is a secret (docs/threat-model.md §restream): it
leaves this module only inside :class:`TargetRow`, whose ``repr`` hides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database


@dataclass(frozen=True, slots=True)
class TargetRow:
    id: int
    channel_id: str
    server_url: str
    """``rtmp[s]://host:port/app`` (not secret)."""
    stream_key: str = field(repr=False)
    created_at: float


_COLUMNS = "id, channel_id, server_url, stream_key, created_at"


def _row(r: tuple[Any, ...]) -> TargetRow:
    return TargetRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4]))


def list_targets(db: Database, channel_id: str | None = None) -> list[TargetRow]:
    """Targets of one channel (or of every channel that is not deleted), oldest first."""
    if channel_id is None:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM restream_targets WHERE channel_id IN "
            "(SELECT id FROM channels WHERE deleted_at IS NULL) ORDER BY id").fetchall()
    else:
        rows = db.execute(f"SELECT {_COLUMNS} FROM restream_targets WHERE channel_id = ? "
                          "ORDER BY id", (channel_id,)).fetchall()
    return [_row(r) for r in rows]


def count_targets(db: Database, channel_id: str) -> int:
    return int(db.execute("SELECT COUNT(*) FROM restream_targets WHERE channel_id = ?",
                          (channel_id,)).fetchone()[0])


def insert_target(db: Database, channel_id: str, server_url: str, stream_key: str,
                  at: float) -> TargetRow:
    cur = db.execute("INSERT INTO restream_targets (channel_id, server_url, stream_key, "
                     "created_at) VALUES (?, ?, ?, ?)", (channel_id, server_url, stream_key, at))
    return TargetRow(int(cur.lastrowid or 0), channel_id, server_url, stream_key, at)


def delete_target(db: Database, channel_id: str, target_id: int) -> bool:
    cur = db.execute("DELETE FROM restream_targets WHERE channel_id = ? AND id = ?",
                     (channel_id, target_id))
    return cur.rowcount > 0


def delete_channel_targets(db: Database, channel_id: str) -> int:
    """Forget a deleted channel's targets (their keys are secrets worth not keeping)."""
    return db.execute("DELETE FROM restream_targets WHERE channel_id = ?",
                      (channel_id,)).rowcount
