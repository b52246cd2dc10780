"""Unit tests for the appliance's Nostr rules: keys, chat checks, flood control, the outbox."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from appliance.db import nostr_queries as nq
from appliance.db import open_database
from appliance.db.migrations import apply_migrations
from appliance.nostr.chat import (
    DISPLAY_CHARS,
    DuplicateGuard,
    RateLimiter,
    chat_reject_reason,
    display_text,
)
from appliance.nostr.keys import (
    KEY_FILE,
    load_operator_key,
    load_or_create_service_key,
    parse_pubkey,
)
from relay_client import PrivateKeySigner, UnsignedEvent
from relay_client.nip19 import encode_npub, encode_nsec

SECRET = "0000000000000000000000000000000000000000000000000000000000000003"


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = open_database(tmp_path / "t.db")
    apply_migrations(database)
    yield database
    database.conn.close()


def _chat(signer: PrivateKeySigner, address: str, content: str = "hi",
          created_at: int | None = None):  # type: ignore[no-untyped-def]
    return signer.sign_event(UnsignedEvent(
        kind=1311, content=content, tags=(("a", address),),
        created_at=int(time.time()) if created_at is None else created_at))


def test_service_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """The service key is generated on first start, kept 0600, and reused afterwards."""
    first = load_or_create_service_key(tmp_path)
    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert load_or_create_service_key(tmp_path).public_key == first.public_key
    assert first.secret_hex not in repr(first)


def test_operator_key_import_accepts_hex_and_nsec(tmp_path: Path) -> None:
    signer = PrivateKeySigner.from_secret(SECRET)
    (tmp_path / "op.hex").write_text(SECRET)
    (tmp_path / "op.nsec").write_text(encode_nsec(SECRET) + "\n")
    assert load_operator_key(tmp_path / "op.hex").public_key == signer.public_key
    assert load_operator_key(tmp_path / "op.nsec").public_key == signer.public_key
    (tmp_path / "bad").write_text("nope")
    with pytest.raises(ValueError) as err:
        load_operator_key(tmp_path / "bad")
    assert "nope" not in str(err.value)


def test_parse_pubkey_npub_and_hex() -> None:
    pk = PrivateKeySigner.from_secret(SECRET).public_key
    assert parse_pubkey(encode_npub(pk)) == pk
    assert parse_pubkey(pk.upper()) == pk
    with pytest.raises(ValueError):
        parse_pubkey("npub1garbage")
    with pytest.raises(ValueError):
        parse_pubkey("abc")


def test_display_text_strips_bidi_and_trims() -> None:
    """docs/threat-model.md §chat: bidi overrides and zero-width characters are removed; 500
    characters shown."""
    assert display_text("a\u202eb\u2066c\u200bd\x00e") == "abcde"
    long = display_text("x" * 2000)
    assert len(long) == DISPLAY_CHARS and long.endswith("…")
    assert display_text("line\nbreak") == "line\nbreak"


def test_chat_reject_reasons() -> None:
    """NIP-53: the a tag must name our activity; §4.4 time window +15 min / −7 days."""
    signer = PrivateKeySigner.generate()
    addr = f"30311:{signer.public_key}:s1"
    now = time.time()
    assert chat_reject_reason(_chat(signer, addr), addr, now) is None
    assert chat_reject_reason(_chat(signer, addr + "x"), addr, now) == "other-activity"
    future = _chat(signer, addr, created_at=int(now) + 1000)
    assert chat_reject_reason(future, addr, now) == "created-at-future"
    old = _chat(signer, addr, created_at=int(now) - 8 * 86400)
    assert chat_reject_reason(old, addr, now) == "created-at-too-old"
    assert chat_reject_reason(_chat(signer, addr, "   "), addr, now) == "empty"


def test_rate_limiter_two_per_three_seconds_then_timeout() -> None:
    """docs/threat-model.md §chat: token bucket 2 / 3 s; running dry blocks the key for 10 s."""
    rl = RateLimiter()
    assert rl.check("k", 0.0) == 0 and rl.check("k", 0.1) == 0
    assert rl.check("k", 0.2) == pytest.approx(10.0)
    assert rl.check("k", 5.0) > 0  # still inside the timeout
    assert rl.check("k", 10.3) == 0
    assert rl.check("other", 0.3) == 0


def test_duplicate_guard() -> None:
    guard = DuplicateGuard(window=10)
    assert not guard.is_duplicate("a", "Buy now", 0)
    assert guard.is_duplicate("a", "buy   NOW", 1)
    assert not guard.is_duplicate("b", "buy now", 1)
    assert not guard.is_duplicate("a", "buy now", 30)


def test_outbox_supersedes_unsent_older_version(db) -> None:  # type: ignore[no-untyped-def]
    """A newer 30311 for the same address supersedes the older one's unsent deliveries."""
    relays = ("ws://r1", "ws://r2")
    nq.enqueue_event(db, event_id="a" * 64, kind=30311, event_json="{}", created_at=1,
                     relays=relays, supersede_key="30311:x:s1")
    nq.record_delivery(db, "a" * 64, "ws://r1", True, "", None)
    nq.enqueue_event(db, event_id="b" * 64, kind=30311, event_json="{}", created_at=2,
                     relays=relays, supersede_key="30311:x:s1")
    # The older version, no longer needed anywhere, is dropped from the outbox.
    assert nq.delivery_states(db, "a" * 64) == {}
    assert db.execute("SELECT COUNT(*) FROM nostr_outbox").fetchone()[0] == 1
    due = nq.due_deliveries(db, relays, time.time() + 1)
    assert [(d.event_id[0], d.relay) for d in due] == [("b", "ws://r1"), ("b", "ws://r2")]
    assert nq.pending_counts(db) == {"ws://r1": 1, "ws://r2": 1}


