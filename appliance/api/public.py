"""The public HTTP site: pages, HLS, public JSON, health and metrics.

Only well-formed object names resolve (docs/threat-model.md §paths): stream ids and HLS object
names are matched against strict patterns and looked up in memory; static assets are loaded
into memory at start-up. No URL ever becomes a filesystem path.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from typing import Any

from aiohttp import web

from appliance.api.chat import add_chat_routes
from appliance.api.hls import add_hls_routes, hls_metrics
from appliance.api.http import CONTENT_TYPES, CORS, STATE
from appliance.api.vod import add_vod_routes
from appliance.api.whep import add_whep_routes
from appliance.domain import STREAM_ID_RE, Stream, StreamState
from appliance.pages import CSP, discovery_page, not_found_page, watch_page
from appliance.state import AppState

STATIC_NAME_RE = re.compile(r"^(vendor/)?[a-z0-9_.-]{1,64}\.(js|css|txt|png|svg)$")


def load_static() -> dict[str, bytes]:
    """Every shipped static asset, by URL name (read once; served from memory)."""
    files: dict[str, bytes] = {}
    root = resources.files("appliance") / "static"

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            name = prefix + child.name
            if child.is_dir():
                walk(child, name + "/")
            elif STATIC_NAME_RE.fullmatch(name):
                files[name] = child.read_bytes()

    walk(root, "")
    return files


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"},
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             headers={**CORS, "Cache-Control": "no-cache",
                                      "X-Content-Type-Options": "nosniff"})


def public_stream(state: AppState, stream: Stream) -> dict[str, Any]:
    base = state.config.public_base_url
    return {
        "id": stream.id,
        "title": stream.title,
        "summary": stream.summary,
        "tags": list(stream.tags),
        "image": stream.image,
        "status": stream.status.value,
        "viewers": state.service.viewers(stream.id),
        "peak_viewers": max(stream.peak_viewers, _peak(state, stream.id)),
        "started_at": stream.started_at,
        "ended_at": stream.ended_at,
        "watch_url": f"{base}/watch/{stream.id}",
        "hls_url": f"{base}/hls/{stream.id}/index.m3u8",
        **({"whep_url": f"{base}/whep/{stream.id}"} if state.config.webrtc.enabled else {}),
    }


def _peak(state: AppState, stream_id: str) -> int:
    ls = state.service.live_stream(stream_id)
    return ls.viewers.peak if ls else 0


async def _stream_or_404(state: AppState, stream_id: str) -> Stream:
    if not STREAM_ID_RE.fullmatch(stream_id):
        raise web.HTTPNotFound()
    try:
        return await state.service.get(stream_id)
    except LookupError:
        raise web.HTTPNotFound() from None


async def discovery(request: web.Request) -> web.Response:
    state = request.app[STATE]
    streams = await state.service.list_streams()
    host = state.nostr.host_label() if state.nostr else ""
    return _html(discovery_page([(s, state.service.viewers(s.id)) for s in streams], host))


async def watch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        stream = await _stream_or_404(state, request.match_info["stream_id"])
    except web.HTTPNotFound:
        return _html(not_found_page(), status=404)
    chat = state.nostr.page_config(stream.id) if state.nostr else None
    return _html(watch_page(stream, state.service.viewers(stream.id), chat))


async def api_streams(request: web.Request) -> web.Response:
    state = request.app[STATE]
    status = request.query.get("status")
    wanted: StreamState | None = None
    if status is not None:
        try:
            wanted = StreamState(status)
        except ValueError:
            return _json({"error": "status must be created, live or ended"}, status=400)
    streams = await state.service.list_streams(wanted)
    return _json([public_stream(state, s) for s in streams])


async def api_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        stream = await _stream_or_404(state, request.match_info["stream_id"])
    except web.HTTPNotFound:
        return _json({"error": "no such stream"}, status=404)
    return _json(public_stream(state, stream))


async def static(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    data = state.static_files.get(name) if STATIC_NAME_RE.fullmatch(name) else None
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, headers={
        "Content-Type": CONTENT_TYPES[name.rsplit(".", 1)[1]],
        "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json({"status": "ok", "uptime": round(time.time() - state.started_at, 1),
                  "live": sum(1 for ls in state.service.live_streams() if ls.link)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition format 0.0.4."""
    state = request.app[STATE]
    lives = [ls for ls in state.service.live_streams() if not ls.ended]
    lines = [
        "# HELP hearth_up 1 while the appliance runs.", "# TYPE hearth_up gauge", "hearth_up 1",
        "# HELP hearth_streams_publishing Streams with a connected publisher.",
        "# TYPE hearth_streams_publishing gauge",
        f"hearth_streams_publishing {sum(1 for ls in lives if ls.link)}",
        "# HELP hearth_rtmp_connections Open RTMP connections.",
        "# TYPE hearth_rtmp_connections gauge",
        f"hearth_rtmp_connections {len(state.ingest.connections)}",
        "# HELP hearth_rtmp_auth_failures_total Publish attempts refused for a bad key.",
        "# TYPE hearth_rtmp_auth_failures_total counter",
        f"hearth_rtmp_auth_failures_total {state.ingest.throttle.total_failures}",
        "# HELP hearth_rtmp_protocol_errors_total Connections closed for malformed RTMP.",
        "# TYPE hearth_rtmp_protocol_errors_total counter",
        f"hearth_rtmp_protocol_errors_total {state.ingest.protocol_errors}",
        "# HELP hearth_malformed_frames_total Media frames dropped as malformed.",
        "# TYPE hearth_malformed_frames_total counter",
        f"hearth_malformed_frames_total {state.ingest.malformed_frames}",
        "# HELP hearth_hls_bytes_total Bytes of HLS segments served.",
        "# TYPE hearth_hls_bytes_total counter",
        f"hearth_hls_bytes_total {state.metrics_hls_bytes}",
        "# HELP hearth_viewers Current viewer sessions.", "# TYPE hearth_viewers gauge",
    ]
    for ls in lives:
        lines.append(f'hearth_viewers{{stream="{ls.stream_id}"}} {ls.viewers.current()}')
    lines += hls_metrics(request.app)
    lines += ["# HELP hearth_ingest_bytes_total Media bytes received.",
              "# TYPE hearth_ingest_bytes_total counter"]
    for ls in lives:
        lines.append(f'hearth_ingest_bytes_total{{stream="{ls.stream_id}"}} {ls.health.bytes_in}')
    lines += ["# HELP hearth_frames_discarded_total Frames dropped for slow hub readers.",
              "# TYPE hearth_frames_discarded_total counter"]
    for ls in lives:
        lines.append(
            f'hearth_frames_discarded_total{{stream="{ls.stream_id}"}} '
            f"{ls.publisher.frames_discarded}")
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


@web.middleware
async def not_found_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Plain 404s with security headers for every unmatched URL."""
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except web.HTTPNotFound as exc:
        if request.path.startswith(("/hls/", "/api/", "/vod/", "/thumb/")):
            raise
        if exc.text and exc.text != "404: Not Found":
            raise
        return _html(not_found_page(), status=404)


def build_public_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[not_found_middleware])
    app[STATE] = state
    app.router.add_get("/", discovery)
    app.router.add_get("/watch/{stream_id}", watch)
    app.router.add_get("/api/streams", api_streams)
    app.router.add_get("/api/streams/{stream_id}", api_stream)
    add_hls_routes(app)
    add_whep_routes(app)
    add_chat_routes(app)
    add_vod_routes(app)
    app.router.add_get("/static/{name:.+}", static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
