"""WebRTC playback (WHEP, draft-ietf-wish-whep): one :class:`StreamSource` per stream fans
pre-encoded media out to that stream's peers.

Per stream, once: a hub reader (so a slow peer never stalls ingest), H.264 access units
split into RTP payloads (SPS/PPS before each IDR) and kept in a retransmission history, and
AAC → Opus in a worker thread (batched). Per peer: an aiortc ``RTCPeerConnection`` for
signalling, ICE and DTLS only; its senders are taken over (:mod:`media.webrtc.compat`) and
each frame goes to every peer in one pass of :mod:`media.webrtc.fanout` (header rewrite,
SRTP in place, one ``sendto`` per packet); NACKs are served from the history, sender reports
go out every second from one timer per stream. Nothing is re-encoded. The answer names the
H.264 profile the stream really has (:mod:`media.webrtc.profile`, RFC 6184 §8.2.2); an
offer that cannot decode it is refused with 422 and the reason. Limits
(docs/threat-model.md §whep): SDP size, m-lines, pending negotiations globally and per
address, peers in total, a connect timeout that frees everything, unguessable resource URLs,
and the stray-datagram guard on every ICE socket.
Sources with B-frames are refused (WebRTC has no reordering buffer to speak of): the viewer
gets the reason, the operator gets an event-log entry, HLS carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

from appliance.analytics.service import AnalyticsService
from appliance.channels import ChannelService
from appliance.config import WebRtcConfig
from appliance.hub import Discontinuity, Publisher
from appliance.live import LiveBroadcast
from appliance.tasks import BackgroundTasks
from media.units import CLOCK_RATE, AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig
from media.webrtc import compat
from media.webrtc.fanout import Outbound, Sink
from media.webrtc.gathering import NoUdpPort, OfferNotAnswerable, answer_with_gathering
from media.webrtc.guard import DatagramGuard
from media.webrtc.opus import AacToOpus
from media.webrtc.profile import (
    H264Answer,
    ProfileLevelId,
    ProfileMismatch,
    choose_h264,
    h264_offers,
)
from media.webrtc.rtp import MediaClock, access_unit_nalus, h264_payloads
from media.webrtc.tracks import SenderTrack

logger = logging.getLogger(__name__)

MAX_M_LINES = 8
"""A WHEP offer needs two m-lines (video, audio); hundreds only cost parsing time."""
MAX_AUDIO_BACKLOG = 500
"""AAC units waiting for the Opus worker (~10 s); older ones are dropped."""
AUDIO_BATCH = 4
"""AAC units (~85 ms) handed to the Opus worker at once: each hand-off costs the loop thread
GIL switches; the sender reports keep audio and video in sync at the receiver."""
REPORT_SECONDS = 1.0
"""RTCP sender report interval per viewer (RFC 3550 §6.2: a fixed 1 s is within what the
5 % RTCP bandwidth share allows at WebRTC rates; browsers need SRs for A/V sync)."""
OPUS_CLOCK = 48_000
VIEWER_TOUCH_SECONDS = 5.0
BFRAMES_REASON = ("WebRTC is unavailable for this stream: the source video uses B-frames "
                  "(set B-frames to 0 in the encoder, e.g. OBS x264 option bframes=0, or turn "
                  "on the ladder: hearth channel edit {channel} --ladder 720p); "
                  "HLS playback is unaffected")
LADDER_STARTING = ("the source uses B-frames and the quality ladder's WebRTC rendition is not "
                   "encoding yet; retry in a few seconds")


class WhepError(Exception):
    """A refusal with an HTTP status and a human-readable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class Peer:
    token: str
    stream_id: str
    remote: str
    pc: RTCPeerConnection
    sinks: dict[str, Sink] = field(default_factory=dict)
    """Per kind, once aiortc started the sender (DTLS up)."""
    created: float = field(default_factory=time.monotonic)
    connected: bool = False
    pending: bool = True
    closed: bool = False
    guards: list[DatagramGuard] = field(default_factory=list)
    timeout: asyncio.TimerHandle | None = None
    broadcast_id: str = ""
    viewer_address: str = ""
    """The client address for analytics (the proxied client behind a local edge)."""
    user_agent: str = ""
    """Read once for analytics' device class when the peer connects; never stored."""

    @property
    def datagrams_dropped(self) -> int:
        return sum(g.dropped for g in self.guards)


