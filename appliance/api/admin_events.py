"""``GET /v1/events/stream``: the control-plane bus as Server-Sent Events on the admin socket.

Each bus event becomes ``event: <stream|viewers|log|chat|relay>`` + ``data: <json>``; a
``: heartbeat`` comment every 15 s lets clients notice a dead peer. A ``stream`` event carries
the full :class:`~appliance.api.schema.AdminStream`, so the TUI needs no follow-up request.
The subscription is bounded (see :mod:`appliance.bus`): a stuck client loses its own oldest
events, never the appliance's time. Streams end when the app shuts down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from appliance.api.admin import STATE, admin_stream
from appliance.bus import (
    ChatChanged,
    Event,
    LogRecorded,
    RelayChanged,
    StreamChanged,
    ViewersChanged,
)
from appliance.state import AppState
from appliance.streams import StreamNotFound

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
KINDS = (StreamChanged, ViewersChanged, LogRecorded, ChatChanged, RelayChanged)
_STOPPING: web.AppKey[asyncio.Event] = web.AppKey("events_stopping", asyncio.Event)


async def _frame(state: AppState, event: Event) -> tuple[str, dict[str, Any]] | None:
    if isinstance(event, StreamChanged):
        data: dict[str, Any] = {"stream_id": event.stream_id, "reason": event.reason,
                                "at": event.at}
        try:
            data["stream"] = admin_stream(state, await state.service.get(event.stream_id))
            data["stream"] = data["stream"].to_dict()
        except StreamNotFound:
            pass
        return "stream", data
    if isinstance(event, ViewersChanged):
        return "viewers", {"stream_id": event.stream_id, "current": event.current,
                           "peak": event.peak, "total": event.total, "at": event.at}
    if isinstance(event, LogRecorded):
        return "log", {"level": event.level, "kind": event.kind, "message": event.message,
                       "stream_id": event.stream_id, "at": event.at}
    if isinstance(event, ChatChanged):
        return "chat", {"stream_id": event.stream_id, "reason": event.reason,
                        "message": event.message, "at": event.at}
    if isinstance(event, RelayChanged):
        return "relay", {"relay": event.relay, "at": event.at}
    return None


def encode(kind: str, data: dict[str, Any]) -> bytes:
    """One SSE frame (JSON has no raw newlines, so one ``data:`` line suffices)."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def event_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    stopping = request.app[_STOPPING]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        async with state.bus.subscribe(*KINDS) as sub:
            await resp.write(b": hearth events\n\n")
            while not stopping.is_set():
                get = asyncio.ensure_future(sub.get())
                done, _ = await asyncio.wait({get, stop}, timeout=HEARTBEAT_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    if not stopping.is_set():
                        await resp.write(b": heartbeat\n\n")
                    continue
                frame = await _frame(state, get.result())
                if frame is not None:
                    await resp.write(encode(*frame))
    except (ConnectionResetError, ConnectionError) as exc:
        logger.debug("event stream client left: %s", exc)
    finally:
        stop.cancel()
    return resp


async def _on_shutdown(app: web.Application) -> None:
    app[_STOPPING].set()


def add_event_stream(app: web.Application) -> None:
    """Register ``GET /v1/events/stream`` and end open streams on shutdown."""
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/v1/events/stream", event_stream)
