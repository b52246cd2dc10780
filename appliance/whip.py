"""WHIP ingest (RFC 9725): a browser or OBS publishes H.264 + Opus over WebRTC into the same
broadcast model as RTMP.

Per session: the key goes through the one ingest gate (``IngestHandler.check_key``: constant
time, per-address wrong-key counting and blocks, the aggregated refusal log); the offer is
checked before any WebRTC work (:func:`media.webrtc.whip.check_offer`); aiortc terminates
ICE/DTLS/SRTP and keeps doing NACK, RTX, REMB and receiver reports, while its jitter buffer is
replaced by a tap (:func:`media.webrtc.compat.install_receiver_tap`) so video is never
decoded. Frames are reassembled (:class:`~media.webrtc.whip.FrameReassembler`), H.264 access
units become units with in-band SPS/PPS as the codec config, RTP timestamps become one session
clock lip-synced by RTCP sender reports, and ``LiveBroadcast.publish_units`` puts them on the
broadcast's timeline. The publisher is attached when ICE connects (a session that never
connects takes nothing over), and detached — grace, then end — when it goes.

Audio: the hub carries AAC (HLS, recordings, restreams need it; Safari's native HLS player has
no Opus), transcoded once per broadcast from the Opus on a worker thread; WebRTC viewers get
the publisher's Opus as sent (``LiveBroadcast.publish_native_opus``).

Keyframes: a PLI (RFC 4585 §6.3.1) at the start, after a loss that the NACK repair did not
fill, and whenever no keyframe came for one HLS segment target (browser encoders send IDRs
only when asked, and HLS segments and new WHEP viewers start at one).

Limits (docs/threat-model.md §whip): offer size and shape, sessions in total and per
address, a connect timeout, a media timeout, malformed frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from appliance.channels import INVALID_KEY, PublishRefused
from appliance.config import WebRtcConfig
from appliance.ingest import MAX_MALFORMED_FRAMES, IngestHandler
from appliance.live import LiveBroadcast
from appliance.tasks import BackgroundTasks
from media.aac import build_asc, parse_asc
from media.units import CLOCK_RATE, CodecConfig, MediaUnit, TrackKind
from media.webrtc import compat
from media.webrtc.gathering import NoUdpPort, OfferNotAnswerable, answer_with_gathering
from media.webrtc.guard import DatagramGuard
from media.webrtc.opus import OpusToAac
from media.webrtc.whip import (
    FrameReassembler,
    H264Access,
    RtpFrame,
    SessionClock,
    WhipMediaError,
    WhipOfferError,
    check_offer,
)

logger = logging.getLogger(__name__)

AAC_CONFIG = parse_asc(build_asc(2, 48_000, 2))
"""What :class:`OpusToAac` produces: AAC-LC, 48 kHz, stereo."""
PLI_MIN_INTERVAL = 0.5
"""Seconds between keyframe requests (an encoder asked twice in a row sends two IDRs)."""
MAX_AUDIO_BACKLOG = 500
"""Opus packets waiting for the AAC worker (10 s); older ones are dropped."""
WATCH_INTERVAL = 0.5
AUTH_CHALLENGE = 'Bearer realm="hearth", error="invalid_token"'
"""RFC 6750 §3: a bearer-token resource says how to authenticate in its 401."""


class WhipError(Exception):
    """A refusal: HTTP ``status``, a reason for the publisher, and headers to add."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


class WhipLink:
    """A WHIP session as the channel service sees it (a :class:`~appliance.live.PublisherLink`)."""

    _ids = 0
    protocol = "whip"

    def __init__(self, session: WhipSession, remote: str) -> None:
        WhipLink._ids += 1
        self.id = 1_000_000 + WhipLink._ids  # apart from RTMP connection numbers in logs
        self.remote = remote
        self.connected_at = time.time()
        self._session = session

    def end(self, code: str, description: str) -> None:
        """The service drops this publisher (takeover, key rotation, operator end)."""
        session = self._session
        session.manager.tasks.spawn(session.manager.close_session(session, description),
                                    name=f"whip-end-{session.token[:6]}")


