"""RTMP ingest glue: RTMP session events → stream decisions, media units and the hub.

Implements :class:`media.rtmp.server.RtmpHandler`. Decisions (key check, takeover, grace) are the
:class:`~appliance.channels.ChannelService`'s; this module translates between the sans-IO
session and the service, and never blocks: refusals are delayed with ``call_later``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.bus import PublisherRefused
from appliance.channels import INVALID_KEY, ChannelService, PublishRefused
from appliance.config import RtmpConfig
from appliance.domain import STREAM_NAME_RE
from appliance.live import LiveBroadcast
from media.depacketizer import MalformedMediaError, UnsupportedCodecError
from media.rtmp.server import RefusalLog, RtmpConnection, RtmpServerStats
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
LIFT_HINT = "the correct key still works; lift: hearth block lift ADDR, or b in the TUI"
BLOCKED_TEXT = ("invalid stream key; too many wrong keys from this address (the correct key "
                "is still accepted)")


class AuthThrottle:
    """Per-address wrong-key counting: N wrong keys within a window → blocked for a while.

    A block stops *wrong guesses* only (issue 9 §3): the key is always checked, and a correct
    key is accepted whatever the address did before, so a streamer whose OBS retried an old key
    is never locked out once the right key is in. Attempts while blocked are counted but never
    extend the block, and the operator can list and lift blocks.
    """

    def __init__(self, limit: int, window: float, block: float) -> None:
        self.limit, self.window, self.block = limit, window, block
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, _Block] = {}
        self.total_failures = 0

    def blocked(self, addr: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        block = self._blocked.get(addr)
        if block is None:
            return False
        if block.until <= now:
            del self._blocked[addr]
            return False
        return True

    def failure(self, addr: str, now: float | None = None) -> bool:
        """Record a wrong key; True if the address became blocked by it.

        While the address is blocked the attempt is only counted: the block is not extended.
        """
        now = time.monotonic() if now is None else now
        self.total_failures += 1
        if self.blocked(addr, now):
            self._blocked[addr].attempts += 1
            return False
        times = self._failures.pop(addr, None) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[addr] = times
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
        recent = [t for t in times if t > now - self.window]
        if len(recent) >= self.limit:
            self._blocked[addr] = _Block(since=now, until=now + self.block,
                                         failures=len(recent))
            self._failures.pop(addr, None)  # a lifted or expired block starts from zero
            if len(self._blocked) > MAX_TRACKED_ADDRESSES:
                self._blocked.pop(next(iter(self._blocked)))
            return True
        return False

    def success(self, addr: str) -> None:
        """A correct key from ``addr``: forget its wrong guesses (not an active block)."""
        self._failures.pop(addr, None)

    def blocks(self, now: float | None = None) -> list[tuple[str, _Block]]:
        """Active blocks, oldest first."""
        now = time.monotonic() if now is None else now
        for addr in [a for a, b in self._blocked.items() if b.until <= now]:
            del self._blocked[addr]
        return list(self._blocked.items())

    def lift(self, addr: str) -> bool:
        """End ``addr``'s block (and forget its failures); False if it was not blocked."""
        self._failures.pop(addr, None)
        return self._blocked.pop(addr, None) is not None


@dataclass
class _Block:
    since: float
    until: float
    failures: int
    attempts: int = 0
    """Wrong keys tried while blocked (they do not extend the block)."""


class _RefusalSummary:
    """Operator-visible refusal log: the first refusal of a quiet period at once, then one
    summary per ``interval`` (a brute force from many addresses must not flood the event log).
    """

    def __init__(self, emit: Callable[[str, int], None], interval: float = 60.0) -> None:
        self._emit = emit
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._reasons: Counter[str] = Counter()
        self._addresses: set[str] = set()
        self._newly_blocked: list[str] = []

    def add(self, addr: str, text: str, newly_blocked: bool) -> None:
        loop = asyncio.get_running_loop()
        if self._handle is None:
            suffix = (f"; address blocked for wrong guesses ({LIFT_HINT})" if newly_blocked
                      else "")
            self._emit(f"publish refused from {addr}: {text}{suffix}", 1)
            self._handle = loop.call_later(self.interval, self.flush)
            return
        self._reasons[text] += 1
        if len(self._addresses) < 1000:
            self._addresses.add(addr)
        if newly_blocked and len(self._newly_blocked) < 1000:
            self._newly_blocked.append(addr)

    def flush(self) -> None:
        self._handle = None
        if not self._reasons:
            return
        total = sum(self._reasons.values())
        reasons = "; ".join(f"{text} x{n}" for text, n in self._reasons.most_common(5))
        addrs = sorted(self._addresses)
        shown = ", ".join(addrs[:5]) + (", ..." if len(addrs) > 5 else "")
        message = (f"publish refused {total} more time(s) in the last {self.interval:.0f} s "
                   f"from {len(addrs)} address(es) ({shown}): {reasons}")
        if self._newly_blocked:
            blocked = ", ".join(self._newly_blocked[:5])
            more = ", ..." if len(self._newly_blocked) > 5 else ""
            message += f"; address blocked for wrong guesses: {blocked}{more} ({LIFT_HINT})"
        self._emit(message, total)
        self._reasons.clear()
        self._addresses.clear()
        self._newly_blocked.clear()
        # Keep summarising while refusals keep coming; a quiet interval re-enables the
        # immediate first line.
        self._handle = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Link:
    """A publishing RTMP connection as the channel service sees it."""

    protocol = "rtmp"

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
    channel_id: str | None = None
    link: _Link | None = None
    malformed: int = 0
    refused: bool = False
    encoder: str = ""
    codec_errors: set[str] = field(default_factory=set)


