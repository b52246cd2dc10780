"""Migration from a database made by the previous release (commit 46c673b; made by
tests/data/make_release_wave2_fixture.py): channels, keys, recordings settings, planned
broadcasts and webhook endpoints survive this release's migrations (visibility, grants,
analytics, the ladder, restream targets), and the new columns take their defaults."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store, restream_queries, webhook_queries
from appliance.domain import BroadcastStatus, Visibility
from tests.appliance.test_channels import FakeClock

DATA = Path(__file__).parent.parent / "data"
RELEASE = json.loads((DATA / "release-wave2.json").read_text())


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[tuple[ChannelService, Store]]:
    path = tmp_path / "hearth.db"
    shutil.copy(DATA / "release-wave2.sqlite", path)
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(path)
    svc = ChannelService(config, store, clock=FakeClock())
    await svc.start()
    yield svc, store
    await svc.close()
    await store.close()


def test_fixture_is_the_previous_schema() -> None:
    with sqlite3.connect(DATA / "release-wave2.sqlite") as db:
        names = {r[0] for r in db.execute("SELECT name FROM _hearth_migrations")}
    assert "m_webhooks" in names and "m_visibility_and_grants" not in names
    assert "m_analytics" not in names and "m_channel_ladder" not in names


async def test_previous_release_data_survives_with_new_defaults(
        migrated: tuple[ChannelService, Store]) -> None:
    svc, store = migrated
    channels = {c.id: c for c in await svc.list_channels()}
    assert set(channels) == {RELEASE[k]["id"] for k in ("aired", "planned", "live")}
    aired = channels[RELEASE["aired"]["id"]]
    assert (aired.title, aired.tags, aired.retention_days) == ("Friday session", ("jazz",), 30)
    for channel in channels.values():
        assert channel.visibility is Visibility.PUBLIC and channel.ladder == ()
    # Keys made by the previous release still publish to their channel.
    for name in ("aired", "live"):
        assert svc.authorize(RELEASE[name]["stream_key"]) == RELEASE[name]["id"]
    ended = await svc.list_broadcasts(RELEASE["aired"]["id"], BroadcastStatus.ENDED)
    assert len(ended) == 1
    planned = await svc.list_broadcasts(RELEASE["planned"]["id"], BroadcastStatus.PLANNED)
    assert [b.id for b in planned] == [RELEASE["planned"]["broadcast"]]
    endpoints = await store.read(webhook_queries.list_endpoints)
    assert [(e.id, e.url, e.events) for e in endpoints] == [
        (RELEASE["webhook"], "http://127.0.0.1:9/hook", ("broadcast.live",))]
    assert await store.read(restream_queries.list_targets) == []