@dataclass(eq=False)
class WhipSession:
    manager: WhipManager
    token: str
    channel_id: str
    address: str
    pc: RTCPeerConnection
    has_audio: bool
    link: WhipLink = field(init=False)
    created: float = field(default_factory=time.monotonic)
    connected: bool = False
    closed: bool = False
    guards: list[DatagramGuard] = field(default_factory=list)
    clock: SessionClock = field(default_factory=SessionClock)
    video: FrameReassembler = field(default_factory=FrameReassembler)
    audio: FrameReassembler = field(
        default_factory=lambda: FrameReassembler(single_packet_frames=True, loss_timeout=0.06))
    h264: H264Access = field(default_factory=H264Access)
    ssrc_kind: dict[int, str] = field(default_factory=dict)
    pli_pending: bool = True  # ask for a keyframe at the start
    last_pli: float = 0.0
    plis: int = 0
    last_keyframe: float = field(default_factory=time.monotonic)
    last_video: float = field(default_factory=time.monotonic)
    video_frames: int = 0
    audio_frames: int = 0
    malformed: int = 0
    config_sent: bool = False
    opus_pending: list[MediaUnit] = field(default_factory=list)
    transcoder: OpusToAac | None = None
    transcode_task: asyncio.Task[None] | None = None
    timeout: asyncio.TimerHandle | None = None

    def live(self) -> LiveBroadcast | None:
        """The broadcast this session publishes to, if it still does."""
        if not self.connected or self.closed:
            return None
        lb = self.manager.ingest.service.live_broadcast(self.channel_id)
        return lb if lb is not None and lb.accepts(self.link) else None


