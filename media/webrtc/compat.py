"""Every use of aiortc/aioice internals, in one place, checked by :func:`problems`.

Hearth needs four things the public APIs of aiortc 1.16 / aioice 0.13 do not offer:

1. **H.264 profiles.** aiortc negotiates video against its module-level codec table
   (``aiortc.codecs.CODECS``), which lists only Constrained Baseline/Baseline H.264, so an
   offer with only High or Main payload types fails in ``setRemoteDescription``.
   :func:`register_h264_profiles` appends H.264 entries for the other profiles (RFC 6184
   §8.1); :func:`set_video_codecs` then replaces the codecs aiortc negotiated for a
   transceiver (``RTCRtpTransceiver._codecs``) with the payload type and ``a=fmtp`` that fit
   the stream (:mod:`media.webrtc.profile`). ``setCodecPreferences`` cannot do this: it only
   filters aiortc's own entries, whose ``profile-level-id`` is not the stream's.
2. **The ICE connection** behind a peer connection (``RTCIceGatherer._connection``, an
   ``aioice.Connection``), to gather in a port range (:mod:`media.webrtc.gathering`) and to
   guard its sockets (:mod:`media.webrtc.guard`).
3. **Candidate gathering**: ``Connection.get_component_candidates`` is replaced per
   connection, and the resulting ``StunProtocol`` objects are appended to
   ``Connection._protocols`` as aioice does itself.
4. **The guard's view**: the nominated pairs (``Connection._nominated``), the check list
   (``Connection._check_list``, ``CandidatePair.state``/``.remote_addr``) and the receive
   queue (``Connection._queue``).

5. **Encoded frames in (WHIP)**: aiortc's ``RTCRtpReceiver`` always decodes. Hearth keeps
   its receiver for SRTP, RTX unwrapping, NACK, REMB and receiver reports, and replaces its
   jitter buffer (``RTCRtpReceiver.__jitter_buffer``, fed each depacketized packet as
   ``packet._data``) with a tap (:func:`install_receiver_tap`) that hands every packet to
   Hearth and asks for a PLI through the buffer's ``pli_flag`` return value; the decoder
   thread then never gets a frame. Sender reports reach Hearth by wrapping the receiver's
   ``_handle_rtcp_packet``.

6. **Our own media send path** (:mod:`media.webrtc.fanout`): :func:`take_over_sender` stops
   an ``RTCRtpSender``'s media and RTCP loops (instance overrides of ``_run_rtp``,
   ``_run_rtcp`` and ``_handle_rtcp_packet``, which set the private started/exited events
   ``stop()`` waits on) and reports the negotiated send parameters once aiortc starts it;
   :func:`media_route` gives the DTLS transport's outbound SRTP session
   (``RTCDtlsTransport._tx_srtp``) as an :class:`SrtpOut` that protects in place in
   pylibsrtp's own buffer (``Session._cdata``/``_srtp`` with ``lib.srtp_protect``, exactly
   what ``Session.protect`` does, without its three copies) and the nominated ICE pair's
   socket (``Connection._nominated``, ``CandidatePair.protocol``, the asyncio transport's
   ``_sock``; under uvloop, whose transports keep no Python socket, a ``dup`` of the
   transport's descriptor owned by the route) so packets go out with one ``sendto`` each
   and a full socket buffer (EAGAIN) is seen, not queued without bound.

The supported range is pinned in ``pyproject.toml``; ``tests/media/webrtc/test_compat.py``
runs :func:`problems` so an upgrade that changes any of these fails a test instead of a
viewer.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import inspect
import os
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc.rtcdtlstransport
import aiortc.rtcrtpreceiver
import aiortc.rtp
import pylibsrtp
from aioice.candidate import Candidate
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
)
from pylibsrtp._binding import ffi as _srtp_ffi  # type: ignore[import-not-found]
from pylibsrtp._binding import lib as _srtp_lib

__all__ = [
    "Candidate",
    "Connection",
    "StunProtocol",
    "PacketSink",
    "SenderReportSink",
    "add_protocols",
    "install_receiver_tap",
    "ice_connections",
    "nominated_remote_addrs",
    "problems",
    "validated_remote_addrs",
    "protocols",
    "queued_datagrams",
    "register_h264_profiles",
    "replace_gathering",
    "set_video_codecs",
    "video_codecs",
    "MediaRoute",
    "ReceptionReport",
    "SendParameters",
    "SrtpOut",
    "current_route",
    "media_route",
    "reception_report",
    "release_unused_receivers",
    "take_over_sender",
    "transport_socket",
]

SUPPORTED = {"aiortc": (1, 16), "aioice": (0, 13), "pylibsrtp": (1, 0)}
"""The (major, minor) versions these internals were checked against (pyproject pins them)."""

GatherFn = Callable[..., Awaitable[list[Candidate]]]

# ---- codecs -----------------------------------------------------------------------------------

EXTRA_H264_PROFILES = ("640c1f", "64001f", "4d001f")
"""Constrained High, High and Main (level 3.1 as libwebrtc offers them; the level does not
take part in aiortc's matching, the profile does)."""


def register_h264_profiles(profile_level_ids: Iterable[str] = EXTRA_H264_PROFILES) -> None:
    """Let aiortc accept offers with these H.264 profiles (idempotent).

    Appends an H.264 entry (packetization-mode 1, with NACK/PLI feedback and an RTX entry,
    like aiortc's own) per profile to ``aiortc.codecs.CODECS["video"]``.
    """
    table: list[RTCRtpCodecParameters] = aiortc_codecs.CODECS["video"]
    present = {str(c.parameters.get("profile-level-id", "")).lower() for c in table
               if c.mimeType.lower() == "video/h264"}
    used = {c.payloadType for c in table}
    for plid in profile_level_ids:
        if plid.lower() in present:
            continue
        pt = next(p for p in range(96, 128) if p not in used and p + 1 not in used)
        used |= {pt, pt + 1}
        table.append(RTCRtpCodecParameters(
            mimeType="video/H264", clockRate=90000, payloadType=pt,
            rtcpFeedback=[RTCRtcpFeedback(type="nack"),
                          RTCRtcpFeedback(type="nack", parameter="pli")],
            parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1",
                        "profile-level-id": plid}))
        table.append(RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000,
                                           payloadType=pt + 1, parameters={"apt": pt}))
        present.add(plid.lower())