async def _paced(pass_: Iterator[None]) -> None:
    """Run a fan-out pass, letting the loop run between its slices (fanout.SLICE_PACKETS):
    a keyframe to hundreds of viewers must not hold ingest and HTTP for tens of ms."""
    for _ in pass_:
        await asyncio.sleep(0)


class StreamSource:
    """The per-stream fan-out: hub reader → shared packets → every peer's tracks."""

    def __init__(self, manager: WebRtcManager, ls: LiveBroadcast, key: str,
                 publisher: Publisher) -> None:
        self.manager = manager
        self.ls = ls
        self.key = key
        """The id peers asked for (a channel or broadcast id): the key of ``manager.sources``."""
        self.publisher = publisher
        """The source's hub, or a B-frame-free ladder rendition's (``webrtc_publisher``)."""
        self.peers: set[Peer] = set()
        self.video = Outbound("video", 90_000, self._sink_failed)
        self.audio = Outbound("audio", OPUS_CLOCK, self._sink_failed)
        self.clock = MediaClock()
        self._report_timer: asyncio.TimerHandle | None = None
        self.reader = publisher.add_reader(f"webrtc:{publisher.name}")
        # A WHIP publisher's own Opus goes to viewers as sent; AAC is transcoded only for
        # publishers that send AAC (RTMP).
        self.opus_reader = ls.open_opus_reader(f"webrtc-opus:{ls.broadcast_id}")
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        # Owned by the Opus worker: only _transcode (run by _transcode_loop, one batch at a
        # time) reads or replaces it; the loop passes the config and a reset flag instead.
        self._transcoder: AacToOpus | None = None
        self._audio_pending: list[MediaUnit] = []
        self._audio_task: asyncio.Task[None] | None = None
        self._reset_audio = False
        self._max_pts: int | None = None
        self.closed = False
        self.task = manager.tasks.spawn(self._run(), name=f"webrtc-{key}")
        manager.tasks.spawn(self._run_opus(), name=f"webrtc-opus-{key}")

    async def _run(self) -> None:
        try:
            while (item := await self.reader.get()) is not None:
                if isinstance(item, MediaUnit):
                    if item.kind is TrackKind.VIDEO:
                        if not await self._video(item):
                            return
                    else:
                        self._audio(item)
                elif isinstance(item, CodecConfig):
                    self.video_config = item.video
                    self.audio_config = item.audio  # the worker rebuilds on a change
                elif isinstance(item, Discontinuity):
                    self._max_pts = None
                    self._reset_audio = True
        except Exception:
            logger.exception("[%s] WebRTC source failed", self.key)
        finally:
            self.reader.close()
            self.manager._source_done(self)

    async def _video(self, unit: MediaUnit) -> bool:
        if self._max_pts is not None and unit.pts < self._max_pts:
            self.manager.refuse_bframes(self.key)
            return False
        self._max_pts = unit.pts if self._max_pts is None else max(self._max_pts, unit.pts)
        config = self.video_config
        if config is None or not self.video.sinks:
            return True
        try:
            payloads = h264_payloads(access_unit_nalus(unit.data, config))
        except ValueError:
            return True  # malformed access unit: HLS counts it; here it is just skipped
        self.clock.observe(unit.pts / CLOCK_RATE, unit.arrival)
        await _paced(self.video.send_in_slices([(payloads, unit.pts, unit.keyframe)]))
        return True

    async def _run_opus(self) -> None:
        try:
            while (item := await self.opus_reader.get()) is not None:
                if isinstance(item, MediaUnit) and self.ls.native_opus and self.audio.sinks:
                    # RFC 7587 §4.1: the 48 kHz RTP clock, on the broadcast's timeline.
                    await _paced(self.audio.send_in_slices(
                        [([item.data], item.dts * OPUS_CLOCK // CLOCK_RATE, True)],
                        marker_last=False))
        finally:
            self.opus_reader.close()

    def _audio(self, unit: MediaUnit) -> None:
        if self.ls.native_opus:
            return  # the publisher's own Opus is forwarded by _run_opus
        if self.audio_config is None or not self.audio.sinks:
            return
        self._audio_pending.append(unit)
        if len(self._audio_pending) > MAX_AUDIO_BACKLOG:
            del self._audio_pending[: len(self._audio_pending) - MAX_AUDIO_BACKLOG]
        if len(self._audio_pending) >= AUDIO_BATCH and (
                self._audio_task is None or self._audio_task.done()):
            self._audio_task = self.manager.tasks.spawn(
                self._transcode_loop(), name=f"opus-{self.key}")

    async def _transcode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._audio_pending and self.audio_config is not None:
            batch, self._audio_pending = self._audio_pending, []
            config = self.audio_config
            reset, self._reset_audio = self._reset_audio, False
            try:
                packets = await loop.run_in_executor(
                    self.manager.executor, self._transcode, config, batch, reset)
            except Exception:
                logger.exception("[%s] AAC → Opus failed", self.key)
                return
            await _paced(self.audio.send_in_slices(packets, marker_last=False))

    def _transcode(self, config: AudioConfig, units: list[MediaUnit], reset: bool
                   ) -> list[tuple[list[bytes], int, bool]]:
        # Worker thread: PyAV releases the GIL in libavcodec; the loop never waits on this.
        # Results come back as plain (payloads, 48 kHz timestamp, keyframe) tuples, ready for
        # Outbound.send, so the loop does no per-packet work on them.
        if self._transcoder is None or self._transcoder.config != config:
            self._transcoder = AacToOpus(config, self.manager.config.opus_bitrate)
        elif reset:
            self._transcoder.reset()
        return [([bytes(p)], int(p.pts or 0), True) for p in self._transcoder.transcode(units)]

    # ---- viewers ---------------------------------------------------------------------------

    def attach(self, peer: Peer, sink: Sink) -> None:
        """A peer's sender started: send it media from now on (video from a keyframe)."""
        if self.closed or peer.closed or peer not in self.peers:
            return
        outbound = self.video if sink.params.kind == "video" else self.audio
        old = peer.sinks.get(sink.params.kind)
        if old is not None:
            outbound.detach(old)
        peer.sinks[sink.params.kind] = sink
        outbound.attach(sink)
        if self._report_timer is None:
            self._report_timer = asyncio.get_running_loop().call_later(
                REPORT_SECONDS, self._report)

    def detach(self, peer: Peer) -> None:
        self.peers.discard(peer)
        for kind, sink in peer.sinks.items():
            (self.video if kind == "video" else self.audio).detach(sink)

    def reception(self, peer: Peer, kind: str, report: compat.ReceptionReport) -> None:
        sink = peer.sinks.get(kind)
        if sink is not None:
            (self.video if kind == "video" else self.audio).receive_report(
                sink, report, time.time())

    def feedback(self, peer: Peer, kind: str, what: str, lost: list[int]) -> None:
        sink = peer.sinks.get(kind)
        if sink is None:
            return
        outbound = self.video if kind == "video" else self.audio
        if what == "nack":
            outbound.nack(sink, lost)
        else:
            outbound.pli(sink)

    def _report(self) -> None:
        self._report_timer = None
        if self.closed or not (self.video.sinks or self.audio.sinks):
            return
        now = time.time()
        media = self.clock.media_seconds(now)
        self.video.report(now, media)
        self.audio.report(now, media)
        self._report_timer = asyncio.get_running_loop().call_later(REPORT_SECONDS, self._report)

    def _sink_failed(self, sink: Sink) -> None:
        for peer in list(self.peers):
            if any(s is sink for s in peer.sinks.values()):
                logger.info("[%s] WebRTC peer %s: send failed (%s), closing", self.key,
                            peer.remote, sink.error)
                self.manager.tasks.spawn(self.manager._close_peer(peer),
                                         name=f"webrtc-close-{peer.token[:6]}")

    def close(self) -> None:
        self.closed = True
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        self.reader.close()
        self.opus_reader.close()


@dataclass
class SendTotals:
    """RTP send counters of every WHEP peer since start (closed peers included)."""

    packets: int = 0
    dropped: int = 0
    retransmitted: int = 0
    nacks: int = 0
    reported_lost: int = 0
    """Packets the viewers last reported lost in all (RFC 3550 §6.4.1 cumulative number of
    packets lost: what retransmission did not repair in time)."""

    def add(self, sinks: Iterable[Sink]) -> None:
        for sink in sinks:
            self.packets += sink.packets
            self.dropped += sink.dropped
            self.retransmitted += sink.retransmitted
            self.nacks += sink.nacks
            self.reported_lost += sink.lost


class WebRtcManager:
    """Every WHEP peer of the appliance; created only when ``webrtc.enabled``."""

    def __init__(self, config: WebRtcConfig, service: ChannelService) -> None:
        self.config = config
        self.service = service
        self.peers: dict[str, Peer] = {}
        self.sources: dict[str, StreamSource] = {}
        self.pending_by_ip: Counter[str] = Counter()
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="webrtc-opus")
        self._bframes_logged: set[str] = set()
        self.tasks = BackgroundTasks("webrtc")
        self.refused = 0
        self._closed_totals = SendTotals()
        self.analytics: AnalyticsService | None = None
        """Told about each connected peer (player kind WebRTC) and its close."""
        compat.register_h264_profiles()

    async def start(self) -> None:
        self.tasks.spawn(self._touch_viewers(), name="webrtc-viewers")

    async def close(self) -> None:
        """Close every peer (shutdown)."""
        await asyncio.gather(*(self._close_peer(p) for p in list(self.peers.values())),
                             return_exceptions=True)
        for source in list(self.sources.values()):
            source.close()
        await self.tasks.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def send_totals(self) -> SendTotals:
        """RTP packets sent, dropped (a full socket buffer), retransmitted, NACKs received,
        reported lost."""
        totals = SendTotals(**vars(self._closed_totals))
        for peer in self.peers.values():
            totals.add(peer.sinks.values())
        return totals

    def round_trips(self) -> list[float]:
        """Each connected viewer's last round-trip time (seconds) from its reception
        reports, smallest first (a viewer's video and audio reports agree; video's is used,
        audio's for an audio-only viewer)."""
        rtts = []
        for peer in self.peers.values():
            sink = peer.sinks.get("video") or peer.sinks.get("audio")
            if sink is not None and sink.rtt is not None:
                rtts.append(sink.rtt)
        return sorted(rtts)

    @property
    def pending(self) -> int:
        return sum(self.pending_by_ip.values())

    def peers_of(self, stream_id: str) -> list[Peer]:
        return [p for p in self.peers.values() if p.stream_id == stream_id]

    # ---- refusal reasons ---------------------------------------------------------------------

    def refuse_bframes(self, stream_id: str) -> None:
        """The source has B-frames: close its peers, tell the operator once per stream."""
        if stream_id not in self._bframes_logged:
            self._bframes_logged.add(stream_id)
            ls = self.service.runtime(stream_id)
            channel = ls.channel_id if ls is not None else stream_id
            self.service.log("warning", "webrtc.bframes", BFRAMES_REASON.format(channel=channel),
                             stream_id)
        for peer in self.peers_of(stream_id):
            self.tasks.spawn(self._close_peer(peer), name=f"webrtc-close-{peer.token[:6]}")

    # ---- negotiation -------------------------------------------------------------------------

    def _admit(self, stream_id: str, offer: str, remote: str) -> tuple[LiveBroadcast, Publisher]:
        """The live broadcast to answer for and the hub WebRTC reads (the source, or a ladder
        rendition without B-frames), or a WhepError if this offer cannot be taken now."""
        ls = self.service.runtime(stream_id)
        if ls is None or ls.ended or ls.codec_config().video is None:
            raise WhepError(404, "stream is not live")
        publisher = ls.webrtc_publisher()
        if publisher is None:
            if ls.ladder_on:
                raise WhepError(503, LADDER_STARTING)
            self.refuse_bframes(stream_id)
            raise WhepError(409, BFRAMES_REASON.format(channel=ls.channel_id))
        cfg = self.config
        if len(self.peers) >= cfg.max_peers:
            self.refused += 1
            raise WhepError(503, "too many WebRTC viewers; use HLS")
        if self.pending >= cfg.max_pending:
            self.refused += 1
            raise WhepError(503, "too many WebRTC negotiations in progress; retry shortly")
        if self.pending_by_ip[remote] >= cfg.max_pending_per_ip:
            self.refused += 1
            raise WhepError(429, "too many WebRTC negotiations from your address")
        if offer.count("\nm=") + offer.startswith("m=") > MAX_M_LINES:
            raise WhepError(400, "offer has too many media sections")
        if "\nm=video" not in offer:
            raise WhepError(400, "offer has no video section")
        return ls, publisher

    async def create_peer(self, stream_id: str, offer: str, remote: str, *,
                          viewer_address: str | None = None,
                          user_agent: str = "") -> tuple[str, str]:
        """Answer a WHEP offer. Returns (resource token, answer SDP).

        Raises:
            WhepError: 404 not live, 409 B-frames (ladder off; 503 while the ladder starts),
                400 bad offer, 422 no offered H.264
                profile can decode the stream, 429/503 over a limit.
        """
        ls, publisher = self._admit(stream_id, offer, remote)
        cfg = self.config
        self.pending_by_ip[remote] += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        with_audio = publisher.config.audio is not None or ls.native_opus
        peer = Peer(token=secrets.token_urlsafe(18), stream_id=stream_id, remote=remote, pc=pc,
                    broadcast_id=ls.broadcast_id, viewer_address=viewer_address or remote,
                    user_agent=user_agent[:256])
        self.peers[peer.token] = peer
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            except Exception as exc:
                raise WhepError(400, f"invalid SDP offer: {exc}") from None
            self._set_video_codec(pc, publisher)
            self._take_over(peer, pc.addTrack(SenderTrack("video")))
            if with_audio and any(t.kind == "audio" for t in pc.getTransceivers()):
                self._take_over(peer, pc.addTrack(SenderTrack("audio")))
            try:
                peer.guards = await answer_with_gathering(
                    pc, port_min=cfg.udp_port_min, port_max=cfg.udp_port_max,
                    public_ip=cfg.public_ip)
            except NoUdpPort as exc:
                raise WhepError(503, f"no UDP port available for WebRTC: {exc}") from None
            except OfferNotAnswerable as exc:
                raise WhepError(400, f"cannot answer this offer: {exc}") from None
            compat.release_unused_receivers(pc)  # ~100 KiB per peer never used (sendonly)
        except BaseException:
            await self._close_peer(peer)
            raise

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                self._unpend(peer)
                self._touch(ls, peer)
                logger.info("[%s] WebRTC peer %s connected in %.2f s", stream_id, remote,
                            time.monotonic() - peer.created)
            elif state in ("failed", "closed"):
                await self._close_peer(peer)

        loop = asyncio.get_running_loop()
        peer.timeout = loop.call_later(
            cfg.connect_timeout,
            lambda: None if peer.connected else self.tasks.spawn(
                self._close_peer(peer), name=f"webrtc-timeout-{peer.token[:6]}"))
        source = self.sources.get(stream_id)
        if (source is None or source.ls is not ls or source.publisher is not publisher
                or source.closed):
            source = self.sources[stream_id] = StreamSource(self, ls, stream_id, publisher)
        source.peers.add(peer)
        answer = pc.localDescription.sdp
        return peer.token, answer

    def _take_over(self, peer: Peer, sender: RTCRtpSender) -> None:
        """Media for this sender goes through the stream's Outbound, not aiortc's loop."""
        kind = sender.kind

        def on_start(params: compat.SendParameters) -> None:
            source = self.sources.get(peer.stream_id)
            route = compat.media_route(sender)
            if source is None or peer.closed:
                return
            if route is None:  # aiortc starts senders only with DTLS and ICE up: not expected
                logger.warning("[%s] WebRTC peer %s: no SRTP session or nominated pair; "
                               "closing", peer.stream_id, peer.remote)
                self.tasks.spawn(self._close_peer(peer), name=f"webrtc-close-{peer.token[:6]}")
                return
            source.attach(peer, Sink(params, route, wait_for_keyframe=kind == "video"))

        def on_feedback(what: str, lost: list[int]) -> None:
            source = self.sources.get(peer.stream_id)
            if source is not None:
                source.feedback(peer, kind, what, lost)

        def on_report(report: compat.ReceptionReport) -> None:
            source = self.sources.get(peer.stream_id)
            if source is not None:
                source.reception(peer, kind, report)

        compat.take_over_sender(sender, on_start, on_feedback, on_report)

    def _set_video_codec(self, pc: RTCPeerConnection, publisher: Publisher) -> None:
        """Answer with the offered H.264 payload type that can carry the stream.

        Pass-through needs H.264 in the stream's own profile; browsers list VP8 first and
        aiortc answers with its own profile-level-id, so the video codecs aiortc negotiated
        are replaced by the one chosen from the offer (RFC 6184 §8.2.2).
        """
        config = publisher.config.video
        assert config is not None
        remote = pc.remoteDescription
        h264 = self._choose_h264(config, remote.sdp if remote is not None else "")
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                compat.set_video_codecs(
                    transceiver, _answer_codecs(h264, compat.video_codecs(transceiver)))

    @staticmethod
    def _choose_h264(config: VideoConfig, offer: str) -> H264Answer:
        """The offered H.264 payload type that can carry the stream (RFC 6184 §8.2.2)."""
        offers = h264_offers(offer)
        if not offers:
            raise WhepError(422, "the offer does not support H.264 video (this server "
                                 "forwards the publisher's H.264 without re-encoding)")
        source = ProfileLevelId(config.profile_idc, config.constraint_flags, config.level_idc)
        try:
            answer = choose_h264(source, offers)
        except ProfileMismatch as exc:
            raise WhepError(422, str(exc)) from None
        if answer.level_exceeds:
            logger.info("WebRTC: sending H.264 level %.1f to a viewer that offered a lower "
                        "level for payload type %d (browsers decode it)",
                        source.level, answer.payload_type)
        return answer

    async def delete(self, stream_id: str, token: str) -> bool:
        peer = self.peers.get(token)
        if peer is None or not secrets.compare_digest(peer.stream_id, stream_id):
            return False
        await self._close_peer(peer)
        return True

    # ---- teardown ----------------------------------------------------------------------------

    def _unpend(self, peer: Peer) -> None:
        if peer.pending:
            peer.pending = False
            self.pending_by_ip[peer.remote] -= 1
            if self.pending_by_ip[peer.remote] <= 0:
                del self.pending_by_ip[peer.remote]

    async def _close_peer(self, peer: Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        self._unpend(peer)
        if peer.timeout:
            peer.timeout.cancel()
        self.peers.pop(peer.token, None)
        source = self.sources.get(peer.stream_id)
        if source is not None:
            source.detach(peer)
            if not source.peers:
                source.close()
                if self.sources.get(peer.stream_id) is source:
                    del self.sources[peer.stream_id]
        if self.analytics is not None and peer.connected:
            self.analytics.webrtc_leave(peer.broadcast_id, f"whep:{peer.token}")
        with contextlib.suppress(Exception):
            await peer.pc.close()
        sinks = peer.sinks.values()
        self._closed_totals.add(sinks)
        rtt = next((s.rtt for s in sinks if s.rtt is not None), None)
        logger.info("[%s] WebRTC peer %s closed after %.1f s (%d stray datagrams dropped; "
                    "RTP sent %d, dropped %d, retransmitted %d for %d NACKs, %d PLIs; "
                    "%d reports: lost %d, last loss %.1f %%, jitter %.1f ms, round trip %s)",
                    peer.stream_id, peer.remote, time.monotonic() - peer.created,
                    peer.datagrams_dropped, sum(s.packets for s in sinks),
                    sum(s.dropped for s in sinks), sum(s.retransmitted for s in sinks),
                    sum(s.nacks for s in sinks), sum(s.plis for s in sinks),
                    sum(s.reports for s in sinks), sum(s.lost for s in sinks),
                    100 * max((s.fraction_lost for s in sinks), default=0.0),
                    1000 * max((s.jitter for s in sinks), default=0.0),
                    "unknown" if rtt is None else f"{rtt * 1000:.1f} ms")

    def _source_done(self, source: StreamSource) -> None:
        if self.sources.get(source.key) is source:
            del self.sources[source.key]
        for peer in list(source.peers):
            self.tasks.spawn(self._close_peer(peer), name=f"webrtc-close-{peer.token[:6]}")

    async def _touch_viewers(self) -> None:
        # WHEP viewers count in the same per-stream counter as HLS sessions.
        while True:
            await asyncio.sleep(VIEWER_TOUCH_SECONDS)
            for peer in list(self.peers.values()):
                if peer.connected:
                    ls = self.service.runtime(peer.stream_id)
                    if ls is not None and not ls.ended:
                        self._touch(ls, peer)

    def _touch(self, ls: LiveBroadcast, peer: Peer) -> None:
        session = f"whep:{peer.token}"
        if ls.touch_viewer(session) and self.analytics is not None:
            self.analytics.webrtc_hit(ls.broadcast_id, session, peer.viewer_address,
                                      peer.user_agent)


def _answer_codecs(answer: H264Answer, negotiated: list[RTCRtpCodecParameters]
                   ) -> list[RTCRtpCodecParameters]:
    """The chosen H.264 payload type with the answer's fmtp, plus its RTX if negotiated."""
    feedback = next((c.rtcpFeedback for c in negotiated
                     if c.payloadType == answer.payload_type and c.rtcpFeedback), None)
    codec = RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=answer.payload_type,
        rtcpFeedback=list(feedback) if feedback else [
            RTCRtcpFeedback(type="nack"), RTCRtcpFeedback(type="nack", parameter="pli")],
        parameters=dict(answer.parameters))
    rtx = [c for c in negotiated if c.mimeType.lower() == "video/rtx"
           and c.parameters.get("apt") == answer.payload_type]
    return [codec, *rtx[:1]]
