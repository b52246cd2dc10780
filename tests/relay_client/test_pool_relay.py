"""RelayPool against a real ``nostr-relay`` process on loopback."""

from __future__ import annotations

import asyncio
import time

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.live import activity_address, build_chat_message, build_live_event
from relay_client.messages import Filter
from relay_client.pool import PoolConfig, RelayPool, RelayPublishResult, RelayState, RelayStatus
from relay_client.signing import PrivateKeySigner
from tests.relay_client.conftest import RelayProcess, eventually

FAST = PoolConfig(
    backoff_initial=0.05, backoff_factor=1.5, backoff_max=0.5, open_timeout=3, publish_timeout=10
)


def _note(signer: PrivateKeySigner, content: str = "hi") -> NostrEvent:
    return signer.sign_event(
        UnsignedEvent(kind=1, content=content, tags=(), created_at=int(time.time())))


async def test_publish_ok_true(nostr_relay: RelayProcess, alice: PrivateKeySigner) -> None:
    statuses: list[RelayStatus] = []
    results: list[RelayPublishResult] = []
    async with RelayPool(
        [nostr_relay.url],
        config=FAST,
        on_status_change=statuses.append,
        on_publish_result=results.append,
    ) as pool:
        ev = _note(alice)
        result = await pool.publish(ev, timeout=10)
        assert result.accepted, result
        assert result.accepted_by == (nostr_relay.url,)
        assert results == [RelayPublishResult(nostr_relay.url, ev.id, True, "")]
        status = pool.status(nostr_relay.url)
        assert status.state is RelayState.CONNECTED
        assert status.published == 1 and status.last_ok_at is not None
        # Publishing the same event again: NIP-01 "duplicate:" still OK true.
        again = await pool.publish(ev, timeout=10)
        assert again.accepted and again.results[0].message.startswith("duplicate")
    assert any(s.state is RelayState.CONNECTING for s in statuses)
    assert statuses[-1].state is RelayState.CLOSED


async def test_live_event_round_trip(nostr_relay: RelayProcess, alice: PrivateKeySigner) -> None:
    """Publish a 30311, fetch it back with a REQ, and verify it."""
    live = alice.sign_event(build_live_event(
        d="stream-1",
        title="Test stream",
        status="live",
        streaming=["https://hearth.local/hls/live.m3u8"],
        host_pubkey=alice.public_key,
        created_at=int(time.time()),
    ))
    async with RelayPool([nostr_relay.url], config=FAST) as pool:
        assert (await pool.publish(live, timeout=10)).accepted
        got: list[NostrEvent] = []
        eose = asyncio.Event()
        flt: Filter = {"kinds": [30311], "authors": [alice.public_key], "#d": ["stream-1"]}
        pool.subscribe(
            "live", [flt], lambda ev, url: got.append(ev), on_eose=lambda url: eose.set()
        )
        async with asyncio.timeout(10):
            await eose.wait()
    assert got == [live]
    assert got[0].verify()


async def test_chat_subscription_receives_other_clients_event(
    nostr_relay: RelayProcess, alice: PrivateKeySigner, bob: PrivateKeySigner
) -> None:
    addr = activity_address(alice.public_key, "stream-1")
    received: list[NostrEvent] = []
    async with (
        RelayPool([nostr_relay.url], config=FAST) as viewer,
        RelayPool([nostr_relay.url], config=FAST) as other,
    ):
        eose = asyncio.Event()
        viewer.subscribe(
            "chat",
            [{"kinds": [1311], "#a": [addr], "limit": 200}],
            lambda ev, url: received.append(ev),
            on_eose=lambda url: eose.set(),
        )
        async with asyncio.timeout(10):
            await eose.wait()
        msg = bob.sign_event(
            build_chat_message(addr, "hello from bob", created_at=int(time.time())))
        noise = bob.sign_event(build_chat_message(
            activity_address(alice.public_key, "other"), "elsewhere", created_at=int(time.time())
        ))
        assert (await other.publish(noise, timeout=10)).accepted
        assert (await other.publish(msg, timeout=10)).accepted
        await eventually(lambda: len(received) >= 1, timeout=10)
        await asyncio.sleep(0.2)
    assert received == [msg]
    assert viewer.rejected_events == {}


async def test_publish_waits_for_relay_restart(
    nostr_relay: RelayProcess, alice: PrivateKeySigner
) -> None:
    """Relay killed: the event waits; the pool reconnects to the restarted relay."""
    async with RelayPool([nostr_relay.url], config=FAST) as pool:
        await pool.wait_connected(timeout=10)
        nostr_relay.kill()
        await eventually(
            lambda: pool.status(nostr_relay.url).state is not RelayState.CONNECTED, timeout=10
        )
        ev = _note(alice, "queued while down")
        task = asyncio.create_task(pool.publish(ev, timeout=30))
        await asyncio.sleep(0.5)
        assert not task.done()
        status = pool.status(nostr_relay.url)
        assert status.pending == 1 and status.last_error
        assert status.failures >= 1
        await asyncio.to_thread(nostr_relay.start)  # same port, same db file
        result = await task
        assert result.accepted, result

        got: list[NostrEvent] = []
        eose = asyncio.Event()
        pool.subscribe(
            "check", [{"ids": [ev.id]}], lambda e, u: got.append(e), on_eose=lambda u: eose.set()
        )
        async with asyncio.timeout(10):
            await eose.wait()
        assert got == [ev]


async def test_unreachable_relay_times_out_and_nothing_blocks(alice: PrivateKeySigner) -> None:
    from tests.relay_client.conftest import free_port

    url = f"ws://127.0.0.1:{free_port()}"
    async with RelayPool([url], config=FAST) as pool:
        result = await pool.publish(_note(alice), timeout=0.3)
        assert not result.accepted
        assert result.results[0].message == "timeout: no OK within 0.3s"
        status = pool.status(url)
        assert status.state in (RelayState.FAILED, RelayState.CONNECTING)
        assert status.pending == 0 and status.rejected == 1
        assert status.last_error


async def test_zero_relays(alice: PrivateKeySigner) -> None:
    async with RelayPool(config=FAST) as pool:
        result = await pool.publish(_note(alice))
        assert result.results == () and not result.accepted
        assert pool.statuses() == ()
