"""Nostr tables (migration ``m002_nostr``): the durable outbox, chat, moderation, 30311 state.

Synchronous functions taking a ``sqlite_utils.Database``; called only through
:class:`appliance.db.Store` (writes on its single writer thread inside one transaction).

Outbox contract: an event row is committed *before* anything is sent; each configured relay
gets a ``nostr_deliveries`` row that turns ``ok`` only on a relay's ``OK true``; failures are
rescheduled with backoff. A newer event with the same ``supersede_key`` (a 30311 address,
a replaceable kind) marks the older event's unsent deliveries ``superseded``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    relay: str
    event_json: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ChatRow:
    id: str
    stream_id: str
    pubkey: str
    created_at: int
    kind: int
    content: str
    hidden: bool
    zap_msats: int | None
    reply_to: str | None
    source: str


# ---- outbox --------------------------------------------------------------------------------


def enqueue_event(
    db: Database,
    *,
    event_id: str,
    kind: int,
    event_json: str,
    created_at: int,
    relays: tuple[str, ...],
    stream_id: str | None = None,
    supersede_key: str | None = None,
) -> int:
    """Store an event and one pending delivery per relay; returns deliveries superseded."""
    now = time.time()
    superseded = 0
    if supersede_key is not None:
        cur = db.execute(
            "UPDATE nostr_deliveries SET state = 'superseded', updated_at = ? "
            "WHERE state IN ('pending', 'failed') AND event_id IN ("
            "  SELECT event_id FROM nostr_outbox WHERE supersede_key = ? AND event_id != ?)",
            (now, supersede_key, event_id),
        )
        superseded = cur.rowcount
        db.execute(
            "UPDATE nostr_outbox SET superseded = 1 WHERE supersede_key = ? AND event_id != ?",
            (supersede_key, event_id),
        )
        # Keep the table small: older versions nobody still needs to send.
        db.execute(
            "DELETE FROM nostr_outbox WHERE supersede_key = ? AND superseded = 1 AND NOT EXISTS ("
            "  SELECT 1 FROM nostr_deliveries d WHERE d.event_id = nostr_outbox.event_id "
            "  AND d.state = 'pending')",
            (supersede_key,),
        )
    db.execute(
        "INSERT OR IGNORE INTO nostr_outbox (event_id, kind, stream_id, supersede_key, "
        "event_json, created_at, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_id, kind, stream_id, supersede_key, event_json, created_at, now),
    )
    for relay in relays:
        db.execute(
            "INSERT OR IGNORE INTO nostr_deliveries (event_id, relay, state, next_attempt_at, "
            "updated_at) VALUES (?, ?, 'pending', ?, ?)",
            (event_id, relay, now, now),
        )
    return superseded


def due_deliveries(db: Database, relays: tuple[str, ...], now: float,
                   limit: int = 200) -> list[Delivery]:
    """Pending deliveries to configured relays whose retry time has come, oldest first."""
    if not relays:
        return []
    marks = ",".join("?" * len(relays))
    rows = db.execute(
        "SELECT d.event_id, d.relay, o.event_json, d.attempts FROM nostr_deliveries d "
        "JOIN nostr_outbox o ON o.event_id = d.event_id "
        f"WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND d.relay IN ({marks}) "
        "ORDER BY o.enqueued_at LIMIT ?",
        (now, *relays, limit),
    ).fetchall()
    return [Delivery(r[0], r[1], r[2], r[3]) for r in rows]


def next_due_at(db: Database, relays: tuple[str, ...]) -> float | None:
    if not relays:
        return None
    marks = ",".join("?" * len(relays))
    row = db.execute(
        f"SELECT MIN(next_attempt_at) FROM nostr_deliveries WHERE state = 'pending' "
        f"AND relay IN ({marks})", relays).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def record_delivery(db: Database, event_id: str, relay: str, accepted: bool, message: str,
                    retry_at: float | None) -> None:
    """Record one relay's answer: ``ok`` on acceptance, else pending again at ``retry_at``
    (or ``failed`` for good when ``retry_at`` is None, e.g. ``invalid:``)."""
    now = time.time()
    if accepted:
        db.execute(
            "UPDATE nostr_deliveries SET state = 'ok', attempts = attempts + 1, last_error = NULL, "
            "updated_at = ? WHERE event_id = ? AND relay = ? AND state = 'pending'",
            (now, event_id, relay))
    else:
        state = "pending" if retry_at is not None else "failed"
        db.execute(
            "UPDATE nostr_deliveries SET state = ?, attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ?, updated_at = ? WHERE event_id = ? AND relay = ? "
            "AND state = 'pending'",
            (state, message[:300], retry_at or now, now, event_id, relay))


def pending_counts(db: Database) -> dict[str, int]:
    rows = db.execute(
        "SELECT relay, COUNT(*) FROM nostr_deliveries WHERE state = 'pending' GROUP BY relay")
    return {r[0]: r[1] for r in rows}


def delivery_states(db: Database, event_id: str) -> dict[str, str]:
    rows = db.execute("SELECT relay, state FROM nostr_deliveries WHERE event_id = ?",
                      (event_id,))
    return {r[0]: r[1] for r in rows}


def latest_outbox_event(db: Database, supersede_key: str) -> str | None:
    row = db.execute(
        "SELECT event_json FROM nostr_outbox WHERE supersede_key = ? "
        "ORDER BY created_at DESC LIMIT 1", (supersede_key,)).fetchone()
    return row[0] if row else None


# ---- 30311 state ---------------------------------------------------------------------------


def live_state(db: Database, stream_id: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT last_created_at, last_event_id, last_status, pinned FROM nostr_live "
        "WHERE stream_id = ?", (stream_id,)).fetchone()
    if row is None:
        return {"last_created_at": 0, "last_event_id": None, "last_status": None, "pinned": []}
    return {"last_created_at": row[0], "last_event_id": row[1], "last_status": row[2],
            "pinned": json.loads(row[3])}


def claim_created_at(db: Database, key: str, now: int) -> int:
    """A ``created_at`` strictly greater than the last one used for ``key`` (persisted)."""
    row = db.execute("SELECT last_created_at FROM nostr_live WHERE stream_id = ?",
                     (key,)).fetchone()
    last = row[0] if row else 0
    value = max(now, last + 1)
    db.execute(
        "INSERT INTO nostr_live (stream_id, last_created_at) VALUES (?, ?) "
        "ON CONFLICT(stream_id) DO UPDATE SET last_created_at = excluded.last_created_at",
        (key, value))
    return value


def set_live_published(db: Database, stream_id: str, event_id: str, status: str) -> None:
    db.execute("UPDATE nostr_live SET last_event_id = ?, last_status = ? WHERE stream_id = ?",
               (event_id, status, stream_id))


def set_live_status(db: Database, stream_id: str, status: str) -> None:
    """Record what relays were last told (e.g. ``deleted``), keeping the last 30311's id."""
    db.execute("UPDATE nostr_live SET last_status = ? WHERE stream_id = ?", (status, stream_id))