class WhipManager:
    """Every WHIP publishing session; created when ``webrtc.enabled`` and ``webrtc.whip``.

    Args:
        config: the ``[webrtc]`` section (ports, limits).
        ingest: the ingest gate and channel service shared with RTMP.
        keyframe_interval: seconds without a keyframe after which one is requested (the HLS
            segment target).
    """

    def __init__(self, config: WebRtcConfig, ingest: IngestHandler, *,
                 keyframe_interval: float = 2.0) -> None:
        self.config = config
        self.ingest = ingest
        self.keyframe_interval = keyframe_interval
        self.sessions: dict[str, WhipSession] = {}
        self._any_session = asyncio.Event()  # the watchdog sleeps on it while there is none
        self.by_address: Counter[str] = Counter()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="whip-aac")
        self.tasks = BackgroundTasks("whip")
        self.refused = 0
        compat.register_h264_profiles()

    async def start(self) -> None:
        self.tasks.spawn(self._watch(), name="whip-watch")

    async def close(self) -> None:
        await asyncio.gather(*(self.close_session(s, "server shutting down")
                               for s in list(self.sessions.values())), return_exceptions=True)
        await self.tasks.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---- negotiation -------------------------------------------------------------------------

    async def authorize(self, channel_id: str, key: str | None, address: str) -> None:
        """The bearer key for ``/whip/{channel_id}``; raises a counted 401 after the gate's delay.

        A key of another channel is refused like a wrong one (and counted), so the URL and
        the key must name the same channel.
        """
        try:
            if key is None:
                raise PublishRefused("NetStream.Publish.BadName", INVALID_KEY, auth=True)
            if self.ingest.check_key(key, address) != channel_id:
                refusal = PublishRefused("NetStream.Publish.BadName", INVALID_KEY, auth=True)
                self.ingest.count_refusal(address, refusal)
                raise refusal
        except PublishRefused as refusal:
            if key is None:
                self.ingest.count_refusal(address, refusal)
            # The gate's delay slows guessing; it is spent in this request's own task.
            await asyncio.sleep(refusal.delay)
            raise WhipError(401, refusal.description.replace("OBS Settings → Stream",
                                                             "the WHIP bearer token"),
                            {"WWW-Authenticate": AUTH_CHALLENGE}) from None

    async def publish(self, channel_id: str, key: str | None, offer: str, address: str,
                      port: int) -> tuple[str, str]:
        """Answer a WHIP offer. Returns (resource token, answer SDP).

        Raises:
            WhipError: 401 wrong or missing key, 400/422 offer refused, 429/503 over a limit.
        """
        cfg = self.config
        if len(self.sessions) >= cfg.whip_max_sessions:
            self.refused += 1
            raise WhipError(503, "too many WHIP sessions; retry later", {"Retry-After": "5"})
        if self.by_address[address] >= cfg.whip_max_sessions_per_ip:
            self.refused += 1
            raise WhipError(429, "too many WHIP sessions from your address",
                            {"Retry-After": "5"})
        await self.authorize(channel_id, key, address)
        try:
            checked = check_offer(offer)
        except WhipOfferError as exc:
            raise WhipError(exc.status, exc.reason) from None
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = WhipSession(manager=self, token=secrets.token_urlsafe(18),
                              channel_id=channel_id, address=address, pc=pc,
                              has_audio=bool(checked.opus))
        session.link = WhipLink(session, f"{address}:{port}")
        self.sessions[session.token] = session
        self._any_session.set()
        self.by_address[address] += 1
        try:
            answer = await self._negotiate(session, offer)
        except BaseException:
            await self.close_session(session, "negotiation failed")
            raise
        session.timeout = asyncio.get_running_loop().call_later(
            cfg.connect_timeout, lambda: None if session.connected else self.tasks.spawn(
                self.close_session(session, "ICE did not connect"),
                name=f"whip-timeout-{session.token[:6]}"))
        return session.token, answer

    async def _negotiate(self, session: WhipSession, offer: str) -> str:
        pc, cfg = session.pc, self.config
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:
            raise WhipError(400, f"invalid SDP offer: {exc}") from None
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            codecs = _ingest_codecs(kind, compat.video_codecs(transceiver))
            if not codecs:
                raise WhipError(422, f"no {kind} codec this server takes was offered "
                                     "(H.264 packetization-mode 1, Opus)")
            compat.set_video_codecs(transceiver, codecs)
            compat.install_receiver_tap(
                transceiver.receiver,
                partial(self._packet, session, kind),
                partial(self._sender_report, session, kind))
            session.clock.add_track(kind, codecs[0].clockRate)
        try:
            session.guards = await answer_with_gathering(
                pc, port_min=cfg.udp_port_min, port_max=cfg.udp_port_max,
                public_ip=cfg.public_ip)
        except NoUdpPort as exc:
            raise WhipError(503, f"no UDP port available for WebRTC: {exc}") from None
        except OfferNotAnswerable as exc:
            raise WhipError(400, f"cannot answer this offer: {exc}") from None

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not session.connected and not session.closed:
                self._attach(session)
            elif state in ("failed", "closed"):
                await self.close_session(session, f"WebRTC connection {state}")

        return str(pc.localDescription.sdp)

    def _attach(self, session: WhipSession) -> None:
        session.connected = True
        now = time.monotonic()
        session.last_video = session.last_keyframe = now
        service = self.ingest.service
        service.attach(session.channel_id, session.link)
        logger.info("[%s] WHIP publisher %s connected in %.2f s", session.channel_id,
                    session.address, now - session.created)

    async def delete(self, channel_id: str, token: str) -> bool:
        """``DELETE`` on the session resource (RFC 9725 §4.2): the publish ends."""
        session = self.sessions.get(token)
        if session is None or not secrets.compare_digest(session.channel_id, channel_id):
            return False
        await self.close_session(session, "publisher stopped (WHIP DELETE)")
        return True

    async def close_session(self, session: WhipSession, reason: str) -> None:
        if session.closed:
            return
        session.closed = True
        if session.timeout is not None:
            session.timeout.cancel()
        self.sessions.pop(session.token, None)
        if not self.sessions:
            self._any_session.clear()
        self.by_address[session.address] -= 1
        if self.by_address[session.address] <= 0:
            del self.by_address[session.address]
        if session.connected:
            self.ingest.service.detach(session.channel_id, session.link, reason)
        with contextlib.suppress(Exception):
            await session.pc.close()
        logger.info("[%s] WHIP session from %s closed (%s) after %.1f s: %d video frames, "
                    "%d audio frames, %d packets lost, %d late, %d frames dropped "
                    "(%d incomplete, %d waiting for a keyframe), %d keyframe requests; "
                    "audio and video synced by %s",
                    session.channel_id, session.address, reason,
                    time.monotonic() - session.created, session.video_frames,
                    session.audio_frames, session.video.packets_lost + session.audio.packets_lost,
                    session.video.late_packets + session.audio.late_packets,
                    session.video.frames_dropped + session.h264.dropped,
                    session.video.frames_dropped, session.h264.dropped, session.plis,
                    "RTCP sender reports" if session.clock.synced else
                    f"arrival ({session.clock.reports_rejected} sender reports rejected)")

    # ---- media (on the loop, from aiortc's receivers) ---------------------------------------

    def _packet(self, session: WhipSession, kind: str, seq: int, timestamp: int, marker: bool,
                data: bytes, ssrc: int) -> bool:
        """One depacketized RTP packet; returns True to have aiortc send a PLI now.

        Called inside aiortc's receive path: nothing may escape from here (an exception would
        end aiortc's DTLS loop for the whole session), so a bug ends only this session.
        """
        if session.closed:
            return False
        try:
            return self._handle_packet(session, kind, seq, timestamp, marker, data, ssrc)
        except Exception:
            logger.exception("[%s] WHIP session from %s failed", session.channel_id,
                             session.address)
            self.tasks.spawn(self.close_session(session, "internal error"),
                             name=f"whip-error-{session.token[:6]}")
            return False

    def _handle_packet(self, session: WhipSession, kind: str, seq: int, timestamp: int,
                       marker: bool, data: bytes, ssrc: int) -> bool:
        session.ssrc_kind[ssrc] = kind
        now = time.time()
        if kind == "video":
            for frame in session.video.add(seq, timestamp, marker, data, now):
                self._video_frame(session, frame)
            mono = time.monotonic()
            if session.pli_pending and mono - session.last_pli >= PLI_MIN_INTERVAL:
                session.pli_pending = False
                session.last_pli = mono
                session.plis += 1
                return True
        else:
            for frame in session.audio.add(seq, timestamp, marker, data, now):
                self._audio_frame(session, frame)
        return False

    def _sender_report(self, session: WhipSession, kind: str, ssrc: int, ntp: int,
                       rtp: int) -> None:
        if session.ssrc_kind.get(ssrc) == kind and not session.closed:
            moved = session.clock.sender_report(kind, ntp, rtp)  # arithmetic only: no raise
            if moved and logger.isEnabledFor(logging.DEBUG):
                logger.debug("[%s] WHIP %s sender report moved its clock by %+.3f s",
                             session.channel_id, kind, moved / CLOCK_RATE)

    def _video_frame(self, session: WhipSession, frame: RtpFrame) -> None:
        lb = session.live()
        if lb is None:
            return
        try:
            config, unit = session.h264.push(frame.data, after_loss=frame.after_loss)
        except WhipMediaError as exc:
            self._bad_video(session, lb, exc)
            return
        outputs: list[MediaUnit | CodecConfig] = []
        if config is not None:
            outputs.append(CodecConfig(config, AAC_CONFIG if session.has_audio else None))
            session.config_sent = True
        if unit is not None:
            ticks = session.clock.ticks("video", frame.timestamp, frame.arrival)
            outputs.append(MediaUnit(kind=TrackKind.VIDEO, dts=ticks, pts=ticks,
                                     keyframe=unit.keyframe, data=unit.data,
                                     arrival=frame.arrival))
            session.video_frames += 1
            now = time.monotonic()
            session.last_video = now
            if unit.keyframe:
                session.last_keyframe = now
        if session.h264.needs_keyframe:
            session.pli_pending = True
        if outputs:
            lb.publish_units(outputs)

    def _bad_video(self, session: WhipSession, lb: LiveBroadcast, exc: WhipMediaError) -> None:
        service = self.ingest.service
        if exc.fatal:
            lb.note_error(str(exc))
            service.log("error", "ingest.unsupported_codec", str(exc), session.channel_id)
            self.tasks.spawn(self.close_session(session, str(exc)),
                             name=f"whip-refuse-{session.token[:6]}")
            return
        session.malformed += 1
        session.pli_pending = True
        lb.note_malformed()
        self.ingest.malformed_frames += 1
        if session.malformed == 1:
            service.log("warning", "ingest.malformed_media", f"WHIP: {exc}", session.channel_id)
        if session.malformed > MAX_MALFORMED_FRAMES:
            reason = f"too many malformed frames ({session.malformed}); last: {exc}"
            service.log("error", "ingest.malformed_media", reason, session.channel_id)
            self.tasks.spawn(self.close_session(session, reason),
                             name=f"whip-malformed-{session.token[:6]}")

    def _audio_frame(self, session: WhipSession, frame: RtpFrame) -> None:
        lb = session.live()
        if lb is None or not frame.data:
            return
        ticks = session.clock.ticks("audio", frame.timestamp, frame.arrival)
        unit = MediaUnit(kind=TrackKind.AUDIO, dts=ticks, pts=ticks, keyframe=True,
                         data=frame.data, arrival=frame.arrival)
        session.audio_frames += 1
        lb.publish_native_opus([unit])
        if not session.config_sent:
            return  # HLS starts with the video's config; audio before it has no place
        session.opus_pending.append(unit)
        if len(session.opus_pending) > MAX_AUDIO_BACKLOG:
            del session.opus_pending[: len(session.opus_pending) - MAX_AUDIO_BACKLOG]
        if session.transcode_task is None or session.transcode_task.done():
            session.transcode_task = self.tasks.spawn(
                self._transcode_loop(session), name=f"whip-aac-{session.token[:6]}")

    async def _transcode_loop(self, session: WhipSession) -> None:
        loop = asyncio.get_running_loop()
        while session.opus_pending and not session.closed:
            batch, session.opus_pending = session.opus_pending, []
            try:
                aac = await loop.run_in_executor(self.executor, _transcode, session, batch,
                                                 self.config.whip_aac_bitrate)
            except Exception:
                logger.exception("[%s] WHIP Opus → AAC failed", session.channel_id)
                return
            lb = session.live()
            if lb is not None and aac:
                lb.publish_units(aac)

    # ---- watchdog ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await self._any_session.wait()  # no session, no timer: an idle server sleeps
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.connected or session.closed:
                    continue
                if now - session.last_video > self.config.whip_media_timeout:
                    await self.close_session(
                        session, f"no video for {self.config.whip_media_timeout:g} s")
                elif now - session.last_keyframe >= self.keyframe_interval:
                    session.pli_pending = True  # HLS cuts segments at keyframes


def _transcode(session: WhipSession, units: list[MediaUnit], bitrate: int) -> list[MediaUnit]:
    # Worker thread (one per manager, so one batch at a time): only here is the transcoder
    # created or used.
    if session.transcoder is None:
        session.transcoder = OpusToAac(bitrate)
    return session.transcoder.transcode(units)


def _ingest_codecs(kind: str, negotiated: list[RTCRtpCodecParameters]
                   ) -> list[RTCRtpCodecParameters]:
    """The one codec to receive (the publisher's first acceptable) and its RTX."""
    if kind == "video":
        usable = [c for c in negotiated if c.mimeType.lower() == "video/h264"
                  and str(c.parameters.get("packetization-mode")) == "1"]
    else:
        usable = [c for c in negotiated if c.mimeType.lower() == "audio/opus"]
    if not usable:
        return []
    first = usable[0]
    rtx = [c for c in negotiated if c.mimeType.lower().endswith("/rtx")
           and c.parameters.get("apt") == first.payloadType]
    return [first, *rtx[:1]]
