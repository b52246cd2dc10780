"""HLS serving: playlists and media objects from memory, with viewer-session counting.

Only well-formed names resolve (bad-input.md B12): ``^[a-z0-9_-]{1,64}\\.(m3u8|m4s|mp4)$``,
looked up in the stream's in-memory muxer; nothing here touches the filesystem.
"""

from __future__ import annotations

import re

from aiohttp import web

from appliance.api.http import CONTENT_TYPES, CORS, STATE
from appliance.domain import STREAM_ID_RE

HLS_NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}\.(m3u8|m4s|mp4)$")


async def hls(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    stream_id = request.match_info["stream_id"]
    name = request.match_info["name"]
    if not STREAM_ID_RE.fullmatch(stream_id) or not HLS_NAME_RE.fullmatch(name):
        raise web.HTTPNotFound(headers=CORS)
    ls = state.service.live_stream(stream_id)
    if ls is None:
        raise web.HTTPNotFound(headers=CORS)
    ext = name.rsplit(".", 1)[1]
    if name == "index.m3u8":
        token = request.query.get("s", "")
        if not state.tokens.check(stream_id, token):
            # First request of a player session: give it a session token (viewer counting)
            # and let it reload that URL from now on.
            raise web.HTTPFound(f"index.m3u8?s={state.tokens.mint(stream_id)}", headers=CORS)
        text = ls.muxer.playlist()
        if text is None:
            raise web.HTTPNotFound(text="stream has no media yet", headers=CORS)
        if not ls.ended:
            ls.viewers.touch(token)
        return web.Response(body=text.encode(), headers={
            **CORS, "Content-Type": CONTENT_TYPES[ext], "Cache-Control": "no-cache"})
    data = ls.muxer.get(name)
    if data is None:
        raise web.HTTPNotFound(headers=CORS)
    state.metrics_hls_bytes += len(data)
    return web.Response(body=data, headers={
        **CORS, "Content-Type": CONTENT_TYPES[ext], "Cache-Control": "public, max-age=60"})


def add_hls_routes(app: web.Application) -> None:
    app.router.add_get("/hls/{stream_id}/{name}", hls)
