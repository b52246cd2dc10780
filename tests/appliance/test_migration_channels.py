"""Migration from a database made by the pre-channels release (tests/data/release-streams.*):
every stream becomes a channel with one broadcast of the same id; keys, chat and Nostr state
stay attached."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.channels import ChannelService, PublishRefused
from appliance.config import load_config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import BroadcastStatus
from tests.appliance.test_channels import FakeClock, FakeLink

DATA = Path(__file__).parent.parent / "data"
RELEASE = json.loads((DATA / "release-streams.json").read_text())


def release_db(tmp_path: Path) -> Path:
    path = tmp_path / "hearth.db"
    shutil.copy(DATA / "release-streams.sqlite", path)
    return path


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[ChannelService]:
    path = release_db(tmp_path)
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": "30"})
    store = await Store.open(path)
    svc = ChannelService(config, store, clock=FakeClock())
    await svc.start()
    yield svc
    await svc.close()
    await store.close()


def test_fixture_is_the_old_schema() -> None:
    with sqlite3.connect(DATA / "release-streams.sqlite") as db:
        names = [r[0] for r in db.execute("SELECT name FROM _hearth_migrations ORDER BY name")]
        statuses = dict(db.execute("SELECT id, status FROM streams").fetchall())
    assert names == ["m001_streams", "m002_nostr", "m003_stream_deleted"]
    assert statuses == {RELEASE["planned"]["id"]: "created", RELEASE["aired"]["id"]: "ended",
                        RELEASE["deleted"]["id"]: "ended", RELEASE["live"]["id"]: "live"}


async def test_streams_become_channels_with_one_broadcast_each(
        migrated: ChannelService) -> None:
    channels = {c.id: c for c in await migrated.list_channels()}
    assert set(channels) == {RELEASE[k]["id"] for k in ("planned", "aired", "live")}
    assert channels[RELEASE["aired"]["id"]].title == "Friday session"
    assert channels[RELEASE["aired"]["id"]].tags == ("jazz",)
    assert channels[RELEASE["aired"]["id"]].record  # recording on by default
    statuses = {b.id: (b.channel_id, b.status) for b in await migrated.list_broadcasts()}
    assert statuses == {
        RELEASE["planned"]["id"]: (RELEASE["planned"]["id"], BroadcastStatus.PLANNED),
        RELEASE["aired"]["id"]: (RELEASE["aired"]["id"], BroadcastStatus.ENDED),
        RELEASE["live"]["id"]: (RELEASE["live"]["id"], BroadcastStatus.LIVE),
    }
    aired = await migrated.get_broadcast(RELEASE["aired"]["id"])
    assert aired.started_at is not None and aired.ended_at is not None
    counts = await migrated.store.read(q.counts)
    assert (counts.channels, counts.broadcasts_live, counts.broadcasts_planned) == (3, 1, 1)


async def test_every_old_key_keeps_working_except_the_deleted_streams(
        migrated: ChannelService) -> None:
    for name in ("planned", "aired", "live"):
        assert migrated.authorize(RELEASE[name]["stream_key"]) == RELEASE[name]["id"]
    with pytest.raises(PublishRefused):
        migrated.authorize(RELEASE["deleted"]["stream_key"])


async def test_a_stream_left_live_by_a_crash_gets_its_grace_and_continues(
        migrated: ChannelService) -> None:
    live = RELEASE["live"]["id"]
    lb = migrated.live_broadcast(live)
    assert lb is not None and lb.broadcast_id == live and lb.grace_until is not None
    assert migrated.attach(live, FakeLink(1)) is lb


async def test_the_never_published_stream_is_taken_by_its_first_publish(
        migrated: ChannelService) -> None:
    planned = RELEASE["planned"]["id"]
    lb = migrated.attach(migrated.authorize(RELEASE["planned"]["stream_key"]), FakeLink(1))
    assert lb.broadcast_id == planned  # /watch/<old id> and its Nostr address carry on


async def test_an_aired_stream_publishes_a_new_broadcast_on_its_channel(
        migrated: ChannelService) -> None:
    aired = RELEASE["aired"]["id"]
    lb = migrated.attach(migrated.authorize(RELEASE["aired"]["stream_key"]), FakeLink(1))
    assert lb.broadcast_id != aired and lb.channel_id == aired
    assert migrated.runtime(aired) is lb  # /hls/<old id>/ plays the channel's live broadcast


async def test_chat_ingest_history_and_nostr_rows_stay_with_their_broadcast(
        migrated: ChannelService) -> None:
    def read(db: object) -> tuple[list[object], list[object], list[object]]:
        return (db.execute("SELECT stream_id FROM nostr_chat").fetchall(),  # type: ignore[attr-defined]
                db.execute("SELECT channel_id, broadcast_id FROM ingest_sessions").fetchall(),  # type: ignore[attr-defined]
                db.execute("SELECT stream_id FROM nostr_live").fetchall())  # type: ignore[attr-defined]

    chat, sessions, live = await migrated.store.read(read)
    assert {r[0] for r in chat} == {RELEASE["aired"]["id"], RELEASE["planned"]["id"]}
    assert sessions and all(c == b for c, b in sessions)
    for (stream_id,) in chat + live:  # type: ignore[misc]
        if stream_id != RELEASE["deleted"]["id"]:
            await migrated.get_broadcast(stream_id)
