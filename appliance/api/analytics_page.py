"""The channel owner's analytics page: ``GET /c/{channel}/analytics?token=…``.

Reachable only with an owner link the operator makes (``hearth analytics link CHANNEL``): a
token signed by :class:`appliance.access.AccessService` for the purpose ``analytics`` (a
viewer grant is never accepted here, nor an owner token as a viewer grant), scoped to the
channel, expiring, and revoked with ``hearth grant revoke-all``. Anything else gets the same
403, so the page says nothing about which channels exist. The answer is ``no-store, private``
and sends no referrer, so neither a cache nor a followed link keeps the token
(docs/threat-model.md §analytics).
"""

from __future__ import annotations

from aiohttp import web

from appliance.api.http import STATE
from appliance.domain import ID_RE
from appliance.pages import CSP, owner_analytics_page

OWNER = "analytics"
"""Token purpose of owner links."""
DAYS = 30
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store, private",
           "X-Robots-Tag": "noindex"}


def _refused() -> web.Response:
    return web.Response(status=403, text="This analytics link is not valid (or has expired).",
                        headers=HEADERS)


async def owner_analytics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel_id = request.match_info["channel_id"]
    token = request.query.get("token", "")
    access, analytics = state.access, state.analytics
    if access is None or analytics is None or not ID_RE.fullmatch(channel_id):
        return _refused()
    grant = access.check(token, channel_id, None, purpose=OWNER)
    if grant is None:
        return _refused()
    c = await analytics.channel(channel_id, DAYS)
    if c is None:  # the channel was deleted since the link was made
        return _refused()
    latest = await analytics.broadcast(c.per_broadcast[0].broadcast_id) if c.per_broadcast \
        else None
    return web.Response(text=owner_analytics_page(c, latest, grant.expires),
                        content_type="text/html", charset="utf-8", headers=HEADERS)


def add_owner_routes(app: web.Application) -> None:
    app.router.add_get("/c/{channel_id}/analytics", owner_analytics)
