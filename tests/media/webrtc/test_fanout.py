"""media.webrtc.rtp and media.webrtc.fanout: packetization, history, headers, sender reports,
and the per-viewer send path over real UDP sockets with real libsrtp sessions."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from media.h264 import H264Error
from media.units import VideoConfig
from media.webrtc import compat
from media.webrtc.compat import MediaRoute, SendParameters, SrtpOut
from media.webrtc.fanout import MAX_NACKED, RETRANSMIT_BUDGET, SLICE_PACKETS, Outbound, Sink
from media.webrtc.rtp import (
    URI_ABS_SEND_TIME,
    URI_MID,
    History,
    HistoryEntry,
    MediaClock,
    access_unit_nalus,
    extension_block,
    h264_payloads,
    ntp_timestamp,
    sender_report,
)

# ---- packetization --------------------------------------------------------------------------


def depacketize(payloads: list[bytes]) -> list[bytes]:
    """RFC 6184 receiver side (single NAL, STAP-A, FU-A), independent of the packetizer."""
    out: list[bytes] = []
    fu: bytearray | None = None
    for p in payloads:
        kind = p[0] & 0x1F
        if kind == 24:
            i = 1
            while i < len(p):
                size = int.from_bytes(p[i:i + 2], "big")
                out.append(p[i + 2:i + 2 + size])
                i += 2 + size
        elif kind == 28:
            start, end = p[1] & 0x80, p[1] & 0x40
            if start:
                fu = bytearray([(p[0] & 0xE0) | (p[1] & 0x1F)])
            assert fu is not None
            fu += p[2:]
            if end:
                out.append(bytes(fu))
                fu = None
        else:
            out.append(p)
    assert fu is None
    return out


nal = st.builds(lambda head, body: bytes([head]) + body,
                st.integers(1, 23).map(lambda t: 0x60 | t), st.binary(max_size=3000))


@given(st.lists(nal, max_size=8), st.integers(16, 1400))
@settings(max_examples=200, deadline=None)
def test_payloads_round_trip(nalus: list[bytes], max_payload: int) -> None:
    payloads = h264_payloads(nalus, max_payload)
    assert all(0 < len(p) <= max_payload for p in payloads)
    assert depacketize(payloads) == nalus


def test_small_nalus_are_aggregated_and_large_ones_fragmented() -> None:
    sps, pps, idr = b"\x67" + b"s" * 10, b"\x68" + b"p" * 4, b"\x65" + b"i" * 3000
    payloads = h264_payloads([sps, pps, idr], 1200)
    assert payloads[0][0] & 0x1F == 24  # STAP-A of SPS + PPS
    assert [p[0] & 0x1F for p in payloads[1:]] == [28, 28, 28]
    sizes = [len(p) for p in payloads[1:]]
    assert max(sizes) - min(sizes) <= 2  # equal fragments
    with pytest.raises(ValueError):
        h264_payloads([sps], 8)


def _config(length_size: int = 4) -> VideoConfig:
    return VideoConfig(avcc=b"", sps=(b"\x67SPS",), pps=(b"\x68PPS",),
                       nal_length_size=length_size, width=320, height=240, profile_idc=100,
                       level_idc=31, constraint_flags=0)


def _avcc(*nalus: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nalus)


def test_access_unit_gets_parameter_sets_and_loses_its_delimiter() -> None:
    aud, idr, p = b"\x09\xf0", b"\x65idr", b"\x41p"
    assert access_unit_nalus(_avcc(aud, idr), _config()) == [b"\x67SPS", b"\x68PPS", idr]
    assert access_unit_nalus(_avcc(aud, p), _config()) == [p]
    own = access_unit_nalus(_avcc(b"\x67own", b"\x68own", idr), _config())
    assert own == [b"\x67own", b"\x68own", idr]


@given(st.binary(max_size=200))
def test_access_unit_raises_only_its_own_error(data: bytes) -> None:
    try:
        nalus = access_unit_nalus(data, _config())
    except H264Error:
        return
    assert depacketize(h264_payloads(nalus)) == [n for n in nalus if n]


# ---- history, extensions, reports -------------------------------------------------------------


def test_history_finds_by_16_bit_index_and_forgets() -> None:
    h = History(8)
    for i in range(65530, 65546):
        h.add(HistoryEntry(i, bytes([i & 0xFF]), i * 10, False))
    assert h.get(65545 & 0xFFFF, newest=65545) == HistoryEntry(65545, bytes([65545 & 0xFF]),
                                                             655450, False)
    assert h.get(65538, newest=65545) is not None
    assert h.get(65537 & 0xFFFF, newest=65545) is None  # overwritten (ring of 8)
    assert h.get(65545 & 0xFFFF, newest=65544) is None  # not sent to this viewer yet
    with pytest.raises(ValueError):
        History(100)


def test_extension_block_is_rfc_8285_one_byte() -> None:
    block, at = extension_block({URI_MID: 1, URI_ABS_SEND_TIME: 3}, "0")
    assert block[:2] == b"\xbe\xde" and len(block) % 4 == 0
    assert int.from_bytes(block[2:4], "big") * 4 == len(block) - 4
    assert block[4:6] == b"\x10" + b"0"  # id 1, length 1
    assert block[6] == 0x32 and at == 7  # id 3, length 3, value at 7..9
    assert extension_block({}, "0") == (b"", -1)
    assert extension_block({URI_MID: 15}, "0") == (b"", -1)  # 15 is reserved (RFC 8285 §4.2)


def test_sender_report_parses_as_sr_plus_sdes() -> None:
    ntp = ntp_timestamp(1_700_000_000.25)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800 and ntp & 0xFFFFFFFF == 1 << 30
    sr, sdes = RtcpPacket.parse(sender_report(0xDEADBEEF, ntp, 2**32 + 5, 7, 9000, "cname!"))
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert (sr.ssrc, sr.sender_info.ntp_timestamp, sr.sender_info.rtp_timestamp) == \
        (0xDEADBEEF, ntp, 5)
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (7, 9000)
    assert sdes.chunks[0].items == [(1, b"cname!")]


def test_media_clock_follows_the_least_delayed_arrival() -> None:
    clock = MediaClock()
    assert clock.media_seconds(100.0) is None
    clock.observe(10.0, 1000.3)
    clock.observe(10.1, 1000.35)  # earlier than expected: less delay
    assert clock.media_seconds(1000.45) == pytest.approx(10.2)
    clock.observe(10.2, 1000.6)  # later: jitter, ignored
    assert clock.media_seconds(1000.45) == pytest.approx(10.2)
    clock.observe(50.0, 1001.0)  # a jump (new publish): start over
    assert clock.media_seconds(1001.0) == pytest.approx(50.0)


# ---- the send path ------------------------------------------------------------------------------

KEY = os.urandom(30)
EXTENSIONS = HeaderExtensionsMap()
EXTENSIONS.configure(RTCRtpParameters(headerExtensions=[
    RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
    RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME)]))


def _session(inbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
                              else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


class Viewer:
    """A receiving UDP socket and SRTP session (what a WebRTC peer does after DTLS)."""

    def __init__(self, *, rtx: bool = True, ssrc: int = 1111) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.settimeout(2)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.srtp_in = _session(inbound=True)
        self.params = SendParameters(
            kind="video", ssrc=ssrc, rtx_ssrc=ssrc + 1, payload_type=102,
            rtx_payload_type=103 if rtx else None, clock_rate=90000, mid="0",
            extensions={URI_MID: 1, URI_ABS_SEND_TIME: 3}, cname="c")
        self.route = MediaRoute(SrtpOut(_session(inbound=False)), self.tx,
                                self.rx.getsockname())
        self.sink = Sink(self.params, self.route, wait_for_keyframe=True)

    def packets(self, n: int) -> list[RtpPacket]:
        return [RtpPacket.parse(self.srtp_in.unprotect(self.rx.recv(2000)), EXTENSIONS)
                for _ in range(n)]

    def rtcp(self) -> list[Any]:
        return RtcpPacket.parse(self.srtp_in.unprotect_rtcp(self.rx.recv(2000)))

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


@pytest.fixture
def viewers() -> Iterator[list[Viewer]]:
    made: list[Viewer] = []
    yield made
    for v in made:
        v.close()


def _frame(n: int, ts: int, key: bool, tag: int = 0) -> tuple[list[bytes], int, bool]:
    return [bytes([tag, i & 0xFF]) * 50 for i in range(n)], ts, key


def test_each_viewer_gets_its_own_header_from_a_keyframe(viewers: list[Viewer]) -> None:
    a, b = Viewer(ssrc=10), Viewer(ssrc=20)
    viewers += [a, b]
    out = Outbound("video", 90000)
    out.attach(a.sink)
    out.send([_frame(2, 9000, False)])  # no viewer gets a frame before a keyframe
    out.send([_frame(3, 12000, True, tag=1), _frame(2, 15000, False, tag=2)])
    out.attach(b.sink)
    out.send([_frame(2, 18000, False, tag=3), _frame(1, 21000, True, tag=4)])
    got_a, got_b = a.packets(8), b.packets(1)
    seqs = [p.sequence_number for p in got_a]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(8)]
    assert seqs[0] < 1 << 15
    assert {p.ssrc for p in got_a} == {10} and {p.ssrc for p in got_b} == {20}
    assert {p.payload_type for p in got_a} == {102}
    assert [p.payload[0] for p in got_a] == [1, 1, 1, 2, 2, 3, 3, 4]
    assert [p.marker for p in got_a] == [0, 0, 1, 0, 1, 0, 1, 1]
    ts = [p.timestamp for p in got_a]
    assert ts[3] - ts[0] == 3000 and ts[7] - ts[0] == 9000
    assert got_b[0].payload[0] == 4 and got_b[0].marker == 1
    assert {p.extensions.mid for p in got_a} == {"0"}
    assert all(p.extensions.abs_send_time is not None for p in got_a)
    assert (a.sink.packets, a.sink.octets) == (8, 800)


@pytest.mark.parametrize("rtx", [True, False])
def test_nack_is_served_from_the_history(viewers: list[Viewer], rtx: bool) -> None:
    v = Viewer(rtx=rtx)
    viewers.append(v)
    out = Outbound("video", 90000)
    out.attach(v.sink)
    out.send([_frame(4, 3000, True, tag=7)])
    # Packets 1 and 3 are "lost": the viewer's session never sees them (a plain
    # retransmission of a packet it did see would fail its SRTP replay check, RFC 3711 §3.3.2).
    raw = [v.rx.recv(2000) for _ in range(4)]
    other = _session(inbound=True)
    sent = [RtpPacket.parse((v.srtp_in if i % 2 == 0 else other).unprotect(d), EXTENSIONS)
            for i, d in enumerate(raw)]
    lost = [sent[1].sequence_number, sent[3].sequence_number, (sent[3].sequence_number + 1)
            & 0xFFFF, (sent[0].sequence_number - 1) & 0xFFFF]
    out.nack(v.sink, lost)
    again = v.packets(2)
    assert out.retransmitted == 2 and out.unrecoverable == 2  # not sent yet / before joining
    for original, packet in zip((sent[1], sent[3]), again, strict=True):
        if rtx:
            assert (packet.ssrc, packet.payload_type) == (v.params.rtx_ssrc, 103)
            assert int.from_bytes(packet.payload[:2], "big") == original.sequence_number
            assert packet.payload[2:] == original.payload
        else:
            assert (packet.ssrc, packet.sequence_number) == (v.params.ssrc,
                                                             original.sequence_number)
            assert packet.payload == original.payload
        assert packet.timestamp == original.timestamp and packet.marker == original.marker
    if rtx:
        assert again[1].sequence_number == (again[0].sequence_number + 1) & 0xFFFF


def test_a_hostile_nack_is_bounded(viewers: list[Viewer]) -> None:
    v = Viewer()
    viewers.append(v)
    out = Outbound("video", 90000)
    out.attach(v.sink)
    out.send([_frame(600, 3000, True)])  # more than the history holds
    v.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    out.nack(v.sink, list(range(65536)) * 3)
    assert out.retransmitted + out.unrecoverable == MAX_NACKED
    # A flood of NACKs for packets it has: at most RETRANSMIT_BUDGET a second.
    sent = v.sink.last_index
    wanted = [(sent - i + v.sink.seq_offset) & 0xFFFF for i in range(100)]
    before = out.retransmitted
    for _ in range(50):
        out.nack(v.sink, wanted)
    assert out.retransmitted - before <= RETRANSMIT_BUDGET
    assert out.over_budget >= 50 * 100 - RETRANSMIT_BUDGET


class FullSocket:
    """Our seam (MediaRoute.sock): a socket whose send buffer is full after ``room`` sends,
    or that fails outright."""

    def __init__(self, room: int, error: OSError | None = None) -> None:
        self.room = room
        self.error = error
        self.sent = 0

    def sendto(self, data: Any, addr: Any) -> int:
        if self.error is not None:
            raise self.error
        if self.sent >= self.room:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        self.sent += 1
        return len(data)


def test_a_full_or_failed_viewer_never_stalls_the_others(viewers: list[Viewer]) -> None:
    good, slow, broken = Viewer(ssrc=1), Viewer(ssrc=2), Viewer(ssrc=3)
    viewers += [good, slow, broken]
    slow_sock = FullSocket(room=2)
    slow.sink.route = MediaRoute(slow.route.srtp, slow_sock, slow.route.addr)  # type: ignore[arg-type]
    broken.sink.route = MediaRoute(broken.route.srtp,
                                   FullSocket(0, OSError(101, "Network is unreachable")),  # type: ignore[arg-type]
                                   broken.route.addr)
    failed: list[Sink] = []
    out = Outbound("video", 90000, failed.append)
    for v in (slow, broken, good):
        out.attach(v.sink)
    out.send([_frame(3, 3000, True), _frame(3, 6000, False)])
    assert len(good.packets(6)) == 6
    assert failed == [broken.sink] and broken.sink not in out.sinks
    assert "unreachable" in broken.sink.error
    # The slow viewer lost the rest of the first frame, then the second frame; it stays.
    assert (slow.sink.packets, slow.sink.dropped) == (2, 4) and slow.sink in out.sinks
    slow_sock.room = 10
    out.send([_frame(2, 9000, False)])
    assert slow.sink.packets == 4 and len(good.packets(2)) == 2


def test_a_big_pass_yields_between_slices_and_every_viewer_gets_every_packet(
        viewers: list[Viewer]) -> None:
    """A keyframe to many viewers is sent in slices (the loop runs between them); each viewer
    still gets the frame whole and in order; one detached during a pause gets nothing more,
    one attached during it starts with the next keyframe."""
    crowd = [Viewer(ssrc=100 + i) for i in range(6)]
    late = Viewer(ssrc=999)
    viewers += [*crowd, late]
    out = Outbound("video", 90000)
    for v in crowd:
        out.attach(v.sink)
    pauses = 0
    for _ in out.send_in_slices([_frame(10, 3000, True, tag=1)], slice_packets=20):
        pauses += 1
        if pauses == 1:
            out.detach(crowd[-1].sink)  # leaves after the first slice (2 viewers were sent)
            out.attach(late.sink)
    assert pauses == 2  # 20 packets per slice (2 viewers each); the 5th viewer ends the pass
    for v in crowd[:-1]:
        got = v.packets(10)
        assert [p.payload[1] for p in got] == list(range(10))
        assert [p.marker for p in got] == [0] * 9 + [1]
    assert crowd[-1].sink.packets == 0
    assert late.sink.packets == 0 and late.sink.needs_keyframe
    out.send([_frame(1, 6000, False, tag=2), _frame(2, 9000, True, tag=3)])
    assert [p.payload[0] for p in late.packets(2)] == [3, 3]
    # The default slice is what the appliance uses; a small pass is one slice, no pause.
    assert list(out.send_in_slices([_frame(SLICE_PACKETS // 8, 12000, False)])) == []


def test_sender_reports_map_rtp_time_to_the_wall_clock(viewers: list[Viewer]) -> None:
    v = Viewer()
    viewers.append(v)
    out = Outbound("video", 90000)
    out.attach(v.sink)
    out.report(1000.0, 5.0)  # no report before the viewer got media
    out.send([_frame(2, 450000, True)])  # 5.0 s of media time
    first, _ = v.packets(2)
    out.report(1000.5, 5.5)
    sr, sdes = v.rtcp()
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == v.params.ssrc
    assert sr.sender_info.ntp_timestamp == ntp_timestamp(1000.5)
    # 0.5 s after the frame's capture time on the viewer's own RTP clock.
    assert (sr.sender_info.rtp_timestamp - first.timestamp) % 2**32 == 45000
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (2, 200)
    assert isinstance(sdes, RtcpSdesPacket)


def test_reception_reports_give_loss_jitter_and_the_round_trip(viewers: list[Viewer]) -> None:
    """A viewer's receiver report (RFC 3550 §6.4.1), as aiortc parses it from the wire: the
    block about this sink's SSRC is kept (not the other stream's), RTT = A - LSR - DLSR
    against our sender report's NTP time, and an echo that cannot be a round trip is not."""
    v = Viewer()
    viewers.append(v)
    out = Outbound("video", 90000)
    out.attach(v.sink)
    sr_time = 1000.25
    lsr = (ntp_timestamp(sr_time) >> 16) & 0xFFFFFFFF
    other = RtcpReceiverInfo(ssrc=v.params.ssrc ^ 1, fraction_lost=255, packets_lost=999,
                             highest_sequence=0, jitter=0, lsr=0, dlsr=0)
    ours = RtcpReceiverInfo(ssrc=v.params.ssrc, fraction_lost=64, packets_lost=7,
                            highest_sequence=5000, jitter=900, lsr=lsr,
                            dlsr=int(0.1 * 65536))  # held 100 ms before replying
    (packet,) = RtcpPacket.parse(bytes(RtcpRrPacket(ssrc=1234, reports=[other, ours])))
    assert compat.reception_report(packet, v.params.ssrc ^ 2) is None
    assert compat.reception_report(RtcpPacket.parse(_nack(1))[0], v.params.ssrc) is None
    report = compat.reception_report(packet, v.params.ssrc)
    assert report is not None
    out.receive_report(v.sink, report, sr_time + 0.13)  # arrives 130 ms after our report
    sink = v.sink
    assert (sink.reports, sink.lost, sink.fraction_lost) == (1, 7, 0.25)
    assert sink.jitter == pytest.approx(0.01)
    assert sink.rtt == pytest.approx(0.03, abs=1e-4)
    # No sender report echoed yet (LSR 0), or an echo from the future: the last RTT stays.
    out.receive_report(sink, compat.ReceptionReport(0, -3, 0, 0, 0), sr_time + 5)
    assert sink.lost == 0  # duplicates made it negative: nothing lost
    out.receive_report(sink, compat.ReceptionReport(0, 2, 0, lsr, 0), sr_time - 1)
    assert sink.rtt == pytest.approx(0.03, abs=1e-4) and sink.lost == 2 and sink.reports == 3


