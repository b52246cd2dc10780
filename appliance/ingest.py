"""RTMP ingest glue: RTMP session events → stream decisions, media units and the hub.

Implements :class:`media.rtmp.server.RtmpHandler`. Decisions (key check, throttling, takeover)
are the :class:`~appliance.streams.StreamService`'s; this module translates between the sans-IO
session and the service, and never blocks: refusals are delayed with ``call_later``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from appliance.config import RtmpConfig
from appliance.domain import STREAM_NAME_RE, redact_key
from appliance.streams import LiveStream, PublishRefused, StreamService
from media.depacketizer import MalformedMediaError, UnsupportedCodecError
from media.rtmp.server import RtmpConnection
from media.rtmp.session import (
    AudioReceived,
    Connected,
    ProtocolFailed,
    PublishRequested,
    RtmpEvent,
    StreamMetadata,
    Unpublished,
    VideoReceived,
)

logger = logging.getLogger(__name__)

MAX_MALFORMED_FRAMES = 50
"""Malformed frames tolerated on one connection before the publisher is disconnected."""
MAX_TRACKED_ADDRESSES = 10_000


class AuthThrottle:
    """Per-address failure counting: N wrong keys within a window → blocked for a while."""

    def __init__(self, limit: int, window: float, block: float) -> None:
        self.limit, self.window, self.block = limit, window, block
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}
        self.total_failures = 0

    def blocked(self, addr: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        until = self._blocked.get(addr)
        if until is None:
            return False
        if until <= now:
            del self._blocked[addr]
            return False
        return True

    def failure(self, addr: str, now: float | None = None) -> bool:
        """Record a failure; True if the address is now blocked."""
        now = time.monotonic() if now is None else now
        self.total_failures += 1
        times = self._failures.pop(addr, None) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[addr] = times
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
        recent = [t for t in times if t > now - self.window]
        if len(recent) >= self.limit:
            self._blocked[addr] = now + self.block
            if len(self._blocked) > MAX_TRACKED_ADDRESSES:
                self._blocked.pop(next(iter(self._blocked)))
            return True
        return False


class _Link:
    """A publishing RTMP connection as the stream service sees it."""

    def __init__(self, conn: RtmpConnection) -> None:
        self.conn = conn
        self.id = conn.id
        self.remote = f"{conn.peer[0]}:{conn.peer[1]}"
        self.connected_at = time.time()

    def end(self, code: str, description: str) -> None:
        self.conn.session.close(code, description)
        self.conn.flush()


@dataclass
class _ConnState:
    app: str | None = None
    stream_id: str | None = None
    link: _Link | None = None
    malformed: int = 0
    refused: bool = False
    encoder: str = ""
    codec_errors: set[str] = field(default_factory=set)


class IngestHandler:
    """Receives every RTMP connection's events (see :class:`media.rtmp.server.RtmpHandler`)."""

    def __init__(self, service: StreamService, config: RtmpConfig) -> None:
        self.service = service
        self.config = config
        self.throttle = AuthThrottle(config.auth_failures_per_ip, config.auth_window,
                                     config.auth_block_seconds)
        self.connections: dict[int, RtmpConnection] = {}
        self._state: dict[int, _ConnState] = {}
        self._last_refusal_log: dict[str, float] = {}
        self.protocol_errors = 0
        self.malformed_frames = 0

    # ---- RtmpHandler -------------------------------------------------------------------------

    def connection_made(self, conn: RtmpConnection) -> None:
        self.connections[conn.id] = conn
        self._state[conn.id] = _ConnState()

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        self.connections.pop(conn.id, None)
        st = self._state.pop(conn.id, None)
        if st is not None and st.stream_id is not None and st.link is not None:
            reason = f"connection lost: {error}" if error else "connection closed"
            self.service.detach(st.stream_id, st.link, reason)

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        st = self._state.get(conn.id)
        if st is None:
            return
        for ev in events:
            # Media first: it is nearly every event, the rest happen a few times per connection.
            if isinstance(ev, VideoReceived | AudioReceived):
                if st.stream_id is not None:
                    self._media(conn, st, ev)
            else:
                self._control_event(conn, st, ev)

    def _control_event(self, conn: RtmpConnection, st: _ConnState, ev: RtmpEvent) -> None:
        if isinstance(ev, Connected):
            st.app = ev.app
        elif isinstance(ev, PublishRequested):
            self._publish(conn, st, ev)
        elif isinstance(ev, StreamMetadata):
            encoder = ev.values.get("encoder")
            if isinstance(encoder, str):
                st.encoder = encoder[:100]
        elif isinstance(ev, Unpublished):
            if st.stream_id is not None and st.link is not None:
                self.service.detach(st.stream_id, st.link, "publisher stopped")
                st.stream_id = None
        elif isinstance(ev, ProtocolFailed):
            self.protocol_errors += 1
            logger.warning("rtmp #%d from %s: protocol error: %s", conn.id, conn.peer[0],
                           ev.error)
            if st.stream_id is not None:
                self.service.log("warning", "ingest.protocol_error",
                                 f"publisher sent malformed RTMP: {ev.error}", st.stream_id)
        # ConnectionClosed: connection_lost follows.

    # ---- publish decisions -------------------------------------------------------------------

    def _publish(self, conn: RtmpConnection, st: _ConnState, ev: PublishRequested) -> None:
        addr = conn.peer[0]
        name = ev.stream_name
        try:
            if self.throttle.blocked(addr):
                raise PublishRefused("NetStream.Publish.BadName",
                                     "too many invalid stream keys; try again later", auth=True)
            if st.app is not None and st.app.split("?")[0].strip("/") != self.config.app:
                raise PublishRefused(
                    "NetStream.Publish.BadName",
                    f"unknown application; use rtmp://HOST:{self.config.port}/{self.config.app}",
                )
            if not STREAM_NAME_RE.fullmatch(name):
                raise PublishRefused("NetStream.Publish.BadName",
                                     "invalid stream key (check OBS Settings → Stream)",
                                     auth=True)
            stream_id = self.service.authorize(name)
        except PublishRefused as refusal:
            self._refuse(conn, st, ev.message_stream_id, refusal, name)
            return
        conn.session.accept_publish(ev.message_stream_id)
        st.link = _Link(conn)
        st.stream_id = stream_id
        self.service.attach(stream_id, st.link)

    def _refuse(self, conn: RtmpConnection, st: _ConnState, msid: int, refusal: PublishRefused,
                name: str) -> None:
        addr = conn.peer[0]
        st.refused = True
        blocked_now = False
        if refusal.auth:
            blocked_now = self.throttle.failure(addr)
        # Throttled logging: one line per address per minute (a brute force must not flood
        # the log), but always log the moment an address gets blocked.
        now = time.monotonic()
        if blocked_now or now - self._last_refusal_log.get(addr, -1e9) > 60:
            self._last_refusal_log[addr] = now
            if len(self._last_refusal_log) > MAX_TRACKED_ADDRESSES:
                self._last_refusal_log.pop(next(iter(self._last_refusal_log)))
            suffix = "; address blocked for a while" if blocked_now else ""
            self.service.log("warning", "ingest.refused",
                             f"publish refused from {addr} (key {redact_key(name)}): "
                             f"{refusal.description}{suffix}")

        def send() -> None:
            if conn.id in self.connections:
                conn.session.reject_publish(msid, refusal.code, refusal.description)
                conn.flush()

        # A random delay before a key refusal slows brute force (MediaMTX waits 0–4 s).
        delay = random.uniform(0, self.config.auth_failure_delay) if refusal.auth else 0.0
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, send)
        else:
            send()

    # ---- media -------------------------------------------------------------------------------

    def _media(self, conn: RtmpConnection, st: _ConnState,
               ev: VideoReceived | AudioReceived) -> None:
        assert st.stream_id is not None
        ls: LiveStream | None = self.service.live_stream(st.stream_id)
        if ls is None or ls.link is not st.link:
            return
        try:
            if isinstance(ev, VideoReceived):
                outputs = ls.depacketizer.video_tag(ev.timestamp, ev.body)
            else:
                outputs = ls.depacketizer.audio_tag(ev.timestamp, ev.body)
        except UnsupportedCodecError as exc:
            if exc.codec not in st.codec_errors:
                st.codec_errors.add(exc.codec)
                ls.last_error = str(exc)
                self.service.log("error", "ingest.unsupported_codec", str(exc), st.stream_id)
            assert st.link is not None
            st.link.end("NetStream.Publish.Failed", str(exc))
            self.service.detach(st.stream_id, st.link, str(exc))
            st.stream_id = None
            return
        except MalformedMediaError as exc:
            st.malformed += 1
            ls.malformed_frames += 1
            self.malformed_frames += 1
            if st.malformed == 1:
                self.service.log("warning", "ingest.malformed_media", str(exc), st.stream_id)
            if st.malformed > MAX_MALFORMED_FRAMES:
                reason = f"too many malformed frames ({st.malformed}); last: {exc}"
                self.service.log("error", "ingest.malformed_media", reason, st.stream_id)
                assert st.link is not None
                st.link.end("NetStream.Publish.Failed", "too many malformed frames")
                self.service.detach(st.stream_id, st.link, reason)
                st.stream_id = None
            return
        ls.ingest_frames(outputs)
