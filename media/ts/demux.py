"""MPEG transport stream → program tables and PES frames (ISO/IEC 13818-1), sans-IO.

:class:`TsDemuxer` takes bytes in any chunking (an SRT message is 7 packets of 188 bytes) and
returns events: :class:`ProgramChanged` when the PMT names a new set of elementary streams,
:class:`PesFrame` for each complete PES packet of a stream the PMT lists (one access unit of
video, one or more ADTS frames of audio), and :class:`TsProblem` for damage it recovered from
(lost sync, a continuity-counter gap, a PES over its size bound, a section with a bad CRC).
The caller counts problems like malformed frames (docs/threat-model.md §media).

Bounds (docs/threat-model.md §srt): at most :data:`MAX_PES_BYTES` per PES, :data:`MAX_STREAMS`
elementary streams, PSI sections up to the 1024 bytes §2.4.4.11 allows, and nothing kept
between calls but one partial packet. PCR, SI tables and other programs are ignored.
Input that never becomes a transport stream (no sync within :data:`MAX_UNSYNCED_BYTES` before
the first packet) raises :class:`TsError`, the one exception :meth:`TsDemuxer.feed` raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.depacketizer import MalformedMediaError

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
MAX_PES_BYTES = 8 << 20
"""An access unit larger than 8 MiB is not live video Hearth can serve; it is dropped."""
MAX_STREAMS = 16
"""Elementary streams tracked from one PMT; more are ignored (a real program has 2–4)."""
MAX_SECTION_BYTES = 1024
"""§2.4.4.11: a PAT or PMT section is at most 1021 bytes after its 3-byte header."""
MAX_UNSYNCED_BYTES = 16 * PACKET_SIZE
"""Bytes without a transport packet, before the first one, after which the input is refused."""

STREAM_TYPE_NAMES = {
    0x01: "mpeg1video", 0x02: "mpeg2video", 0x03: "mp3", 0x04: "mp3", 0x0F: "aac",
    0x10: "mpeg4", 0x11: "aac-latm", 0x1B: "h264", 0x24: "hevc", 0x33: "vvc", 0x81: "ac3",
    0x87: "eac3", 0x06: "private data (Opus, AC-3 or subtitles)",
}
"""Names of common ``stream_type`` values (§2.4.4.9 Table 2-34, ATSC A/52 for 0x81/0x87)."""
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24, 0x33})
AUDIO_STREAM_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x81, 0x87})

# §2.4.3.7 Table 2-22: stream_id values whose PES packets carry no optional header.
_NO_HEADER_IDS = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})


class TsError(MalformedMediaError):
    """The input is not an MPEG transport stream (the only error the demuxer raises)."""


@dataclass(frozen=True, slots=True)
class ElementaryStream:
    pid: int
    stream_type: int

    @property
    def codec(self) -> str:
        return STREAM_TYPE_NAMES.get(self.stream_type, f"stream type 0x{self.stream_type:02x}")


@dataclass(frozen=True, slots=True)
class ProgramChanged:
    """The PMT (first program of the PAT) now lists these elementary streams."""

    streams: tuple[ElementaryStream, ...]


@dataclass(frozen=True, slots=True)
class PesFrame:
    """One PES packet's payload. ``pts``/``dts`` are raw 33-bit 90 kHz values (or None)."""

    pid: int
    stream_type: int
    pts: int | None
    dts: int | None
    data: bytes


@dataclass(frozen=True, slots=True)
class TsProblem:
    """Damage the demuxer recovered from; ``reason`` is for the operator's log."""

    reason: str


TsEvent = ProgramChanged | PesFrame | TsProblem