def video_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs aiortc negotiated for ``transceiver`` in ``setRemoteDescription``."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return list(codecs)


def set_video_codecs(transceiver: RTCRtpTransceiver,
                     codecs: list[RTCRtpCodecParameters]) -> None:
    """Replace the negotiated codecs; the answer and the sender use them (first = sent)."""
    transceiver._codecs = codecs


# ---- WHIP: encoded frames in -------------------------------------------------------------------

PacketSink = Callable[[int, int, bool, bytes, int], bool]
"""``(sequence_number, timestamp, marker, depacketized payload, ssrc) → send a PLI now``."""
SenderReportSink = Callable[[int, int, int], None]
"""``(ssrc, ntp_timestamp, rtp_timestamp)`` of an RTCP sender report."""
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


class _Tap:
    """Stands in for aiortc's ``JitterBuffer``: ``add(packet) → (pli_flag, frame)``."""

    def __init__(self, sink: PacketSink) -> None:
        self._sink = sink

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        data: bytes = getattr(packet, "_data", b"")
        return self._sink(packet.sequence_number, packet.timestamp, bool(packet.marker), data,
                          packet.ssrc), None


def install_receiver_tap(receiver: RTCRtpReceiver, on_packet: PacketSink,
                         on_sender_report: SenderReportSink) -> None:
    """Route ``receiver``'s depacketized RTP packets and sender reports to Hearth.

    Call before the connection starts (right after ``setRemoteDescription``). aiortc still
    does SRTP, RTX, NACK, REMB and RTCP receiver reports; its decoder never sees a frame.
    """
    setattr(receiver, _JITTER_BUFFER, _Tap(on_packet))
    original = receiver._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            on_sender_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await original(packet)

    receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


# ---- ICE --------------------------------------------------------------------------------------


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The distinct aioice connections of ``pc``'s transceivers (one with BUNDLE)."""
    conns: list[Connection] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None:
            continue
        conn: Connection = dtls.transport.iceGatherer._connection
        if all(conn is not c for c in conns):
            conns.append(conn)
    return conns


def replace_gathering(connection: Connection, gather: GatherFn) -> None:
    """Use ``gather(component, addresses, timeout=5)`` as the connection's host gathering."""
    connection.get_component_candidates = gather  # type: ignore[method-assign,assignment]


def protocols(connection: Connection) -> list[StunProtocol]:
    """The connection's UDP protocols (one per bound socket)."""
    found: list[StunProtocol] = connection._protocols
    return found


