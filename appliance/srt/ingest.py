"""SRT ingest glue: callers → key decisions, MPEG-TS → units → the channel's broadcast.

Implements :class:`appliance.srt.server.SrtHandler` on the ingest seam every protocol shares
(docs/architecture.md "The ingest seam"): the key is checked in the SRT handshake, counted by
the RTMP :class:`~appliance.ingest.IngestHandler`'s throttle, blocks and refusal log; an
accepted caller is attached with :meth:`ChannelService.attach` (takeover, reconnect grace,
planned broadcasts, recording, thumbnails, Nostr all follow from there); its MPEG-TS is
demuxed (:mod:`media.ts`) into units for :meth:`LiveBroadcast.publish_units`; a lost caller is
detached into the grace window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from appliance.channels import INVALID_KEY, ChannelService, PublishRefused
from appliance.domain import STREAM_NAME_RE
from appliance.ingest import IngestHandler
from appliance.live import LiveBroadcast
from appliance.srt import libsrt
from appliance.srt.server import SrtConnection
from media.depacketizer import MalformedMediaError, UnsupportedCodecError
from media.ts import PesFrame, ProgramChanged, TsDemuxer, TsDepacketizer, TsError, TsEvent
from media.units import CodecConfig, MediaUnit

logger = logging.getLogger(__name__)

MAX_MALFORMED = 50
"""Malformed frames (or transport damage) within :data:`MALFORMED_WINDOW` seconds that
disconnect an SRT publisher. A window, not a total as on RTMP: SRT drops packets that arrive
too late on a lossy link by design, and a long stream must survive a few of those."""
MALFORMED_WINDOW = 60.0


def stream_key(streamid: str) -> str | None:
    """The stream key a caller's ``streamid`` names; None if it asks for something else.

    Accepted forms: the key itself (``srt://HOST:8890?streamid=KEY``); SRT's access-control
    syntax ``#!::r=KEY,m=publish`` (SRT AccessControl.md; ``m`` absent means publish here); and
    MediaMTX's ``publish:KEY``, so OBS profiles made for MediaMTX carry over.
    """
    if streamid.startswith("#!::"):
        fields: dict[str, str] = {}
        for item in streamid[4:].split(","):
            name, sep, value = item.partition("=")
            if not sep or name in fields:
                return None
            fields[name] = value
        if fields.get("m", "publish") != "publish":
            return None
        return fields.get("r")
    if streamid.startswith("publish:"):
        return streamid[len("publish:"):]
    if ":" in streamid:
        return None  # MediaMTX's read:... and other actions
    return streamid


class _SrtLink:
    """An SRT publisher as the channel service sees it (a ``PublisherLink``)."""

    protocol = "srt"

    def __init__(self, conn: SrtConnection) -> None:
        self.conn = conn
        self.id = conn.id
        self.remote = f"{conn.peer[0]}:{conn.peer[1]}"
        self.connected_at = conn.connected_at

    def end(self, code: str, description: str) -> None:
        # SRT has no status message after the handshake: the caller sees the connection end.
        self.conn.close()


@dataclass
class _State:
    channel_id: str
    link: _SrtLink
    demuxer: TsDemuxer = field(default_factory=TsDemuxer)
    units: TsDepacketizer = field(default_factory=TsDepacketizer)
    malformed: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_MALFORMED + 1))
    malformed_total: int = 0


class SrtIngest:
    """Receives every SRT caller's events (see :class:`appliance.srt.server.SrtHandler`)."""

    def __init__(self, handler: IngestHandler, service: ChannelService) -> None:
        self.handler = handler
        self.service = service
        self._loop = asyncio.get_running_loop()
        self._state: dict[int, _State] = {}
        self.malformed_frames = 0

    # ---- libsrt's thread: the handshake ------------------------------------------------------

    def authorize(self, streamid: str, peer: tuple[str, int]) -> int:
        """Accept or reject a caller from its ``streamid`` (docs/threat-model.md §srt).

        Runs on libsrt's receive thread, so it only computes: the constant-time key check reads
        the channel service's key table (a dict read, safe under the GIL), and the counting
        (throttle, blocks, refusal log) is handed to the loop.
        """
        addr = peer[0]
        key = stream_key(streamid)
        if key is None:
            refusal = PublishRefused("NetStream.Publish.BadName",
                                     "SRT stream id asks for something other than publishing")
            self._loop.call_soon_threadsafe(self.handler.count_refusal, addr, refusal)
            return libsrt.SRT_REJX_BAD_MODE
        try:
            if not STREAM_NAME_RE.fullmatch(key):
                raise PublishRefused("NetStream.Publish.BadName", INVALID_KEY, auth=True)
            self.service.authorize(key)
        except PublishRefused as refusal:
            self._loop.call_soon_threadsafe(self.handler.count_refusal, addr, refusal)
            return libsrt.SRT_REJX_UNAUTHORIZED
        self._loop.call_soon_threadsafe(self.handler.throttle.success, addr)
        return 0

    # ---- the loop ----------------------------------------------------------------------------

    def connection_made(self, conn: SrtConnection) -> None:
        key = stream_key(conn.streamid) or ""
        try:
            # Again on the loop: the key may have been rotated since the handshake.
            channel_id = self.service.authorize(key)
        except PublishRefused:
            conn.close()
            return
        link = _SrtLink(conn)
        self._state[conn.id] = _State(channel_id, link)
        self.service.attach(channel_id, link)

    def connection_lost(self, conn: SrtConnection, reason: str) -> None:
        st = self._state.pop(conn.id, None)
        if st is None:
            return
        lb = self.service.live_broadcast(st.channel_id)
        if lb is not None and lb.accepts(st.link):
            self._media(st, lb, st.demuxer.flush())  # the last access unit ends here
        self.service.detach(st.channel_id, st.link, f"SRT connection lost: {reason}"
                            if reason != "closed by Hearth" else reason)

    def data_received(self, conn: SrtConnection, data: bytes) -> None:
        st = self._state.get(conn.id)
        if st is None:
            return
        lb = self.service.live_broadcast(st.channel_id)
        if lb is None or not lb.accepts(st.link):
            return
        try:
            events = st.demuxer.feed(data)
        except TsError as exc:
            self._fail(st, lb, "ingest.malformed_media",
                       f"the SRT publisher does not send MPEG-TS ({exc}); set the output "
                       "format to mpegts")
            return
        self._media(st, lb, events)

    def _media(self, st: _State, lb: LiveBroadcast, events: list[TsEvent]) -> None:
        outputs: list[MediaUnit | CodecConfig] = []
        for ev in events:
            try:
                if isinstance(ev, PesFrame):
                    outputs += st.units.frame(ev)
                elif isinstance(ev, ProgramChanged):
                    st.units.program(ev)
                else:
                    self._malformed(st, lb, ev.reason)
            except UnsupportedCodecError as exc:
                lb.publish_units(outputs)
                lb.note_error(str(exc))
                self._fail(st, lb, "ingest.unsupported_codec", str(exc))
                return
            except MalformedMediaError as exc:
                self._malformed(st, lb, str(exc))
            if st.link.conn.closed:
                return
        if outputs:
            lb.publish_units(outputs)

    def _malformed(self, st: _State, lb: LiveBroadcast, reason: str) -> None:
        st.malformed_total += 1
        self.malformed_frames += 1
        lb.note_malformed()
        now = time.monotonic()
        st.malformed.append(now)
        if st.malformed_total == 1:
            self.service.log("warning", "ingest.malformed_media", f"SRT: {reason}",
                             st.channel_id)
        if len(st.malformed) > MAX_MALFORMED and now - st.malformed[0] < MALFORMED_WINDOW:
            self._fail(st, lb, "ingest.malformed_media",
                       f"too many malformed frames over SRT ({len(st.malformed)} in "
                       f"{MALFORMED_WINDOW:.0f} s); last: {reason}")

    def _fail(self, st: _State, lb: LiveBroadcast, kind: str, reason: str) -> None:
        self.service.log("error", kind, reason, st.channel_id)
        st.link.end("NetStream.Publish.Failed", reason)
        self.service.detach(st.channel_id, st.link, reason)
        self._state.pop(st.link.id, None)
