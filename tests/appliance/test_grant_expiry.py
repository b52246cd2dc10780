"""Open WHEP sessions and chat sockets do not outlive their grant (issue 14 §1,
docs/threat-model.md §grants): they are re-checked every ``GRANT_RECHECK_SECONDS`` even
without any event, so a grant that expires while its holder watches ends them; a longer grant
keeps watching.

tests/integration/test_visibility.py covers the event-driven closes (visibility change,
``hearth grant revoke-all``) with real aiortc peers and a real chat socket; a grant lasts at
least 60 s, too long to wait for there, so these run the real re-check loops and access
service on an injected clock, with stand-ins only for the WebRTC manager (its ``peers`` and
``delete``) and the WebSocket (``closed``, ``close``, ``send_json``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from appliance.access import AccessService
from appliance.api import chat, whep
from appliance.api.access import grant_in
from appliance.api.http import STATE
from appliance.bus import BroadcastChanged, ChannelChanged
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ChannelFields, Visibility
from tests.appliance.test_channels import FakeClock, FakeLink

TICK = 0.02


@dataclass
class Live:
    service: ChannelService
    access: AccessService
    clock: FakeClock
    channel_id: str
    broadcast_id: str


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    """A private channel, live (a stand-in RTMP link), with re-checks every ``TICK``."""
    monkeypatch.setattr(whep, "GRANT_RECHECK_SECONDS", TICK)
    monkeypatch.setattr(chat, "GRANT_RECHECK_SECONDS", TICK)
    clock = FakeClock()
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store, clock=clock)
    await service.start()
    access = AccessService(store, clock=clock.time)
    await access.start()
    try:
        channel, _ = await service.create_channel(
            ChannelFields("members", visibility=Visibility.PRIVATE))
        bid = service.attach(channel.id, FakeLink(1)).broadcast_id
        yield Live(service, access, clock, channel.id, bid)
    finally:
        await service.close()
        await store.close()


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _ticks(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(TICK)


@dataclass
class Peers:
    """What :func:`appliance.api.whep.close_unauthorised` uses of the WebRTC manager."""

    peers: dict[str, SimpleNamespace] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    async def delete(self, stream_id: str, token: str) -> bool:
        assert self.peers[token].stream_id == stream_id
        del self.peers[token]
        self.deleted.append(token)
        return True


async def test_a_whep_peer_is_closed_when_its_grant_expires(live: Live) -> None:
    short, _ = live.access.mint(live.channel_id, live.broadcast_id, 60)
    long, _ = live.access.mint(live.channel_id, None, 3600)
    manager = Peers({t: SimpleNamespace(stream_id=live.broadcast_id, token=t)
                     for t in ("short-grant-peer", "cookie-grant-peer", "no-grant-peer")})
    app = web.Application()
    app[STATE] = SimpleNamespace(service=live.service, access=live.access,  # type: ignore[assignment]
                                 webrtc=manager, bus=live.service.bus)
    whep.add_whep_routes(app)
    app[whep.GRANTED].update({
        "short-grant-peer": (None, f"Bearer {short}"),
        "cookie-grant-peer": (f"theme=dark; hearth_grant_{live.channel_id}={long}", None),
        "no-grant-peer": (None, None)})
    async with TestServer(app):
        # No event at all: the periodic re-check alone closes the peer without a grant.
        await _until(lambda: manager.deleted == ["no-grant-peer"])
        await _ticks()  # many re-checks later, both grants still hold
        assert manager.deleted == ["no-grant-peer"]
        live.clock.now += 61
        await _until(lambda: manager.deleted == ["no-grant-peer", "short-grant-peer"])
        assert list(manager.peers) == ["cookie-grant-peer"]
        assert list(app[whep.GRANTED]) == ["cookie-grant-peer"]
        live.clock.now += 3600
        await _until(lambda: not manager.peers)


@dataclass
class Socket:
    closed: bool = False
    code: int | None = None
    sent: list[Any] = field(default_factory=list)

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed, self.code = True, code

    async def send_json(self, data: Any) -> None:
        self.sent.append(data)


async def test_a_chat_socket_is_closed_when_its_grant_expires(live: Live) -> None:
    token, _ = live.access.mint(live.channel_id, live.broadcast_id, 60)
    ws = Socket()
    async with live.service.bus.subscribe(BroadcastChanged, ChannelChanged) as sub:
        forward = asyncio.get_running_loop().create_task(chat._forward(
            ws, sub, live.broadcast_id,  # type: ignore[arg-type]
            lambda: grant_in(live.access, {}, f"Bearer {token}", live.channel_id,
                             live.broadcast_id)))
        await _ticks()
        assert not ws.closed
        live.clock.now += 61  # no event announces an expiry
        await _until(lambda: ws.closed)
        assert ws.code == chat.PRIVATE_CLOSE
        await asyncio.wait_for(forward, 5)
