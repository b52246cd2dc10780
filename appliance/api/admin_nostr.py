"""Admin API routes for chat, moderation and relays (Unix socket only).

Contract (bodies and answers are JSON; errors ``{"error": message, "field"?: name}``):

* ``GET  /v1/streams/{id}/chat?limit=N`` → ``[ChatMessage]`` oldest first, hidden and muted
  ones included and flagged.
* ``POST /v1/streams/{id}/chat`` ``{"content": str, "reply_to"?: event_id}`` → ``ChatMessage``
  (201), signed as the operator (imported key) or the service, committed, then published.
* ``POST /v1/streams/{id}/chat/{event_id}/hide`` | ``/unhide`` → ``ChatMessage``.
* ``POST /v1/streams/{id}/chat/{event_id}/pin`` → ``ChatMessage`` (30311 ``pinned`` tag set and
  the live event republished).
* ``POST /v1/mutes`` ``{"pubkey": hex | npub}`` → ``{"pubkey": hex, "mutes": [hex…]}``;
  ``DELETE /v1/mutes/{pubkey}`` → same; ``GET /v1/mutes`` → ``{"mutes": [hex…]}``.
* ``GET  /v1/relays`` → ``[RelayInfo]``.
* ``GET  /v1/nostr`` → identities (``service_pubkey``, ``service_npub``, ``activity_pubkey``,
  ``operator_pubkey``, ``signing_as``: ``service`` | ``operator`` | ``remote``), ``signer``
  (the NIP-46 remote signer: ``state`` none | pairing | connected | unreachable,
  ``last_error``, ``waiting`` {stream id: reason}, ``nostrconnect_uri`` while pairing) and
  rejection counters.
* ``GET  /v1/streams/{id}/nostr`` → ``{"address": "30311:…", "naddr": "naddr1…",
  "uri": "nostr:naddr1…"}`` (NIP-19/NIP-21, for links to the live event).
* ``GET  /v1/streams/{id}/goal`` → ``{event_id, title, amount_msats, progress_msats}`` or
  ``null``; ``POST`` ``{"amount_sats": int, "title": str}`` → the new goal (201): a NIP-75
  kind 9041 signed as the operator, linked from the stream's 30311.
* ``POST /v1/nostr/signer`` ``{"bunker": "bunker://…"}`` → pair now (200 with ``signer``, 400
  with the reason); ``{"nostrconnect": true}`` → ``{"uri": "nostrconnect://…"}`` to show, the
  pairing completes when the signer answers; ``DELETE /v1/nostr/signer`` → unpair.
* Operator chat while the remote signer cannot sign → 503 with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from appliance.api.admin_common import (
    STATE,
    broadcast_id_param,
    error_response,
    json_body,
    route_param,
)
from appliance.nostr.service import (
    ChatRejected,
    NostrNotFound,
    NostrService,
    PairingError,
    SignerUnavailableError,
)
from relay_client.nip19 import encode_npub

_EVENT_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def _nostr(request: web.Request) -> NostrService:
    nostr = request.app[STATE].nostr
    if nostr is None:
        raise web.HTTPServiceUnavailable(text='{"error": "nostr is starting"}',
                                         content_type="application/json")
    return nostr


async def _broadcast_of(request: web.Request) -> str:
    """The broadcast a chat route names: ``/v1/broadcasts/{id}/…`` or, through the
    pre-channels alias ``/v1/streams/{id}/…``, a channel id (its live or latest broadcast)."""
    ident = broadcast_id_param(request, "stream_id")
    return (await request.app[STATE].service.resolve_broadcast(ident)).id


def _event_id(request: web.Request) -> str:
    return route_param(request, "event_id", _EVENT_ID_RE, NostrNotFound)


@web.middleware
async def nostr_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except ChatRejected as exc:
        return error_response(400, str(exc), "content")
    except NostrNotFound as exc:
        return error_response(404, f"no chat message {exc.args[0]!r} in this broadcast")
    except SignerUnavailableError as exc:
        return error_response(503, str(exc))
    except PairingError as exc:
        return error_response(400, str(exc), "bunker")


async def list_chat(request: web.Request) -> web.Response:
    stream_id = await _broadcast_of(request)
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "200"))))
    except ValueError:
        return error_response(400, "limit must be an integer", "limit")
    nostr = _nostr(request)
    messages = await nostr.list_chat(stream_id, limit)
    return web.json_response([m.to_dict() for m in messages])


async def send_chat(request: web.Request) -> web.Response:
    stream_id = await _broadcast_of(request)
    data = await json_body(request)
    content = data.get("content")
    if not isinstance(content, str):
        return error_response(400, "content must be a string", "content")
    reply_to = data.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, str)
                                 or not _EVENT_ID_RE.fullmatch(reply_to)):
        return error_response(400, "reply_to must be a 64-character lowercase hex event id",
                              "reply_to")
    msg = await _nostr(request).send_operator_chat(stream_id, content, reply_to)
    return web.json_response(msg.to_dict(), status=201)


async def hide(request: web.Request) -> web.Response:
    msg = await _nostr(request).set_hidden(await _broadcast_of(request), _event_id(request), True)
    return web.json_response(msg.to_dict())


async def unhide(request: web.Request) -> web.Response:
    msg = await _nostr(request).set_hidden(await _broadcast_of(request), _event_id(request), False)
    return web.json_response(msg.to_dict())


async def pin(request: web.Request) -> web.Response:
    msg = await _nostr(request).pin(await _broadcast_of(request), _event_id(request))
    return web.json_response(msg.to_dict())


async def add_mute(request: web.Request) -> web.Response:
    data = await json_body(request)
    pubkey = data.get("pubkey")
    if not isinstance(pubkey, str):
        return error_response(400, "pubkey must be a string (hex or npub)", "pubkey")
    nostr = _nostr(request)
    try:
        hex_key = await nostr.mute(pubkey)
    except ValueError as exc:
        return error_response(400, str(exc), "pubkey")
    return web.json_response({"pubkey": hex_key, "mutes": nostr.mutes()})


async def remove_mute(request: web.Request) -> web.Response:
    nostr = _nostr(request)
    try:
        hex_key = await nostr.unmute(request.match_info["pubkey"])
    except ValueError as exc:
        return error_response(400, str(exc), "pubkey")
    return web.json_response({"pubkey": hex_key, "mutes": nostr.mutes()})


async def list_mutes(request: web.Request) -> web.Response:
    return web.json_response({"mutes": _nostr(request).mutes()})


async def list_relays(request: web.Request) -> web.Response:
    return web.json_response([r.to_dict() for r in _nostr(request).relay_infos()])


async def nostr_info(request: web.Request) -> web.Response:
    nostr = _nostr(request)
    return web.json_response({
        "service_pubkey": nostr.service_pubkey,
        "service_npub": encode_npub(nostr.service_pubkey),
        "activity_pubkey": nostr.activity_pubkey,
        "operator_pubkey": nostr.operator_pubkey,
        "signing_as": nostr.signing_as,
        "relays": list(nostr.relays),
        "signer": nostr.signer_info(),
        **nostr.counters(),
    })


async def stream_nostr(request: web.Request) -> web.Response:
    """``GET /v1/broadcasts/{id}/nostr`` (alias ``/v1/streams/{id}/nostr``, where a channel id
    means its live or latest broadcast) → the broadcast's NIP-53 coordinate and ``naddr``."""
    stream_id = await _broadcast_of(request)  # BroadcastNotFound → 404
    nostr = _nostr(request)
    naddr = nostr.naddr(stream_id)
    return web.json_response({"address": nostr.address(stream_id), "naddr": naddr,
                              "uri": f"nostr:{naddr}"})


