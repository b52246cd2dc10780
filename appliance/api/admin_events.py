"""``GET /v1/events/stream``: the control-plane bus as Server-Sent Events on the admin socket.

Each bus event becomes one typed :data:`~appliance.api.schema.AdminEvent`, framed by
:func:`~appliance.api.schema.encode_event` (``event: <kind>`` + ``data: <json>``); a
``: heartbeat`` comment every 15 s lets clients notice a dead peer. A ``stream`` event carries
the full :class:`~appliance.api.schema.AdminStream`, so the TUI needs no follow-up request.
To relay a new bus event, map it in :func:`admin_event` (see the schema module's docstring).
The subscription is bounded (see :mod:`appliance.bus`): a stuck client loses its own oldest
events, never the appliance's time. Streams end when the app shuts down.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from appliance.api.admin import admin_stream
from appliance.api.admin_common import STATE
from appliance.api.schema import (
    AdminEvent,
    AdminStream,
    ChatEvent,
    LogEvent,
    MuteEvent,
    RelayEvent,
    StreamEvent,
    ViewersEvent,
    encode_event,
)
from appliance.bus import (
    ChatChanged,
    Event,
    LogRecorded,
    MuteChanged,
    RelayChanged,
    StreamChanged,
    ViewersChanged,
)
from appliance.state import AppState
from appliance.streams import StreamNotFound

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
KINDS = (StreamChanged, ViewersChanged, LogRecorded, ChatChanged, MuteChanged, RelayChanged)
_STOPPING: web.AppKey[asyncio.Event] = web.AppKey("events_stopping", asyncio.Event)


async def admin_event(state: AppState, event: Event) -> AdminEvent | None:
    """The admin API event for a bus event (``None`` for bus events the API does not relay)."""
    if isinstance(event, StreamChanged):
        try:
            stream: AdminStream | None = admin_stream(
                state, await state.service.get(event.stream_id))
        except StreamNotFound:
            stream = None
        return StreamEvent(stream_id=event.stream_id, reason=event.reason, at=event.at,
                           stream=stream)
    if isinstance(event, ViewersChanged):
        return ViewersEvent(stream_id=event.stream_id, current=event.current, peak=event.peak,
                            total=event.total, at=event.at)
    if isinstance(event, LogRecorded):
        return LogEvent(id=event.id, at=event.at, level=event.level, kind=event.kind,
                        stream_id=event.stream_id, message=event.message)
    if isinstance(event, ChatChanged):
        return ChatEvent(stream_id=event.stream_id, reason=event.reason, message=event.message,
                         at=event.at)
    if isinstance(event, MuteChanged):
        return MuteEvent(pubkey=event.pubkey, muted=event.muted, at=event.at)
    if isinstance(event, RelayChanged):
        return RelayEvent(relay=event.relay, at=event.at)
    return None


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
                admin = await admin_event(state, get.result())
                if admin is not None:
                    await resp.write(encode_event(admin))
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
