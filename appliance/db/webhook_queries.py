"""Webhook tables (migration ``m_webhooks``): endpoints and their durable outbox.

Synchronous functions taking a ``sqlite_utils.Database``; writes run only through
:class:`appliance.db.Store` (one writer thread, one transaction each).

Outbox contract (the Nostr outbox pattern, :mod:`appliance.db.nostr_queries`): a delivery row
(its id and exact body) is committed *before* it is attempted; it turns ``delivered`` only on
a 2xx answer and ``failed`` after the attempt or age limit; otherwise it stays ``pending``
with its next attempt time. Each endpoint is delivered in ``seq`` order, one at a time.
An endpoint holds at most ``max_pending`` pending rows: enqueueing beyond that drops the
oldest pending ones and counts them in ``webhook_endpoints.dropped``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

KEEP_FINISHED = 50
"""Delivered/failed rows kept per endpoint (recent history; older ones are deleted)."""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: str
    url: str
    events: tuple[str, ...]
    created_at: float
    enabled: bool
    last_status: int | None
    last_error: str | None
    last_attempt_at: float | None
    last_success_at: float | None
    consecutive_failures: int
    dropped: int
    pending: int


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    seq: int
    id: str
    endpoint_id: str
    type: str
    body: str
    created_at: float
    attempts: int
    next_attempt_at: float


_ENDPOINT_COLUMNS = (
    "e.id, e.url, e.events, e.created_at, e.enabled, e.last_status, e.last_error, "
    "e.last_attempt_at, e.last_success_at, e.consecutive_failures, e.dropped, "
    "(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id "
    "AND d.state = 'pending')"
)


def _endpoint(r: Any) -> EndpointRow:
    return EndpointRow(r[0], r[1], tuple(json.loads(r[2])), r[3], bool(r[4]), r[5], r[6], r[7],
                       r[8], r[9], r[10], r[11])


def insert_endpoint(db: Database, *, endpoint_id: str, url: str, secret: str,
                    events: list[str], now: float) -> None:
    db.execute("INSERT INTO webhook_endpoints (id, url, secret, events, created_at) "
               "VALUES (?, ?, ?, ?, ?)", (endpoint_id, url, secret, json.dumps(events), now))


def list_endpoints(db: Database) -> list[EndpointRow]:
    rows = db.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e "
                      "ORDER BY e.created_at, e.id").fetchall()
    return [_endpoint(r) for r in rows]


def get_endpoint(db: Database, endpoint_id: str) -> EndpointRow | None:
    r = db.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.id = ?",
                   (endpoint_id,)).fetchone()
    return _endpoint(r) if r else None


def endpoint_secret(db: Database, endpoint_id: str) -> str | None:
    r = db.execute("SELECT secret FROM webhook_endpoints WHERE id = ?",
                   (endpoint_id,)).fetchone()
    return str(r[0]) if r else None


def delete_endpoint(db: Database, endpoint_id: str) -> bool:
    db.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
    cur = db.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
    return cur.rowcount > 0


def enqueue(db: Database, *, delivery_id: str, endpoint_id: str, event_type: str, body: str,
            now: float, max_pending: int) -> int:
    """Commit one pending delivery; returns how many older pending rows were dropped."""
    db.execute("INSERT INTO webhook_deliveries (id, endpoint_id, type, body, created_at, state, "
               "next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
               (delivery_id, endpoint_id, event_type, body, now, now, now))
    (count,) = db.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ? "
                          "AND state = 'pending'", (endpoint_id,)).fetchone()
    excess = int(count) - max_pending
    if excess <= 0:
        return 0
    db.execute("DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM "
               "webhook_deliveries WHERE endpoint_id = ? AND state = 'pending' "
               "ORDER BY seq LIMIT ?)", (endpoint_id, excess))
    db.execute("UPDATE webhook_endpoints SET dropped = dropped + ? WHERE id = ?",
               (excess, endpoint_id))
    return excess


def next_pending(db: Database, endpoint_id: str) -> DeliveryRow | None:
    """The endpoint's oldest pending delivery (delivered in order, one at a time)."""
    r = db.execute("SELECT seq, id, endpoint_id, type, body, created_at, attempts, "
                   "next_attempt_at FROM webhook_deliveries WHERE endpoint_id = ? "
                   "AND state = 'pending' ORDER BY seq LIMIT 1", (endpoint_id,)).fetchone()
    return DeliveryRow(*r) if r else None


def get_delivery(db: Database, delivery_id: str) -> tuple[str, int, str | None] | None:
    """``(state, attempts, last_error)`` of a delivery (tests and diagnostics)."""
    r = db.execute("SELECT state, attempts, last_error FROM webhook_deliveries WHERE id = ?",
                   (delivery_id,)).fetchone()
    return (r[0], r[1], r[2]) if r else None


def record_attempt(db: Database, *, delivery_id: str, endpoint_id: str, ok: bool,
                   status: int | None, error: str | None, retry_at: float | None,
                   now: float | None = None) -> None:
    """One attempt's outcome: delivered on ``ok``; else pending until ``retry_at`` or, when
    that is None, failed for good. The endpoint's state follows the attempt."""
    now = time.time() if now is None else now
    state = "delivered" if ok else ("pending" if retry_at is not None else "failed")
    db.execute("UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, "
               "next_attempt_at = ?, last_status = ?, last_error = ?, updated_at = ? "
               "WHERE id = ?",
               (state, retry_at if retry_at is not None else now, status, error, now,
                delivery_id))
    if ok:
        db.execute("UPDATE webhook_endpoints SET last_status = ?, last_error = NULL, "
                   "last_attempt_at = ?, last_success_at = ?, consecutive_failures = 0 "
                   "WHERE id = ?", (status, now, now, endpoint_id))
    else:
        db.execute("UPDATE webhook_endpoints SET last_status = ?, last_error = ?, "
                   "last_attempt_at = ?, consecutive_failures = consecutive_failures + 1 "
                   "WHERE id = ?", (status, error, now, endpoint_id))
    if state != "pending":
        db.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ? AND state != "
                   "'pending' AND seq NOT IN (SELECT seq FROM webhook_deliveries WHERE "
                   "endpoint_id = ? AND state != 'pending' ORDER BY seq DESC LIMIT ?)",
                   (endpoint_id, endpoint_id, KEEP_FINISHED))
