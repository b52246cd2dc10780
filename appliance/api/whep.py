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

import re
from typing import TYPE_CHECKING

from aiohttp import web

from appliance.api.http import CORS, STATE
from appliance.domain import ID_RE

if TYPE_CHECKING:
    from appliance.webrtc import WebRtcManager

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
WHEP_CORS = {**CORS, "Access-Control-Expose-Headers": "Location, Link, ETag"}
ICE_UFRAG_RE = re.compile(r"^a=ice-ufrag:([A-Za-z0-9+/]{4,256})\r?$", re.M)
RESOURCE_METHODS = ("DELETE", "OPTIONS")


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
        token, answer = await manager.create_peer(stream_id, offer, request.remote or "")
    except WhepError as err:
        headers = dict(WHEP_CORS)
        if err.status in (429, 503):
            headers["Retry-After"] = "2"
        raise _error(err.status, err.reason, headers) from None
    headers = {**WHEP_CORS, "Location": f"/whep/{stream_id}/{token}"}
    if ufrag := ICE_UFRAG_RE.search(answer):
        # A strong entity-tag for the ICE session (draft-ietf-wish-whep "HTTP PATCH request
        # usage"; optional without ICE restarts, given so clients can match sessions).
        headers["ETag"] = f'"{ufrag[1]}"'
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers=headers)


def _error(status: int, reason: str, headers: dict[str, str]) -> web.HTTPException:
    exc = web.HTTPException(text=reason, headers=headers)
    exc.set_status(status)
    return exc


async def whep_delete(request: web.Request) -> web.Response:
    manager, stream_id = _manager(request)
    token = request.match_info["token"]
    if not TOKEN_RE.fullmatch(token) or not await manager.delete(stream_id, token):
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


def add_whep_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/whep/{stream_id}", whep_options)
    app.router.add_post("/whep/{stream_id}", whep_post)
    app.router.add_delete("/whep/{stream_id}/{token}", whep_delete)
    app.router.add_patch("/whep/{stream_id}/{token}", whep_patch)
    app.router.add_route("OPTIONS", "/whep/{stream_id}/{token}", whep_resource_options)
