"""Admin API routes for simulcast targets (Unix socket only; docs/threat-model.md §restream).

* ``GET    /v1/channels/{channel_id}/restream`` → ``[RestreamTarget]`` (keys redacted).
* ``POST   /v1/channels/{channel_id}/restream`` ``RestreamCreate`` → 201 ``RestreamTarget``.
* ``DELETE /v1/channels/{channel_id}/restream/{target_id}`` → ``{"id", "deleted": true}``.

A target's key is accepted here and never returned: not in the answer, not in errors.
"""

from __future__ import annotations

import re

from aiohttp import web

from appliance.api.admin_common import STATE, error_response, json_body, route_param
from appliance.api.schema import RestreamCreate, SchemaError
from appliance.channels import ChannelNotFound
from appliance.domain import ID_RE
from appliance.restream import RestreamError, RestreamService, TargetNotFound
from appliance.state import AppState

TARGET_ID_RE = re.compile(r"[0-9]{1,12}")


def _service(state: AppState) -> RestreamService:
    if state.restream is None:
        raise web.HTTPServiceUnavailable(text='{"error": "restream is starting"}',
                                         content_type="application/json")
    return state.restream


def _channel_id(request: web.Request) -> str:
    return route_param(request, "channel_id", ID_RE, ChannelNotFound)


async def list_targets(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    try:
        await request.app[STATE].service.get_channel(channel_id)
    except ChannelNotFound:
        return error_response(404, "no such channel")
    targets = _service(request.app[STATE]).targets(channel_id)
    return web.json_response([t.to_dict() for t in targets])


async def add_target(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    try:
        channel_id = _channel_id(request)
        body = RestreamCreate.from_dict(await json_body(request))
        target = await service.add(channel_id, body.url, body.key)
    except ChannelNotFound:
        return error_response(404, "no such channel")
    except SchemaError as exc:
        # The schema names the field and type only, never the value (the key may be in it).
        return error_response(400, str(exc))
    except RestreamError as exc:
        return error_response(400, str(exc), "url")
    return web.json_response(target.to_dict(), status=201)


async def remove_target(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    value = request.match_info["target_id"]
    try:
        channel_id = _channel_id(request)
        if not TARGET_ID_RE.fullmatch(value):
            raise TargetNotFound(value)
        await service.remove(channel_id, int(value))
    except (ChannelNotFound, TargetNotFound):
        return error_response(404, "no such restream target on this channel")
    return web.json_response({"id": int(value), "deleted": True})


def add_restream_routes(app: web.Application) -> None:
    app.router.add_get("/v1/channels/{channel_id}/restream", list_targets)
    app.router.add_post("/v1/channels/{channel_id}/restream", add_target)
    app.router.add_delete("/v1/channels/{channel_id}/restream/{target_id}", remove_target)
