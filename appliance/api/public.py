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

from appliance.api.access import (
    add_access_routes,
    check_broadcast,
    check_channel,
    exchange_query_grant,
    has_grant,
    listed,
    mark_private,
    private_middleware,
    private_response,
    shown_via_channel,
)
from appliance.api.analytics_page import add_owner_routes
from appliance.api.chat import add_chat_routes
from appliance.api.hls import add_hls_routes, hls_metrics
from appliance.api.http import CONTENT_TYPES, CORS, STATE
from appliance.api.views import public_broadcast, public_channel
from appliance.api.vod import add_vod_routes
from appliance.api.whep import add_whep_routes
from appliance.api.whip import add_whip_routes
from appliance.db import queries as q
from appliance.domain import ID_RE, Broadcast, BroadcastStatus, Channel, Visibility
from appliance.pages import (
    CSP,
    Card,
    channel_extra,
    discovery_page,
    not_found_page,
    watch_page,
)
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


async def _broadcast_or_404(state: AppState, ident: str) -> Broadcast:
    """A broadcast by id, or (old ``/watch/<stream id>`` links) a channel's live or latest."""
    if not ID_RE.fullmatch(ident):
        raise web.HTTPNotFound()
    try:
        return await state.service.resolve_broadcast(ident)
    except LookupError:
        raise web.HTTPNotFound() from None


def _waiting(channel: Channel) -> Broadcast:
    """What a channel that has never broadcast shows: its description, not live yet."""
    return Broadcast(id=channel.id, channel_id=channel.id, title=channel.title,
                     summary=channel.summary, tags=channel.tags, image=channel.image,
                     status=BroadcastStatus.PLANNED, created_at=channel.created_at, starts=None,
                     started_at=None, ended_at=None, peak_viewers=0, total_viewers=0,
                     visibility=channel.visibility)


def _cards(state: AppState, broadcasts: list[Broadcast],
           channels: dict[str, str]) -> list[Card]:
    """Broadcasts as page cards; thumbnails and recordings known from memory (no disk I/O)."""
    delivery = state.delivery
    return [Card(b, channels.get(b.channel_id, ""), state.service.viewers(b.id),
                 thumbnail=bool(delivery and delivery.has_thumbnail(b.id)),
                 recording=bool(delivery and delivery.has_recording(b.id)),
                 length=delivery.recording_length(b.id) if delivery else None)
            for b in broadcasts]


async def discovery(request: web.Request) -> web.Response:
    state = request.app[STATE]
    # Public broadcasts only (docs/threat-model.md §grants); fetched with headroom so hidden
    # ones do not empty the page.
    live = await state.service.list_broadcasts(status=BroadcastStatus.LIVE, limit=200)
    planned = await state.service.list_broadcasts(status=BroadcastStatus.PLANNED, limit=100)
    ended = await state.service.list_broadcasts(status=BroadcastStatus.ENDED, limit=200)
    live, planned, ended = ([b for b in bs if listed(b.visibility)][:n]
                            for bs, n in ((live, 100), (planned, 50), (ended, 100)))
    channels = {c.id: c.title for c in await state.service.list_channels()}
    host = state.nostr.host_label() if state.nostr else ""
    return _html(discovery_page(_cards(state, [*live, *planned, *ended], channels), host))


async def channel_page(request: web.Request) -> web.Response:
    """``/c/{channel}``: the player while live (whichever broadcast), else the next planned
    broadcast; past broadcasts (with their recordings) below."""
    state = request.app[STATE]
    ident = request.match_info["channel_id"]
    if not ID_RE.fullmatch(ident):
        return _html(not_found_page(), status=404)
    channel = await state.store.read(lambda db: q.get_channel(db, ident))
    if channel is None:
        return _html(not_found_page(), status=404)
    exchanged = exchange_query_grant(request)
    if exchanged is not None:
        return exchanged
    private = channel.visibility is Visibility.PRIVATE
    if private and not has_grant(request, channel.id, None):
        return private_response(request, channel.id)
    broadcasts = await state.service.list_broadcasts(channel_id=ident, limit=100)
    # Through the channel: what is no more restricted than the channel; past broadcasts
    # are listed only when public, or (on a private channel, with its grant) private too.
    broadcasts = [b for b in broadcasts if shown_via_channel(b.visibility, channel.visibility)
                  and (b.status is not BroadcastStatus.ENDED or listed(b.visibility)
                       or (private and b.visibility is Visibility.PRIVATE))]
    cards = _cards(state, broadcasts, {channel.id: channel.title})
    live = next((c for c in cards if c.broadcast.status is BroadcastStatus.LIVE), None)
    planned = sorted((c for c in cards if c.broadcast.status is BroadcastStatus.PLANNED),
                     key=lambda c: c.broadcast.starts or 0.0)
    past = sorted((c for c in cards if c.broadcast.status is BroadcastStatus.ENDED),
                  key=lambda c: -(c.broadcast.ended_at or 0.0))[:24]
    nxt = planned[0] if planned else None
    shown = live.broadcast if live else (nxt.broadcast if nxt else _waiting(channel))
    chat = state.nostr.page_config(shown.id) if state.nostr else None
    resp = _html(watch_page(shown, live.viewers if live else 0, chat, play_id=channel.id,
                            extra=channel_extra(nxt, past)))
    return mark_private(resp) if private else resp