def _nack(seq: int) -> bytes:
    return bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=2, lost=[seq]))


def test_srtp_in_place_matches_pylibsrtp() -> None:
    """compat.SrtpOut writes what pylibsrtp's own protect() does (same key, same packet)."""
    out = SrtpOut(_session(inbound=False))
    reference = _session(inbound=False)
    packet = struct.pack("!BBHII", 0x80, 96, 7, 1234, 99) + os.urandom(1000)
    out.buffer[:len(packet)] = packet
    n = out.protect(len(packet))
    assert bytes(out.buffer[:n]) == reference.protect(packet)
    assert out.capacity >= 12 + 16 + 2 + 1200


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def is_closing(self) -> bool:
        return self._sock.fileno() == -1


class _Protocol:
    def __init__(self, sock: socket.socket) -> None:
        self.transport = _Transport(sock)


class _Pair:
    """aioice's CandidatePair as compat reads it (protocol.transport with _sock and
    is_closing, remote_addr)."""

    def __init__(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.protocol = _Protocol(sock)
        self.remote_addr = addr


def test_media_follows_a_later_nomination(viewers: list[Viewer]) -> None:
    """RFC 8445 §8.1.1: the controlling agent may nominate another pair; media follows."""
    first, second = Viewer(), Viewer()
    viewers += [first, second]
    nominated: dict[int, Any] = {1: _Pair(first.tx, first.rx.getsockname())}
    route = MediaRoute(first.route.srtp, first.tx, first.rx.getsockname(), nominated,
                       nominated[1])
    sink = Sink(first.params, route, wait_for_keyframe=False)
    out = Outbound("video", 90000)
    out.attach(sink)
    out.send([_frame(1, 3000, True, tag=1)])
    assert first.packets(1)[0].payload[0] == 1
    nominated[1] = _Pair(second.tx, second.rx.getsockname())
    out.send([_frame(1, 6000, False, tag=2)])
    got = RtpPacket.parse(_session(inbound=True).unprotect(second.rx.recv(2000)), EXTENSIONS)
    assert got.payload[0] == 2 and sink.route.addr == second.rx.getsockname()
