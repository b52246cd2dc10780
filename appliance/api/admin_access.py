"""Admin routes for viewer grants (issue 14 §1; docs/threat-model.md §grants).

* ``POST /v1/grants`` ``{"id": channel or broadcast id, "expires_in": seconds}`` →
  :class:`~appliance.api.schema.GrantCreated` (201). A channel id grants every broadcast of
  the channel (its page ``/c/{id}``); a broadcast id grants that broadcast only.
* ``POST /v1/channels/{id}/grants/revoke`` → :class:`~appliance.api.schema.GrantsRevoked`:
  every grant made so far for the channel (links and password sessions) stops working at once.
"""

from __future__ import annotations

from aiohttp import web

from appliance.access.service import MAX_TTL
from appliance.api.admin_common import STATE, json_body, route_param
from appliance.api.schema import GrantCreated, GrantsRevoked
from appliance.channels import ChannelNotFound
from appliance.domain import ID_RE, ValidationError

DEFAULT_TTL = 24 * 3600.0
"""A grant without ``expires_in`` lasts a day."""


async def create_grant(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await json_body(request)
    ident, ttl = data.get("id"), data.get("expires_in", DEFAULT_TTL)
    if not isinstance(ident, str) or not ID_RE.fullmatch(ident):
        raise ValidationError("id", "must be a channel or broadcast id")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 60 <= ttl <= MAX_TTL:
        raise ValidationError("expires_in", f"seconds from 60 to {int(MAX_TTL)}")
    access = state.access
    if access is None:
        raise ValidationError("id", "grants are not available")
    base = state.config.public_base_url
    try:
        channel = await state.service.get_channel(ident)
        channel_id, broadcast_id = channel.id, None
        page, hls = f"{base}/c/{channel_id}", f"{base}/hls/{channel_id}/index.m3u8"
    except ChannelNotFound:
        b = await state.service.get_broadcast(ident)  # BroadcastNotFound → 404
        channel_id, broadcast_id = b.channel_id, b.id
        page, hls = f"{base}/watch/{b.id}", f"{base}/hls/{b.id}/index.m3u8"
    token, expires = access.mint(channel_id, broadcast_id, float(ttl))
    grant = GrantCreated(channel_id=channel_id, broadcast_id=broadcast_id, token=token,
                         watch_url=f"{page}#grant={token}", hls_url=hls,
                         expires_at=float(expires))
    return web.json_response(grant.to_dict(), status=201)


async def revoke_grants(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel_id = route_param(request, "channel_id", ID_RE, ChannelNotFound)
    await state.service.get_channel(channel_id)
    if state.access is None:
        raise ValidationError("id", "grants are not available")
    epoch = await state.access.revoke_all(channel_id)
    state.service.log("info", "grants.revoked", "every viewer grant of the channel revoked",
                      channel_id)
    # Viewers watching with a revoked grant are cut off at once (chat, WHEP).
    state.service.touch_channel(channel_id)
    return web.json_response(GrantsRevoked(channel_id=channel_id, epoch=epoch).to_dict())


def add_access_routes(app: web.Application) -> None:
    app.router.add_post("/v1/grants", create_grant)
    app.router.add_post("/v1/channels/{channel_id}/grants/revoke", revoke_grants)