def test_failed_delivery_is_rescheduled_or_given_up(db) -> None:  # type: ignore[no-untyped-def]
    nq.enqueue_event(db, event_id="c" * 64, kind=1311, event_json="{}", created_at=1,
                     relays=("ws://r",))
    later = time.time() + 100
    nq.record_delivery(db, "c" * 64, "ws://r", False, "timeout", later)
    assert nq.due_deliveries(db, ("ws://r",), time.time()) == []
    assert len(nq.due_deliveries(db, ("ws://r",), later + 1)) == 1
    nq.record_delivery(db, "c" * 64, "ws://r", False, "invalid: bad", None)
    assert nq.delivery_states(db, "c" * 64) == {"ws://r": "failed"}


def test_created_at_strictly_increasing(db) -> None:  # type: ignore[no-untyped-def]
    """NIP-53 republishes: created_at never repeats or goes back, even within one second."""
    values = [nq.claim_created_at(db, "s1", 1000) for _ in range(3)]
    assert values == [1000, 1001, 1002]
    assert nq.claim_created_at(db, "s1", 5000) == 5000
    assert nq.claim_created_at(db, "s2", 10) == 10


def test_chat_dedup_and_public_listing(db) -> None:  # type: ignore[no-untyped-def]
    kw = dict(stream_id="s1", created_at=1, kind=1311, content="x", event_json="{}",
              source="relay", zap_msats=None, reply_to=None)
    assert nq.insert_chat(db, event_id="d" * 64, pubkey="p" * 64, **kw)  # type: ignore[arg-type]
    assert not nq.insert_chat(db, event_id="d" * 64, pubkey="p" * 64, **kw)  # type: ignore[arg-type]
    assert nq.insert_chat(db, event_id="e" * 64, pubkey="q" * 64, **kw)  # type: ignore[arg-type]
    nq.add_mute(db, "q" * 64)
    nq.set_hidden(db, "s1", "d" * 64, True)
    assert nq.list_chat(db, "s1", public=True) == []
    assert len(nq.list_chat(db, "s1")) == 2