def add_protocols(connection: Connection, new: list[StunProtocol]) -> None:
    """Register sockets bound by a replacement gatherer, as aioice does with its own."""
    connection._protocols += new


def nominated_remote_addrs(connection: Connection) -> set[tuple[str, int]]:
    """Remote (address, port) of the nominated pair of each component."""
    nominated: dict[int, Any] = connection._nominated
    return {(pair.remote_addr[0], pair.remote_addr[1]) for pair in nominated.values()}


def validated_remote_addrs(connection: Connection) -> set[tuple[str, int]]:
    """Remote addresses this ICE session knows: the nominated pairs and every check-list pair.

    Check-list pairs come from candidates signalled in the (authenticated) SDP exchange and
    from peer-reflexive candidates learnt from STUN requests that passed MESSAGE-INTEGRITY
    (RFC 8445 §7.3.1.3/§7.3.1.4). A peer may send DTLS over its own choice of pair before this
    side's check of it completes; pairs whose check failed are excluded.
    """
    found = nominated_remote_addrs(connection)
    failed = aioice.ice.CandidatePair.State.FAILED
    pairs: list[Any] = connection._check_list
    for pair in pairs:
        if pair.state != failed:
            found.add((pair.remote_addr[0], pair.remote_addr[1]))
    return found


def queued_datagrams(connection: Connection) -> int:
    """Datagrams received and not yet read by aiortc."""
    queue: asyncio.Queue[Any] = connection._queue
    return queue.qsize()


# ---- own media send path ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendParameters:
    """What aiortc negotiated for one sender (the answer's m-line), read when it starts."""

    kind: str
    ssrc: int
    rtx_ssrc: int
    payload_type: int
    rtx_payload_type: int | None
    clock_rate: int
    mid: str
    extensions: dict[str, int]
    """Header extension URI → id (RFC 8285)."""
    cname: str


