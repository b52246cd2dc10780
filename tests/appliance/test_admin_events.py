"""GET /v1/events/stream relays the control-plane bus as SSE frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from appliance.api import admin_events
from appliance.api.admin import build_admin_app
from appliance.bus import ChatChanged, LogRecorded
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import StreamFields
from appliance.state import AppState
from appliance.streams import StreamService
from tui.client import parse_sse


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, AppState]]:  # type: ignore[type-arg]
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = StreamService(config, store)
    await service.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus)
    async with TestClient(TestServer(build_admin_app(state))) as tc:
        yield tc, state
    await service.close()
    await store.close()


async def _read(resp: object, want: int) -> list[object]:
    events: list[object] = []
    buffer = ""
    async with asyncio.timeout(5):
        while len(events) < want:
            chunk = await resp.content.readany()  # type: ignore[attr-defined]
            got, buffer = parse_sse(buffer + chunk.decode())
            events += got
    return events


async def test_bus_events_arrive_as_sse(client: tuple[TestClient, AppState]) -> None:  # type: ignore[type-arg]
    """A stream event carries the full AdminStream; log and chat pass through."""
    tc, state = client
    async with tc.get("/v1/events/stream") as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await resp.content.readuntil(b"\n\n")  # the hello comment: we are subscribed
        stream, _ = await state.service.create(StreamFields("SSE test"))
        state.bus.publish(LogRecorded(level="warning", kind="auth", message="bad key",
                                      stream_id=None))
        state.bus.publish(ChatChanged(stream_id=stream.id, reason="new",
                                      message={"id": "ab", "content": "hi"}))
        events = await _read(resp, 4)  # create also logs a "created" entry
    by_kind = {}
    for e in events:
        by_kind.setdefault(e.kind, []).append(e.data)  # type: ignore[attr-defined]
    assert set(by_kind) == {"stream", "log", "chat"}
    assert by_kind["stream"][0]["stream"]["title"] == "SSE test"
    assert "bad key" in [d["message"] for d in by_kind["log"]]
    assert by_kind["chat"][0]["message"]["content"] == "hi"


async def test_heartbeat_when_idle(client: tuple[TestClient, AppState],  # type: ignore[type-arg]
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle stream sends a comment every HEARTBEAT_SECONDS."""
    monkeypatch.setattr(admin_events, "HEARTBEAT_SECONDS", 0.05)
    tc, _ = client
    async with tc.get("/v1/events/stream") as resp:
        await resp.content.readuntil(b"\n\n")
        async with asyncio.timeout(5):
            assert await resp.content.readuntil(b"\n\n") == b": heartbeat\n\n"


def test_parse_sse_handles_split_frames_and_junk() -> None:
    data = ('event: log\ndata: {"a": 1}\n\n: heartbeat\n\n'
            "event: chat\ndata: not json\n\nevent: x\nda")
    events, rest = parse_sse(data)
    assert [(e.kind, e.data) for e in events] == [("log", {"a": 1}), ("chat", {})]
    assert rest == "event: x\nda"