def set_pinned(db: Database, stream_id: str, pinned: list[str]) -> None:
    db.execute(
        "INSERT INTO nostr_live (stream_id, pinned) VALUES (?, ?) "
        "ON CONFLICT(stream_id) DO UPDATE SET pinned = excluded.pinned",
        (stream_id, json.dumps(pinned)))


# ---- chat ----------------------------------------------------------------------------------

_CHAT_COLUMNS = ("id, stream_id, pubkey, created_at, kind, content, hidden, zap_msats, "
                 "reply_to, source")


def _chat(row: tuple[Any, ...]) -> ChatRow:
    return ChatRow(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7],
                   row[8], row[9])


def insert_chat(db: Database, *, event_id: str, stream_id: str, pubkey: str, created_at: int,
                kind: int, content: str, event_json: str, source: str,
                zap_msats: int | None, reply_to: str | None) -> bool:
    """Store a verified chat event; ``False`` when the id is already known (dedup)."""
    cur = db.execute(
        "INSERT OR IGNORE INTO nostr_chat (id, stream_id, pubkey, created_at, kind, content, "
        "event_json, received_at, source, zap_msats, reply_to) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, stream_id, pubkey, created_at, kind, content, event_json, time.time(), source,
         zap_msats, reply_to))
    return cur.rowcount == 1


def get_chat(db: Database, event_id: str) -> ChatRow | None:
    row = db.execute(f"SELECT {_CHAT_COLUMNS} FROM nostr_chat WHERE id = ?",
                     (event_id,)).fetchone()
    return _chat(row) if row else None


def list_chat(db: Database, stream_id: str, limit: int = 200,
              public: bool = False) -> list[ChatRow]:
    """The newest ``limit`` messages, returned oldest first; ``public`` drops hidden/muted."""
    where = "stream_id = ?"
    if public:
        where += (" AND hidden = 0 AND pubkey NOT IN (SELECT pubkey FROM nostr_mutes)")
    rows = db.execute(
        f"SELECT {_CHAT_COLUMNS} FROM nostr_chat WHERE {where} "
        "ORDER BY created_at DESC, received_at DESC LIMIT ?", (stream_id, limit)).fetchall()
    return [_chat(r) for r in reversed(rows)]


