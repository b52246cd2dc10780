"""``GET /v1/events/stream``: the control-plane bus as Server-Sent Events on the admin socket.

Each bus event becomes one typed :data:`~appliance.api.schema.AdminEvent`, framed by
:func:`~appliance.api.schema.encode_event` (``event: <kind>`` + ``data: <json>``); a
``: heartbeat`` comment every 15 s lets clients notice a dead peer. ``channel`` and
``broadcast`` events carry the full :class:`~appliance.api.schema.AdminChannel` /
:class:`~appliance.api.schema.AdminBroadcast`, so the TUI needs no follow-up request; each is
followed by the pre-channels ``stream`` event (the channel as an ``AdminStream``).
To relay a new bus event, map it in :func:`admin_event` (see the schema module's docstring).
The subscription is bounded (see :mod:`appliance.bus`): a stuck client loses its own oldest
events, never the appliance's time. Streams end when the app shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from appliance.api.admin_common import STATE
from appliance.api.schema import (
    AdminEvent,
    BroadcastChange,
    BroadcastEvent,
    ChannelChange,
    ChannelEvent,
    ChatEvent,
    LogEvent,
    MuteEvent,
    RelayEvent,
    StreamChange,
    StreamEvent,
    ViewersEvent,
    encode_event,
)
from appliance.api.views import admin_broadcast, admin_channel, admin_stream
from appliance.bus import (
    BroadcastChanged,
    ChannelChanged,
    ChatChanged,
    Event,
    LogRecorded,
    MuteChanged,
    RelayChanged,
    ViewersChanged,
)
from appliance.db import queries as q
from appliance.state import AppState

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
KINDS = (ChannelChanged, BroadcastChanged, ViewersChanged, LogRecorded, ChatChanged,
         MuteChanged, RelayChanged)
_STOPPING: web.AppKey[asyncio.Event] = web.AppKey("events_stopping", asyncio.Event)


async def _channel_events(state: AppState, channel_id: str, reason: ChannelChange,
                          at: float) -> list[AdminEvent]:
    """The channel's new state, and the pre-channels ``stream`` event for older dashboards."""
    def read(db: Any) -> tuple[Any, Any, Any, Any]:
        return (q.get_channel(db, channel_id), q.active_broadcasts(db, channel_id),
                q.latest_broadcast(db, channel_id), q.next_planned(db, channel_id))

    channel, active, latest, planned = await state.store.read(read)
    view = admin_channel(state, channel, active) if channel is not None else None
    legacy = (admin_stream(state, channel, latest, planned.get(channel_id))
              if channel is not None else None)
    return [ChannelEvent(channel_id=channel_id, reason=reason, at=at, channel=view),
            StreamEvent(stream_id=channel_id, reason=_LEGACY[reason], at=at, stream=legacy)]


_LEGACY: dict[str, StreamChange] = {
    "created": StreamChange.CREATED, "updated": StreamChange.UPDATED,
    "key_rotated": StreamChange.KEY_ROTATED, "deleted": StreamChange.DELETED,
    "planned": StreamChange.UPDATED, "started": StreamChange.LIVE,
    "publisher_lost": StreamChange.PUBLISHER_LOST, "reconnected": StreamChange.PUBLISHER_BACK,
    "ended": StreamChange.ENDED,
}


async def admin_events(state: AppState, event: Event) -> list[AdminEvent]:
    """The admin API events for a bus event (none for bus events the API does not relay)."""
    if isinstance(event, ChannelChanged):
        return await _channel_events(state, event.channel_id, event.reason, event.at)
    if isinstance(event, BroadcastChanged):
        b = await state.store.read(lambda db: q.get_broadcast(db, event.broadcast_id))
        out: list[AdminEvent] = [BroadcastEvent(
            broadcast_id=event.broadcast_id, channel_id=event.channel_id, reason=event.reason,
            at=event.at, broadcast=admin_broadcast(state, b) if b is not None else None)]
        if event.reason is not BroadcastChange.DELETED:
            for e in await _channel_events(state, event.channel_id, ChannelChange.UPDATED,
                                           event.at):
                out.append(e if not isinstance(e, StreamEvent) else StreamEvent(
                    stream_id=e.stream_id, reason=_LEGACY[event.reason], at=e.at,
                    stream=e.stream))
        return out
    one = admin_event(event)
    return [one] if one is not None else []


def admin_event(event: Event) -> AdminEvent | None:
    """The admin API event for a bus event that maps one to one (``None`` otherwise)."""
    if isinstance(event, ViewersChanged):
        return ViewersEvent(stream_id=event.channel_id, current=event.current, peak=event.peak,
                            total=event.total, at=event.at, broadcast_id=event.broadcast_id)
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
                for admin in await admin_events(state, get.result()):
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
