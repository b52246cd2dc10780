"""RelayPool against scripted in-process relays: misbehaviour (docs/threat-model.md §nostr-relays)
and NIP-42."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.pool import PoolConfig, RelayPool, RelayState, RelayStatus
from relay_client.signing import PrivateKeySigner
from tests.relay_client.conftest import FakeRelay, Handler, eventually

FAST = PoolConfig(
    backoff_initial=0.05,
    backoff_max=0.3,
    open_timeout=3,
    publish_timeout=5,
    misbehaviour_budget=3,
    misbehaviour_penalty=0,
)
Factory = Callable[[Handler], Awaitable[FakeRelay]]


def _note(signer: PrivateKeySigner, content: str = "hi", kind: int = 1) -> NostrEvent:
    return signer.sign_event(
        UnsignedEvent(kind=kind, content=content, tags=(), created_at=int(time.time())))


async def _serve_events(ws: ServerConnection, relay: FakeRelay, frames: list[str]) -> None:
    """Wait for a REQ, then send ``frames`` (with {sub} substituted) and EOSE."""
    while True:
        frame = await relay.recv(ws)
        if frame[0] == "REQ":
            sub = frame[1]
            for f in frames:
                await ws.send(f.replace("{sub}", str(sub)))
            await ws.send(json.dumps(["EOSE", sub]))


async def test_invalid_events_dropped_and_counted(
    fake_relay_factory: Factory, alice: PrivateKeySigner
) -> None:
    good = _note(alice, "good")
    forged = {**_note(alice, "forged").to_dict(), "sig": good.sig}
    mis_hashed = {**good.to_dict(), "content": "changed"}
    wrong_kind = _note(alice, "wrong kind", kind=7)
    future = alice.sign_event(
        UnsignedEvent(kind=1, content="f", tags=(), created_at=int(time.time()) + 3600))
    schema = {**good.to_dict(), "kind": "1"}
    frames = [
        json.dumps(["EVENT", "{sub}", forged]),
        json.dumps(["EVENT", "{sub}", mis_hashed]),
        json.dumps(["EVENT", "{sub}", schema]),
        json.dumps(["EVENT", "{sub}", wrong_kind.to_dict()]),
        json.dumps(["EVENT", "{sub}", future.to_dict()]),
        json.dumps(["EVENT", "{sub}", good.to_dict()]),
        json.dumps(["EVENT", "{sub}", good.to_dict()]),  # duplicate
    ]
    relay = await fake_relay_factory(lambda ws, r: _serve_events(ws, r, frames))
    got: list[NostrEvent] = []
    eose = asyncio.Event()
    cfg = PoolConfig(backoff_initial=0.05, misbehaviour_budget=10)
    async with RelayPool([relay.url], config=cfg) as pool:
        pool.subscribe(
            "s", [{"kinds": [1]}], lambda e, u: got.append(e), on_eose=lambda u: eose.set()
        )
        async with asyncio.timeout(5):
            await eose.wait()
        assert got == [good]
        assert pool.rejected_events == {
            "bad-signature": 1,
            "bad-id": 1,
            "invalid": 1,
            "filter-mismatch": 1,
            "created-at-future": 1,
        }
        assert pool.duplicate_events == 1
        assert pool.status(relay.url).rejected_events == 5
        assert pool.status(relay.url).state is RelayState.CONNECTED


async def test_dedup_across_relays(fake_relay_factory: Factory, alice: PrivateKeySigner) -> None:
    good = _note(alice)
    frames = [json.dumps(["EVENT", "{sub}", good.to_dict()])]
    r1 = await fake_relay_factory(lambda ws, r: _serve_events(ws, r, frames))
    r2 = await fake_relay_factory(lambda ws, r: _serve_events(ws, r, frames))
    got: list[tuple[str, str]] = []
    eoses: list[str] = []
    async with RelayPool([r1.url, r2.url], config=FAST) as pool:
        pool.subscribe(
            "s", [{"kinds": [1]}], lambda e, u: got.append((e.id, u)), on_eose=eoses.append
        )
        await eventually(lambda: len(eoses) == 2)
    assert [g[0] for g in got] == [good.id]
    assert pool.duplicate_events == 1


async def test_malformed_frames_disconnect_over_budget(fake_relay_factory: Factory) -> None:
    async def spew(ws: ServerConnection, relay: FakeRelay) -> None:
        for frame in ["nope", "[]", '["OK"]', "{}", '["EOSE"]', '["WHAT", 1]']:
            await ws.send(frame)
        await ws.wait_closed()

    relay = await fake_relay_factory(spew)
    # Every status change is recorded: after the disconnect the pool reconnects (FAST backoff)
    # and the next connection's frame errors overwrite last_error, so polling would race.
    seen: list[RelayStatus] = []
    async with RelayPool([relay.url], config=FAST, on_status_change=seen.append) as pool:
        await eventually(lambda: relay.connections >= 2)
        assert pool.status(relay.url).malformed_frames >= 4
        errors = [st.last_error or "" for st in seen]
        assert any("misbehaving relay disconnected: 4 protocol violations" in e for e in errors)


async def test_huge_frame_closes_connection(fake_relay_factory: Factory) -> None:
    async def huge(ws: ServerConnection, relay: FakeRelay) -> None:
        await ws.send(json.dumps(["NOTICE", "x" * (600 * 1024)]))
        await ws.wait_closed()

    relay = await fake_relay_factory(huge)
    async with RelayPool([relay.url], config=FAST) as pool:
        await eventually(lambda: pool.status(relay.url).last_error is not None)
        await eventually(lambda: pool.status(relay.url).state is RelayState.FAILED)
        assert pool.status(relay.url).last_error == "relay sent a frame larger than max_size"


async def test_ok_for_unknown_id_and_unknown_subscription(
    fake_relay_factory: Factory, alice: PrivateKeySigner
) -> None:
    stranger = _note(alice)

    async def rogue(ws: ServerConnection, relay: FakeRelay) -> None:
        await ws.send(json.dumps(["OK", "ab" * 32, True, ""]))
        await ws.send(json.dumps(["EVENT", "never-opened", stranger.to_dict()]))
        await ws.wait_closed()

    relay = await fake_relay_factory(rogue)
    async with RelayPool([relay.url], config=PoolConfig(backoff_initial=0.05)) as pool:
        await eventually(lambda: pool.unexpected_oks >= 1)
        await eventually(lambda: pool.rejected_events.get("unknown-subscription", 0) >= 1)


async def test_ok_false_and_queue_on_reconnect(
    fake_relay_factory: Factory, alice: PrivateKeySigner
) -> None:
    """First connection drops without answering; the event is re-sent on reconnect."""

    async def flaky(ws: ServerConnection, relay: FakeRelay) -> None:
        frame = await relay.recv(ws)
        if relay.connections == 1:
            await ws.close()
            return
        await ws.send(json.dumps(["OK", frame[1]["id"], False, "blocked: not today"]))  # type: ignore[index]
        await ws.wait_closed()

    relay = await fake_relay_factory(flaky)
    async with RelayPool([relay.url], config=FAST) as pool:
        ev = _note(alice)
        result = await pool.publish(ev, timeout=5)
    assert not result.accepted
    assert result.results[0].message == "blocked: not today"
    assert relay.connections == 2
    assert [f[0] for f in relay.received] == ["EVENT", "EVENT"]


async def test_nip42_auth_then_retry(fake_relay_factory: Factory, alice: PrivateKeySigner) -> None:
    """NIP-42: OK false auth-required → signed 22242 AUTH → the event is retried once."""
    challenge = "chal-123"
    auth_events: list[NostrEvent] = []

    async def auth_relay(ws: ServerConnection, relay: FakeRelay) -> None:
        await ws.send(json.dumps(["AUTH", challenge]))
        authed = False
        while True:
            frame = await relay.recv(ws)
            if frame[0] == "AUTH":
                ev = NostrEvent.from_dict(frame[1])
                auth_events.append(ev)
                authed = ev.verify() and ("challenge", challenge) in ev.tags
                await ws.send(json.dumps(["OK", ev.id, authed, ""]))
            elif frame[0] == "EVENT":
                eid = frame[1]["id"]  # type: ignore[index]
                if authed:
                    await ws.send(json.dumps(["OK", eid, True, ""]))
                else:
                    await ws.send(json.dumps(["OK", eid, False, "auth-required: who are you"]))

    relay = await fake_relay_factory(auth_relay)
    async with RelayPool([relay.url], signer=alice, config=FAST) as pool:
        await pool.wait_connected()
        await asyncio.sleep(0.1)  # let the AUTH challenge arrive first or not: both work
        result = await pool.publish(_note(alice), timeout=5)
        assert result.accepted, result
        await eventually(lambda: pool.status(relay.url).authenticated)
    assert len(auth_events) == 1
    ev = auth_events[0]
    assert ev.kind == 22242 and ev.pubkey == alice.public_key
    assert ("relay", relay.url) in ev.tags


async def test_auth_required_without_signer_is_rejected(
    fake_relay_factory: Factory, alice: PrivateKeySigner
) -> None:
    async def auth_relay(ws: ServerConnection, relay: FakeRelay) -> None:
        await ws.send(json.dumps(["AUTH", "c"]))
        while True:
            frame = await relay.recv(ws)
            if frame[0] == "EVENT":
                eid = frame[1]["id"]  # type: ignore[index]
                await ws.send(json.dumps(["OK", eid, False, "auth-required: no"]))

    relay = await fake_relay_factory(auth_relay)
    async with RelayPool([relay.url], config=FAST) as pool:
        result = await pool.publish(_note(alice), timeout=5)
    assert not result.accepted and result.results[0].message == "auth-required: no"


async def test_subscriptions_resent_on_reconnect(
    fake_relay_factory: Factory, alice: PrivateKeySigner
) -> None:
    async def drop_after_req(ws: ServerConnection, relay: FakeRelay) -> None:
        await relay.recv(ws)
        if relay.connections == 1:
            await ws.close()
            return
        while True:
            await relay.recv(ws)

    relay = await fake_relay_factory(drop_after_req)
    async with RelayPool([relay.url], config=FAST) as pool:
        pool.subscribe("chat", [{"kinds": [1311]}], lambda e, u: None)
        await eventually(lambda: len(relay.received) >= 2)
        pool.unsubscribe("chat")
        await eventually(lambda: len(relay.received) >= 3)
    assert relay.received == [
        ["REQ", "chat", {"kinds": [1311]}],
        ["REQ", "chat", {"kinds": [1311]}],
        ["CLOSE", "chat"],
    ]


async def test_backoff_curve() -> None:
    pool = RelayPool(config=PoolConfig(backoff_jitter=0.0))
    assert [round(pool._backoff_delay(n), 3) for n in (1, 2, 3, 4)] == [1.0, 1.5, 2.25, 3.375]
    assert pool._backoff_delay(100) == 300.0
    jittery = RelayPool(config=PoolConfig(backoff_jitter=0.2))
    assert all(0.8 <= jittery._backoff_delay(1) <= 1.2 for _ in range(100))
