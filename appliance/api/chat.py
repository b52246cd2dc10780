"""Public chat routes for viewer pages.

* ``GET /api/streams/{id}/chat?limit=N`` → JSON list, oldest first, moderated (hidden messages
  and muted authors left out). Each item: ``id``, ``pubkey``, ``created_at``, ``content``
  (display form: bidi/control characters stripped, ≤ 500 chars), ``kind``, ``display_name``,
  ``from_operator``, ``pinned``, ``zap_msats``, ``reply_to``.
* ``GET /api/streams/{id}/chat/ws`` WebSocket. Server → page: ``{"type": "hello", "address":
  "30311:…", "relays": [...]}``, ``{"type": "message", "message": {...}}``, ``{"type": "hide",
  "id"}``, ``{"type": "mute", "pubkey"}``, ``{"type": "pinned", "id"}``, ``{"type": "ok",
  "id"}``, ``{"type": "error", "error": text, "id"?}``. Page → server: ``{"type": "event",
  "event": <signed kind 1311>}`` (frames ≤ 8 KiB and ≤ 16 levels of nesting, checked before
parsing; per IP at most 10 messages / 3 s, per pubkey 2 / 3 s, counted only for events whose
id and signature verify, so forged events cannot silence their claimed author).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from appliance.api.access import GRANT_RECHECK_SECONDS, check_broadcast, has_grant, mark_private
from appliance.api.http import CORS, STATE
from appliance.api.schema import ChatChange, ChatMessage
from appliance.bus import (
    BroadcastChanged,
    ChannelChanged,
    ChatChanged,
    Event,
    GoalChanged,
    MuteChanged,
    ProfileChanged,
    ReactionAdded,
    Subscription,
)
from appliance.channels import BroadcastNotFound
from appliance.domain import ID_RE, Visibility
from appliance.nostr.chat import MAX_JSON_DEPTH, WS_FRAME_BYTES, json_nesting_exceeds
from appliance.nostr.service import ChatRejected, NostrService
from appliance.periodic import seconds_to_grid
from relay_client import nip19

logger = logging.getLogger(__name__)

_PUBLIC_FIELDS = ("id", "pubkey", "created_at", "content", "kind", "display_name",
                  "from_operator", "pinned", "zap_msats", "reply_to")
# aiohttp's own hard cap; frames between the two limits get a readable error instead of 1009.
_HARD_FRAME_LIMIT = 8 * WS_FRAME_BYTES


def public_message(msg: ChatMessage) -> dict[str, Any]:
    data = msg.to_dict()
    return {k: data.get(k) for k in _PUBLIC_FIELDS}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             headers={**CORS, "Cache-Control": "no-cache",
                                      "X-Content-Type-Options": "nosniff"})


async def _resolve(request: web.Request) -> tuple[NostrService, str] | web.Response:
    state = request.app[STATE]
    stream_id = request.match_info["stream_id"]
    if not ID_RE.fullmatch(stream_id):
        return _json({"error": "no such stream"}, 404)
    try:  # a broadcast id, or a channel id (its live or latest broadcast)
        stream_id = (await state.service.resolve_broadcast(stream_id)).id
    except BroadcastNotFound:
        return _json({"error": "no such stream"}, 404)
    # A private broadcast's chat needs a grant like its media (docs/threat-model.md §grants).
    check_broadcast(request, stream_id, json=True)
    if state.nostr is None:
        return _json({"error": "chat is starting"}, 503)
    return state.nostr, stream_id


async def chat_history(request: web.Request) -> web.Response:
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    nostr, stream_id = resolved
    try:
        limit = max(1, min(500, int(request.query.get("limit", "200"))))
    except ValueError:
        return _json({"error": "limit must be an integer"}, 400)
    messages = await nostr.list_chat(stream_id, limit, public=True)
    return _private(request, stream_id, _json([public_message(m) for m in messages]))


def _private(request: web.Request, stream_id: str, resp: web.Response) -> web.Response:
    private = request.app[STATE].service.visibility(stream_id) is Visibility.PRIVATE
    return mark_private(resp) if private else resp


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def chat_ws(request: web.Request) -> web.StreamResponse:
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    nostr, stream_id = resolved
    ws = web.WebSocketResponse(max_msg_size=_HARD_FRAME_LIMIT, heartbeat=30.0)
    await ws.prepare(request)
    ip = _client_ip(request)
    bus = request.app[STATE].bus
    async with bus.subscribe(ChatChanged, MuteChanged, ProfileChanged, ReactionAdded,
                             GoalChanged, BroadcastChanged, ChannelChanged, maxsize=500) as sub:
        forward = asyncio.get_running_loop().create_task(
            _forward(ws, sub, stream_id, lambda: _may_chat(request, stream_id)),
            name=f"chat-ws-{stream_id}")
        try:
            await ws.send_json({"type": "hello", "address": nostr.address(stream_id),
                                "relays": nostr.relays_for(stream_id)})
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    if frame.type is WSMsgType.BINARY:
                        await ws.send_json({"type": "error", "error": "send JSON text frames"})
                    continue
                await _handle_frame(ws, nostr, stream_id, ip, frame.data)
        finally:
            forward.cancel()
            await asyncio.wait({forward})  # never swallows this handler's own cancellation
    return ws


async def _handle_frame(ws: web.WebSocketResponse, nostr: NostrService, stream_id: str,
                        ip: str, data: str) -> None:
    if len(data.encode("utf-8", "surrogatepass")) > WS_FRAME_BYTES:
        nostr.rejected["frame-too-large"] += 1
        await ws.send_json({"type": "error",
                            "error": f"message too large (limit {WS_FRAME_BYTES} bytes)"})
        return
    # Bound the nesting before parsing: json.loads recurses per level (RecursionError).
    if json_nesting_exceeds(data, MAX_JSON_DEPTH):
        nostr.rejected["too-deep"] += 1
        await ws.send_json({"type": "error",
                            "error": f"JSON nested too deeply (limit {MAX_JSON_DEPTH} levels)"})
        return
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        nostr.rejected["malformed"] += 1
        await ws.send_json({"type": "error", "error": "frames must be JSON"})
        return
    if not isinstance(obj, dict) or obj.get("type") != "event":
        await ws.send_json({"type": "error", "error": 'expected {"type": "event", "event": …}'})
        return
    event = obj.get("event")
    event_id = event.get("id") if isinstance(event, dict) else None
    try:
        msg = await nostr.accept_browser_event(stream_id, event, ip)
    except ChatRejected as exc:
        await ws.send_json({"type": "error", "error": str(exc), "reason": exc.reason,
                            "id": event_id if isinstance(event_id, str) else None})
        return
    await ws.send_json({"type": "ok", "id": msg.id if msg is not None else event_id})


def _public_frame(ev: Event, stream_id: str) -> dict[str, Any] | None:
    """What a page watching ``stream_id`` is told about a chat change, if anything."""
    if isinstance(ev, MuteChanged):
        return {"type": "mute", "pubkey": ev.pubkey} if ev.muted else None
    if isinstance(ev, ProfileChanged):  # renames the author of messages already shown
        return {"type": "profile", "pubkey": ev.pubkey, "display_name": ev.display_name}
    if isinstance(ev, GoalChanged):
        return {"type": "goal"} if ev.stream_id == stream_id else None
    if isinstance(ev, ReactionAdded):
        if ev.stream_id != stream_id:
            return None
        return {"type": "reaction", "target": ev.target, "content": ev.content}
    if not isinstance(ev, ChatChanged) or ev.stream_id != stream_id:
        return None
    msg = ev.message
    if ev.reason in (ChatChange.NEW, ChatChange.UNHIDDEN):
        if msg.hidden or msg.muted:
            return None
        return {"type": "message", "message": public_message(msg)}
    if ev.reason is ChatChange.HIDDEN:
        return {"type": "hide", "id": msg.id}
    return {"type": "pinned", "id": msg.id}  # ChatChange.PINNED


def _may_chat(request: web.Request, stream_id: str) -> bool:
    """Re-checked on every channel or broadcast change: a broadcast that turned private (or
    whose grants were revoked) closes the sockets of viewers without a grant at once."""
    service = request.app[STATE].service
    if service.visibility(stream_id) is not Visibility.PRIVATE:
        return True
    channel_id = service.channel_of(stream_id)
    return channel_id is not None and has_grant(request, channel_id, stream_id)


PRIVATE_CLOSE = 4403
"""WebSocket close code (application range, RFC 6455 §7.4.2) when access was withdrawn."""


async def _forward(ws: web.WebSocketResponse, sub: Subscription, stream_id: str,
                   allowed: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    while not ws.closed:
        ev: Event | None = None
        # Also re-checked without an event: a grant may expire meanwhile. Subscription.get
        # is a Queue.get, so a timeout loses no event.
        with contextlib.suppress(TimeoutError):
            # On the grid: every viewer's re-check in one wake-up (appliance/periodic.py).
            async with asyncio.timeout(seconds_to_grid(GRANT_RECHECK_SECONDS, loop.time())):
                ev = await sub.get()
        if ev is None or isinstance(ev, BroadcastChanged | ChannelChanged):
            if not allowed():
                await ws.close(code=PRIVATE_CLOSE, message=b"private")
                return
            continue
        out = _public_frame(ev, stream_id)
        if out is not None:
            try:
                await ws.send_json(out)
            except (ConnectionError, RuntimeError):
                return


async def reactions(request: web.Request) -> web.Response:
    """``{target: {content: count}}`` for the page (target ``""`` = the live event)."""
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    nostr, stream_id = resolved
    return _private(request, stream_id, _json(await nostr.reaction_counts(stream_id)))


async def goal(request: web.Request) -> web.Response:
    """The stream's NIP-75 zap goal and progress, or ``null``."""
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    nostr, stream_id = resolved
    return _private(request, stream_id, _json(await nostr.goal(stream_id)))


