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

from appliance.api.admin_common import (
    STATE,
    error_response,
    json_body,
    stream_id_param,
)
from appliance.api.schema import (
    AdminStream,
    IngestInfo,
    LogEvent,
    Status,
    StreamCredentials,
)
from appliance.db import queries as q
from appliance.domain import STREAM_ID_RE, Stream, StreamFields, StreamState, ValidationError
from appliance.state import AppState
from appliance.streams import StreamEnded, StreamNotFound

# Short local names for the shared helpers (the route code below predates admin_common).
_error = error_response
_body = json_body
_stream_id = stream_id_param


def app_version() -> str:
    try:
        return version("hearth")
    except PackageNotFoundError:
        return "dev"


def admin_stream(state: AppState, stream: Stream) -> AdminStream:
    base = state.config.public_base_url
    ls = state.service.live_stream(stream.id)
    ingest = None
    if ls is not None and ls.link is not None:
        snap = ls.health.snapshot()
        ingest = IngestInfo(
            connection_id=ls.link.id, remote=ls.link.remote, connected_at=ls.link.connected_at,
            bitrate_kbps=snap.bitrate_kbps, fps=snap.fps, width=snap.width, height=snap.height,
            keyframe_interval=snap.keyframe_interval, bframes=snap.bframes,
            video_codec=snap.video_codec, audio_codec=snap.audio_codec,
            sample_rate=snap.sample_rate, channels=snap.channels, verdict=snap.verdict(),
            bytes_in=snap.bytes_in, frames_discarded=ls.publisher.frames_discarded,
            reconnects=ls.reconnects, verdict_reasons=snap.reasons(),
        )
    live = ls is not None and not ls.ended
    return AdminStream(
        id=stream.id, title=stream.title, summary=stream.summary, tags=list(stream.tags),
        image=stream.image, status=stream.status.value, created_at=stream.created_at,
        started_at=stream.started_at, ended_at=stream.ended_at,
        viewers=state.service.viewers(stream.id),
        peak_viewers=max(stream.peak_viewers, ls.viewers.peak if live and ls else 0),
        total_viewers=max(stream.total_viewers, ls.viewers.total if live and ls else 0),
        watch_url=f"{base}/watch/{stream.id}", hls_url=f"{base}/hls/{stream.id}/index.m3u8",
        publishing=bool(ls and ls.link), grace_until=ls.grace_until if ls else None,
        ingest=ingest,
    )


def credentials(state: AppState, stream: Stream, key: str) -> StreamCredentials:
    base = state.config.public_base_url
    return StreamCredentials(
        id=stream.id, title=stream.title, rtmp_url=state.config.rtmp_url, stream_key=key,
        watch_url=f"{base}/watch/{stream.id}", hls_url=f"{base}/hls/{stream.id}/index.m3u8",
    )


def _fields(data: dict[str, Any], current: Stream | None = None) -> StreamFields:
    def text(name: str, default: str) -> str:
        value = data.get(name, default)
        if not isinstance(value, str):
            raise ValidationError(name, "must be a string")
        return value

    tags = data.get("tags", list(current.tags) if current else [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError("tags", "must be a list of strings")
    return StreamFields(
        title=text("title", current.title if current else ""),
        summary=text("summary", current.summary if current else ""),
        tags=tuple(tags),
        image=text("image", current.image if current else ""),
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except ValidationError as exc:
        return _error(400, str(exc), exc.field)
    except StreamNotFound as exc:
        return _error(404, f"no stream {exc.args[0]!r}")
    except StreamEnded:
        return _error(409, "the stream has ended; create a new one")


async def get_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = await state.store.read(
        lambda db: dict(db.execute("SELECT status, COUNT(*) FROM streams GROUP BY status")))
    errors = await state.store.read(lambda db: q.list_events(db, 200))
    recent = [LogEvent.from_dict(e) for e in errors if e["level"] in ("warning", "error")][:5]
    lives = [ls for ls in state.service.live_streams() if not ls.ended]
    status = Status(
        version=app_version(), started_at=state.started_at,
        uptime=round(time.time() - state.started_at, 1),
        public_url=state.config.public_base_url, rtmp_url=state.config.rtmp_url,
        data_dir=str(state.config.data_path), streams_total=sum(counts.values()),
        streams_live=counts.get("live", 0), publishers=sum(1 for ls in lives if ls.link),
        viewers=sum(ls.viewers.current() for ls in lives),
        rtmp_connections=len(state.ingest.connections),
        auth_failures=state.ingest.throttle.total_failures,
        frames_discarded=sum(ls.publisher.frames_discarded for ls in lives),
        recent_errors=recent,
        blocked_addresses=len(state.ingest.throttle.blocks()),
        rtmp_refused=sum(state.ingest.rtmp_stats.refusals.totals.values()),
        ingest_warnings=[f"{ls.stream_id}: {reason}" for ls in lives if ls.link
                         for reason in ls.health.snapshot().reasons()],
    )
    return web.json_response(status.to_dict())


async def list_streams(request: web.Request) -> web.Response:
    state = request.app[STATE]
    status = request.query.get("status")
    wanted = None
    if status:
        try:
            wanted = StreamState(status)
        except ValueError:
            return _error(400, "status must be created, live or ended", "status")
    streams = await state.service.list_streams(wanted)
    return web.json_response([admin_stream(state, s).to_dict() for s in streams])


async def create_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream, key = await state.service.create(_fields(await _body(request)))
    return web.json_response(credentials(state, stream, key).to_dict(), status=201)


async def get_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream = await state.service.get(_stream_id(request))
    return web.json_response(admin_stream(state, stream).to_dict())


async def update_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream_id = _stream_id(request)
    current = await state.service.get(stream_id)
    stream = await state.service.update(stream_id, _fields(await _body(request), current))
    return web.json_response(admin_stream(state, stream).to_dict())


async def delete_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream_id = _stream_id(request)
    await state.service.delete(stream_id)
    return web.json_response({"id": stream_id, "deleted": True})


async def end_stream(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream = await state.service.end(_stream_id(request))
    return web.json_response(admin_stream(state, stream).to_dict())


async def rotate_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stream, key = await state.service.rotate_key(_stream_id(request))
    return web.json_response(credentials(state, stream, key).to_dict())


async def list_events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(400, "limit must be an integer", "limit")
    stream_id = request.query.get("stream")
    if stream_id is not None and not STREAM_ID_RE.fullmatch(stream_id):
        return _error(400, "bad stream id", "stream")
    events = await state.store.read(lambda db: q.list_events(db, limit, stream_id))
    return web.json_response(events)


def add_stream_routes(app: web.Application) -> None:
    """Register the status, stream and event-log routes (see :mod:`appliance.api.admin_app`)."""
    app.middlewares.append(errors_middleware)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/streams", list_streams)
    app.router.add_post("/v1/streams", create_stream)
    app.router.add_get("/v1/streams/{stream_id}", get_stream)
    app.router.add_patch("/v1/streams/{stream_id}", update_stream)
    app.router.add_delete("/v1/streams/{stream_id}", delete_stream)
    app.router.add_post("/v1/streams/{stream_id}/end", end_stream)
    app.router.add_post("/v1/streams/{stream_id}/rotate-key", rotate_key)
    app.router.add_get("/v1/events", list_events)
