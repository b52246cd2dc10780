"""SQL of :mod:`appliance.access`: the grant-signing secret, channel passwords and grant
epochs (table ``access_secrets`` and columns of ``channels``, migration
``m_visibility_and_grants``)."""

from __future__ import annotations

import time

from sqlite_utils import Database


def ensure_secret(db: Database, name: str, fresh_hex: str) -> str:
    """The secret called ``name``, created from ``fresh_hex`` the first time (hex text)."""
    db.execute("INSERT OR IGNORE INTO access_secrets (name, secret, created_at) VALUES (?, ?, ?)",
               (name, fresh_hex, time.time()))
    row = db.execute("SELECT secret FROM access_secrets WHERE name = ?", (name,)).fetchone()
    return str(row[0])


def channel_access(db: Database) -> dict[str, tuple[int, str | None]]:
    """Every channel's ``(grant epoch, password digest or None)``."""
    return {r[0]: (int(r[1]), r[2]) for r in db.execute(
        "SELECT id, grant_epoch, password_hash FROM channels WHERE deleted_at IS NULL")}


def bump_grant_epoch(db: Database, channel_id: str) -> int:
    """Invalidate every grant of the channel; returns the new epoch."""
    db.execute("UPDATE channels SET grant_epoch = grant_epoch + 1, updated_at = ? WHERE id = ?",
               (time.time(), channel_id))
    row = db.execute("SELECT grant_epoch FROM channels WHERE id = ?", (channel_id,)).fetchone()
    return int(row[0]) if row else 0


def set_password_hash(db: Database, channel_id: str, digest: str | None) -> None:
    db.execute("UPDATE channels SET password_hash = ?, updated_at = ? WHERE id = ?",
               (digest, time.time(), channel_id))