def _crc32_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else c << 1
        table.append(c & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc32_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (Annex A): polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def read_timestamp(b: bytes | memoryview, i: int) -> int:
    """A 33-bit PTS/DTS from its 5-byte field (§2.4.3.7), marker bits ignored."""
    return (((b[i] >> 1) & 0x07) << 30 | b[i + 1] << 22 | (b[i + 2] >> 1) << 15
            | b[i + 3] << 7 | b[i + 4] >> 1)


class _Pes:
    """A PES being assembled on one PID."""

    __slots__ = ("broken", "cc", "chunks", "expected", "size", "stream_type")

    def __init__(self, stream_type: int) -> None:
        self.stream_type = stream_type
        self.cc = -1
        self.chunks: list[bytes] = []
        self.size = 0
        self.expected = 0  # total PES bytes announced by PES_packet_length (0: unbounded)
        self.broken = True  # nothing to assemble until a payload_unit_start

    def reset(self) -> None:
        self.chunks = []
        self.size = 0
        self.expected = 0


class _Section:
    """A PSI section (PAT or PMT) being assembled on one PID."""

    __slots__ = ("buf", "cc", "last")

    def __init__(self) -> None:
        self.buf: bytearray | None = None
        self.cc = -1
        self.last = b""  # the last section accepted (identical repeats skip the CRC)


class TsDemuxer:
    """Demuxes the first program of one transport stream; see the module docstring."""

    def __init__(self) -> None:
        self._rest = b""
        self._synced = False
        self._unsynced = 0
        self._pmt_pid: int | None = None
        self._sections: dict[int, _Section] = {PAT_PID: _Section()}
        self._pes: dict[int, _Pes] = {}
        self.streams: tuple[ElementaryStream, ...] = ()
        self.packets = 0
        self.problems = 0

    def feed(self, data: bytes) -> list[TsEvent]:
        """Consume ``data``; returns the events it completes.

        Raises:
            TsError: if no transport packet has been found in the first
                :data:`MAX_UNSYNCED_BYTES` bytes (the peer is not sending MPEG-TS).
        """
        if self._rest:
            data = self._rest + data
        out: list[TsEvent] = []
        view = memoryview(data)
        pos = 0
        end = len(data)
        while end - pos >= PACKET_SIZE:
            if data[pos] != SYNC_BYTE:
                pos = self._resync(data, pos, out)
                continue
            self._packet(view[pos:pos + PACKET_SIZE], out)
            pos += PACKET_SIZE
        self._rest = bytes(view[pos:])
        return out

    def flush(self) -> list[TsEvent]:
        """The end of the stream: complete every PES still open (unbounded video PES end at
        the next one's start, so the last one ends here)."""
        out: list[TsEvent] = []
        for pid, pes in self._pes.items():
            self._finish(pid, pes, out)
        return out

    # ---- packets ---------------------------------------------------------------------------

    def _resync(self, data: bytes, pos: int, out: list[TsEvent]) -> int:
        """Skip to the next sync byte that is followed by another one a packet later
        (§2.4.3.2); one that cannot be confirmed yet is kept for the next call."""
        end = len(data)
        nxt = pos + 1
        while True:
            nxt = data.find(SYNC_BYTE, nxt)
            if nxt < 0:
                nxt = end
                break
            if nxt + PACKET_SIZE >= end or data[nxt + PACKET_SIZE] == SYNC_BYTE:
                break
            nxt += 1
        skipped = nxt - pos
        if not self._synced:
            self._unsynced += skipped
            if self._unsynced > MAX_UNSYNCED_BYTES:
                raise TsError(f"no MPEG-TS sync byte in the first {self._unsynced} bytes")
        else:
            self._problem(out, f"lost MPEG-TS sync; skipped {skipped} bytes")
            for pes in self._pes.values():  # whatever was in flight lost bytes
                pes.reset()
                pes.broken = True
        return nxt

    def _problem(self, out: list[TsEvent], reason: str) -> None:
        self.problems += 1
        out.append(TsProblem(reason))

    def _packet(self, pkt: memoryview, out: list[TsEvent]) -> None:
        self._synced = True
        self.packets += 1
        b1, b2, b3 = pkt[1], pkt[2], pkt[3]
        pid = ((b1 & 0x1F) << 8) | b2
        if pid == NULL_PID:
            return
        if b1 & 0x80:  # transport_error_indicator
            self._problem(out, f"transport error flag on PID {pid}")
            self._lost(pid)
            return
        afc = (b3 >> 4) & 0x03
        start = 4
        discontinuity = False
        if afc & 0x02:
            af_len = pkt[4]
            if af_len > 183 or (afc == 0x03 and af_len > 182):
                self._problem(out, f"adaptation field of {af_len} bytes on PID {pid}")
                self._lost(pid)
                return
            discontinuity = af_len > 0 and bool(pkt[5] & 0x80)
            start = 5 + af_len
        if not afc & 0x01:
            return  # no payload (afc 0 is reserved, 2 is adaptation only); CC does not count
        payload = pkt[start:]
        pusi = bool(b1 & 0x40)
        cc = b3 & 0x0F
        pes = self._pes.get(pid)
        if pes is not None:
            self._pes_packet(pid, pes, cc, pusi, discontinuity, payload, out)
        elif pid == PAT_PID or pid == self._pmt_pid:
            self._section_packet(pid, cc, pusi, payload, out)

    def _lost(self, pid: int) -> None:
        pes = self._pes.get(pid)
        if pes is not None:
            pes.reset()
            pes.broken = True

    # ---- PES (§2.4.3.6) --------------------------------------------------------------------

    def _pes_packet(self, pid: int, pes: _Pes, cc: int, pusi: bool, discontinuity: bool,
                    payload: memoryview, out: list[TsEvent]) -> None:
        if pes.cc >= 0 and not discontinuity:
            if cc == pes.cc:
                return  # §2.4.3.3: one duplicate packet may follow the original
            if cc != (pes.cc + 1) & 0x0F:
                # The PES in flight lost bytes: drop it; a packet that starts the next one
                # is fine.
                if not pes.broken:
                    self._problem(out, f"continuity error on PID {pid}: packet(s) lost")
                pes.reset()
                pes.broken = True
        pes.cc = cc
        if pusi:
            if not pes.broken:
                self._finish(pid, pes, out)
            pes.reset()
            pes.broken = False
            if len(payload) >= 6:
                length = (payload[4] << 8) | payload[5]
                pes.expected = 6 + length if length else 0
        elif pes.broken:
            return
        pes.chunks.append(bytes(payload))
        pes.size += len(payload)
        if pes.size > MAX_PES_BYTES:
            self._problem(out, f"PES on PID {pid} exceeds {MAX_PES_BYTES} bytes; dropped")
            pes.reset()
            pes.broken = True
        elif pes.expected and pes.size >= pes.expected:
            self._finish(pid, pes, out)  # bounded PES (audio): complete without waiting
            pes.broken = True

    def _finish(self, pid: int, pes: _Pes, out: list[TsEvent]) -> None:
        if not pes.chunks:
            return
        data = b"".join(pes.chunks)
        pes.reset()
        if pes.expected:
            data = data[:pes.expected]
        frame = self._parse_pes(pid, pes.stream_type, data)
        if isinstance(frame, str):
            self._problem(out, frame)
        else:
            out.append(frame)

    @staticmethod
    def _parse_pes(pid: int, stream_type: int, data: bytes) -> PesFrame | str:
        if len(data) < 6 or data[0] != 0 or data[1] != 0 or data[2] != 1:
            return f"PES on PID {pid} has no start code prefix"
        if data[3] in _NO_HEADER_IDS:
            return PesFrame(pid, stream_type, None, None, data[6:])
        if len(data) < 9 or data[6] & 0xC0 != 0x80:
            return f"PES on PID {pid} has a malformed header"
        flags = data[7] >> 6
        header_end = 9 + data[8]
        if header_end > len(data):
            return f"PES header on PID {pid} runs past its packet"
        pts = dts = None
        if flags & 0x02:
            if header_end < 14:
                return f"PES header on PID {pid} too short for its PTS"
            pts = read_timestamp(data, 9)
            if flags == 0x03:
                if header_end < 19:
                    return f"PES header on PID {pid} too short for its DTS"
                dts = read_timestamp(data, 14)
        elif flags == 0x01:
            return f"PES on PID {pid} has a DTS without a PTS (forbidden value 01)"
        return PesFrame(pid, stream_type, pts, dts, data[header_end:])

    # ---- PSI: PAT (§2.4.4.3) and PMT (§2.4.4.8) --------------------------------------------

    def _section_packet(self, pid: int, cc: int, pusi: bool, payload: memoryview,
                        out: list[TsEvent]) -> None:
        sec = self._sections.setdefault(pid, _Section())
        if sec.cc >= 0 and cc != (sec.cc + 1) & 0x0F and cc != sec.cc:
            sec.buf = None  # a lost packet: drop the partial section
        sec.cc = cc
        if pusi:
            if not payload:
                return
            pointer = payload[0]
            if sec.buf is not None and pointer:
                sec.buf += payload[1:1 + pointer]
                self._try_section(pid, sec, out)
            sec.buf = bytearray(payload[1 + pointer:])
        elif sec.buf is not None:
            sec.buf += payload
        else:
            return
        self._try_section(pid, sec, out)

    def _try_section(self, pid: int, sec: _Section, out: list[TsEvent]) -> None:
        buf = sec.buf
        if buf is None or len(buf) < 3:
            return
        if buf[0] == 0xFF:  # stuffing: no section follows
            sec.buf = None
            return
        length = 3 + (((buf[1] & 0x0F) << 8) | buf[2])
        if length > MAX_SECTION_BYTES or length < 12:
            sec.buf = None
            self._problem(out, f"PSI section of {length} bytes on PID {pid}")
            return
        if len(buf) < length:
            if len(buf) > MAX_SECTION_BYTES:
                sec.buf = None
            return
        section = bytes(buf[:length])
        sec.buf = None  # one section per table is all a live program sends
        if section == sec.last:
            return
        if crc32_mpeg2(section) != 0:  # the CRC over the section including it is 0
            self._problem(out, f"PSI section with a bad CRC on PID {pid}")
            return
        sec.last = section
        if pid == PAT_PID and section[0] == 0x00:
            self._pat(section)
        elif pid == self._pmt_pid and section[0] == 0x02:
            self._pmt(section, out)

    def _pat(self, section: bytes) -> None:
        for i in range(8, len(section) - 4 - 3, 4):
            program = (section[i] << 8) | section[i + 1]
            if program != 0:  # 0 names the network PID (§2.4.4.3)
                pmt_pid = ((section[i + 2] & 0x1F) << 8) | section[i + 3]
                if pmt_pid != self._pmt_pid:
                    if self._pmt_pid is not None:
                        self._sections.pop(self._pmt_pid, None)
                    self._pmt_pid = pmt_pid
                    self._sections[pmt_pid] = _Section()
                return

    def _pmt(self, section: bytes, out: list[TsEvent]) -> None:
        end = len(section) - 4
        pos = 12 + (((section[10] & 0x0F) << 8) | section[11])
        streams: list[ElementaryStream] = []
        while pos + 5 <= end and len(streams) < MAX_STREAMS:
            stream_type = section[pos]
            pid = ((section[pos + 1] & 0x1F) << 8) | section[pos + 2]
            pos += 5 + (((section[pos + 3] & 0x0F) << 8) | section[pos + 4])
            if pid not in (PAT_PID, NULL_PID, self._pmt_pid) and all(
                    s.pid != pid for s in streams):
                streams.append(ElementaryStream(pid, stream_type))
        new = tuple(streams)
        if new == self.streams:
            return
        self.streams = new
        old = self._pes
        self._pes = {}
        for s in new:
            kept = old.get(s.pid)
            self._pes[s.pid] = (kept if kept is not None and kept.stream_type == s.stream_type
                                else _Pes(s.stream_type))
        out.append(ProgramChanged(new))