async def watch(request: web.Request) -> web.Response:
    """``/watch/{broadcast}``; ``/watch/{channel}`` (old stream links) plays the channel's
    live playlist, whichever broadcast is live."""
    state = request.app[STATE]
    ident = request.match_info["stream_id"]
    if not ID_RE.fullmatch(ident):
        return _html(not_found_page(), status=404)
    channel, b = await state.store.read(
        lambda db: (q.get_channel(db, ident),
                    q.get_broadcast(db, ident) or q.latest_broadcast(db, ident)))
    if b is None and channel is not None:
        b = _waiting(channel)
    if b is None:
        return _html(not_found_page(), status=404)
    exchanged = exchange_query_grant(request)
    if exchanged is not None:
        return exchanged
    if channel is not None and not shown_via_channel(b.visibility, channel.visibility):
        b = _waiting(channel)  # its live broadcast is reachable by its own link only
    private = b.visibility is Visibility.PRIVATE
    if private and not has_grant(request, b.channel_id,
                                 None if channel is not None else b.id):
        return private_response(request, b.channel_id)
    chat = state.nostr.page_config(b.id) if state.nostr else None
    play = ident if channel is not None else b.id
    recording = bool(state.delivery and state.delivery.has_recording(b.id))
    resp = _html(watch_page(b, state.service.viewers(b.id), chat, play_id=play,
                            recording=recording))
    return mark_private(resp) if private else resp


def _status_param(request: web.Request) -> BroadcastStatus | None:
    status = request.query.get("status")
    if status is None:
        return None
    if status == "created":  # the pre-channels name of "planned"
        return BroadcastStatus.PLANNED
    try:
        return BroadcastStatus(status)
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "status must be planned, live or ended"}',
            content_type="application/json", headers=CORS) from None


def _legacy(data: dict[str, Any]) -> dict[str, Any]:
    """``/api/streams…`` answers in pre-channels terms: a not-yet-live stream was "created"."""
    if data.get("status") == "planned":
        data["status"] = "created"
    return data


async def api_broadcasts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    broadcasts = await state.service.list_broadcasts(status=_status_param(request), limit=400)
    data = [public_broadcast(state, b) for b in broadcasts if listed(b.visibility)][:200]
    if request.path.startswith("/api/streams"):
        data = [_legacy(d) for d in data]
    return _json(data)


async def api_broadcast(request: web.Request) -> web.Response:
    """``/api/broadcasts/{id}``; the alias ``/api/streams/{id}`` also takes a channel id."""
    state = request.app[STATE]
    ident = request.match_info["broadcast_id"]
    try:
        if request.path.startswith("/api/streams/"):
            b = await _broadcast_or_404(state, ident)
        else:
            if not ID_RE.fullmatch(ident):
                raise web.HTTPNotFound()
            b = await state.service.get_broadcast(ident)
    except (web.HTTPNotFound, LookupError):
        if request.path.startswith("/api/streams/") and ID_RE.fullmatch(ident):
            channel = await state.store.read(lambda db: q.get_channel(db, ident))
            if channel is not None:
                private = check_channel(request, channel.id, json=True)
                resp = _json(_legacy(public_broadcast(state, _waiting(channel))))
                return mark_private(resp) if private else resp
        return _json({"error": "no such broadcast"}, status=404)
    if b.id != ident and not shown_via_channel(
            b.visibility, state.service.channel_visibility(b.channel_id)):
        return _json({"error": "no such broadcast"}, status=404)
    private = check_broadcast(request, b.id, json=True)
    data = public_broadcast(state, b)
    resp = _json(_legacy(data) if request.path.startswith("/api/streams/") else data)
    return mark_private(resp) if private else resp


