"""What every admin API route module shares: the state key, errors, bodies, route parameters.

The route modules (:mod:`~appliance.api.admin` for channels and broadcasts,
:mod:`~appliance.api.admin_events`, :mod:`~appliance.api.admin_nostr`) import this one and
nothing of each other's (the answers are built by :mod:`appliance.api.views`);
:mod:`~appliance.api.admin_app` assembles them. So there is no import cycle among them
(``tests/test_import_cycles.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from appliance.channels import BroadcastNotFound, ChannelNotFound
from appliance.domain import ID_RE
from appliance.state import AppState

STATE: web.AppKey[AppState] = web.AppKey("admin_state", AppState)
MAX_BODY = 256 * 1024
"""Largest admin request body (a stream description is a few KiB)."""


def error_response(status: int, message: str, field: str | None = None) -> web.Response:
    """The admin API's error shape: ``{"error": message, "field"?: name}``."""
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 answer."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the decoder's stack (a few thousand levels).
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return data


def route_param(request: web.Request, name: str, pattern: re.Pattern[str],
                not_found: Callable[[str], Exception]) -> str:
    """A path parameter that must match ``pattern`` entirely; else ``not_found(value)``.

    The route's own error middleware turns that exception into a 404, so a malformed id
    reads the same as an unknown one (docs/threat-model.md §admin-socket).
    """
    value = request.match_info[name]
    if not pattern.fullmatch(value):
        raise not_found(value)
    return value


def stream_id_param(request: web.Request) -> str:
    """``{stream_id}`` of a pre-channels route (a channel id); :class:`ChannelNotFound` (404)
    when malformed."""
    return route_param(request, "stream_id", ID_RE, ChannelNotFound)


def broadcast_id_param(request: web.Request, name: str = "broadcast_id") -> str:
    """A broadcast id route parameter; :class:`BroadcastNotFound` (404) when malformed."""
    return route_param(request, name, ID_RE, BroadcastNotFound)