def set_hidden(db: Database, stream_id: str, event_id: str, hidden: bool) -> ChatRow | None:
    db.execute("UPDATE nostr_chat SET hidden = ? WHERE id = ? AND stream_id = ?",
               (int(hidden), event_id, stream_id))
    row = get_chat(db, event_id)
    return row if row is not None and row.stream_id == stream_id else None


def list_mutes(db: Database) -> set[str]:
    return {r[0] for r in db.execute("SELECT pubkey FROM nostr_mutes")}


def add_mute(db: Database, pubkey: str) -> None:
    db.execute("INSERT OR IGNORE INTO nostr_mutes (pubkey, added_at) VALUES (?, ?)",
               (pubkey, time.time()))


def remove_mute(db: Database, pubkey: str) -> bool:
    return db.execute("DELETE FROM nostr_mutes WHERE pubkey = ?", (pubkey,)).rowcount == 1


def profile_names(db: Database, pubkeys: set[str]) -> dict[str, str]:
    if not pubkeys:
        return {}
    keys = list(pubkeys)
    out: dict[str, str] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for r in db.execute(
                f"SELECT pubkey, name FROM nostr_profiles WHERE pubkey IN ({marks})", chunk):
            out[r[0]] = r[1]
    return out


def upsert_profile(db: Database, pubkey: str, name: str, created_at: int) -> bool:
    """Keep the newest kind-0 name per author (replaceable, NIP-01)."""
    cur = db.execute(
        "INSERT INTO nostr_profiles (pubkey, name, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(pubkey) DO UPDATE SET name = excluded.name, created_at = excluded.created_at "
        "WHERE excluded.created_at > nostr_profiles.created_at",
        (pubkey, name, created_at))
    return cur.rowcount == 1


# ---- reactions (NIP-25) and goals (NIP-75) -------------------------------------------------


def insert_reaction(db: Database, *, event_id: str, stream_id: str, target: str, pubkey: str,
                    content: str, created_at: int, event_json: str) -> bool:
    """Store a verified reaction; ``False`` when already known."""
    cur = db.execute(
        "INSERT OR IGNORE INTO nostr_reactions (id, stream_id, target, pubkey, content, "
        "created_at, event_json, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, stream_id, target, pubkey, content, created_at, event_json, time.time()))
    return cur.rowcount == 1


def reaction_counts(db: Database, stream_id: str) -> dict[str, dict[str, int]]:
    """``{target: {content: count}}`` (target ``''`` = the live event); one reaction per
    author, target and content; muted authors and hidden messages left out."""
    rows = db.execute(
        "SELECT target, content, COUNT(DISTINCT pubkey) FROM nostr_reactions "
        "WHERE stream_id = ? AND pubkey NOT IN (SELECT pubkey FROM nostr_mutes) "
        "AND (target = '' OR target NOT IN (SELECT id FROM nostr_chat WHERE hidden = 1)) "
        "GROUP BY target, content", (stream_id,))
    out: dict[str, dict[str, int]] = {}
    for target, content, count in rows:
        out.setdefault(target, {})[content] = count
    return out


def set_goal(db: Database, stream_id: str, event_id: str, amount_msats: int, title: str,
             created_at: int) -> None:
    db.execute(
        "INSERT INTO nostr_goals (stream_id, event_id, amount_msats, title, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(stream_id) DO UPDATE SET event_id = "
        "excluded.event_id, amount_msats = excluded.amount_msats, title = excluded.title, "
        "created_at = excluded.created_at", (stream_id, event_id, amount_msats, title, created_at))


@dataclass(frozen=True, slots=True)
class GoalRow:
    stream_id: str
    event_id: str
    amount_msats: int
    title: str
    progress_msats: int


def get_goal(db: Database, stream_id: str) -> GoalRow | None:
    """The stream's goal with its progress: zap receipts of this stream that zap the goal
    event (their ``e`` tag, kept as ``reply_to``)."""
    row = db.execute("SELECT event_id, amount_msats, title FROM nostr_goals WHERE stream_id = ?",
                     (stream_id,)).fetchone()
    if row is None:
        return None
    total = db.execute(
        "SELECT COALESCE(SUM(zap_msats), 0) FROM nostr_chat WHERE stream_id = ? AND kind = 9735 "
        "AND reply_to = ?", (stream_id, row[0])).fetchone()[0]
    return GoalRow(stream_id, row[0], row[1], row[2], int(total))


def goal_streams(db: Database) -> dict[str, str]:
    """``{goal event id: stream id}`` for routing zap receipts that tag only the goal."""
    return {r[0]: r[1] for r in db.execute("SELECT event_id, stream_id FROM nostr_goals")}
