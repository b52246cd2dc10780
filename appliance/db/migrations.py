"""Schema migrations: an ordered registry, each applied once in its own transaction.

Applied names are recorded in ``_hearth_migrations``; a migration that fails rolls back and
stops start-up, so the database is never left half-migrated.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlite_utils import Database

Migration = Callable[[Database], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_streams(db: Database) -> None:
    _script(
        db,
        """
        CREATE TABLE streams (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            image TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN ('created', 'live', 'ended')),
            key_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            updated_at REAL NOT NULL,
            peak_viewers INTEGER NOT NULL DEFAULT 0,
            total_viewers INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX streams_status ON streams(status);
        CREATE TABLE ingest_sessions (
            id INTEGER PRIMARY KEY,
            stream_id TEXT NOT NULL REFERENCES streams(id),
            remote TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            end_reason TEXT,
            video_codec TEXT,
            width INTEGER,
            height INTEGER,
            fps REAL,
            bitrate_kbps REAL,
            keyframe_interval REAL,
            bframes INTEGER,
            audio_codec TEXT,
            sample_rate INTEGER,
            channels INTEGER,
            bytes_in INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX ingest_sessions_stream ON ingest_sessions(stream_id);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            stream_id TEXT,
            message TEXT NOT NULL
        );
        CREATE INDEX events_at ON events(at);
        """
    )


@migration
def m002_nostr(db: Database) -> None:
    # Nostr state (appliance.nostr): outbox + per-relay deliveries, chat, moderation, and the
    # last 30311 created_at per stream (NIP-53: must increase strictly per address).
    _script(
        db,
        """
        CREATE TABLE nostr_outbox (
            event_id TEXT PRIMARY KEY,
            kind INTEGER NOT NULL,
            stream_id TEXT,
            supersede_key TEXT,
            event_json TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            enqueued_at REAL NOT NULL,
            superseded INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX nostr_outbox_key ON nostr_outbox(supersede_key);
        CREATE TABLE nostr_deliveries (
            event_id TEXT NOT NULL REFERENCES nostr_outbox(event_id) ON DELETE CASCADE,
            relay TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'ok', 'failed', 'superseded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (event_id, relay)
        );
        CREATE INDEX nostr_deliveries_pending ON nostr_deliveries(state, next_attempt_at);
        CREATE TABLE nostr_live (
            stream_id TEXT PRIMARY KEY,
            last_created_at INTEGER NOT NULL DEFAULT 0,
            last_event_id TEXT,
            last_status TEXT,
            pinned TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE nostr_chat (
            id TEXT PRIMARY KEY,
            stream_id TEXT NOT NULL,
            pubkey TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            content TEXT NOT NULL,
            event_json TEXT NOT NULL,
            received_at REAL NOT NULL,
            source TEXT NOT NULL,
            hidden INTEGER NOT NULL DEFAULT 0,
            zap_msats INTEGER,
            reply_to TEXT
        );
        CREATE INDEX nostr_chat_stream ON nostr_chat(stream_id, created_at);
        CREATE TABLE nostr_mutes (
            pubkey TEXT PRIMARY KEY,
            added_at REAL NOT NULL
        );
        CREATE TABLE nostr_profiles (
            pubkey TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )
        """
    )


@migration
def m003_stream_deleted(db: Database) -> None:
    # Deleted streams keep their row (chat, ingest history and the NIP-09 request reference
    # it) but disappear from every listing, page and lookup.
    db.execute("ALTER TABLE streams ADD COLUMN deleted_at REAL")


@migration
def m_nostr_reactions_and_goals(db: Database) -> None:
    # NIP-25 reactions to a stream's live event (target '') or to its chat messages, and the
    # NIP-75 zap goal a stream's 30311 links to (issue 13).
    _script(
        db,
        """
        CREATE TABLE nostr_reactions (
            id TEXT PRIMARY KEY,
            stream_id TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            pubkey TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            event_json TEXT NOT NULL,
            received_at REAL NOT NULL
        );
        CREATE INDEX nostr_reactions_stream ON nostr_reactions(stream_id);
        CREATE TABLE nostr_goals (
            stream_id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            amount_msats INTEGER NOT NULL,
            title TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )
        """
    )


@migration
def m004_channels_and_broadcasts(db: Database) -> None:
    """Streams become channels (persistent, one key) with broadcasts (one per live session).

    Each stream keeps its id as its channel's id (so its key ``hk_<id>_…`` and ``/hls/<id>``
    keep resolving) and gets one broadcast with the same id (so ``/watch/<id>``, its chat rows
    and its NIP-53 ``d`` tag, all keyed by that id, stay its broadcast's). A never-published
    stream becomes a planned broadcast without a start time: the channel's first publish takes
    it. ``ALTER TABLE … RENAME`` keeps the foreign keys of ``ingest_sessions`` pointing here.
    """
    _script(
        db,
        """
        ALTER TABLE streams RENAME TO channels;
        CREATE TABLE broadcasts (
            id TEXT PRIMARY KEY,
            channel_id TEXT NOT NULL REFERENCES channels(id),
            title TEXT,
            status TEXT NOT NULL CHECK (status IN ('planned', 'live', 'ended')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            starts REAL,
            started_at REAL,
            ended_at REAL,
            end_reason TEXT,
            reconnects INTEGER NOT NULL DEFAULT 0,
            peak_viewers INTEGER NOT NULL DEFAULT 0,
            total_viewers INTEGER NOT NULL DEFAULT 0,
            health TEXT
        );
        CREATE INDEX broadcasts_channel ON broadcasts(channel_id, status);
        CREATE INDEX broadcasts_status ON broadcasts(status, started_at);
        INSERT INTO broadcasts (id, channel_id, title, status, created_at, updated_at,
                                started_at, ended_at, peak_viewers, total_viewers)
            SELECT id, id, NULL,
                   CASE status WHEN 'created' THEN 'planned' ELSE status END,
                   created_at, updated_at, started_at, ended_at, peak_viewers, total_viewers
            FROM channels;
        DROP INDEX streams_status;
        ALTER TABLE channels DROP COLUMN status;
        ALTER TABLE channels DROP COLUMN started_at;
        ALTER TABLE channels DROP COLUMN ended_at;
        ALTER TABLE channels DROP COLUMN peak_viewers;
        ALTER TABLE channels DROP COLUMN total_viewers;
        ALTER TABLE channels ADD COLUMN record INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE channels ADD COLUMN retention_days INTEGER;
        ALTER TABLE ingest_sessions RENAME COLUMN stream_id TO channel_id;
        ALTER TABLE ingest_sessions ADD COLUMN broadcast_id TEXT;
        UPDATE ingest_sessions SET broadcast_id = channel_id;
        CREATE INDEX ingest_sessions_broadcast ON ingest_sessions(broadcast_id)
        """
    )


@migration
def m_webhooks(db: Database) -> None:
    # Webhook endpoints and their durable outbox (issue 14, docs/webhooks.md). The secret is
    # stored as generated (it must be retrievable to sign); the database file is 0600 in a
    # 0700 data dir (docs/threat-model.md §admin-socket). A delivery's id is minted here once
    # and its body fixed, so retries and restarts resend the same bytes under the same id.
    _script(
        db,
        """
        CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            last_status INTEGER,
            last_error TEXT,
            last_attempt_at REAL,
            last_success_at REAL,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE webhook_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, state, seq)
        """
    )


@migration
def m_restream_targets(db: Database) -> None:
    # Simulcast targets of a channel (issue 16 §1). The stream key is stored as given: it must
    # be sent to the target, so it cannot be hashed; the database file is 0600 in a 0700 data
    # dir and the key is never returned by the admin API (docs/threat-model.md §restream).
    _script(
        db,
        """
        CREATE TABLE restream_targets (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id TEXT NOT NULL REFERENCES channels(id),
            server_url TEXT NOT NULL,
            stream_key TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX restream_targets_channel ON restream_targets(channel_id)
        """
    )


@migration
def m_visibility_and_grants(db: Database) -> None:
    # Issue 14 §1 (docs/threat-model.md §grants). A channel's visibility; a broadcast's own
    # (NULL: follows its channel while planned or live; frozen when it ends, like its title,
    # so ended ones get theirs now). The channel password as a scrypt digest, the grant epoch
    # (bumped to revoke every grant of the channel) and the server's grant-signing secret.
    _script(
        db,
        """
        ALTER TABLE channels ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
            CHECK (visibility IN ('public', 'unlisted', 'private'));
        ALTER TABLE channels ADD COLUMN password_hash TEXT;
        ALTER TABLE channels ADD COLUMN grant_epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE broadcasts ADD COLUMN visibility TEXT
            CHECK (visibility IS NULL OR visibility IN ('public', 'unlisted', 'private'));
        UPDATE broadcasts SET visibility = (
            SELECT c.visibility FROM channels c WHERE c.id = broadcasts.channel_id)
            WHERE status = 'ended';
        CREATE TABLE access_secrets (
            name TEXT PRIMARY KEY,
            secret TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """
    )


@migration
def m_analytics(db: Database) -> None:
    # Audience aggregates per broadcast (issue 14 §3, docs/analytics.md): never an address or
    # User-Agent, only counts. Rows go with their broadcast (ON DELETE CASCADE); per-minute
    # detail is pruned after analytics.retention_days, the summary and split stay.
    _script(
        db,
        """
        CREATE TABLE analytics_broadcasts (
            broadcast_id TEXT PRIMARY KEY REFERENCES broadcasts(id) ON DELETE CASCADE,
            peak INTEGER NOT NULL DEFAULT 0,
            peak_at REAL,
            unique_viewers INTEGER NOT NULL DEFAULT 0,
            chat_messages INTEGER NOT NULL DEFAULT 0,
            chatters INTEGER NOT NULL DEFAULT 0,
            first_view_at REAL,
            last_view_at REAL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE analytics_split (
            broadcast_id TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            device TEXT NOT NULL,
            sessions INTEGER NOT NULL DEFAULT 0,
            viewers INTEGER NOT NULL DEFAULT 0,
            watch_seconds REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (broadcast_id, kind, device)
        );
        CREATE TABLE analytics_minutes (
            broadcast_id TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
            minute INTEGER NOT NULL,
            viewers INTEGER NOT NULL,
            PRIMARY KEY (broadcast_id, minute)
        ) WITHOUT ROWID;
        CREATE INDEX analytics_minutes_minute ON analytics_minutes(minute)
        """
    )


@migration
def m_channel_ladder(db: Database) -> None:
    # The channel's quality ladder: preset names tallest first, comma-separated; '' = off
    # (remux only, the default). media/ladder.py parse_ladder validates it.
    db.execute("ALTER TABLE channels ADD COLUMN ladder TEXT NOT NULL DEFAULT ''")


def _script(db: Database, sql: str) -> None:
    # Not executescript(): it COMMITs the open transaction first, which would break the
    # one-transaction-per-migration rule. Our DDL has no ';' inside literals.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def apply_migrations(db: Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _hearth_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _hearth_migrations")}
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            fn(db)
            db.execute(
                "INSERT INTO _hearth_migrations (name, applied_at) VALUES (?, ?)",
                (name, time.time()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