class SrtpOut:
    """In-place SRTP/SRTCP protection with one DTLS transport's outbound session.

    Write the RTP packet into :attr:`buffer` (a writable ``memoryview`` of pylibsrtp's own
    packet buffer, ``len(buffer) - TRAILER`` bytes at most), call :meth:`protect` with its
    length and send ``buffer[:n]`` with the returned ``n``.
    """

    TRAILER: int = pylibsrtp.SRTP_MAX_TRAILER_LEN

    __slots__ = ("_cdata", "_ctx", "_len", "_protect", "buffer", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session
        self._cdata = session._cdata
        self.buffer = memoryview(session._buffer)
        self._ctx = session._srtp[0]
        self._len = _srtp_ffi.new("int *")
        self._protect = _srtp_lib.srtp_protect

    @property
    def capacity(self) -> int:
        """Largest RTP packet that fits with the SRTP trailer."""
        return len(self.buffer) - self.TRAILER

    def protect(self, length: int) -> int:
        """Protect the ``length``-byte RTP packet in :attr:`buffer`; returns the SRTP length.

        Raises:
            pylibsrtp.Error: libsrtp refused (e.g. the packet index is exhausted).
        """
        self._len[0] = length
        rc = self._protect(self._ctx, self._cdata, self._len)
        if rc:
            raise pylibsrtp.Error(f"srtp_protect failed ({rc})")
        result: int = self._len[0]
        return result

    def protect_rtcp(self, packet: bytes) -> bytes:
        """An SRTCP packet (RFC 3711 §3.4) from a compound RTCP packet."""
        return self.session.protect_rtcp(packet)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class MediaRoute:
    """Where one viewer's media goes: the SRTP session and the nominated pair's socket.

    ``nominated``/``pair`` (aioice's ``Connection._nominated`` and the pair read from it)
    let :func:`current_route` follow a later nomination; None for a fixed route.
    """

    srtp: SrtpOut
    sock: socket.socket
    addr: tuple[str, int]
    nominated: dict[int, Any] | None = None
    pair: Any = None


def transport_socket(transport: Any) -> tuple[socket.socket, bool] | None:
    """A socket to ``sendto`` on for a datagram transport, and whether the caller owns it.

    asyncio's selector transports keep theirs in ``_sock`` (borrowed). uvloop's keep none
    (``get_extra_info("socket")`` is a stand-in without ``sendto``): the descriptor is
    duplicated, so a socket the loop closes, and whose number the kernel reuses, is never
    written to through a stale number; the caller must close the duplicate.
    """
    if transport is None or transport.is_closing():
        return None
    sock = getattr(transport, "_sock", None)
    if isinstance(sock, socket.socket):
        return sock, False
    fileno = getattr(transport.get_extra_info("socket"), "fileno", None)
    if fileno is None:
        return None
    try:
        own = socket.socket(fileno=os.dup(fileno()))
    except OSError:
        return None
    own.setblocking(False)
    return own, True


def _pair_route(srtp: SrtpOut, nominated: dict[int, Any], pair: Any) -> MediaRoute | None:
    found = transport_socket(pair.protocol.transport)
    if found is None:
        return None
    sock, owned = found
    addr = pair.remote_addr
    route = MediaRoute(srtp, sock, (addr[0], addr[1]), nominated, pair)
    if owned:
        # The duplicate lives exactly as long as the route (a viewer's sender holds it; a
        # new nomination makes a new route and drops this one).
        weakref.finalize(route, sock.close)
    return route


def media_route(sender: RTCRtpSender) -> MediaRoute | None:
    """The route of a started sender (None when DTLS/SRTP or ICE is not up)."""
    dtls = sender.transport
    session = getattr(dtls, "_tx_srtp", None)
    if session is None:
        return None
    connection: Connection = dtls.transport.iceGatherer._connection
    nominated: dict[int, Any] = connection._nominated
    pair = nominated.get(1)
    if pair is None:
        return None
    return _pair_route(SrtpOut(session), nominated, pair)


def current_route(route: MediaRoute) -> MediaRoute:
    """``route``, or a new one on the pair ICE nominated since (a controlling agent may
    nominate another pair later, RFC 8445 §8.1.1; aioice replaces ``_nominated[1]``, and
    its own sends follow it). One dict lookup when nothing changed: call it per frame."""
    nominated = route.nominated
    if nominated is None:
        return route
    pair = nominated.get(1)
    if pair is None or pair is route.pair:
        return route
    return _pair_route(route.srtp, nominated, pair) or route


def rtcp_feedback(packet: Any) -> tuple[str, list[int]] | None:
    """An RTCP packet aiortc routed to a sender, as ("nack", lost sequence numbers) or
    ("pli", []) (RFC 4585 §6.2.1, §6.3.1; FIR, RFC 5104 §4.3.1, counts as a PLI); None for
    the rest (receiver reports: :func:`reception_report`; REMB)."""
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        return "nack", list(packet.lost)
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
        return "pli", []
    return None


@dataclass(frozen=True, slots=True)
class ReceptionReport:
    """What a viewer reported about one of our RTP streams: a report block of its receiver
    report (RFC 3550 §6.4.1, §6.4.2), fields as sent."""

    fraction_lost: int
    """Of 256: the share of packets lost since the viewer's previous report."""
    packets_lost: int
    """Cumulative: expected minus received (negative with duplicates)."""
    jitter: int
    """Interarrival jitter in RTP timestamp units."""
    lsr: int
    """The middle 32 bits of the NTP timestamp of our last sender report it got (0: none)."""
    dlsr: int
    """Delay since that sender report, in 1/65536 s."""


def reception_report(packet: Any, ssrc: int) -> ReceptionReport | None:
    """The block about ``ssrc`` in a receiver (or sender) report aiortc routed to a sender
    (it routes a report to every sender one of its blocks names, so a report about audio
    and video reaches both, and each takes its own block)."""
    if not isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        return None
    for block in packet.reports:
        if block.ssrc == ssrc:
            return ReceptionReport(block.fraction_lost, block.packets_lost, block.jitter,
                                   block.lsr, block.dlsr)
    return None


def take_over_sender(sender: RTCRtpSender,
                     on_start: Callable[[SendParameters], None],
                     on_feedback: Callable[[str, list[int]], None],
                     on_report: Callable[[ReceptionReport], None] | None = None) -> None:
    """Keep aiortc's sender for negotiation, SSRCs and RTCP routing, send media ourselves.

    Must be called before the connection starts the sender. Its RTP and RTCP loops become
    idle tasks (so ``stop()`` still finds its started/exited events), no RTCP sender report
    or BYE goes out from aiortc, and RTCP feedback routed to it (by media SSRC) reaches
    ``on_feedback``, the viewer's reception reports about it ``on_report``. ``on_start``
    gets the negotiated parameters right after aiortc's ``send()`` (DTLS is connected then).
    """
    original_send = sender.send
    events = {name: getattr(sender, f"_RTCRtpSender__{name}")
              for name in ("rtp_started", "rtp_exited", "rtcp_started", "rtcp_exited")}

    def idle(started: asyncio.Event, exited: asyncio.Event) -> Callable[..., Awaitable[None]]:
        async def run(*_args: Any) -> None:
            started.set()
            try:
                await asyncio.Future()
            except asyncio.CancelledError:
                pass
            finally:
                exited.set()
        return run

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original_send(parameters)
        codec = parameters.codecs[0]
        rtx = next((c.payloadType for c in parameters.codecs
                    if c.mimeType.lower().endswith("/rtx")
                    and c.parameters.get("apt") == codec.payloadType), None)
        on_start(SendParameters(
            kind=sender.kind, ssrc=sender._ssrc, rtx_ssrc=sender._rtx_ssrc,
            payload_type=codec.payloadType or 0, rtx_payload_type=rtx, clock_rate=codec.clockRate,
            mid=parameters.muxId or "",
            extensions={e.uri: e.id for e in parameters.headerExtensions},
            cname=parameters.rtcp.cname or ""))

    async def handle_rtcp(packet: Any) -> None:
        feedback = rtcp_feedback(packet)
        if feedback is not None:
            on_feedback(*feedback)
        elif on_report is not None:
            report = reception_report(packet, sender._ssrc)
            if report is not None:
                on_report(report)

    sender._run_rtp = idle(  # type: ignore[method-assign,assignment]
        events["rtp_started"], events["rtp_exited"])
    sender._run_rtcp = idle(  # type: ignore[method-assign,assignment]
        events["rtcp_started"], events["rtcp_exited"])
    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]
    sender.send = send  # type: ignore[method-assign]


