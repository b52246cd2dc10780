"""Visibility of channels and broadcasts (issue 14 §1): the migration from the previous
release, who follows whom, and the public site's listings and refusals in process (the real
aiohttp app, a real recording on disk). tests/integration/test_visibility.py plays it all in
Chromium, through nginx and against a relay."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from appliance.access import AccessService
from appliance.api.public import build_public_app
from appliance.bus import BroadcastChanged, BroadcastReason
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.delivery.service import Delivery
from appliance.domain import BroadcastStatus, ChannelFields, ValidationError, Visibility
from appliance.ingest import AuthThrottle
from appliance.state import AppState
from tests.appliance.delivery.recording_factory import record
from tests.appliance.test_channels import FakeClock, FakeLink

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "release-streams.sqlite"
"""The newest database made by a previous release (tests/data)."""
PUBLIC, UNLISTED, PRIVATE = Visibility.PUBLIC, Visibility.UNLISTED, Visibility.PRIVATE


async def test_migration_from_the_previous_release(tmp_path: Path) -> None:
    db_path = tmp_path / "hearth.db"
    shutil.copy(FIXTURE, db_path)
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": "30"})
    store = await Store.open(db_path)
    svc = ChannelService(config, store, clock=FakeClock())
    await svc.start()
    try:
        channels = await svc.list_channels()
        assert channels and all(c.visibility is PUBLIC and not c.has_password for c in channels)
        broadcasts = await svc.list_broadcasts()
        assert broadcasts and all(b.visibility is PUBLIC for b in broadcasts)
        for b in broadcasts:  # ended ones froze theirs; the others follow their channel
            assert (b.own_visibility is PUBLIC) == (b.status is BroadcastStatus.ENDED)
            assert svc.visibility(b.id) is PUBLIC
        access = AccessService(store)
        await access.start()
        token, _ = access.mint(channels[0].id, None, 60)
        assert access.check(token, channels[0].id, None)
    finally:
        await svc.close()
        await store.close()
    with sqlite3.connect(db_path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _hearth_migrations")]
        assert names[-1] == "m_visibility_and_grants" or "m_visibility_and_grants" in names
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE channels SET visibility = 'secret'")


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[ChannelService]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": "30"})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store, clock=FakeClock())
    await service.start()
    yield service
    await service.close()
    await store.close()


async def test_broadcasts_follow_their_channel_until_they_end(svc: ChannelService) -> None:
    channel, _ = await svc.create_channel(ChannelFields("Show"), first_broadcast=True)
    own = await svc.plan(channel.id, "Members only", FakeClock().time() + 600, PRIVATE)
    follows = await svc.plan(channel.id, "Next week", FakeClock().time() + 7200)
    lb = svc.attach(channel.id, FakeLink(1))  # takes the unscheduled first broadcast
    live_id = lb.broadcast_id
    assert live_id == channel.id
    async with svc.bus.subscribe(BroadcastChanged) as events:
        await svc.update_channel(channel.id, ChannelFields("Show", visibility=UNLISTED))
        changed: set[str] = set()
        while len(changed) < 2:
            ev = await asyncio.wait_for(events.get(), 5)
            if isinstance(ev, BroadcastChanged) and ev.reason is BroadcastReason.UPDATED:
                changed.add(ev.broadcast_id)
    assert changed == {live_id, follows.id}  # the one with its own visibility is not told
    assert svc.visibility(live_id) is UNLISTED and svc.visibility(follows.id) is UNLISTED
    assert svc.visibility(own.id) is PRIVATE
    await svc.end_broadcast(live_id)
    await svc.update_channel(channel.id, ChannelFields("Show", visibility=PUBLIC))
    ended = await svc.get_broadcast(live_id)
    assert ended.visibility is UNLISTED and svc.visibility(live_id) is UNLISTED  # frozen
    assert svc.visibility(follows.id) is PUBLIC
    b = await svc.set_broadcast_visibility(follows.id, PRIVATE)
    assert b.visibility is PRIVATE and b.own_visibility is PRIVATE
    b = await svc.set_broadcast_visibility(follows.id, None)
    assert b.visibility is PUBLIC and b.own_visibility is None
    b = await svc.set_broadcast_visibility(live_id, None)  # ended: takes the channel's, frozen
    assert b.visibility is PUBLIC and b.own_visibility is PUBLIC
    # The memory agrees with SQLite after a restart.
    again = ChannelService(svc.config, svc.store, clock=FakeClock())
    await again.start()
    for bid in (live_id, own.id, follows.id):
        assert again.visibility(bid) is svc.visibility(bid)
    with pytest.raises(ValidationError):
        ChannelFields("x", visibility="secret").validated()  # type: ignore[arg-type]


# ---- the public site ---------------------------------------------------------------------------


class Site:
    def __init__(self, client: TestClient, state: AppState,  # type: ignore[type-arg]
                 ids: dict[str, str]) -> None:
        self.client, self.state, self.ids = client, state, ids


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    access = AccessService(store)
    await access.start()
    delivery = Delivery(tmp_path, log=service.log)
    await delivery.start()
    ids: dict[str, str] = {}
    for name, vis in (("public", PUBLIC), ("unlisted", UNLISTED), ("private", PRIVATE)):
        channel, _ = await service.create_channel(
            ChannelFields(f"Title of the {name} one", visibility=vis), first_broadcast=True)
        await service.end_broadcast(channel.id)  # ended: its recording is the VOD below
        _, writer, _ = await record(tmp_path / "recordings", [0.0], seconds=2.0,
                                    broadcast_id=channel.id)
        writer.close()
        ids[name] = channel.id
    state = AppState(config=config, store=store, service=service,
                     ingest=SimpleNamespace(throttle=AuthThrottle(3, 300, 900)),  # type: ignore[arg-type]
                     bus=service.bus, delivery=delivery, access=access)
    async with TestClient(TestServer(build_public_app(state))) as client:
        yield Site(client, state, ids)
    await delivery.close()
    await service.close()
    await store.close()


async def _get(site: Site, path: str, **kw: Any) -> tuple[int, str, Any]:
    r = await site.client.get(path, allow_redirects=False, **kw)
    return r.status, (await r.read()).decode(errors="replace"), r.headers


async def test_listings_show_public_only(site: Site) -> None:
    for path in ("/", "/api/broadcasts", "/api/streams", "/api/channels",
                 "/api/broadcasts?status=ended"):
        status, text, _ = await _get(site, path)
        assert status == 200
        assert "Title of the public one" in text or path == "/", path
        assert "unlisted one" not in text and "private one" not in text, path
        assert site.ids["unlisted"] not in text and site.ids["private"] not in text, path
    # Unlisted: by its link, everything works without a grant.
    uid = site.ids["unlisted"]
    for path in (f"/watch/{uid}", f"/c/{uid}", f"/api/broadcasts/{uid}", f"/api/channels/{uid}",
                 f"/vod/{uid}/index.m3u8", f"/api/broadcasts/{uid}/chat"):
        status, _, headers = await _get(site, path)
        assert status in (200, 503), path  # 503: chat without a Nostr service
        assert headers.get("Cache-Control") != "private, no-store", path


PRIVATE_PATHS = ("/watch/{id}", "/c/{id}", "/api/broadcasts/{id}", "/api/streams/{id}",
                 "/api/channels/{id}", "/vod/{id}/index.m3u8", "/vod/{id}/seg-0.m4s",
                 "/vod/{id}/init-0.mp4", "/vod/{id}/download.mp4", "/thumb/{id}.jpg",
                 "/api/broadcasts/{id}/chat", "/api/broadcasts/{id}/chat/ws",
                 "/api/streams/{id}/reactions")


async def test_private_refuses_without_a_grant_and_leaks_no_title(site: Site) -> None:
    pid = site.ids["private"]
    for template in PRIVATE_PATHS:
        path = template.format(id=pid)
        status, text, headers = await _get(site, path)
        assert status == 403, (path, status)
        assert "Title of" not in text, path
        assert headers["Cache-Control"] == "private, no-store", path
    # Hostile grants change nothing: cookie, bearer, query, exchange.
    for bad in ("", "x", "v1." * 500, "v1.watch." + pid + "._.9999999999.0." + "A" * 43,
                "\u00e9" * 50):
        status, _, _ = await _get(site, f"/vod/{pid}/index.m3u8",
                                  headers={"Authorization": f"Bearer {bad}"})
        assert status == 403
        status, _, _ = await _get(site, f"/watch/{pid}", params={"grant": bad})
        assert status == 403
        r = await site.client.post("/access/grant", data={"token": bad})
        assert r.status == 403


async def test_a_grant_opens_everything_of_its_scope(site: Site) -> None:
    pid, pub = site.ids["private"], site.ids["public"]
    access = site.state.access
    assert access is not None
    token, _ = access.mint(pid, None, 600)
    cookie = {"Cookie": f"hearth_grant_{pid}={token}"}
    for template in PRIVATE_PATHS:
        path = template.format(id=pid)
        if path.endswith(("/chat", "/ws", "/reactions", ".jpg", "download.mp4")):
            continue  # no Nostr service / thumbnail / finished download in this process
        status, text, headers = await _get(site, path, headers=cookie)
        assert status == 200, (path, status, text[:200])
        assert headers["Cache-Control"] == "private, no-store", path
        assert "Access-Control-Allow-Origin" not in headers, path
    status, body, _ = await _get(site, f"/vod/{pid}/index.m3u8", headers=cookie)
    assert token not in body and "grant" not in body  # playlists never embed a token
    # A grant of another channel opens nothing here.
    other, _ = access.mint(pub, None, 600)
    status, _, _ = await _get(site, f"/watch/{pid}", headers={
        "Cookie": f"hearth_grant_{pid}={other}"})
    assert status == 403
    # ?grant= → cookie + 303 to the same page without it (other query kept).
    status, _, headers = await _get(site, f"/watch/{pid}", params={"grant": token, "mode": "hls"})
    assert status == 303 and headers["Location"] == f"/watch/{pid}?mode=hls"
    assert f"hearth_grant_{pid}={token}" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Lax" in headers["Set-Cookie"]
    # The fragment exchange (access.js) sets the same cookie; a foreign Origin is refused.
    r = await site.client.post("/access/grant", data={"token": token})
    assert r.status == 204 and f"hearth_grant_{pid}=" in r.headers["Set-Cookie"]
    r = await site.client.post("/access/grant", data={"token": token},
                               headers={"Origin": "https://evil.example"})
    assert r.status == 403
    await access.revoke_all(pid)
    status, _, _ = await _get(site, f"/watch/{pid}", headers=cookie)
    assert status == 403


async def test_password_page_counts_guesses_per_address(site: Site) -> None:
    pid = site.ids["private"]
    access = site.state.access
    assert access is not None
    status, text, _ = await _get(site, f"/watch/{pid}")
    assert status == 403 and "password-form" not in text
    await access.set_password(pid, "open sesame")
    status, text, _ = await _get(site, f"/watch/{pid}")
    assert 'action="/access/password/' + pid + '"' in text and "Title of" not in text
    for _ in range(3):  # the throttle in this fixture blocks after 3 wrong guesses
        r = await site.client.post(f"/access/password/{pid}",
                                   data={"password": "guess", "next": f"/watch/{pid}"},
                                   allow_redirects=False)
        assert r.status == 403 and "open sesame" not in await r.text()
    r = await site.client.post(f"/access/password/{pid}",
                               data={"password": "open sesame", "next": f"/watch/{pid}"},
                               allow_redirects=False)
    assert r.status == 429  # blocked: refused without checking, even the right password
    site.state.ingest.throttle.lift("127.0.0.1")
    r = await site.client.post(f"/access/password/{pid}",
                               data={"password": "open sesame", "next": "https://evil/"},
                               allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/c/{pid}"  # no open redirect
    assert f"hearth_grant_{pid}=" in r.headers["Set-Cookie"]
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    status, _, _ = await _get(site, f"/watch/{pid}", headers={"Cookie": cookie})
    assert status == 200
    for body in ({"password": "x" * 70_000}, {}, {"password": ["a", "b"]}):
        r = await site.client.post(f"/access/password/{pid}", data=body,
                                   allow_redirects=False)
        assert r.status in (403, 413, 429)


async def test_unknown_broadcast_or_state_change_is_at_once(site: Site) -> None:
    pub = site.ids["public"]
    status, _, _ = await _get(site, f"/vod/{pub}/index.m3u8")
    assert status == 200
    await site.state.service.set_broadcast_visibility(pub, PRIVATE)
    status, _, _ = await _get(site, f"/vod/{pub}/index.m3u8")
    assert status == 403
    status, text, _ = await _get(site, "/api/broadcasts")
    assert pub not in text
    assert (await site.state.service.get_broadcast(pub)).status is BroadcastStatus.ENDED
