"""Admin API routes for audience analytics (Unix socket only; docs/analytics.md).

* ``GET /v1/analytics/broadcasts/{broadcast}`` → ``BroadcastAnalytics``.
* ``GET /v1/analytics/channels/{channel}?days=N`` → ``ChannelAnalytics`` (broadcasts that
  started in the last N days, 1–3650, default 30).
* ``POST /v1/analytics/channels/{channel}/link`` ``{"expires_in"?: seconds}`` (default 7
  days, 60 s to a year) → ``AnalyticsLink``: the channel owner's page URL with a signed
  token (``appliance/api/analytics_page.py``).

503 while analytics are off (``analytics.enabled``); 404 for an unknown or malformed id.
"""

from __future__ import annotations

from aiohttp import web

from appliance.access.service import MAX_TTL
from appliance.analytics.service import MAX_DAYS, AnalyticsService
from appliance.api.admin_common import STATE, error_response, json_body
from appliance.api.analytics_page import OWNER
from appliance.api.schema import AnalyticsLink
from appliance.domain import ID_RE
from appliance.state import AppState

DEFAULT_DAYS = 30
DEFAULT_LINK_TTL = 7 * 86400.0


def _service(state: AppState) -> AnalyticsService:
    if state.analytics is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "analytics are off (analytics.enabled = false)"}',
            content_type="application/json")
    return state.analytics


def parse_days(raw: str | None) -> int | None:
    """``?days=`` as a whole number from 1 to MAX_DAYS (default 30); None if it is not one."""
    if raw is None:
        return DEFAULT_DAYS
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5 or not 1 <= int(raw) <= MAX_DAYS:
        return None
    return int(raw)


async def broadcast_analytics(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    bid = request.match_info["broadcast_id"]
    got = await service.broadcast(bid) if ID_RE.fullmatch(bid) else None
    if got is None:
        return error_response(404, "no such broadcast")
    return web.json_response(got.to_dict())


async def channel_analytics(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    days = parse_days(request.query.get("days"))
    if days is None:
        return error_response(400, f"days must be a whole number from 1 to {MAX_DAYS}", "days")
    cid = request.match_info["channel_id"]
    got = await service.channel(cid, days) if ID_RE.fullmatch(cid) else None
    if got is None:
        return error_response(404, "no such channel")
    return web.json_response(got.to_dict())


async def owner_link(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _service(state)
    data = await json_body(request)
    ttl = data.get("expires_in", DEFAULT_LINK_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 60 <= ttl <= MAX_TTL:
        return error_response(400, f"seconds from 60 to {int(MAX_TTL)}", "expires_in")
    cid = request.match_info["channel_id"]
    if not ID_RE.fullmatch(cid):
        return error_response(404, "no such channel")
    try:
        await state.service.get_channel(cid)
    except LookupError:
        return error_response(404, "no such channel")
    if state.access is None:
        return error_response(503, "owner links need the grant secret (starting up)")
    token, expires = state.access.mint(cid, None, float(ttl), purpose=OWNER)
    url = f"{state.config.public_base_url}/c/{cid}/analytics?token={token}"
    state.service.log("info", "analytics.link", "owner analytics link created", cid)
    return web.json_response(AnalyticsLink(channel_id=cid, url=url,
                                           expires_at=float(expires)).to_dict(), status=201)


def add_analytics_routes(app: web.Application) -> None:
    app.router.add_post("/v1/analytics/channels/{channel_id}/link", owner_link)
    app.router.add_get("/v1/analytics/broadcasts/{broadcast_id}", broadcast_analytics)
    app.router.add_get("/v1/analytics/channels/{channel_id}", channel_analytics)