_RECEIVER_BUFFERS = ("jitter_buffer", "nack_generator", "remote_bitrate_estimator")


def release_unused_receivers(pc: RTCPeerConnection) -> int:
    """Free the receive-side state aiortc allocates for transceivers that only send.

    Every ``RTCRtpReceiver`` gets a jitter buffer, a NACK generator and (video) a remote
    bitrate estimator of ~100 KiB at construction; a WHEP peer never receives media, and a
    receiver whose transceiver negotiated ``sendonly`` is never started (aiortc starts it
    only for a ``recv`` direction), so these are dropped. Call after
    ``setLocalDescription`` (``currentDirection`` is known then). Returns how many
    receivers were released.
    """
    released = 0
    for transceiver in pc.getTransceivers():
        if transceiver.currentDirection != "sendonly":
            continue
        receiver = transceiver.receiver
        for name in _RECEIVER_BUFFERS:
            setattr(receiver, f"_RTCRtpReceiver__{name}", None)
        released += 1
    return released


def _send_path_problems() -> list[str]:
    found: list[str] = []
    process = getattr(pylibsrtp.Session, "_Session__process", None)
    if process is None or "func(self._srtp[0], self._cdata, len_p)" not in \
            inspect.getsource(process):
        found.append("pylibsrtp Session no longer protects via func(_srtp[0], _cdata, len_p)")
    if not callable(getattr(_srtp_lib, "srtp_protect", None)):
        found.append("pylibsrtp lib.srtp_protect is gone")
    sender_src = inspect.getsource(RTCRtpSender)
    for needed in ("self._run_rtp(", "self._run_rtcp()", "_handle_rtcp_packet",
                   "self.__rtp_started", "self.__rtp_exited", "self.__rtcp_started",
                   "self.__rtcp_exited", "self._rtx_ssrc", "self._ssrc"):
        if needed not in sender_src:
            found.append(f"RTCRtpSender no longer has {needed}")
    receiver_init = inspect.getsource(RTCRtpReceiver.__init__)
    if not all(f"self.__{name} = " in receiver_init for name in _RECEIVER_BUFFERS):
        found.append("RTCRtpReceiver.__init__ no longer makes the buffers we release")
    receive_src = inspect.getsource(RTCRtpReceiver.receive)
    if "self.__started" not in receive_src:
        found.append("RTCRtpReceiver.receive no longer guards with __started")
    dtls_src = inspect.getsource(aiortc.rtcdtlstransport.RTCDtlsTransport)
    if "self._tx_srtp = Session(" not in dtls_src or \
            "recipient._handle_rtcp_packet(packet)" not in dtls_src:
        found.append("RTCDtlsTransport._tx_srtp / RTCP routing changed")
    selector_transport: Any = getattr(asyncio.selector_events, "_SelectorTransport", None)
    if selector_transport is None or "self._sock" not in inspect.getsource(selector_transport):
        found.append("asyncio selector transports no longer keep their socket in _sock")
    if "active_pair.protocol.send_data(data, active_pair.remote_addr)" not in \
            inspect.getsource(Connection.sendto):
        found.append("aioice Connection.sendto no longer sends on _nominated[c].protocol")
    return found


