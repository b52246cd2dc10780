"""WHEP (draft-ietf-wish-whep; RFC 9725 is its ingest sibling WHIP): ``POST /whep/{id}``
with an SDP offer → 201 + answer + ``Location`` of the session + ``ETag`` naming its ICE
session; ``DELETE`` on the session ends it.

Neither trickle ICE nor ICE restarts are supported, so ``PATCH`` on a session answers
405 Method Not Allowed with ``Allow: DELETE, OPTIONS`` (draft-ietf-wish-whep "HTTP PATCH
request usage"): the offer and the answer carry every candidate. No ``Link: rel=ice-server``
headers are sent: Hearth gathers host candidates only and has no STUN/TURN configuration.
An offer that cannot decode the stream's H.264 profile gets 422 with the reason (the draft
asks for "an appropriate 4XX"; RFC 9110 §15.5.21: understood but not processable).
Limits: SDP size (413), content type (415), negotiations and peers (429/503, in
:mod:`appliance.webrtc`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from aiohttp import web

from appliance.api.access import (
    GRANT_RECHECK_SECONDS,
    check_broadcast,
    grant_in,
    shown_via_channel,
)
from appliance.api.http import (
    CORS,
    SESSION_TOKEN_RE,
    STATE,
    client_address,
    ice_session_etag,
    status_error,
)
from appliance.bus import BroadcastChanged, ChannelChanged
from appliance.domain import ID_RE, Visibility
from appliance.periodic import seconds_to_grid

if TYPE_CHECKING:
    from appliance.webrtc import WebRtcManager

WHEP_CORS = {**CORS, "Access-Control-Expose-Headers": "Location, Link, ETag"}
RESOURCE_METHODS = ("DELETE", "OPTIONS")
GRANTED: web.AppKey[dict[str, tuple[str | None, str | None]]] = web.AppKey("whep_granted", dict)
"""Per WHEP session: the grant cookie and Authorization header it was admitted with, so a
visibility change can re-check connected peers."""


def _manager(request: web.Request) -> tuple[WebRtcManager, str]:
    state = request.app[STATE]
    stream_id = request.match_info["stream_id"]
    if not ID_RE.fullmatch(stream_id):
        raise web.HTTPNotFound(headers=WHEP_CORS)
    manager = state.webrtc
    if manager is None:
        raise web.HTTPNotFound(text="WebRTC is disabled on this server", headers=WHEP_CORS)
    return manager, stream_id


async def whep_options(request: web.Request) -> web.Response:
    _manager(request)
    return web.Response(status=204, headers={
        **WHEP_CORS, "Accept-Post": "application/sdp",
        "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, If-Match"})


async def whep_post(request: web.Request) -> web.Response:
    from appliance.webrtc import WhepError

    manager, stream_id = _manager(request)
    _check_access(request, stream_id)
    limit = manager.config.max_sdp_bytes
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(text="WHEP offers are application/sdp",
                                           headers=WHEP_CORS)
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length, headers=WHEP_CORS)
    # read(), not content.read(n): the public app's body-timeout middleware has already
    # read (and cached) the body, so the stream is empty here; client_max_size bounds it.
    body = await request.read()
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(limit, len(body), headers=WHEP_CORS)
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="SDP must be UTF-8", headers=WHEP_CORS) from None
    try:
        token, answer = await manager.create_peer(
            stream_id, offer, request.remote or "", viewer_address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""))
    except WhepError as err:
        headers = dict(WHEP_CORS)
        if err.status in (429, 503):
            headers["Retry-After"] = "2"
        raise status_error(err.status, err.reason, headers) from None
    ls = request.app[STATE].service.runtime(stream_id)
    if ls is not None:
        request.app[GRANTED][token] = (
            request.headers.get("Cookie"), request.headers.get("Authorization"))
    headers = {**WHEP_CORS, "Location": f"/whep/{stream_id}/{token}"}
    if etag := ice_session_etag(answer):
        headers["ETag"] = etag
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers=headers)


def _check_access(request: web.Request, stream_id: str) -> None:
    """A private broadcast's media needs a grant (docs/threat-model.md §grants): 403 before
    any negotiation. Peers already connected are closed by :func:`close_unauthorised`."""
    service = request.app[STATE].service
    ls = service.runtime(stream_id)
    if ls is None:
        return  # the manager answers 404
    if stream_id == ls.channel_id and not shown_via_channel(
            service.visibility(ls.broadcast_id), service.channel_visibility(ls.channel_id)):
        raise web.HTTPNotFound(headers=WHEP_CORS)
    try:
        check_broadcast(request, ls.broadcast_id)
    except web.HTTPForbidden:
        raise web.HTTPForbidden(text="private: open the link you were given",
                                headers={**WHEP_CORS, "Cache-Control": "private, no-store"}
                                ) from None


async def whep_delete(request: web.Request) -> web.Response:
    manager, stream_id = _manager(request)
    token = request.match_info["token"]
    if not SESSION_TOKEN_RE.fullmatch(token) or not await manager.delete(stream_id, token):
        raise web.HTTPNotFound(headers=WHEP_CORS)
    return web.Response(status=200, headers=WHEP_CORS)


async def whep_patch(request: web.Request) -> web.Response:
    _manager(request)
    raise web.HTTPMethodNotAllowed(
        "PATCH", list(RESOURCE_METHODS), headers=WHEP_CORS,
        text="this WHEP server supports neither trickle ICE nor ICE restarts: the answer "
             "carries every candidate")


async def whep_resource_options(request: web.Request) -> web.Response:
    _manager(request)
    return web.Response(status=204, headers={
        **WHEP_CORS, "Access-Control-Allow-Methods": ", ".join(RESOURCE_METHODS)})


def _still_allowed(app: web.Application, stream_id: str, token: str) -> bool:
    state = app[STATE]
    ls = state.service.runtime(stream_id)
    if ls is None:
        return True  # ended: the peer ends with it
    bvis = state.service.visibility(ls.broadcast_id)
    if stream_id == ls.channel_id and not shown_via_channel(
            bvis, state.service.channel_visibility(ls.channel_id)):
        return False
    if bvis is not Visibility.PRIVATE:
        return True
    cookie, auth = app[GRANTED].get(token, (None, None))
    jar: SimpleCookie = SimpleCookie()
    with contextlib.suppress(CookieError):
        jar.load(cookie or "")
    cookies = {k: m.value for k, m in jar.items()}
    return grant_in(state.access, cookies, auth or "", ls.channel_id, ls.broadcast_id)


async def close_unauthorised(app: web.Application) -> int:
    """Close WHEP peers that may no longer watch (their broadcast turned private, or their
    grant was revoked); returns how many."""
    manager = app[STATE].webrtc
    if manager is None:
        return 0
    closed = 0
    granted = app[GRANTED]
    for token in [t for t in granted if t not in manager.peers]:
        del granted[token]
    for peer in list(manager.peers.values()):
        if not _still_allowed(app, peer.stream_id, peer.token):
            await manager.delete(peer.stream_id, peer.token)
            granted.pop(peer.token, None)
            closed += 1
    return closed


async def _follow_visibility(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: re-check connected peers on every channel or broadcast change, and every
    :data:`GRANT_RECHECK_SECONDS` for grants that expired meanwhile."""
    bus = app[STATE].bus

    async def run() -> None:
        async with bus.subscribe(BroadcastChanged, ChannelChanged, maxsize=100) as events:
            while True:
                # Subscription.get is a Queue.get: a timeout loses no event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds_to_grid(
                            GRANT_RECHECK_SECONDS, asyncio.get_running_loop().time())):
                        await events.get()
                await close_unauthorised(app)

    task = asyncio.get_running_loop().create_task(run(), name="whep-visibility")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_whep_routes(app: web.Application) -> None:
    app[GRANTED] = {}
    app.cleanup_ctx.append(_follow_visibility)
    app.router.add_route("OPTIONS", "/whep/{stream_id}", whep_options)
    app.router.add_post("/whep/{stream_id}", whep_post)
    app.router.add_delete("/whep/{stream_id}/{token}", whep_delete)
    app.router.add_patch("/whep/{stream_id}/{token}", whep_patch)
    app.router.add_route("OPTIONS", "/whep/{stream_id}/{token}", whep_resource_options)
