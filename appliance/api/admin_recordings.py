"""Admin API routes for recordings (Unix socket only).

* ``GET    /v1/recordings`` → ``[AdminRecording]``, newest first.
* ``GET    /v1/recordings/{broadcast}`` → ``AdminRecording``.
* ``DELETE /v1/recordings/{broadcast}`` → ``{"broadcast_id", "deleted": true}`` (files removed).
* ``POST   /v1/recordings/{broadcast}/keep`` ``{"keep"?: bool}`` (default true) →
  ``AdminRecording``: ``keep`` exempts it from retention.
"""

from __future__ import annotations

from aiohttp import web

from appliance.api.admin_common import STATE, error_response, json_body
from appliance.api.schema import AdminRecording
from appliance.delivery.paths import InvalidId, check_id
from appliance.delivery.service import Delivery, RecordingInfo
from appliance.state import AppState


def _delivery(state: AppState) -> Delivery:
    if state.delivery is None:
        raise web.HTTPServiceUnavailable(text='{"error": "recordings are starting"}',
                                         content_type="application/json")
    return state.delivery


def _broadcast_id(request: web.Request) -> str | None:
    try:
        return check_id(request.match_info["broadcast_id"])
    except InvalidId:
        return None


async def _owner(state: AppState, broadcast_id: str) -> tuple[str, str | None]:
    """(title, channel id) of the recording's broadcast; ("", None) once it is gone."""
    try:
        b = await state.service.get_broadcast(broadcast_id)
    except LookupError:
        return "", None
    return b.title, b.channel_id


async def admin_recording(state: AppState, info: RecordingInfo) -> AdminRecording:
    base = state.config.public_base_url
    delivery = _delivery(state)
    bid = info.broadcast_id
    age = await delivery.thumbnail_age(bid)
    title, channel_id = await _owner(state, bid)
    return AdminRecording(
        broadcast_id=bid, title=title, channel_id=channel_id, state=info.state,
        started_at=info.started_at, ended_at=info.ended_at, duration=round(info.duration, 3),
        bytes=info.bytes, segments=info.segments, kept=info.kept, error=info.error,
        recording_url=f"{base}/vod/{bid}/index.m3u8",
        download_url=f"{base}/vod/{bid}/download.mp4",
        thumbnail_url=f"{base}/thumb/{bid}.jpg" if age is not None or info.has_poster else None,
        thumbnail_age=None if age is None else round(age, 1))


async def _find(state: AppState, broadcast_id: str) -> RecordingInfo | None:
    for info in await _delivery(state).recordings():
        if info.broadcast_id == broadcast_id:
            return info
    return None


async def list_recordings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    infos = sorted(await _delivery(state).recordings(), key=lambda i: i.started_at,
                   reverse=True)
    return web.json_response([(await admin_recording(state, i)).to_dict() for i in infos])


async def get_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    bid = _broadcast_id(request)
    info = await _find(state, bid) if bid else None
    if info is None:
        return error_response(404, "no such recording")
    return web.json_response((await admin_recording(state, info)).to_dict())


async def delete_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    bid = _broadcast_id(request)
    if bid is None or not await _delivery(state).delete(bid):
        return error_response(404, "no such recording")
    return web.json_response({"broadcast_id": bid, "deleted": True})


async def keep_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    bid = _broadcast_id(request)
    keep = True
    if request.can_read_body:
        keep_value = (await json_body(request)).get("keep", True)
        if not isinstance(keep_value, bool):
            return error_response(400, "keep must be true or false", "keep")
        keep = keep_value
    if bid is None or not await _delivery(state).set_kept(bid, keep):
        return error_response(404, "no such recording")
    info = await _find(state, bid)
    if info is None:
        return error_response(404, "no such recording")
    return web.json_response((await admin_recording(state, info)).to_dict())


def add_recording_routes(app: web.Application) -> None:
    app.router.add_get("/v1/recordings", list_recordings)
    app.router.add_get("/v1/recordings/{broadcast_id}", get_recording)
    app.router.add_delete("/v1/recordings/{broadcast_id}", delete_recording)
    app.router.add_post("/v1/recordings/{broadcast_id}/keep", keep_recording)
