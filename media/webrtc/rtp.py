"""Pure RTP/RTCP pieces of the WebRTC send path: H.264 payloads, the retransmission history,
header extensions and RTCP sender reports. No sockets, no loop, no aiortc.

Per stream, each access unit is split into RTP payloads once (:func:`h264_payloads`,
RFC 6184 §5.6–5.8) and remembered in a :class:`History` ring for NACK retransmission
(RFC 4585 §6.2.1, RFC 4588); per viewer only the 12-byte header (RFC 3550 §5.1) and the
negotiated header extensions (RFC 8285 §4.2) differ, see :mod:`media.webrtc.fanout`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from media.h264 import NAL_AUD, NAL_IDR, NAL_SPS, iter_nalus
from media.units import VideoConfig

__all__ = [
    "MAX_PAYLOAD",
    "HISTORY_SIZE",
    "History",
    "HistoryEntry",
    "MediaClock",
    "abs_send_time",
    "extension_block",
    "h264_payloads",
    "access_unit_nalus",
    "ntp_timestamp",
    "sender_report",
]

MAX_PAYLOAD = 1200
"""RTP payload bytes per packet: with the header (≤ 32 bytes here), the RTX prefix (2), the
SRTP tag (10) and IPv6/UDP headers (48) a packet stays under 1300 bytes, below every path
MTU WebRTC stacks assume (libwebrtc packetizes to ~1200 too)."""

HISTORY_SIZE = 512
"""Packets kept per stream for retransmission: ~1 s of 3 Mbit/s video (~280 packets/s at
1200 bytes), a power of two so that 16-bit sequence numbers index it directly."""

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905 §6."""

STAP_A = 24
FU_A = 28
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def access_unit_nalus(data: bytes, config: VideoConfig) -> list[bytes]:
    """The NAL units to send for one AVCC access unit: SPS/PPS before an IDR (RFC 6184 §8.4,
    receivers join mid-stream), access unit delimiters left out (they carry nothing over RTP).

    Raises:
        media.h264.H264Error: invalid AVCC framing (a ``ValueError``).
    """
    nalus = [n for n in iter_nalus(data, config.nal_length_size) if n[0] & 0x1F != NAL_AUD]
    types = {n[0] & 0x1F for n in nalus}
    if NAL_IDR in types and NAL_SPS not in types:
        nalus[0:0] = [*config.sps, *config.pps]
    return nalus


