"""The analytics service against a real Store: flushed figures read back exactly, survive a
restart (a second service on the same file adds to them), go with their broadcast, and the
per-minute detail is pruned by retention while the summary stays. Also the migration from
the previous release's database."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analytics.service import AnalyticsService
from appliance.api.admin_analytics import parse_days
from appliance.api.schema import (
    AnalyticsLink,
    BroadcastAnalytics,
    ChannelAnalytics,
    ChatChange,
    ChatMessage,
    DeviceClass,
    PlayerKind,
)
from appliance.bus import BroadcastChanged, BroadcastReason, Bus, ChatChanged
from appliance.config import AnalyticsConfig
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import ChannelFields
from tests.appliance.test_analytics_tracker import FIREFOX, IPHONE, T0, Clock

RELEASE_DB = Path(__file__).resolve().parents[1] / "data" / "release-streams.sqlite"


async def _seed(store: Store, started: float) -> None:
    def tx(db: object) -> None:
        q.insert_channel(db, "chan01", ChannelFields(title="Jazz <b>night</b>"), "h" * 64)  # type: ignore[arg-type]
        q.start_broadcast(db, "bcast1", "chan01", started)  # type: ignore[arg-type]

    await store.write(tx)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "hearth.db")
    await _seed(s, T0)
    yield s
    await s.close()


def _service(store: Store, clock: Clock, bus: Bus | None = None,
             retention_days: float = 90.0) -> AnalyticsService:
    return AnalyticsService(AnalyticsConfig(retention_days=retention_days, flush_interval=3600),
                            store, bus or Bus(), clock=clock)


def _watch(svc: AnalyticsService, clock: Clock, session: str, ua: str, address: str,
           start: float, stop: float) -> None:
    t = start
    while t <= stop:
        clock.now = T0 + t
        svc.hls_hit("bcast1", session, address, ua)
        t += 2


async def test_figures_flush_read_back_and_survive_a_restart(store: Store) -> None:
    clock, bus = Clock(), Bus()
    svc = _service(store, clock, bus)
    await svc.start()
    # a: 0–100 s desktop; b: 20–58 s phone. Minute 0 → 2, minute 1 → 1 (a until 100 s).
    for t in range(0, 101, 2):
        clock.now = T0 + t
        svc.hls_hit("bcast1", "a", "198.51.100.1", FIREFOX)
        if 20 <= t <= 58:
            svc.hls_hit("bcast1", "b", "198.51.100.2", IPHONE)
    assert svc.current("bcast1") == 1  # b left 42 s ago (gap 10 s)
    clock.now = T0 + 130
    await svc.flush()
    got = await svc.broadcast("bcast1")
    assert got is not None
    assert [(m.minute - int(T0), m.viewers) for m in got.timeline] == [(0, 2), (60, 1), (120, 0)]
    assert (got.peak, got.peak_at, got.unique_viewers) == (2, T0 + 20, 2)
    assert (got.sessions, got.watch_seconds, got.average_watch_seconds) == (2, 138.0, 69.0)
    assert {(s.kind, s.device): s.sessions for s in got.split} == {
        (PlayerKind.HLS, DeviceClass.DESKTOP): 1, (PlayerKind.HLS, DeviceClass.MOBILE): 1}
    await svc.close()

    # "Restart": a new service on the same database; the broadcast continues.
    svc2 = _service(store, clock, bus)
    await svc2.start()
    _watch(svc2, clock, "c", FIREFOX, "198.51.100.3", 200, 230)
    bus.publish(ChatChanged(stream_id="bcast1", reason=ChatChange.NEW, message=ChatMessage(
        id="e" * 64, stream_id="bcast1", pubkey="p" * 64, created_at=int(T0), content="hi")))
    await store.write(lambda db: q.end_broadcast(db, "bcast1", T0 + 240, "test"))
    bus.publish(BroadcastChanged(broadcast_id="bcast1", channel_id="chan01",
                                 reason=BroadcastReason.ENDED))
    got2 = await _until(svc2, lambda g: g.sessions == 3)
    assert (got2.peak, got2.unique_viewers, got2.watch_seconds) == (2, 3, 168.0)
    assert (got2.chat_messages, got2.chatters) == (1, 1)
    assert len(got2.timeline) == 5 and got2.timeline[3].viewers == 1
    await svc2.close()


async def _until(svc: AnalyticsService, ok: object) -> BroadcastAnalytics:
    import asyncio

    for _ in range(200):
        got = await svc.broadcast("bcast1")
        assert got is not None
        if ok(got):  # type: ignore[operator]
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"figures never reached the expected state: {got}")


async def test_channel_roll_up_and_cascade_and_retention(store: Store) -> None:
    clock = Clock()
    svc = _service(store, clock, retention_days=1)
    _watch(svc, clock, "a", FIREFOX, "198.51.100.1", 0, 60)
    clock.now = T0 + 100
    svc.vod_hit("bcast1", "a", "198.51.100.1", FIREFOX)  # no playlist served: not counted
    svc.vod_known("bcast1")
    svc.vod_hit("bcast1", "a", "198.51.100.1", FIREFOX)
    clock.now = T0 + 130
    svc.vod_hit("bcast1", "a", "198.51.100.1", FIREFOX)
    await svc._write(svc.tracker.flush(final=True))
    ch = await svc.channel("chan01", 30)
    assert isinstance(ch, ChannelAnalytics)
    assert (ch.broadcasts, ch.peak, ch.unique_viewers, ch.watch_seconds) == (1, 1, 1, 60.0)
    assert (ch.vod_sessions, ch.vod_watch_seconds) == (1, 30.0)
    assert [d.broadcasts for d in ch.per_day] == [1]
    assert ch.title == "Jazz <b>night</b>"  # raw here; every surface escapes it
    assert await svc.channel("nope", 30) is None
    assert await svc.broadcast("nope") is None

    # Retention: two days after its end the per-minute rows go, the summary stays.
    await store.write(lambda db: q.end_broadcast(db, "bcast1", T0 + 200, "test"))
    got = await svc.broadcast("bcast1")
    assert got is not None and [m.viewers for m in got.timeline] == [1, 1, 0, 0]
    clock.now = T0 + 2 * 86400
    await svc.flush()
    got = await svc.broadcast("bcast1")
    assert got is not None and got.timeline == [] and got.peak == 1

    # Deleted with their broadcast.
    def delete(db: object) -> None:
        db.execute("DELETE FROM broadcasts WHERE id = 'bcast1'")  # type: ignore[attr-defined]

    await store.write(delete)
    left = await store.read(lambda db: [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                                        for t in ("analytics_broadcasts", "analytics_split",
                                                  "analytics_minutes")])
    assert left == [0, 0, 0]


async def test_figures_for_an_unknown_broadcast_are_dropped(store: Store) -> None:
    clock = Clock()
    svc = _service(store, clock)
    svc.hls_hit("no-such", "a", "198.51.100.1", FIREFOX)
    await svc._write(svc.tracker.flush(final=True))  # no foreign-key failure, nothing stored
    assert await store.read(
        lambda db: db.execute("SELECT COUNT(*) FROM analytics_split").fetchone()[0]) == 0


async def test_migration_from_the_previous_release(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    shutil.copy(RELEASE_DB, path)
    store = await Store.open(path)
    try:
        bid = await store.read(
            lambda db: db.execute("SELECT id FROM broadcasts LIMIT 1").fetchone()[0])
        clock = Clock()
        svc = _service(store, clock)
        svc.hls_hit(bid, "a", "198.51.100.1", FIREFOX)
        clock.now += 10
        svc.hls_hit(bid, "a", "198.51.100.1", FIREFOX)
        await svc._write(svc.tracker.flush(final=True))
        got = await svc.broadcast(bid)
        assert got is not None and got.watch_seconds == 10.0
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _hearth_migrations")]
        assert names[-1] == "m_analytics" or "m_analytics" in names
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


# ---- the admin routes: answers, hostile ids and parameters -----------------------------------


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40)))
def test_days_parameter_is_a_bounded_whole_number_or_refused(raw: str | None) -> None:
    days = parse_days(raw)
    assert days is None or 1 <= days <= 3650
    if raw is not None and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 3650:
        assert days == int(raw)


async def test_admin_routes(store: Store, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from appliance.api.admin_app import build_admin_app
    from appliance.channels import ChannelService
    from appliance.config import load_config
    from appliance.state import AppState

    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    clock = Clock()
    svc = _service(store, clock)
    _watch(svc, clock, "a", FIREFOX, "198.51.100.1", 0, 30)
    await svc._write(svc.tracker.flush(final=True))
    state = AppState(config=config, store=store, service=ChannelService(config, store),
                     ingest=None, analytics=svc)  # type: ignore[arg-type]
    async with TestClient(TestServer(build_admin_app(state))) as admin:
        r = await admin.get("/v1/analytics/broadcasts/bcast1")
        assert r.status == 200
        got = BroadcastAnalytics.from_dict(await r.json())
        assert (got.sessions, got.watch_seconds) == (1, 30.0)
        r = await admin.get("/v1/analytics/channels/chan01", params={"days": "7"})
        assert ChannelAnalytics.from_dict(await r.json()).broadcasts == 1
        for bad in ("x" * 5000, "%2e%2e", "ABC", "nope00000000", "bcast1%00"):
            assert (await admin.get(f"/v1/analytics/broadcasts/{bad}")).status == 404
            assert (await admin.get(f"/v1/analytics/channels/{bad}")).status == 404
        for days in ("0", "-1", "3651", "1e3", "\uff17", "", "9" * 5000, "NaN"):
            r = await admin.get("/v1/analytics/channels/chan01", params={"days": days})
            assert r.status == 400 and (await r.json())["field"] == "days"
        state.analytics = None
        assert (await admin.get("/v1/analytics/broadcasts/bcast1")).status == 503


# ---- the channel owner's page -----------------------------------------------------------------


async def test_owner_link_and_page(store: Store, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from appliance.access import AccessService
    from appliance.api.admin_app import build_admin_app
    from appliance.api.public import build_public_app
    from appliance.channels import ChannelService
    from appliance.config import load_config
    from appliance.state import AppState

    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    clock = Clock()
    svc = _service(store, clock)
    _watch(svc, clock, "a", FIREFOX, "198.51.100.1", 0, 30)
    await svc._write(svc.tracker.flush(final=True))
    await store.write(lambda db: db.execute(
        "UPDATE broadcasts SET title = '<script>alert(1)</script>' WHERE id = 'bcast1'"))
    now = [time.time()]
    access = AccessService(store, clock=lambda: now[0])
    await access.start()
    service = ChannelService(config, store)
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     analytics=svc, access=access)
    async with TestClient(TestServer(build_admin_app(state))) as admin, \
            TestClient(TestServer(build_public_app(state))) as public:
        r = await admin.post("/v1/analytics/channels/chan01/link", json={"expires_in": 3600})
        assert r.status == 201
        link = AnalyticsLink.from_dict(await r.json())
        path = link.url.split("://", 1)[1].split("/", 1)[1]
        page = await public.get("/" + path)
        assert page.status == 200
        html = await page.text()
        assert "Jazz &lt;b&gt;night&lt;/b&gt;" in html and "<b>night" not in html
        assert "&lt;script&gt;alert(1)" in html and "<script>alert" not in html
        assert "<svg" in html and "<script" not in html  # the owner page runs no script
        assert page.headers["Cache-Control"] == "no-store, private"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        token = link.url.split("token=", 1)[1]
        watch_grant, _ = access.mint("chan01", None, 3600)  # a viewer grant is not an owner link
        other, _ = access.mint("otherch", None, 3600, purpose="analytics")
        for bad_path in (f"/c/chan01/analytics?token={watch_grant}",
                         f"/c/otherch/analytics?token={token}",
                         f"/c/otherch/analytics?token={other}",
                         "/c/chan01/analytics", "/c/chan01/analytics?token=",
                         # A different last character (a token ending in "A" once made
                         # this case the untampered token: a 1-in-64 failure).
                         f"/c/chan01/analytics?token={token[:-1]}"
                         f"{'B' if token.endswith('A') else 'A'}",
                         f"/c/chan01/analytics?token={token[:50]}",
                         "/c/chan01/analytics?token=" + "v1." * 2000,
                         "/c/chan01/analytics?token=%00%ff", f"/c/CHAN01/analytics?token={token}",
                         f"/c/{'a' * 300}/analytics?token={token}"):
            r = await public.get(bad_path)
            assert r.status == 403, bad_path
            assert "Jazz" not in await r.text()
        # Refused after expiry, and once the channel's grants are revoked.
        now[0] += 3601
        assert (await public.get("/" + path)).status == 403
        r = await admin.post("/v1/analytics/channels/chan01/link", json={})
        fresh = AnalyticsLink.from_dict(await r.json())
        assert fresh.expires_at == int(now[0] + 7 * 86400)  # default: 7 days
        fresh_path = "/" + fresh.url.split("://", 1)[1].split("/", 1)[1]
        assert (await public.get(fresh_path)).status == 200
        await access.revoke_all("chan01")
        assert (await public.get(fresh_path)).status == 403
        for body in ({"expires_in": 10}, {"expires_in": "1d"}, {"expires_in": True},
                     {"expires_in": 1e12}):
            r = await admin.post("/v1/analytics/channels/chan01/link", json=body)
            assert r.status == 400 and (await r.json())["field"] == "expires_in"
        r = await admin.post("/v1/analytics/channels/nochan1/link", json={})
        assert r.status == 404


# ---- CLI text output (hostile titles are shown inert) -----------------------------------------


class _FakeClient:
    def __init__(self, data: dict[str, object] | Exception) -> None:
        self.data = data

    async def request(self, method: str, path: str, body: object = None,
                      params: object = None) -> object:
        if isinstance(self.data, Exception):
            raise self.data
        return self.data

    async def broadcast_analytics(self, broadcast_id: str) -> BroadcastAnalytics:
        if isinstance(self.data, Exception):
            raise self.data
        return BroadcastAnalytics.from_dict(self.data)


async def test_cli_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from appliance.api.admin_client import ApplianceError
    from appliance.cli import _print_audience
    from appliance.cli_analytics import cmd_broadcast, cmd_channel
    from tui.testing import make_analytics, make_channel_analytics

    evil = "\x1b[2J\x1b]0;pwned\x07Evil\u202etitle"
    b = make_analytics("chan01", "bcast1", title=evil)
    await cmd_broadcast(_FakeClient(b.to_dict()), argparse.Namespace(id="bcast1", json=False))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "peak    31" in out and "57 unique viewers" in out and "212 messages" in out
    assert "llhls 48 (8 h 50 min)" in out and "bot 3" in out
    c = make_channel_analytics("chan01", [b], title=evil)
    await cmd_channel(_FakeClient(c.to_dict()), argparse.Namespace(id="chan01", json=False,
                                                                   days=30))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "1 broadcasts" in out and "bcast1" in out
    await _print_audience(_FakeClient(b.to_dict()), "bcast1")  # type: ignore[arg-type]
    assert "audience peak 31, 57 unique" in capsys.readouterr().out
    await _print_audience(_FakeClient(ApplianceError("analytics are off")),  # type: ignore[arg-type]
                          "bcast1")
    assert capsys.readouterr().out == ""