class IngestHandler:
    """Receives every RTMP connection's events (see :class:`media.rtmp.server.RtmpHandler`)."""

    def __init__(self, service: ChannelService, config: RtmpConfig) -> None:
        self.service = service
        self.config = config
        self.throttle = AuthThrottle(config.auth_failures_per_ip, config.auth_window,
                                     config.auth_block_seconds)
        self.connections: dict[int, RtmpConnection] = {}
        self._state: dict[int, _ConnState] = {}
        self.refusals = _RefusalSummary(self._refused)
        self.protocol_errors = 0
        self.malformed_frames = 0
        self._health_reported: dict[str, tuple[str, ...]] = {}
        self.rtmp_stats = RtmpServerStats(RefusalLog(logger, "rtmp"))
        """The RTMP server's counters (replaced by the lifecycle with the server's own)."""

    def _refused(self, message: str, count: int) -> None:
        # Already aggregated (first at once, then one summary per interval): the event log
        # and webhooks (publisher.refused) get the same lines, never one per attempt.
        self.service.log("warning", "ingest.refused", message)
        self.service.bus.publish(PublisherRefused(message=message, count=count))

    # ---- RtmpHandler -------------------------------------------------------------------------

    def connection_made(self, conn: RtmpConnection) -> None:
        self.connections[conn.id] = conn
        self._state[conn.id] = _ConnState()

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        self.connections.pop(conn.id, None)
        st = self._state.pop(conn.id, None)
        if st is not None and st.channel_id is not None and st.link is not None:
            reason = f"connection lost: {error}" if error else "connection closed"
            self.service.detach(st.channel_id, st.link, reason)

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        st = self._state.get(conn.id)
        if st is None:
            return
        for ev in events:
            # Media first: it is nearly every event, the rest happen a few times per connection.
            if isinstance(ev, VideoReceived | AudioReceived):
                # Only media parsed before the publish was attached: the sink takes the rest.
                self._media(st, ev.timestamp, ev.body, isinstance(ev, VideoReceived))
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
            if st.channel_id is not None and st.link is not None:
                self.service.detach(st.channel_id, st.link, "publisher stopped")
                st.channel_id = None
        elif isinstance(ev, ProtocolFailed):
            self.protocol_errors += 1
            # Unauthenticated peers' errors are counted by the RTMP server's refusal summary;
            # one line per event would let a flood flood the log.
            if st.channel_id is not None:
                logger.warning("rtmp #%d from %s: protocol error: %s", conn.id, conn.peer[0],
                               ev.error)
                self.service.log("warning", "ingest.protocol_error",
                                 f"publisher sent malformed RTMP: {ev.error}", st.channel_id)
        # ConnectionClosed: connection_lost follows.

    # ---- publish decisions -------------------------------------------------------------------

    def _publish(self, conn: RtmpConnection, st: _ConnState, ev: PublishRequested) -> None:
        if st.app is not None and st.app.split("?")[0].strip("/") != self.config.app:
            self._refuse(conn, st, ev.message_stream_id, PublishRefused(
                "NetStream.Publish.BadName",
                f"unknown application; use rtmp://HOST:{self.config.port}/{self.config.app}"))
            return
        try:
            channel_id = self.check_key(ev.stream_name, conn.peer[0])
        except PublishRefused as refusal:
            self._refuse(conn, st, ev.message_stream_id, refusal, counted=True)
            return
        if not conn.session.accept_publish(ev.message_stream_id):
            return  # the peer withdrew or hung up before the decision: nothing to attach
        st.link = _Link(conn)
        st.channel_id = channel_id
        lb = self.service.attach(channel_id, st.link)
        # From here on the session hands this publish's media straight to the broadcast
        # (media/rtmp/session.py set_media_sink); what accept_publish already parsed is
        # still queued as events and dispatched first. A link is only ever accepted by the
        # broadcast it was attached to, so the sink holds that one.
        conn.session.set_media_sink(functools.partial(self._broadcast_media, st, lb))

    # ---- the ingest-agnostic publisher gate (RTMP, WHIP, SRT, ...) ---------------------------

    def check_key(self, key: str, addr: str) -> str:
        """Check a publisher's key for any ingest protocol; returns the channel id.

        The one gate every ingest goes through: the same constant-time key check, per-address
        wrong-key counting and blocks, and the same aggregated refusal log as RTMP
        (docs/threat-model.md §stream-keys). A refusal is counted here; the caller sends it
        after ``refusal.delay`` seconds (never sleeping on the loop: ``call_later`` or an
        ``await asyncio.sleep`` in its own task).

        Raises:
            PublishRefused: with ``auth=True`` and ``delay`` set.
        """
        try:
            if not STREAM_NAME_RE.fullmatch(key):
                raise PublishRefused("NetStream.Publish.BadName", INVALID_KEY, auth=True)
            # Checked even for a blocked address: a block stops wrong guesses, never the
            # owner's correct key (issue 9 §3).
            channel_id = self.service.authorize(key)
        except PublishRefused as refusal:
            self.count_refusal(addr, refusal)
            raise
        self.throttle.success(addr)
        return channel_id

    def count_refusal(self, addr: str, refusal: PublishRefused) -> None:
        """Count a refusal (throttle, refusal log) and set its ``delay`` and final text."""
        blocked_now = False
        if refusal.auth:
            if self.throttle.blocked(addr):
                # Same code as any wrong key; the text says why retrying is pointless. The
                # full delay (no randomness) keeps a blocked guesser slow.
                self.throttle.failure(addr)
                refusal.description = BLOCKED_TEXT
                refusal.delay = self.config.auth_failure_delay
            else:
                blocked_now = self.throttle.failure(addr)
                # A random delay before a key refusal slows brute force (MediaMTX: 0–4 s).
                refusal.delay = random.uniform(0, self.config.auth_failure_delay)
        self.refusals.add(addr, refusal.description, blocked_now)

    def _refuse(self, conn: RtmpConnection, st: _ConnState, msid: int,
                refusal: PublishRefused, *, counted: bool = False) -> None:
        st.refused = True
        if not counted:
            self.count_refusal(conn.peer[0], refusal)
        code, description, delay = refusal.code, refusal.description, refusal.delay

        def send() -> None:
            # A decision that arrives after the connection moved on is a no-op in the
            # session (it holds parsing while the decision is pending, and a refusal stays
            # definitive), so nothing here can raise for a peer that acted in between.
            if conn.id in self.connections:
                conn.session.reject_publish(msid, code, description)
                conn.flush()

        if delay > 0:
            asyncio.get_running_loop().call_later(delay, send)
        else:
            send()

    # ---- health ------------------------------------------------------------------------------

    def check_health(self) -> None:
        """Periodic: put each live publisher's health warnings in the event log when they
        change (each reason names the OBS setting that fixes it)."""
        live: set[str] = set()
        for lb in self.service.live_broadcasts():
            if lb.link is None:
                continue
            live.add(lb.channel_id)
            snap = lb.health()
            if snap.verdict() == "starting":
                continue
            reasons = tuple(snap.reasons())
            if reasons != self._health_reported.get(lb.channel_id, ()):
                self._health_reported[lb.channel_id] = reasons
                if reasons:
                    self.service.log("warning", "ingest.health",
                                     "publisher settings to fix: " + "; ".join(reasons),
                                     lb.channel_id)
        for channel_id in [k for k in self._health_reported if k not in live]:
            del self._health_reported[channel_id]

    # ---- media -------------------------------------------------------------------------------

    def _media(self, st: _ConnState, timestamp: int, body: bytes, video: bool) -> None:
        """One audio or video message of a publish, from an event (before the sink)."""
        if st.channel_id is None:
            return  # not attached, or detached by an earlier message of this read
        lb: LiveBroadcast | None = self.service.live_broadcast(st.channel_id)
        if lb is not None:
            self._broadcast_media(st, lb, timestamp, body, video)

    def _broadcast_media(self, st: _ConnState, lb: LiveBroadcast, timestamp: int, body: bytes,
                         video: bool) -> None:
        """One audio or video message for ``lb`` (the session's media sink, partially
        applied); dropped when this connection is no longer the broadcast's publisher."""
        if st.channel_id is None or st.link is None or not lb.accepts(st.link):
            return
        try:
            if video:
                lb.video_tag(timestamp, body)
            else:
                lb.audio_tag(timestamp, body)
        except UnsupportedCodecError as exc:
            if exc.codec not in st.codec_errors:
                st.codec_errors.add(exc.codec)
                lb.note_error(str(exc))
                self.service.log("error", "ingest.unsupported_codec", str(exc), st.channel_id)
            st.link.end("NetStream.Publish.Failed", str(exc))
            self.service.detach(st.channel_id, st.link, str(exc))
            st.channel_id = None
        except MalformedMediaError as exc:
            st.malformed += 1
            lb.note_malformed()
            self.malformed_frames += 1
            if st.malformed == 1:
                self.service.log("warning", "ingest.malformed_media", str(exc), st.channel_id)
            if st.malformed > MAX_MALFORMED_FRAMES:
                reason = f"too many malformed frames ({st.malformed}); last: {exc}"
                self.service.log("error", "ingest.malformed_media", reason, st.channel_id)
                st.link.end("NetStream.Publish.Failed", "too many malformed frames")
                self.service.detach(st.channel_id, st.link, reason)
                st.channel_id = None