def h264_payloads(nalus: Iterable[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one access unit, packetization-mode 1 (RFC 6184 §6.3).

    Consecutive small NAL units are aggregated into STAP-A packets (§5.7.1), a NAL unit larger
    than ``max_payload`` is fragmented into FU-A packets (§5.8), any other is sent as a single
    NAL unit packet (§5.6). Empty NAL units are skipped.
    """
    if max_payload < 16:
        raise ValueError("max_payload must be at least 16 bytes")
    out: list[bytes] = []
    group: list[bytes] = []
    group_size = 1  # the STAP-A header byte

    def flush() -> None:
        nonlocal group_size
        if len(group) == 1:
            out.append(group[0])
        elif group:
            nri = max(n[0] & 0x60 for n in group)
            out.append(bytes([nri | STAP_A]) + b"".join(
                len(n).to_bytes(2, "big") + n for n in group))
        group.clear()
        group_size = 1

    for nalu in nalus:
        if not nalu:
            continue
        if len(nalu) > max_payload:
            flush()
            out.extend(_fu_a(nalu, max_payload))
            continue
        if group_size + 2 + len(nalu) > max_payload:
            flush()
        group.append(nalu)
        group_size += 2 + len(nalu)
    flush()
    return out


def _fu_a(nalu: bytes, max_payload: int) -> list[bytes]:
    indicator = (nalu[0] & 0xE0) | FU_A
    kind = nalu[0] & 0x1F
    body = memoryview(nalu)[1:]
    chunk = max_payload - 2
    count = -(-len(body) // chunk)
    # Equal-sized fragments (the last one not much smaller than the others).
    size = -(-len(body) // count)
    out = []
    for i in range(count):
        header = kind | (0x80 if i == 0 else 0) | (0x40 if i == count - 1 else 0)
        out.append(bytes((indicator, header)) + body[i * size:(i + 1) * size])
    return out


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One packet of a stream: its stream-wide index, payload, RTP-clock timestamp, marker."""

    index: int
    payload: bytes
    timestamp: int
    marker: bool


class History:
    """The last :data:`HISTORY_SIZE` packets of one stream, found by 16-bit index.

    Indexes count the stream's packets from 0; a viewer's sequence number is its own offset
    plus the index (mod 2**16), so one ring serves every viewer's NACKs.
    """

    __slots__ = ("_mask", "_ring")

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        if size <= 0 or size & (size - 1) or size > 1 << 15:
            raise ValueError("history size must be a power of two ≤ 32768")
        self._ring: list[HistoryEntry | None] = [None] * size
        self._mask = size - 1

    def add(self, entry: HistoryEntry) -> None:
        self._ring[entry.index & self._mask] = entry

    def get(self, index16: int, newest: int) -> HistoryEntry | None:
        """The entry whose index is ``index16`` mod 2**16 and no newer than ``newest``."""
        entry = self._ring[index16 & self._mask]
        if entry is None or entry.index & 0xFFFF != index16 & 0xFFFF or entry.index > newest:
            return None
        return entry


def extension_block(ids: dict[str, int], mid: str | None) -> tuple[bytes, int]:
    """The one-byte-header extension block (RFC 8285 §4.2) a viewer negotiated.

    Carries the MID (RFC 8843 §15, BUNDLE demultiplexing) and abs-send-time (a zero
    placeholder, filled per frame) when their URIs have an id. Returns the block (empty when
    nothing was negotiated) and the offset of the 3 abs-send-time bytes in it (-1: none).
    """
    elements = b""
    abs_offset = -1
    mid_id = ids.get(URI_MID, 0)
    if mid and 1 <= mid_id <= 14:
        raw = mid.encode()[:16]
        elements += bytes([(mid_id << 4) | (len(raw) - 1)]) + raw
    abs_id = ids.get(URI_ABS_SEND_TIME, 0)
    if 1 <= abs_id <= 14:
        elements += bytes([(abs_id << 4) | 2])
        abs_offset = 4 + len(elements)
        elements += b"\x00\x00\x00"
    if not elements:
        return b"", -1
    elements += b"\x00" * (-len(elements) % 4)
    return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements, abs_offset


def abs_send_time(now: float) -> bytes:
    """abs-send-time: 6.18 fixed-point seconds of the NTP clock, 24 bits (webrtc.org spec)."""
    return ((ntp_timestamp(now) >> 14) & 0xFFFFFF).to_bytes(3, "big")


def ntp_timestamp(now: float) -> int:
    """64-bit NTP timestamp of the Unix time ``now`` (RFC 3550 §4)."""
    seconds = int(now)
    return ((seconds + NTP_UNIX_OFFSET) << 32) | int((now - seconds) * 4_294_967_296)


_SR = struct.Struct("!BBHIQIII")


def sender_report(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int,
                  cname: str) -> bytes:
    """A compound RTCP packet: SR without report blocks (RFC 3550 §6.4.1) + SDES CNAME
    (§6.5; §6.1 requires the CNAME in every compound packet)."""
    sr = _SR.pack(0x80, 200, 6, ssrc, ntp & 0xFFFF_FFFF_FFFF_FFFF, rtp_timestamp & 0xFFFFFFFF,
                  packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    name = cname.encode()[:255]
    chunk = ssrc.to_bytes(4, "big") + bytes((1, len(name))) + name + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = bytes((0x81, 202)) + (len(chunk) // 4).to_bytes(2, "big") + chunk
    return sr + sdes


class MediaClock:
    """Maps the stream's media timeline (seconds) to wall-clock time, for sender reports.

    RFC 3550 §6.4.1: the SR's NTP and RTP timestamps name the same instant, and every stream
    of a source uses the same wall clock, so a receiver can play audio and video in sync. The
    offset (wall − media time) is the smallest seen over recent units: the least delayed
    arrival; a jump of more than :attr:`RESET_SECONDS` (a new publish, a long stall) starts over.
    """

    RESET_SECONDS = 1.0

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset: float | None = None

    def observe(self, media_seconds: float, arrival: float) -> None:
        seen = arrival - media_seconds
        if self.offset is None or seen < self.offset or seen - self.offset > self.RESET_SECONDS:
            self.offset = seen

    def media_seconds(self, now: float | None = None) -> float | None:
        """The media time being captured at wall time ``now`` (None before any unit)."""
        if self.offset is None:
            return None
        return (time.time() if now is None else now) - self.offset