async def nostr_link(request: web.Request) -> web.StreamResponse:
    """NIP-89 ``web`` handler target ``/nostr/<bech32>``: an ``naddr`` of one of our live
    events redirects to its watch page; anything else is 404 (never reflected)."""
    state = request.app[STATE]
    code = request.match_info["code"]
    if len(code) > 1000 or state.nostr is None:
        return _json({"error": "not found"}, 404)
    try:
        _, value = nip19.decode(code)
    except nip19.Nip19Error:
        return _json({"error": "not a NIP-19 naddr"}, 404)
    if not isinstance(value, nip19.NAddr) or not state.nostr.owns_activity(value.kind,
                                                                           value.author):
        return _json({"error": "not a live event of this Hearth"}, 404)
    try:
        await state.service.get_broadcast(value.identifier)  # d = broadcast id
    except BroadcastNotFound:
        return _json({"error": "no such broadcast"}, 404)
    raise web.HTTPFound(f"/watch/{quote(value.identifier, safe='')}")


def add_chat_routes(app: web.Application) -> None:
    app.router.add_get("/nostr/{code}", nostr_link)
    for prefix in ("/api/broadcasts", "/api/streams"):
        app.router.add_get(prefix + "/{stream_id}/reactions", reactions)
        app.router.add_get(prefix + "/{stream_id}/goal", goal)
        app.router.add_get(prefix + "/{stream_id}/chat", chat_history)
        app.router.add_get(prefix + "/{stream_id}/chat/ws", chat_ws)
