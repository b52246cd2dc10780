"""WHIP (RFC 9725) ingest endpoints and the "go live from this browser" page.

``POST /whip/{channel}`` with an SDP offer (``application/sdp``) and ``Authorization: Bearer
<channel key>`` → 201 + answer + ``Location`` of the session resource + ``ETag`` naming its ICE
session (RFC 9725 §4.2); ``DELETE`` on the resource ends the publish. Neither trickle ICE nor
ICE restarts are supported, so ``PATCH`` answers 405 (RFC 9725 §4.3.1, §4.3.2): the offer and
the answer carry every candidate. No ``Link: rel=ice-server``: Hearth gathers host candidates
only.

CORS: any origin may publish (``Access-Control-Allow-Origin: *`` with ``Authorization``
allowed). The channel key is the only credential and is sent explicitly, never ambient (no
cookies, no HTTP auth a browser would replay), so another origin can do nothing a non-browser
client with the key could not already do; and web studios hosted elsewhere (VDO.Ninja and
similar WHIP tools) can publish. docs/threat-model.md §whip.

``GET /c/{channel}/golive``: the owner's page (camera or screen; the key is typed into the
page and sent only as the bearer token, never in a URL).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from appliance.api.http import CORS, SESSION_TOKEN_RE, STATE, ice_session_etag, status_error
from appliance.domain import ID_RE
from appliance.pages import CSP, golive_page, not_found_page

if TYPE_CHECKING:
    from appliance.whip import WhipManager

BEARER_RE = re.compile(r"^Bearer ([\x21-\x7e]{1,512})$")
WHIP_CORS = {**CORS, "Access-Control-Expose-Headers": "Location, Link, ETag"}
RESOURCE_METHODS = ("DELETE", "OPTIONS")


def _manager(request: web.Request) -> tuple[WhipManager, str]:
    state = request.app[STATE]
    channel_id = request.match_info["channel_id"]
    if not ID_RE.fullmatch(channel_id):
        raise web.HTTPNotFound(headers=WHIP_CORS)
    manager = state.whip
    if manager is None:
        raise web.HTTPNotFound(text="WHIP publishing is disabled on this server (it needs "
                                    "webrtc.enabled and webrtc.whip)", headers=WHIP_CORS)
    return manager, channel_id


async def whip_options(request: web.Request) -> web.Response:
    _manager(request)
    return web.Response(status=204, headers={
        **WHIP_CORS, "Accept-Post": "application/sdp",
        "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
        "Access-Control-Max-Age": "600"})


async def whip_post(request: web.Request) -> web.Response:
    from appliance.whip import WhipError

    manager, channel_id = _manager(request)
    limit = manager.config.max_sdp_bytes
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(text="WHIP offers are application/sdp",
                                           headers=WHIP_CORS)
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length, headers=WHIP_CORS)
    body = await request.read()  # the body-timeout middleware has read it; client_max_size
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(limit, len(body), headers=WHIP_CORS)
    auth = BEARER_RE.match(request.headers.get("Authorization", ""))
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        offer = ""  # refused after the key check, which comes first whatever the body
    address = request.remote or ""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    port = peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else 0
    try:
        if not offer:
            await manager.authorize(channel_id, auth[1] if auth else None, address)
            raise WhipError(400, "the offer must be a UTF-8 SDP")
        token, answer = await manager.publish(channel_id, auth[1] if auth else None, offer,
                                              address, port)
    except WhipError as err:
        raise status_error(err.status, err.reason, {**WHIP_CORS, **err.headers}) from None
    headers = {**WHIP_CORS, "Location": f"/whip/{channel_id}/{token}"}
    if etag := ice_session_etag(answer):
        headers["ETag"] = etag
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers=headers)


async def whip_delete(request: web.Request) -> web.Response:
    manager, channel_id = _manager(request)
    token = request.match_info["token"]
    if not SESSION_TOKEN_RE.fullmatch(token) or not await manager.delete(channel_id, token):
        raise web.HTTPNotFound(headers=WHIP_CORS)
    return web.Response(status=200, headers=WHIP_CORS)


async def whip_patch(request: web.Request) -> web.Response:
    _manager(request)
    raise web.HTTPMethodNotAllowed(
        "PATCH", list(RESOURCE_METHODS), headers=WHIP_CORS,
        text="this WHIP server supports neither trickle ICE nor ICE restarts: the offer and "
             "the answer carry every candidate")


async def whip_resource_options(request: web.Request) -> web.Response:
    _manager(request)
    return web.Response(status=204, headers={
        **WHIP_CORS, "Access-Control-Allow-Methods": ", ".join(RESOURCE_METHODS),
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match"})


async def golive(request: web.Request) -> web.Response:
    """``/c/{channel}/golive``: publish a camera or the screen from this browser over WHIP.

    The page reads nothing from the database: it shows neither the channel's title nor
    whether the channel exists (a private channel's title stays private, docs/threat-model.md
    §whip); a wrong channel or key is refused by the WHIP endpoint like any wrong key.
    """
    state = request.app[STATE]
    ident = request.match_info["channel_id"]
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    if not ID_RE.fullmatch(ident):
        return web.Response(text=not_found_page(), status=404, content_type="text/html",
                            headers=headers)
    return web.Response(text=golive_page(ident, enabled=state.whip is not None),
                        content_type="text/html", headers=headers)


def add_whip_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/whip/{channel_id}", whip_options)
    app.router.add_post("/whip/{channel_id}", whip_post)
    app.router.add_delete("/whip/{channel_id}/{token}", whip_delete)
    app.router.add_patch("/whip/{channel_id}/{token}", whip_patch)
    app.router.add_route("OPTIONS", "/whip/{channel_id}/{token}", whip_resource_options)
    app.router.add_get("/c/{channel_id}/golive", golive)