# ---- self-check -------------------------------------------------------------------------------


def _version(module: Any) -> tuple[int, int]:
    from importlib.metadata import version
    major, minor = version(module).split(".")[:2]
    return int(major), int(minor)


def _aioice_problems() -> list[str]:
    found: list[str] = []
    params = inspect.signature(Connection.get_component_candidates).parameters
    if list(params)[:3] != ["self", "component", "addresses"]:
        found.append(f"Connection.get_component_candidates{tuple(params)} changed")
    if "protocol.local_candidate" not in inspect.getsource(Connection.get_component_candidates):
        found.append("aioice no longer tags each StunProtocol with its local_candidate")
    pair_cls = getattr(aioice.ice, "CandidatePair", None)
    if pair_cls is None or not hasattr(getattr(pair_cls, "State", None), "FAILED") or \
            "def remote_addr" not in inspect.getsource(pair_cls):
        found.append("aioice CandidatePair.State.FAILED / .remote_addr changed")
    if list(inspect.signature(StunProtocol).parameters) != ["receiver"]:
        found.append("StunProtocol(receiver) changed")
    if not callable(getattr(StunProtocol, "datagram_received", None)):
        found.append("StunProtocol.datagram_received is gone")
    conn = aioice.ice.Connection(ice_controlling=False)
    for attr, kind in (("_protocols", list), ("_nominated", dict), ("_check_list", list),
                       ("_queue", asyncio.Queue)):
        if not isinstance(getattr(conn, attr, None), kind):
            found.append(f"aioice Connection.{attr} is not a {kind.__name__}")
    return found


async def _aiortc_problems() -> list[str]:
    found: list[str] = []
    table = getattr(aiortc_codecs, "CODECS", None)
    if not isinstance(table, dict) or not isinstance(table.get("video"), list):
        found.append("aiortc.codecs.CODECS['video'] is not a list")
    found += _receiver_problems()
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        if not isinstance(getattr(transceiver, "_codecs", None), list):
            found.append("RTCRtpTransceiver._codecs is not a list")
        dtls = transceiver.sender.transport
        gatherer = getattr(getattr(dtls, "transport", None), "iceGatherer", None)
        if not isinstance(getattr(gatherer, "_connection", None), Connection):
            found.append("RTCIceGatherer._connection is not an aioice Connection")
    finally:
        await pc.close()
    return found


def _receiver_problems() -> list[str]:
    found: list[str] = []
    source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet)
    for needle in ("packet._data = depayload(", "self.__jitter_buffer.add(packet)",
                   "if pli_flag:", "unwrap_rtx(", "self.__nack_generator.add(packet)"):
        if needle not in source:
            found.append(f"RTCRtpReceiver._handle_rtp_packet no longer has {needle!r}")
    if not inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtcp_packet):
        found.append("RTCRtpReceiver._handle_rtcp_packet is not a coroutine function")
    init = inspect.getsource(RTCRtpReceiver.__init__)
    if "self.__jitter_buffer = JitterBuffer(" not in init:
        found.append("RTCRtpReceiver.__init__ no longer creates __jitter_buffer")
    routing = inspect.getsource(aiortc.rtcdtlstransport.RTCDtlsTransport._handle_rtcp_data)
    if "recipient._handle_rtcp_packet(packet)" not in routing:
        found.append("RTCDtlsTransport no longer calls receiver._handle_rtcp_packet")
    fields = getattr(aiortc.rtp.RtcpSenderInfo, "__dataclass_fields__", {})
    if not {"ntp_timestamp", "rtp_timestamp"} <= set(fields):
        found.append("RtcpSenderInfo.ntp_timestamp/rtp_timestamp changed")
    return found


async def problems() -> list[str]:
    """What no longer matches the internals above (empty when all is well).

    Needs a running loop (aiortc's sender binds to it). Builds a real ``RTCPeerConnection``
    and an aioice ``Connection`` and checks every attribute this module reads or writes,
    with the shape it expects.
    """
    found = [f"{name} {_version(name)} is not the checked {wanted}"
             for name, wanted in SUPPORTED.items() if _version(name) != wanted]
    return found + _aioice_problems() + await _aiortc_problems() + _send_path_problems()
