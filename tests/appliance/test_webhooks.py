"""Webhooks in-process: a real Store, the real sender, real aiohttp receivers on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.schema import (
    WEBHOOK_EVENTS,
    BroadcastChange,
    ChatChange,
    ChatMessage,
    RecordingChange,
    SchemaError,
    WebhookCreate,
    WebhookEventType,
)
from appliance.bus import (
    BroadcastChanged,
    Bus,
    ChatChanged,
    PublisherRefused,
    RecordingChanged,
    RestreamFailed,
)
from appliance.config import WebhooksConfig
from appliance.db import Store
from appliance.db import webhook_queries as wq
from appliance.webhooks.payload import (
    MAX_URL_CHARS,
    WebhookError,
    build_body,
    headers,
    parse_events,
    sign,
    validate_url,
    verify,
)
from appliance.webhooks.service import Message, WebhookNotFound, WebhookService
from tests.helpers.webhook_receiver import Receiver

FAST = WebhooksConfig(timeout=2.0, retry_base=0.05, retry_cap=0.2, max_attempts=200,
                      max_age=600, max_pending=1000, concurrency=4)


async def _until(pred: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "hearth.db")
    yield s
    await s.close()


@pytest.fixture
async def service(store: Store) -> AsyncIterator[WebhookService]:
    svc = WebhookService(store, Bus(), FAST, base_url=lambda: "http://hearth.test")
    await svc.start()
    yield svc
    await svc.close()


async def _add(svc: WebhookService, rx: Receiver, events: list[str] | None = None) -> str:
    await rx.start()
    ep, secret = await svc.create(rx.url, events or [])
    rx.secret = secret
    return ep.id


# ---- pure helpers ----------------------------------------------------------------------------


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"v1={expected}"
    h = headers("id-1", "s3cret", 1700000000, body)
    assert h["Hearth-Webhook-Id"] == "id-1" and h["Hearth-Webhook-Timestamp"] == "1700000000"
    assert verify("s3cret", "1700000000", body, h["Hearth-Webhook-Signature"], now=1700000010)
    assert not verify("other", "1700000000", body, h["Hearth-Webhook-Signature"],
                      now=1700000010)
    assert not verify("s3cret", "1700000000", body + b" ", h["Hearth-Webhook-Signature"],
                      now=1700000010)
    # Replay window.
    assert not verify("s3cret", "1700000000", body, h["Hearth-Webhook-Signature"],
                      now=1700000000 + 3600)


@pytest.mark.parametrize("url", [
    "ftp://example.org/x", "javascript:alert(1)", "file:///etc/passwd", "http://", "//host/x",
    "http://user:pw@host/x", "http://host/x#frag", "http://host/\nx", "http://host/ x",
    "http://host:99999/", "http://host:0/", "http://hö.st/", "", "h" * 10,
    "http://host/" + "a" * MAX_URL_CHARS, "http://[::1/x", "http://host/\x00",
])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookError):
        validate_url(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/hook", "https://ntfy.sh/topic", "https://[::1]:8443/x?y=1",
    "https://discord.com/api/webhooks/1/abc",
])
def test_good_urls_pass(url: str) -> None:
    assert validate_url(url) == url


@given(st.one_of(st.text(max_size=3000), st.binary().map(lambda b: b.decode("latin-1")),
                 st.integers(), st.none(), st.lists(st.text())))
@settings(max_examples=300, deadline=None)
def test_url_validation_raises_only_its_own_error(value: object) -> None:
    try:
        url = validate_url(value)
    except WebhookError:
        return
    assert isinstance(url, str) and url.startswith(("http://", "https://"))


@given(st.lists(st.one_of(st.sampled_from(WEBHOOK_EVENTS), st.text(max_size=60),
                          st.integers()), max_size=12))
@settings(max_examples=200, deadline=None)
def test_event_parsing_raises_only_its_own_error(names: list[object]) -> None:
    try:
        out = parse_events(names)
    except WebhookError:
        return
    assert set(out) <= set(WEBHOOK_EVENTS) and len(out) == len(set(out))


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.text(), st.integers(),
                                                       st.booleans(), st.none()), max_size=8),
       st.text(max_size=4000), st.text(min_size=1, max_size=80), st.integers(0, 2**40))
@settings(max_examples=200, deadline=None)
def test_body_roundtrips_and_signature_verifies(data: dict[str, object], summary: str,
                                                secret: str, ts: int) -> None:
    body = build_body("d-1", "broadcast.live", 1700000000, summary, data)
    decoded = json.loads(body)
    assert decoded["id"] == "d-1" and decoded["data"] == data
    assert decoded["text"] == decoded["content"] and len(decoded["text"]) <= 1800
    raw = body.encode()
    assert verify(secret, str(ts), raw, sign(secret, ts, raw), now=ts)


@given(st.one_of(st.dictionaries(st.sampled_from(["url", "events", "x"]),
                                 st.one_of(st.text(), st.lists(st.text()), st.integers(),
                                           st.none(), st.lists(st.integers()))),
                 st.text(), st.lists(st.integers())))
@settings(max_examples=300, deadline=None)
def test_create_body_raises_only_schema_or_webhook_errors(data: object) -> None:
    try:
        body = WebhookCreate.from_dict(data)
        validate_url(body.url)
        parse_events(body.events)
    except (SchemaError, WebhookError):
        pass


# ---- the service -----------------------------------------------------------------------------


async def test_delivers_signed_json_and_keeps_secret_out_of_listing(
        service: WebhookService) -> None:
    rx = Receiver()
    try:
        wid = await _add(service, rx, ["broadcast.live"])
        assert await service.emit(Message(WebhookEventType.BROADCAST_ENDED, "x", {})) == []
        [did] = await service.emit(Message(WebhookEventType.BROADCAST_LIVE, "Live now: t",
                                           {"broadcast_id": "b1"}))
        await _until(lambda: rx.received)
        [got] = rx.received
        assert got.id == did and got.signature_ok and got.type == "broadcast.live"
        assert got.body["text"] == "Live now: t" and got.body["data"] == {"broadcast_id": "b1"}
        assert isinstance(got.body["created_at"], int)
        for _ in range(100):
            ep = await service.get(wid)
            if ep.last_status == 204:
                break
            await asyncio.sleep(0.02)
        assert ep.last_status == 204 and ep.consecutive_failures == 0 and ep.pending == 0
        assert rx.secret not in json.dumps(dataclasses.asdict(ep))
    finally:
        await rx.stop()


async def test_receiver_down_then_back_gets_it_with_the_same_id(
        service: WebhookService) -> None:
    rx = Receiver()
    wid = await _add(service, rx)
    port = rx.port
    await rx.stop()
    [did] = await service.emit(Message(WebhookEventType.TEST, "t", {}), only=wid)

    async def failures() -> int:
        return (await service.get(wid)).consecutive_failures

    for _ in range(500):
        if await failures() >= 2:
            break
        await asyncio.sleep(0.02)
    ep = await service.get(wid)
    assert ep.consecutive_failures >= 2 and ep.last_status is None and ep.last_error
    await rx.start(port)
    try:
        await _until(lambda: rx.received)
        assert [r.id for r in rx.received] == [did] and rx.received[0].signature_ok
    finally:
        await rx.stop()


async def test_restart_delivers_committed_rows_with_their_ids(tmp_path: Path) -> None:
    """What a restart after kill -9 sees: committed pending rows, nothing attempted."""
    store = await Store.open(tmp_path / "hearth.db")
    rx = Receiver()
    await rx.start()
    port = rx.port
    await rx.stop()
    first = WebhookService(store, Bus(), dataclasses.replace(FAST, retry_base=30, retry_cap=60))
    await first.start()
    _, secret = await first.create(rx.url, [])
    ids = await first.emit(Message(WebhookEventType.BROADCAST_LIVE, "a", {}))
    ids += await first.emit(Message(WebhookEventType.BROADCAST_ENDED, "b", {}))
    await first.close()
    rx.secret = secret
    await rx.start(port)
    second = WebhookService(store, Bus(), FAST)
    try:
        # The first attempt failed and was scheduled 30 s out; a restarted service honours
        # the schedule, so make it due now as the clock would.
        await store.write(lambda db: db.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = 0"))
        await second.start()
        await _until(lambda: len(rx.received) >= 2)
        await asyncio.sleep(0.3)
        assert [r.id for r in rx.received] == ids  # same ids, in order, once each
        assert all(r.signature_ok for r in rx.received)
    finally:
        await second.close()
        await rx.stop()
        await store.close()


async def test_a_hanging_receiver_does_not_delay_another_endpoint(
        service: WebhookService) -> None:
    hang, fast = Receiver(mode="hang"), Receiver()
    try:
        await _add(service, hang)
        await _add(service, fast)
        t0 = time.monotonic()
        for i in range(5):
            await service.emit(Message(WebhookEventType.BROADCAST_LIVE, f"m{i}", {}))
        await _until(lambda: len(fast.received) == 5)
        # Well under the hanging endpoint's 2 s timeout per attempt (5 of them = 10 s).
        assert time.monotonic() - t0 < 8
        assert hang.attempts >= 1
        assert [r.body["text"] for r in fast.received] == [f"m{i}" for i in range(5)]
    finally:
        await hang.stop()
        await fast.stop()


async def test_hostile_answers_are_bounded_and_sanitised(service: WebhookService) -> None:
    rx = Receiver(mode="huge")
    try:
        wid = await _add(service, rx)
        await service.test(wid)
        for _ in range(500):
            ep = await service.get(wid)
            if ep.last_status == 500:
                break
            await asyncio.sleep(0.02)
        assert ep.last_status == 500 and ep.last_error is not None
        assert len(ep.last_error) <= 200
        rx.mode = "error"
        for _ in range(500):
            ep = await service.get(wid)
            if ep.last_error and "nope" in ep.last_error:
                break
            await asyncio.sleep(0.02)
        assert ep.last_error is not None and "nope" in ep.last_error
        assert all(0x20 <= ord(c) < 0x7F for c in ep.last_error)
    finally:
        await rx.stop()


async def test_redirects_are_not_followed(service: WebhookService) -> None:
    from aiohttp import web

    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")

    app = web.Application()
    app.router.add_post("/hook", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        ep, _ = await service.create(f"http://127.0.0.1:{port}/hook", [])
        await service.test(ep.id)
        for _ in range(500):
            row = await service.get(ep.id)
            if row.last_status == 302:
                break
            await asyncio.sleep(0.02)
        assert row.last_status == 302 and "redirects are not followed" in (row.last_error or "")
    finally:
        await runner.cleanup()


async def test_outbox_is_bounded_oldest_dropped_and_counted(store: Store) -> None:
    svc = WebhookService(store, Bus(), dataclasses.replace(FAST, max_pending=3,
                                                           retry_base=60, retry_cap=60))
    await svc.start()
    try:
        ep, _ = await svc.create("http://127.0.0.1:9/never", [])
        for i in range(10):
            await svc.emit(Message(WebhookEventType.BROADCAST_LIVE, f"m{i}", {}))
        row = await svc.get(ep.id)
        assert row.pending <= 3 and row.dropped >= 7
    finally:
        await svc.close()


async def test_gives_up_after_max_attempts(store: Store) -> None:
    svc = WebhookService(store, Bus(), dataclasses.replace(FAST, max_attempts=2))
    await svc.start()
    try:
        ep, _ = await svc.create("http://127.0.0.1:9/never", [])
        [did] = await svc.emit(Message(WebhookEventType.BROADCAST_LIVE, "m", {}))
        for _ in range(500):
            st_ = await store.read(lambda db: wq.get_delivery(db, did))
            if st_ and st_[0] == "failed":
                break
            await asyncio.sleep(0.02)
        assert st_ is not None and st_[0] == "failed" and st_[1] == 2
        assert (await svc.get(ep.id)).pending == 0
    finally:
        await svc.close()


async def test_remove_and_unknown_ids(service: WebhookService) -> None:
    ep, _ = await service.create("http://127.0.0.1:9/x", ["chat.flagged"])
    assert ep.events == ("chat.flagged",)
    await service.remove(ep.id)
    with pytest.raises(WebhookNotFound):
        await service.remove(ep.id)
    with pytest.raises(WebhookNotFound):
        await service.test(ep.id)
    with pytest.raises(WebhookError):
        await service.create("gopher://x", [])
    with pytest.raises(WebhookError):
        await service.create("http://x/", ["broadcast.exploded"])


async def test_bus_events_map_to_webhook_types(store: Store) -> None:
    bus = Bus()
    svc = WebhookService(store, bus, FAST, base_url=lambda: "http://h")
    await svc.start()
    rx = Receiver()
    try:
        await _add(svc, rx)
        msg = ChatMessage(id="e" * 64, stream_id="b1", pubkey="f" * 64,
                          content="@everyone spam", created_at=1, hidden=True)
        events: list[object] = [
            BroadcastChanged(broadcast_id="b1", channel_id="c1", reason=BroadcastChange.PLANNED),
            BroadcastChanged(broadcast_id="b1", channel_id="c1", reason=BroadcastChange.STARTED),
            BroadcastChanged(broadcast_id="b1", channel_id="c1",
                             reason=BroadcastChange.RECONNECTED),
            BroadcastChanged(broadcast_id="b1", channel_id="c1", reason=BroadcastChange.ENDED),
            RecordingChanged(broadcast_id="b1", reason=RecordingChange.READY, detail="3 s"),
            RecordingChanged(broadcast_id="b1", reason=RecordingChange.DELETED, detail="gone"),
            PublisherRefused(message="publish refused 3 more time(s)", count=3),
            ChatChanged(stream_id="b1", reason=ChatChange.NEW, message=msg),
            ChatChanged(stream_id="b1", reason=ChatChange.HIDDEN, message=msg),
            RestreamFailed(channel_id="c1", target_id=3, server_url="rtmp://t:1935/live",
                           error="connection refused", failures=5),
        ]
        for e in events:
            bus.publish(e)  # type: ignore[arg-type]
        await _until(lambda: len(rx.received) >= 8)
        await asyncio.sleep(0.2)
        assert [r.type for r in rx.received] == [
            "broadcast.planned", "broadcast.live", "broadcast.ended", "recording.ready",
            "recording.deleted", "publisher.refused", "chat.flagged", "restream.failed"]
        assert rx.received[-1].body["data"]["target_id"] == 3
        live = rx.received[1].body
        assert live["data"]["watch_url"] == "http://h/watch/b1"
        flagged = rx.received[6].body
        assert "@everyone" not in flagged["content"]
        assert rx.received[5].body["data"]["count"] == 3
    finally:
        await svc.close()
        await rx.stop()


# ---- migration -------------------------------------------------------------------------------


FIXTURE = Path(__file__).resolve().parents[1] / "data" / "release-streams.sqlite"
"""The newest database made by a previous release (pre-channels, tests/data)."""


async def test_migration_from_the_previous_release(tmp_path: Path) -> None:
    fixture = FIXTURE
    db_path = tmp_path / "hearth.db"
    shutil.copy(fixture, db_path)
    store = await Store.open(db_path)
    try:
        svc = WebhookService(store, Bus(), FAST)
        await svc.start()
        ep, _ = await svc.create("http://127.0.0.1:9/x", [])
        assert [e.id for e in await svc.endpoints()] == [ep.id]
        await svc.close()
    finally:
        await store.close()
    with sqlite3.connect(db_path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM _hearth_migrations")}
        assert "m_webhooks" in names
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The release's data is still there.
        assert db.execute("SELECT COUNT(*) FROM channels").fetchone()[0] >= 1


# ---- the admin routes: hostile bodies and ids ------------------------------------------------


async def test_admin_routes_refuse_hostile_input(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from appliance.api.admin_app import build_admin_app
    from appliance.channels import ChannelService
    from appliance.config import load_config
    from appliance.state import AppState

    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    hooks = WebhookService(store, service.bus, FAST)
    await hooks.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus, webhooks=hooks)
    try:
        async with TestClient(TestServer(build_admin_app(state))) as admin:
            bad_bodies: list[bytes] = [
                b"", b"{", b"[]", b"null", b'"x"', b'{"url": 5}', b'{"events": []}',
                b'{"url": "http://x/", "events": "broadcast.live"}',
                b'{"url": "http://x/", "events": [1]}',
                b'{"url": "http://x/", "events": ["nope"]}',
                b'{"url": "javascript:alert(1)"}', b'{"url": "http://x/\\u0000"}',
                b'{"url": "http://x/' + b"a" * 5000 + b'"}',
                b'{"url": ' * 10000 + b"1" + b"}" * 10000,
                b"\xff\xfe",
            ]
            for body in bad_bodies:
                r = await admin.post("/v1/webhooks", data=body,
                                     headers={"Content-Type": "application/json"})
                assert r.status == 400, (body[:60], r.status)
                assert "error" in await r.json()
            r = await admin.post("/v1/webhooks", data=b"{" + b" " * (300 * 1024) + b"}")
            assert r.status == 413
            for wid in ("x", "0" * 11, "0" * 13, "ABCDEF012345", "%2e%2e", "0" * 5000):
                assert (await admin.delete(f"/v1/webhooks/{wid}")).status == 404
                assert (await admin.post(f"/v1/webhooks/{wid}/test")).status == 404
            assert (await admin.delete("/v1/webhooks/000000000000")).status == 404
            r = await admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                                        "events": ["recording.ready"]})
            assert r.status == 201
            created = await r.json()
            listed = await (await admin.get("/v1/webhooks")).json()
            assert created["secret"] not in json.dumps(listed)
            assert listed[0]["events"] == ["recording.ready"] and listed[0]["state"] == "new"
            wid = created["webhook"]["id"]
            r = await admin.post(f"/v1/webhooks/{wid}/test")
            assert r.status == 202 and (await r.json())["delivery_id"]
            # A flood of creates: each one committed, none lost.
            rs = await asyncio.gather(*(admin.post("/v1/webhooks",
                                                   json={"url": f"http://127.0.0.1:9/{i}"})
                                        for i in range(50)))
            assert [x.status for x in rs] == [201] * 50
            assert len(await (await admin.get("/v1/webhooks")).json()) == 51
            assert (await admin.delete(f"/v1/webhooks/{wid}")).status == 200
    finally:
        await hooks.close()
        await service.close()
        await store.close()


# ---- the producers ---------------------------------------------------------------------------


async def test_refusals_reach_the_bus_aggregated() -> None:
    """Ingest publishes PublisherRefused once for the first refusal, then one summary per
    interval with the count — never one event per attempt."""
    from types import SimpleNamespace

    from appliance.config import RtmpConfig
    from appliance.ingest import IngestHandler

    bus = Bus()
    logged: list[str] = []
    service = SimpleNamespace(bus=bus, log=lambda level, kind, message: logged.append(message))
    ingest = IngestHandler(service, RtmpConfig())  # type: ignore[arg-type]
    ingest.refusals.interval = 0.2
    async with bus.subscribe(PublisherRefused) as events:
        for i in range(30):
            ingest.refusals.add(f"192.0.2.{i}", "invalid stream key", False)
        first = await asyncio.wait_for(events.get(), 2)
        summary = await asyncio.wait_for(events.get(), 2)
    ingest.refusals.close()
    assert isinstance(first, PublisherRefused) and first.count == 1
    assert isinstance(summary, PublisherRefused) and summary.count == 29
    assert "29 more time(s)" in summary.message and len(logged) == 2


async def test_recording_deleted_reaches_the_bus(tmp_path: Path) -> None:
    from appliance.delivery.paths import recording_dir
    from appliance.delivery.service import Delivery

    bus = Bus()
    delivery = Delivery(tmp_path, bus=bus)
    await delivery.start()
    try:
        bid = "b00000000001"
        recording_dir(tmp_path, bid).mkdir(parents=True)
        async with bus.subscribe(RecordingChanged) as events:
            assert not await delivery.delete("b00000000002")  # none: no event
            assert await delivery.delete(bid, "retention: older than 7 days")
            ev = await asyncio.wait_for(events.get(), 2)
        assert isinstance(ev, RecordingChanged) and ev.broadcast_id == bid
        assert ev.reason is RecordingChange.DELETED and "retention" in ev.detail
    finally:
        await delivery.close()
