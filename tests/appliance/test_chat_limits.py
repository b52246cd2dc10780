"""Chat rate limits through the real intake path, on an injected clock (no sleeping).

The public WebSocket test (tests/integration/test_nostr_chat_local.py) shows the wiring with
one flood; the limits themselves, which need time to pass, are checked here: a NostrService
with zero relays, a real Store, and a clock the test moves (docs/threat-model.md §chat).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appliance.bus import Bus
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ChannelFields
from appliance.nostr.errors import ChatRejected
from appliance.nostr.service import NostrService
from relay_client import PrivateKeySigner, UnsignedEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[NostrService, str, Clock]]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    bus = Bus()
    streams = ChannelService(config, store, bus)
    await streams.start()
    clock = Clock()
    nostr = NostrService(config, store, streams, bus, clock=clock)
    await nostr.start()
    # first_broadcast: a planned broadcast with the channel's id, open for chat
    stream, _ = await streams.create_channel(ChannelFields("Limits"), first_broadcast=True)
    try:
        yield nostr, stream.id, clock
    finally:
        await nostr.close()
        await streams.close()
        await store.close()


def _event(signer: PrivateKeySigner, address: str, content: str,
           age: int = 0) -> dict[str, Any]:
    unsigned = UnsignedEvent(kind=1311, content=content, tags=(("a", address, ""),),
                             created_at=int(time.time()) - age)
    return signer.sign_event(unsigned).to_dict()


async def _send(nostr: NostrService, sid: str, event: dict[str, Any],
                ip: str = "192.0.2.1") -> str:
    try:
        await nostr.accept_browser_event(sid, event, ip)
    except ChatRejected as exc:
        return exc.reason
    return "ok"


async def test_per_author_bucket_then_timeout(chat: tuple[NostrService, str, Clock]) -> None:
    """2 messages / 3 s per author; running dry blocks the author for 10 s, others go on."""
    nostr, sid, clock = chat
    address, spammer = nostr.address(sid), PrivateKeySigner.generate()
    got = [await _send(nostr, sid, _event(spammer, address, f"spam {i}")) for i in range(3)]
    assert got == ["ok", "ok", "rate-limited"]
    assert await _send(nostr, sid, _event(PrivateKeySigner.generate(), address, "hi")) == "ok"
    clock.now += 9.0  # inside the 10 s timeout
    assert await _send(nostr, sid, _event(spammer, address, "again")) == "rate-limited"
    clock.now += 1.5  # the timeout is over; the bucket refilled meanwhile
    assert await _send(nostr, sid, _event(spammer, address, "back")) == "ok"


async def test_same_text_twice_is_refused_within_the_window(
        chat: tuple[NostrService, str, Clock]) -> None:
    nostr, sid, clock = chat
    address, author = nostr.address(sid), PrivateKeySigner.generate()
    assert await _send(nostr, sid, _event(author, address, "a good message")) == "ok"
    clock.now += 3.5  # the author's bucket has a token again: only the text is repeated
    assert await _send(nostr, sid, _event(author, address, "A  good message")) == "duplicate-text"
    clock.now += 10.0  # a new event (another created_at) with the same text is fine now
    assert await _send(nostr, sid, _event(author, address, "a good message", age=1)) == "ok"


async def test_one_address_cycling_fresh_keys_hits_the_address_bucket(
        chat: tuple[NostrService, str, Clock]) -> None:
    """10 messages / 3 s per address, whatever the keys; another address is not affected."""
    nostr, sid, clock = chat
    address = nostr.address(sid)
    got = [await _send(nostr, sid, _event(PrivateKeySigner.generate(), address, f"key {i}"))
           for i in range(12)]
    assert got.count("ok") == 10 and got[-1] == "rate-limited"
    other = _event(PrivateKeySigner.generate(), address, "from elsewhere")
    assert await _send(nostr, sid, other, ip="198.51.100.7") == "ok"
    clock.now += 10.5
    assert await _send(nostr, sid, _event(PrivateKeySigner.generate(), address, "later")) == "ok"
    assert len(await nostr.list_chat(sid)) == 12
