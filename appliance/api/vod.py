"""Recordings and thumbnails over HTTP: ``/vod/{broadcast}/…`` and ``/thumb/{broadcast}.jpg``.

Paths: the broadcast id and object name from the URL are validated by
:mod:`appliance.delivery.paths` (allow-lists without dots or separators) before any path is
built; anything else is 404 (docs/threat-model.md §paths). Caching: segments and inits never
change once written (``immutable``); the playlist of a finished recording is cacheable for a
while, that of a running one is not; thumbnails change every ~10 s while live.
"""

from __future__ import annotations

from aiohttp import web

from appliance.api.access import check_broadcast, mark_private
from appliance.api.hls import PLAYER_HEADER
from appliance.api.http import CONTENT_TYPES, CORS, STATE, client_address
from appliance.delivery.paths import InvalidId, check_id, is_vod_name, vod_object_path
from appliance.delivery.service import Delivery
from appliance.delivery.vod import render_vod_playlist

IMMUTABLE = "public, max-age=31536000, immutable"


def _delivery(request: web.Request) -> Delivery:
    delivery = request.app[STATE].delivery
    if delivery is None:
        raise web.HTTPNotFound(headers=CORS)
    return delivery


def _broadcast(request: web.Request) -> str:
    try:
        return check_id(request.match_info["broadcast_id"])
    except InvalidId:
        raise web.HTTPNotFound(headers=CORS) from None


def _private(request: web.Request, broadcast_id: str) -> bool:
    """403 unless the request may see this broadcast's recording (docs/threat-model.md
    §grants); True when it is private (answers are then ``private, no-store``)."""
    return check_broadcast(request, broadcast_id)


async def vod_playlist(request: web.Request) -> web.Response:
    delivery = _delivery(request)
    broadcast_id = _broadcast(request)
    private = _private(request, broadcast_id)
    rec = await delivery.recording(broadcast_id)
    if rec is None or not rec.entries:
        raise web.HTTPNotFound(text="no recording", headers=CORS)
    complete = rec.complete and not delivery.is_recording(rec.broadcast_id)
    analytics = request.app[STATE].analytics
    if analytics is not None:
        analytics.vod_known(rec.broadcast_id)
    body = render_vod_playlist(rec.entries, complete=complete).encode()
    resp = web.Response(body=body, headers={
        **CORS, "Content-Type": CONTENT_TYPES["m3u8"],
        "Cache-Control": "public, max-age=60" if complete else "no-cache"})
    return mark_private(resp) if private else resp


async def vod_object(request: web.Request) -> web.StreamResponse:
    delivery = _delivery(request)
    name = request.match_info["name"]
    if name == "download.mp4":
        return await vod_download(request)
    if not is_vod_name(name):
        raise web.HTTPNotFound(headers=CORS)
    broadcast_id = _broadcast(request)
    private = _private(request, broadcast_id)
    try:
        path = vod_object_path(delivery.data_dir, broadcast_id, name)
    except InvalidId:
        raise web.HTTPNotFound(headers=CORS) from None
    ext = name.rsplit(".", 1)[1]
    _count_vod(request, broadcast_id, name)
    resp = web.FileResponse(path, headers={
        **CORS, "Content-Type": CONTENT_TYPES[ext], "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff"})
    return mark_private(resp) if private else resp


def _count_vod(request: web.Request, broadcast_id: str, name: str) -> None:
    """Recording playback counts apart from live viewers (docs/analytics.md): a media segment
    (not an init segment) of a recording whose playlist was served."""
    state = request.app[STATE]
    if state.analytics is None or name.startswith("init"):
        return
    address = client_address(request)
    user_agent = request.headers.get("User-Agent", "")
    session = state.tokens.session_key(address, user_agent, request.headers.get(PLAYER_HEADER))
    state.analytics.vod_hit(broadcast_id, session, address, user_agent)


async def vod_download(request: web.Request) -> web.StreamResponse:
    """The whole recording as one MP4 (remuxed on first request, then cached on disk)."""
    delivery = _delivery(request)
    broadcast_id = _broadcast(request)
    private = _private(request, broadcast_id)
    try:
        path = await delivery.download(broadcast_id)
    except (OSError, ValueError) as exc:
        raise web.HTTPServiceUnavailable(text=f"the download could not be made: {exc}",
                                         headers=CORS) from None
    if path is None:
        raise web.HTTPNotFound(text="no finished recording", headers=CORS)
    resp = web.FileResponse(path, headers={
        **CORS, "Content-Type": "video/mp4", "Cache-Control": "public, max-age=3600",
        "Content-Disposition": f'attachment; filename="{broadcast_id}.mp4"',
        "X-Content-Type-Options": "nosniff"})
    return mark_private(resp) if private else resp


async def thumbnail(request: web.Request) -> web.Response:
    delivery = _delivery(request)
    name = request.match_info["name"]
    if not name.endswith(".jpg"):
        raise web.HTTPNotFound(headers=CORS)
    try:
        broadcast_id = check_id(name[:-4])
    except InvalidId:
        raise web.HTTPNotFound(headers=CORS) from None
    private = _private(request, broadcast_id)
    data = await delivery.thumbnail(broadcast_id)
    if data is None:
        raise web.HTTPNotFound(text="no thumbnail yet", headers=CORS)
    resp = web.Response(body=data, headers={
        **CORS, "Content-Type": "image/jpeg", "Cache-Control": "public, max-age=10",
        "X-Content-Type-Options": "nosniff"})
    return mark_private(resp) if private else resp


def add_vod_routes(app: web.Application) -> None:
    app.router.add_get("/vod/{broadcast_id}/index.m3u8", vod_playlist)
    app.router.add_get("/vod/{broadcast_id}/{name}", vod_object)
    app.router.add_get("/thumb/{name}", thumbnail)


__all__ = ["add_vod_routes", "vod_download", "vod_object", "vod_playlist"]
