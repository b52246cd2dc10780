"""The admin API: HTTP+JSON served only on a Unix socket (mode 0600 by default).

Access control is the socket's file mode and owner (set before ``listen``; see
:func:`appliance.lifecycle.start_admin_site`). Bodies are small JSON objects validated here;
errors are ``{"error": message, "field": name?}`` with 400/404/409.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from appliance.access.passwords import PasswordError, check_new_password
from appliance.api.admin_common import STATE, error_response, json_body, route_param
from appliance.api.schema import LogEvent, Status
from appliance.api.views import admin_broadcast, admin_channel, admin_stream, credentials
from appliance.channels import BroadcastNotFound, ChannelNotFound
from appliance.db import queries as q
from appliance.domain import (
    ID_RE,
    BroadcastStatus,
    Channel,
    ChannelFields,
    ValidationError,
    Visibility,
)


def app_version() -> str:
    try:
        return version("hearth")
    except PackageNotFoundError:
        return "dev"


def _fields(data: dict[str, Any], current: Channel | None = None) -> ChannelFields:
    def text(name: str, default: str) -> str:
        value = data.get(name, default)
        if not isinstance(value, str):
            raise ValidationError(name, "must be a string")
        return value

    tags = data.get("tags", list(current.tags) if current else [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError("tags", "must be a list of strings")
    record = data.get("record", current.record if current else True)
    if not isinstance(record, bool):
        raise ValidationError("record", "must be true or false")
    retention = data.get("retention_days", current.retention_days if current else None)
    if retention is not None and (isinstance(retention, bool) or not isinstance(retention, int)):
        raise ValidationError("retention_days", "must be a whole number of days or null")
    visibility = Visibility.parse(
        data.get("visibility", current.visibility.value if current else "public"))
    ladder = data.get("ladder", list(current.ladder) if current else [])
    if isinstance(ladder, str):  # "720p,480p" or "off", as the CLI spells it
        ladder = ladder.split(",")
    if not isinstance(ladder, list) or not all(isinstance(n, str) for n in ladder):
        raise ValidationError("ladder", "must be a list of preset names (or \"off\")")
    return ChannelFields(
        title=text("title", current.title if current else ""),
        summary=text("summary", current.summary if current else ""),
        tags=tuple(tags),
        image=text("image", current.image if current else ""),
        record=record,
        retention_days=retention,
        visibility=visibility,
        ladder=tuple(ladder),
    )


async def _apply_password(request: web.Request, channel_id: str, data: dict[str, Any]) -> None:
    """``"password"`` in a channel body: a string sets it, null removes it (never logged)."""
    if "password" not in data:
        return
    password = data["password"]
    if password is not None and not isinstance(password, str):
        raise ValidationError("password", "must be a string or null")
    access = request.app[STATE].access
    if access is None:
        raise ValidationError("password", "passwords are not available")
    try:
        await access.set_password(channel_id, password)
    except PasswordError as exc:
        raise ValidationError("password", str(exc)) from None


def _id(request: web.Request, name: str, missing: type[LookupError]) -> str:
    return route_param(request, name, ID_RE, missing)


def _channel_id(request: web.Request) -> str:
    return _id(request, "channel_id", ChannelNotFound)


def _broadcast_id(request: web.Request) -> str:
    return _id(request, "broadcast_id", BroadcastNotFound)


def _status_param(request: web.Request) -> BroadcastStatus | None:
    raw = request.query.get("status")
    if not raw:
        return None
    try:
        return BroadcastStatus(raw)
    except ValueError:
        raise ValidationError("status", "must be planned, live or ended") from None


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except ValidationError as exc:
        return error_response(400, str(exc), exc.field)
    except ChannelNotFound as exc:
        noun = "stream" if request.path.startswith("/v1/streams") else "channel"
        return error_response(404, f"no {noun} {exc.args[0]!r}")
    except BroadcastNotFound as exc:
        return error_response(404, f"no broadcast {exc.args[0]!r}")


async def get_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = await state.store.read(q.counts)
    errors = await state.store.read(lambda db: q.list_events(db, 200))
    recent = [LogEvent.from_dict(e) for e in errors if e["level"] in ("warning", "error")][:5]
    lives = state.service.live_broadcasts()
    status = Status(
        version=app_version(), started_at=state.started_at,
        uptime=round(time.time() - state.started_at, 1),
        public_url=state.config.public_base_url, rtmp_url=state.config.rtmp_url,
        data_dir=str(state.config.data_path), streams_total=counts.channels,
        streams_live=counts.broadcasts_live, publishers=sum(1 for lb in lives if lb.link),
        viewers=sum(lb.viewers() for lb in lives),
        rtmp_connections=len(state.ingest.connections),
        auth_failures=state.ingest.throttle.total_failures,
        frames_discarded=sum(lb.publisher.frames_discarded for lb in lives),
        recent_errors=recent, broadcasts_planned=counts.broadcasts_planned,
        blocked_addresses=len(state.ingest.throttle.blocks()),
        srt_url=state.config.srt_url or "",
        srt_connections=state.srt.connections if state.srt else 0,
        srt_rejected=state.srt.rejected if state.srt else 0,
        rtmp_refused=sum(state.ingest.rtmp_stats.refusals.totals.values()),
        ingest_warnings=[f"{lb.channel_id}: {reason}" for lb in lives if lb.link
                         for reason in lb.health().reasons()],
        ladder_encoder=state.service.ladder_encoder.note,
    )
    return web.json_response(status.to_dict())


# ---- channels --------------------------------------------------------------------------------


async def _channel_view(request: web.Request, channel: Channel) -> dict[str, Any]:
    state = request.app[STATE]
    broadcasts = await state.store.read(lambda db: q.active_broadcasts(db, channel.id))
    return admin_channel(state, channel, broadcasts).to_dict()


async def list_channels(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channels = await state.service.list_channels()
    active = await state.store.read(q.active_broadcasts)
    by_channel: dict[str, list[Any]] = {}
    for b in active:
        by_channel.setdefault(b.channel_id, []).append(b)
    return web.json_response(
        [admin_channel(state, c, by_channel.get(c.id, [])).to_dict() for c in channels])


async def create_channel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await json_body(request)
    fields = _fields(data)
    if "password" in data and data["password"] is not None:  # check before creating
        try:
            check_new_password(data["password"])
        except PasswordError as exc:
            raise ValidationError("password", str(exc)) from None
    channel, key = await state.service.create_channel(fields)
    await _apply_password(request, channel.id, data)
    return web.json_response(credentials(state, channel, key).to_dict(), status=201)


async def get_channel(request: web.Request) -> web.Response:
    channel = await request.app[STATE].service.get_channel(_channel_id(request))
    return web.json_response(await _channel_view(request, channel))


async def update_channel(request: web.Request) -> web.Response:
    service = request.app[STATE].service
    channel_id = _channel_id(request)
    current = await service.get_channel(channel_id)
    data = await json_body(request)
    fields = _fields(data, current)
    await _apply_password(request, channel_id, data)
    channel = await service.update_channel(channel_id, fields)
    return web.json_response(await _channel_view(request, channel))


async def delete_channel(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    await request.app[STATE].service.delete_channel(channel_id)
    return web.json_response({"id": channel_id, "deleted": True})


async def rotate_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel, key = await state.service.rotate_key(_channel_id(request))
    return web.json_response(credentials(state, channel, key).to_dict())


# ---- broadcasts ------------------------------------------------------------------------------


async def list_broadcasts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel_id = request.query.get("channel")
    if channel_id is not None:
        if not ID_RE.fullmatch(channel_id):
            raise ValidationError("channel", "not a channel id")
        await state.service.get_channel(channel_id)
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "200"))))
    except ValueError:
        raise ValidationError("limit", "must be an integer") from None
    broadcasts = await state.service.list_broadcasts(channel_id, _status_param(request), limit)
    return web.json_response([admin_broadcast(state, b).to_dict() for b in broadcasts])


async def plan_broadcast(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await json_body(request)
    channel_id, title, starts = data.get("channel_id"), data.get("title"), data.get("starts")
    if not isinstance(channel_id, str) or not ID_RE.fullmatch(channel_id):
        raise ValidationError("channel_id", "must be a channel id")
    if not isinstance(title, str):
        raise ValidationError("title", "must be a string")
    if isinstance(starts, bool) or not isinstance(starts, int | float):
        raise ValidationError("starts", "must be a Unix time in seconds")
    raw = data.get("visibility")
    visibility = None if raw is None else Visibility.parse(raw)
    b = await state.service.plan(channel_id, title, float(starts), visibility)
    return web.json_response(admin_broadcast(state, b).to_dict(), status=201)


async def update_broadcast(request: web.Request) -> web.Response:
    """``PATCH /v1/broadcasts/{id}`` ``{"visibility": "private"}`` (null: follow the
    channel again)."""
    state = request.app[STATE]
    broadcast_id = _broadcast_id(request)
    data = await json_body(request)
    if "visibility" not in data:
        raise ValidationError("visibility", "nothing to change")
    raw = data["visibility"]
    visibility = None if raw is None else Visibility.parse(raw)
    b = await state.service.set_broadcast_visibility(broadcast_id, visibility)
    return web.json_response(admin_broadcast(state, b).to_dict())


async def get_broadcast(request: web.Request) -> web.Response:
    state = request.app[STATE]
    b = await state.service.get_broadcast(_broadcast_id(request))
    return web.json_response(admin_broadcast(state, b).to_dict())


async def end_broadcast(request: web.Request) -> web.Response:
    state = request.app[STATE]
    b = await state.service.end_broadcast(_broadcast_id(request))
    return web.json_response(admin_broadcast(state, b).to_dict())


# ---- /v1/streams: the pre-channels API, kept as an alias (a stream is a channel) ----------


def _stream_id(request: web.Request) -> str:
    return _id(request, "stream_id", ChannelNotFound)


async def _stream_view(request: web.Request, channel: Channel) -> dict[str, Any]:
    state = request.app[STATE]
    latest, planned = await state.store.read(
        lambda db: (q.latest_broadcast(db, channel.id), q.next_planned(db, channel.id)))
    return admin_stream(state, channel, latest, planned.get(channel.id)).to_dict()


async def list_streams(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wanted = request.query.get("status")
    if wanted and wanted not in ("created", "live", "ended"):
        return error_response(400, "status must be created, live or ended", "status")
    channels = await state.service.list_channels()
    latest, planned = await state.store.read(
        lambda db: (q.latest_broadcasts(db), q.next_planned(db)))
    views = [admin_stream(state, c, latest.get(c.id), planned.get(c.id)) for c in channels]
    return web.json_response([v.to_dict() for v in views if not wanted or v.status == wanted])


async def create_stream(request: web.Request) -> web.Response:
    """A channel plus its first (planned, unscheduled) broadcast with the same id: what a
    stream was — announced as planned, chat open, taken by the first publish."""
    state = request.app[STATE]
    channel, key = await state.service.create_channel(_fields(await json_body(request)),
                                                      first_broadcast=True)
    return web.json_response(credentials(state, channel, key).to_dict(), status=201)


async def get_stream(request: web.Request) -> web.Response:
    channel = await request.app[STATE].service.get_channel(_stream_id(request))
    return web.json_response(await _stream_view(request, channel))


async def update_stream(request: web.Request) -> web.Response:
    service = request.app[STATE].service
    channel_id = _stream_id(request)
    current = await service.get_channel(channel_id)
    data = await json_body(request)
    fields = _fields(data, current)
    await _apply_password(request, channel_id, data)
    channel = await service.update_channel(channel_id, fields)
    return web.json_response(await _stream_view(request, channel))


async def delete_stream(request: web.Request) -> web.Response:
    channel_id = _stream_id(request)
    await request.app[STATE].service.delete_channel(channel_id)
    return web.json_response({"id": channel_id, "deleted": True})


async def end_stream(request: web.Request) -> web.Response:
    """End the channel's live broadcast, or else cancel the first broadcast that the
    ``/v1/streams`` alias planned under the channel's own id (a first-release stream ended
    before it aired is ``ended``, with its 30311); the channel and its key stay."""
    service = request.app[STATE].service
    channel = await service.get_channel(_stream_id(request))
    lb = service.live_broadcast(channel.id)
    if lb is not None:
        await service.end_broadcast(lb.broadcast_id)
    else:
        try:
            first = await service.get_broadcast(channel.id)
        except BroadcastNotFound:
            first = None
        if first is not None and first.status is BroadcastStatus.PLANNED:
            await service.end_broadcast(first.id)
    return web.json_response(await _stream_view(request, channel))


async def rotate_stream_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel, key = await state.service.rotate_key(_stream_id(request))
    return web.json_response(credentials(state, channel, key).to_dict())


async def list_events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        return error_response(400, "limit must be an integer", "limit")
    stream_id = request.query.get("stream") or request.query.get("channel")
    if stream_id is not None and not ID_RE.fullmatch(stream_id):
        return error_response(400, "bad channel id", "channel")
    events = await state.store.read(lambda db: q.list_events(db, limit, stream_id))
    return web.json_response(events)


def add_stream_routes(app: web.Application) -> None:
    """Register status, channel, broadcast, ``/v1/streams`` alias and event-log routes (see
    :mod:`appliance.api.admin_app`)."""
    app.middlewares.append(errors_middleware)
    r = app.router
    r.add_get("/v1/status", get_status)
    r.add_get("/v1/channels", list_channels)
    r.add_post("/v1/channels", create_channel)
    r.add_get("/v1/channels/{channel_id}", get_channel)
    r.add_patch("/v1/channels/{channel_id}", update_channel)
    r.add_delete("/v1/channels/{channel_id}", delete_channel)
    r.add_post("/v1/channels/{channel_id}/rotate-key", rotate_key)
    r.add_get("/v1/broadcasts", list_broadcasts)
    r.add_post("/v1/broadcasts", plan_broadcast)
    r.add_get("/v1/broadcasts/{broadcast_id}", get_broadcast)
    r.add_post("/v1/broadcasts/{broadcast_id}/end", end_broadcast)
    r.add_patch("/v1/broadcasts/{broadcast_id}", update_broadcast)
    r.add_get("/v1/streams", list_streams)
    r.add_post("/v1/streams", create_stream)
    r.add_get("/v1/streams/{stream_id}", get_stream)
    r.add_patch("/v1/streams/{stream_id}", update_stream)
    r.add_delete("/v1/streams/{stream_id}", delete_stream)
    r.add_post("/v1/streams/{stream_id}/end", end_stream)
    r.add_post("/v1/streams/{stream_id}/rotate-key", rotate_stream_key)
    r.add_get("/v1/events", list_events)
