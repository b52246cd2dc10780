"""GET /v1/events/stream relays the control-plane bus as SSE frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from appliance.api import admin_events
from appliance.api.admin_app import build_admin_app
from appliance.api.schema import (
    AdminEvent,
    ChannelChange,
    ChannelEvent,
    ChatChange,
    ChatEvent,
    ChatMessage,
    LogEvent,
    MuteEvent,
    RelayEvent,
    RelayInfo,
    SseParser,
    StreamChange,
    StreamEvent,
    decode_event,
)
from appliance.bus import ChatChanged, MuteChanged, RelayChanged
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import ChannelFields
from appliance.state import AppState


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, AppState]]:  # type: ignore[type-arg]
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus)
    async with TestClient(TestServer(build_admin_app(state))) as tc:
        yield tc, state
    await service.close()
    await store.close()


async def _read(resp: object, want: int) -> list[AdminEvent]:
    """Decode like the TUI does; malformed or unknown frames would be missing here."""
    events: list[AdminEvent] = []
    parser = SseParser()
    async with asyncio.timeout(5):
        while len(events) < want:
            chunk = await resp.content.readany()  # type: ignore[attr-defined]
            events += [e for f in parser.feed(chunk) if (e := decode_event(f)) is not None]
    return events


async def test_bus_events_arrive_as_typed_sse(client: tuple[TestClient, AppState]) -> None:  # type: ignore[type-arg]
    """A channel event carries the full AdminChannel (followed by the pre-channels stream
    event with its AdminStream); log entries carry their stored row id; chat, mute and relay
    changes pass through typed."""
    tc, state = client
    async with tc.get("/v1/events/stream") as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await resp.content.readuntil(b"\n\n")  # the hello comment: we are subscribed
        stream, _ = await state.service.create_channel(ChannelFields("SSE test"))
        msg = ChatMessage("ab" * 32, stream.id, "cd" * 32, 5, "hi")
        state.bus.publish(ChatChanged(stream_id=stream.id, reason=ChatChange.NEW, message=msg))
        state.bus.publish(MuteChanged(pubkey="cd" * 32, muted=True))
        state.bus.publish(RelayChanged(relay=RelayInfo("ws://r", "connected")))
        state.service.log("warning", "auth", "bad key")
        events = await _read(resp, 7)  # create also logs a "created" entry
    by_type: dict[type, list[AdminEvent]] = {}
    for e in events:
        by_type.setdefault(type(e), []).append(e)
    assert set(by_type) == {ChannelEvent, StreamEvent, LogEvent, ChatEvent, MuteEvent,
                            RelayEvent}
    (channel,) = by_type[ChannelEvent]
    assert isinstance(channel, ChannelEvent) and channel.reason is ChannelChange.CREATED
    assert channel.channel is not None and channel.channel.title == "SSE test"
    (created,) = by_type[StreamEvent]
    assert isinstance(created, StreamEvent) and created.reason is StreamChange.CREATED
    assert created.stream is not None and created.stream.title == "SSE test"
    logs = [e for e in by_type[LogEvent] if isinstance(e, LogEvent)]
    assert "bad key" in [e.message for e in logs]
    stored = await state.store.read(lambda db: q.list_events(db, 10))
    assert sorted(e.id for e in logs) == sorted(row["id"] for row in stored)
    assert all(e.id > 0 for e in logs)
    assert by_type[ChatEvent] == [ChatEvent(stream.id, ChatChange.NEW, msg,
                                            at=by_type[ChatEvent][0].at)]
    (mute,) = by_type[MuteEvent]
    assert isinstance(mute, MuteEvent) and mute.muted and mute.pubkey == "cd" * 32


async def test_heartbeat_when_idle(client: tuple[TestClient, AppState],  # type: ignore[type-arg]
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle stream sends a comment every HEARTBEAT_SECONDS."""
    monkeypatch.setattr(admin_events, "HEARTBEAT_SECONDS", 0.05)
    tc, _ = client
    async with tc.get("/v1/events/stream") as resp:
        await resp.content.readuntil(b"\n\n")
        async with asyncio.timeout(5):
            assert await resp.content.readuntil(b"\n\n") == b": heartbeat\n\n"