async def get_goal(request: web.Request) -> web.Response:
    stream_id = await _broadcast_of(request)  # BroadcastNotFound → 404
    return web.json_response(await _nostr(request).goal(stream_id))


async def set_goal(request: web.Request) -> web.Response:
    stream_id = await _broadcast_of(request)
    data = await json_body(request)
    amount, title = data.get("amount_sats"), data.get("title")
    if not isinstance(amount, int) or isinstance(amount, bool):
        return error_response(400, "amount_sats must be an integer", "amount_sats")
    if not isinstance(title, str):
        return error_response(400, "title must be a string", "title")
    try:
        goal = await _nostr(request).set_goal(stream_id, amount, title)
    except ValueError as exc:
        # Name the field the message is about (a form shows it there); "needs a relay" is
        # about the appliance's configuration, not a field.
        message = str(exc)
        field = next((f for f in ("amount_sats", "title") if message.startswith(f)), None)
        return error_response(400, message, field)
    return web.json_response(goal, status=201)


async def pair_signer(request: web.Request) -> web.Response:
    data = await json_body(request)
    nostr = _nostr(request)
    if data.get("nostrconnect") is True:
        return web.json_response({"uri": await nostr.start_nostrconnect()})
    bunker = data.get("bunker")
    if not isinstance(bunker, str) or len(bunker) > 4096:
        return error_response(400, "give {\"bunker\": \"bunker://…\"} or {\"nostrconnect\": true}",
                      "bunker")
    return web.json_response(await nostr.pair_bunker(bunker))


async def unpair_signer(request: web.Request) -> web.Response:
    return web.json_response(await _nostr(request).unpair())


def add_nostr_routes(app: web.Application) -> None:
    """Register the routes above on the admin app (its ``STATE`` key must be set)."""
    app.middlewares.append(nostr_errors)
    for prefix in ("/v1/broadcasts", "/v1/streams"):
        app.router.add_get(prefix + "/{stream_id}/chat", list_chat)
        app.router.add_post(prefix + "/{stream_id}/chat", send_chat)
        app.router.add_post(prefix + "/{stream_id}/chat/{event_id}/hide", hide)
        app.router.add_post(prefix + "/{stream_id}/chat/{event_id}/unhide", unhide)
        app.router.add_post(prefix + "/{stream_id}/chat/{event_id}/pin", pin)
    app.router.add_get("/v1/mutes", list_mutes)
    app.router.add_post("/v1/mutes", add_mute)
    app.router.add_delete("/v1/mutes/{pubkey}", remove_mute)
    app.router.add_get("/v1/relays", list_relays)
    app.router.add_get("/v1/nostr", nostr_info)
    app.router.add_get("/v1/streams/{stream_id}/nostr", stream_nostr)
    for prefix in ("/v1/broadcasts", "/v1/streams"):
        app.router.add_get(prefix + "/{stream_id}/goal", get_goal)
        app.router.add_post(prefix + "/{stream_id}/goal", set_goal)
    app.router.add_get("/v1/broadcasts/{stream_id}/nostr", stream_nostr)
    app.router.add_post("/v1/nostr/signer", pair_signer)
    app.router.add_delete("/v1/nostr/signer", unpair_signer)