async def api_channels(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channels = await state.service.list_channels()
    active = await state.store.read(q.active_broadcasts)
    by_channel: dict[str, list[Broadcast]] = {}
    for b in active:
        if listed(b.visibility):
            by_channel.setdefault(b.channel_id, []).append(b)
    return _json([public_channel(state, c, by_channel.get(c.id, [])) for c in channels
                  if listed(c.visibility)])


async def api_channel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ident = request.match_info["channel_id"]
    channel = None
    if ID_RE.fullmatch(ident):
        channel = await state.store.read(lambda db: q.get_channel(db, ident))
    if channel is None:
        return _json({"error": "no such channel"}, status=404)
    private = check_channel(request, channel.id, json=True)
    active = await state.store.read(lambda db: q.active_broadcasts(db, ident))
    active = [b for b in active if shown_via_channel(b.visibility, channel.visibility)]
    resp = _json(public_channel(state, channel, active))
    return mark_private(resp) if private else resp


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
                  "live": sum(1 for lb in state.service.live_broadcasts() if lb.link)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition format 0.0.4."""
    state = request.app[STATE]
    lives = state.service.live_broadcasts()
    srt_malformed = state.srt_ingest.malformed_frames if state.srt_ingest else 0
    lines = [
        "# HELP hearth_up 1 while the appliance runs.", "# TYPE hearth_up gauge", "hearth_up 1",
        "# HELP hearth_streams_publishing Broadcasts with a connected publisher.",
        "# TYPE hearth_streams_publishing gauge",
        f"hearth_streams_publishing {sum(1 for lb in lives if lb.link)}",
        "# HELP hearth_rtmp_connections Open RTMP connections.",
        "# TYPE hearth_rtmp_connections gauge",
        f"hearth_rtmp_connections {len(state.ingest.connections)}",
        "# HELP hearth_rtmp_auth_failures_total Publish attempts refused for a bad key "
        "(RTMP, WHIP and SRT).",
        "# TYPE hearth_rtmp_auth_failures_total counter",
        f"hearth_rtmp_auth_failures_total {state.ingest.throttle.total_failures}",
        "# HELP hearth_rtmp_protocol_errors_total Connections closed for malformed RTMP.",
        "# TYPE hearth_rtmp_protocol_errors_total counter",
        f"hearth_rtmp_protocol_errors_total {state.ingest.protocol_errors}",
        "# HELP hearth_malformed_frames_total Media frames dropped as malformed.",
        "# TYPE hearth_malformed_frames_total counter",
        f"hearth_malformed_frames_total {state.ingest.malformed_frames + srt_malformed}",
        "# HELP hearth_whip_sessions WHIP publishing sessions (negotiating or live).",
        "# TYPE hearth_whip_sessions gauge",
        f"hearth_whip_sessions {len(state.whip.sessions) if state.whip else 0}",
        "# HELP hearth_hls_bytes_total Bytes of HLS segments served.",
        "# TYPE hearth_hls_bytes_total counter",
        f"hearth_hls_bytes_total {state.metrics_hls_bytes}",
        "# HELP hearth_viewers Current viewer sessions.", "# TYPE hearth_viewers gauge",
    ]
    if state.srt is not None:
        lines[-2:-2] = [
            "# HELP hearth_srt_connections Connected SRT publishers.",
            "# TYPE hearth_srt_connections gauge",
            f"hearth_srt_connections {state.srt.connections}",
            "# HELP hearth_srt_rejected_total SRT callers refused in the handshake.",
            "# TYPE hearth_srt_rejected_total counter",
            f"hearth_srt_rejected_total {state.srt.rejected}",
            "# HELP hearth_srt_bytes_dropped_total SRT bytes dropped: the loop fell behind.",
            "# TYPE hearth_srt_bytes_dropped_total counter",
            f"hearth_srt_bytes_dropped_total {state.srt.bytes_dropped}",
        ]
    if state.webrtc is not None:
        sent = state.webrtc.send_totals()
        lines[-2:-2] = [
            "# HELP hearth_webrtc_peers WHEP viewers (negotiating or connected).",
            "# TYPE hearth_webrtc_peers gauge",
            f"hearth_webrtc_peers {len(state.webrtc.peers)}",
            "# HELP hearth_webrtc_rtp_packets_total RTP packets sent to WHEP viewers.",
            "# TYPE hearth_webrtc_rtp_packets_total counter",
            f"hearth_webrtc_rtp_packets_total {sent.packets}",
            "# HELP hearth_webrtc_rtp_dropped_total RTP packets not sent: a viewer's socket "
            "buffer was full.",
            "# TYPE hearth_webrtc_rtp_dropped_total counter",
            f"hearth_webrtc_rtp_dropped_total {sent.dropped}",
            "# HELP hearth_webrtc_rtp_retransmitted_total RTP packets sent again for NACKs.",
            "# TYPE hearth_webrtc_rtp_retransmitted_total counter",
            f"hearth_webrtc_rtp_retransmitted_total {sent.retransmitted}",
            "# HELP hearth_webrtc_nacks_total NACK feedback packets from WHEP viewers.",
            "# TYPE hearth_webrtc_nacks_total counter",
            f"hearth_webrtc_nacks_total {sent.nacks}",
            "# HELP hearth_webrtc_reported_lost_packets Packets WHEP viewers reported lost "
            "(RTCP receiver reports; closed viewers' last figure included).",
            "# TYPE hearth_webrtc_reported_lost_packets gauge",
            f"hearth_webrtc_reported_lost_packets {sent.reported_lost}",
            *_round_trip_lines(state.webrtc.round_trips()),
        ]
    # The label stays "stream" (dashboards keep working); its value is the channel id.
    for lb in lives:
        lines.append(f'hearth_viewers{{stream="{lb.channel_id}"}} {lb.viewers()}')
    lines += hls_metrics(request.app)
    lines += ["# HELP hearth_ingest_bytes_total Media bytes received.",
              "# TYPE hearth_ingest_bytes_total counter"]
    for lb in lives:
        lines.append(
            f'hearth_ingest_bytes_total{{stream="{lb.channel_id}"}} {lb.health().bytes_in}')
    lines += ["# HELP hearth_frames_discarded_total Frames dropped for slow hub readers.",
              "# TYPE hearth_frames_discarded_total counter"]
    for lb in lives:
        lines.append(
            f'hearth_frames_discarded_total{{stream="{lb.channel_id}"}} '
            f"{lb.publisher.frames_discarded}")
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _round_trip_lines(rtts: list[float]) -> list[str]:
    """The median and largest round trip of the viewers that reported one (none: no
    sample), and how many did."""
    lines = ["# HELP hearth_webrtc_round_trip_seconds Round trip to WHEP viewers from their "
             "RTCP receiver reports: median and largest over those that reported one.",
             "# TYPE hearth_webrtc_round_trip_seconds gauge"]
    if rtts:
        lines += [f'hearth_webrtc_round_trip_seconds{{quantile="0.5"}} '
                  f"{rtts[len(rtts) // 2]:.6f}",
                  f'hearth_webrtc_round_trip_seconds{{quantile="1"}} {rtts[-1]:.6f}']
    return [*lines,
            "# HELP hearth_webrtc_round_trip_viewers WHEP viewers whose round trip is known.",
            "# TYPE hearth_webrtc_round_trip_viewers gauge",
            f"hearth_webrtc_round_trip_viewers {len(rtts)}"]


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
    app = web.Application(client_max_size=64 * 1024,
                          middlewares=[not_found_middleware, private_middleware])
    app[STATE] = state
    app.router.add_get("/", discovery)
    app.router.add_get("/c/{channel_id}", channel_page)
    add_owner_routes(app)
    app.router.add_get("/watch/{stream_id}", watch)
    app.router.add_get("/api/channels", api_channels)
    app.router.add_get("/api/channels/{channel_id}", api_channel)
    app.router.add_get("/api/broadcasts", api_broadcasts)
    app.router.add_get("/api/broadcasts/{broadcast_id}", api_broadcast)
    # The pre-channels API, kept as aliases: a stream id is a broadcast or a channel id.
    app.router.add_get("/api/streams", api_broadcasts)
    app.router.add_get("/api/streams/{broadcast_id}", api_broadcast)
    add_hls_routes(app)
    add_whep_routes(app)
    add_whip_routes(app)
    add_chat_routes(app)
    add_vod_routes(app)
    add_access_routes(app)
    app.router.add_get("/static/{name:.+}", static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
