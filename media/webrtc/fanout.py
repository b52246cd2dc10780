"""The per-viewer RTP send path: one packetization per stream, per viewer a header, SRTP, a
``sendto``.

aiortc keeps signalling, ICE and DTLS (:func:`media.webrtc.compat.take_over_sender`); media
goes out here. Per stream and kind an :class:`Outbound` numbers packets once (stream index),
keeps a :class:`~media.webrtc.rtp.History` for NACKs and sends each frame to every viewer in
one pass: for each :class:`Sink` (one viewer, one kind) the 12-byte RTP header (RFC 3550
§5.1) with the viewer's SSRC, payload type, sequence offset and timestamp offset, plus the
header extensions it negotiated, is packed into the SRTP session's own buffer, protected in
place and sent on the nominated ICE pair's socket. No per-packet object, task or coroutine.

A viewer whose socket buffer is full (EAGAIN) loses the rest of that frame (counted; the
sequence numbers are consumed, so its NACKs can ask for them again once the buffer drains);
a viewer whose socket fails otherwise is marked failed and reported, never retried. Nothing
a viewer does can stall another.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Iterator, Sequence

from media.webrtc.compat import MediaRoute, ReceptionReport, SendParameters, current_route
from media.webrtc.rtp import (
    History,
    HistoryEntry,
    abs_send_time,
    extension_block,
    ntp_timestamp,
    sender_report,
)

__all__ = ["MAX_NACKED", "MAX_RTT", "RETRANSMIT_BUDGET", "SLICE_PACKETS", "Outbound", "Sink"]

MAX_NACKED = 128
"""Sequence numbers served per NACK packet: a repair, not a replay of the history."""
RETRANSMIT_BUDGET = 200
"""Retransmissions per viewer per second (half the packet rate of a 3 Mbit/s stream, far
above what real loss needs): a viewer sending NACK after NACK cannot make the server spend
its CPU on it (docs/threat-model.md §whep)."""

SLICE_PACKETS = 256
"""Packets sent in one go by :meth:`Outbound.send_in_slices` before the loop gets a turn
(~1.5 ms at ~6 µs per packet). A keyframe is ~80 packets at 3 Mbit/s: to 200 viewers that is
16,000 packets, ~100 ms during which ingest reads, HTTP and other streams would wait."""

MAX_RTT = 60.0
"""Seconds above which a computed round trip is taken for a wrapped (negative) one."""

_HEADER = struct.Struct("!BBHII")
_OSN = struct.Struct("!H")


class Sink:
    """One viewer's RTP stream of one kind (its SSRC, offsets, SRTP session and socket)."""

    __slots__ = (
        "abs_offset",
        "attached",
        "dropped",
        "error",
        "ext",
        "failed",
        "first_index",
        "fraction_lost",
        "jitter",
        "last_index",
        "lost",
        "nacks",
        "needs_keyframe",
        "octets",
        "packets",
        "params",
        "plis",
        "pt",
        "reports",
        "retransmitted",
        "route",
        "rtt",
        "rtx_budget",
        "rtx_pt",
        "rtx_seq",
        "rtx_ssrc",
        "rtx_window",
        "seq_offset",
        "srtcp_errors",
        "ssrc",
        "ts_offset",
    )

    def __init__(self, params: SendParameters, route: MediaRoute, *,
                 wait_for_keyframe: bool) -> None:
        self.params = params
        self.route = route
        self.ssrc = params.ssrc
        self.pt = params.payload_type
        self.rtx_pt = params.rtx_payload_type
        self.rtx_ssrc = params.rtx_ssrc
        # Below 2**15 like libwebrtc/aiortc: SRTP's rollover counter guess (RFC 3711 §3.3.1)
        # copes badly with a wrap in the first packets.
        self.rtx_seq = random.randrange(1 << 15)
        self.seq_offset = 0  # set by Outbound.attach / on the first keyframe
        self.ts_offset = random.getrandbits(32)  # RFC 3550 §5.1: random initial timestamp
        self.ext, self.abs_offset = extension_block(params.extensions, params.mid)
        self.first_index = -1
        self.needs_keyframe = wait_for_keyframe
        self.packets = 0
        self.octets = 0
        self.last_index = -1
        self.dropped = 0
        self.retransmitted = 0
        self.nacks = 0
        self.plis = 0
        self.failed = False
        self.attached = False
        self.error = ""
        self.srtcp_errors = 0
        self.rtx_window = 0.0
        self.rtx_budget = RETRANSMIT_BUDGET
        # From the viewer's reception reports (Outbound.receive_report).
        self.reports = 0
        self.lost = 0
        self.fraction_lost = 0.0
        self.jitter = 0.0
        self.rtt: float | None = None

    def start_at(self, index: int) -> None:
        """The first packet this viewer gets is the stream's packet ``index``."""
        self.first_index = index
        self.seq_offset = (random.randrange(1 << 15) - index) & 0xFFFF

    def _write(self, seq: int, ts: int, payload: bytes | memoryview, marker: bool,
               abs_time: bytes | None, prefix: int = -1) -> int:
        """Header (+ extensions, + RTX OSN when ``prefix`` ≥ 0) + payload into the SRTP buffer;
        returns the RTP length."""
        buf = self.route.srtp.buffer
        ext = self.ext
        pt = self.pt if prefix < 0 else (self.rtx_pt or 0)
        ssrc = self.ssrc if prefix < 0 else self.rtx_ssrc
        _HEADER.pack_into(buf, 0, 0x90 if ext else 0x80, pt | (0x80 if marker else 0), seq,
                          ts & 0xFFFFFFFF, ssrc)
        pos = 12
        if ext:
            end = 12 + len(ext)
            buf[12:end] = ext
            if abs_time is not None and self.abs_offset >= 0:
                at = 12 + self.abs_offset
                buf[at:at + 3] = abs_time
            pos = end
        if prefix >= 0:
            _OSN.pack_into(buf, pos, prefix)
            pos += 2
        end = pos + len(payload)
        buf[pos:end] = payload
        return end

    def _send(self, length: int) -> bool:
        """Protect and send; False (and the sink marked) when it cannot take more now."""
        route = self.route
        try:
            n = route.srtp.protect(length)
            route.sock.sendto(route.srtp.buffer[:n], route.addr)
        except (BlockingIOError, InterruptedError):
            return False
        except Exception as exc:  # OSError from the socket, pylibsrtp.Error
            self.failed = True
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def send_frame(self, index: int, payloads: Sequence[bytes], timestamp: int,
                   abs_time: bytes | None, marker_last: bool) -> None:
        """The packets ``index``… of one frame (all the same timestamp).

        The hot loop: the header extensions are written once per frame (SRTP leaves the
        header in place), then per packet the 12-byte header and the payload go into the SRTP
        buffer, are protected in place and sent.
        """
        route = self.route = current_route(self.route)
        srtp = route.srtp
        buf = srtp.buffer
        protect = srtp.protect
        sendto = route.sock.sendto
        addr = route.addr
        pack_into = _HEADER.pack_into
        ext = self.ext
        start = 12 + len(ext)
        if ext:
            buf[12:start] = ext
            if abs_time is not None and self.abs_offset >= 0:
                at = 12 + self.abs_offset
                buf[at:at + 3] = abs_time
        first_byte = 0x90 if ext else 0x80
        pt = self.pt
        ssrc = self.ssrc
        ts = (timestamp + self.ts_offset) & 0xFFFFFFFF
        seq = index + self.seq_offset
        last = len(payloads) - 1
        octets = 0
        sent = 0
        try:
            for i, payload in enumerate(payloads):
                pack_into(buf, 0, first_byte, pt | 0x80 if marker_last and i == last else pt,
                          (seq + i) & 0xFFFF, ts, ssrc)
                end = start + len(payload)
                buf[start:end] = payload
                sendto(buf[:protect(end)], addr)
                sent += 1
                octets += len(payload)
        except (BlockingIOError, InterruptedError):
            self.dropped += len(payloads) - sent
        except Exception as exc:  # OSError from the socket, pylibsrtp.Error
            self.dropped += len(payloads) - sent
            self.failed = True
            self.error = f"{type(exc).__name__}: {exc}"
        self.packets += sent
        self.octets += octets
        self.last_index = index + last

    def retransmit(self, entry: HistoryEntry, abs_time: bytes | None) -> bool:
        """Send a packet again: RTX (RFC 4588 §4) when negotiated, else as it was."""
        seq = (entry.index + self.seq_offset) & 0xFFFF
        ts = entry.timestamp + self.ts_offset
        if self.rtx_pt is not None:
            length = self._write(self.rtx_seq, ts, entry.payload, entry.marker, abs_time,
                                 prefix=seq)
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        else:
            length = self._write(seq, ts, entry.payload, entry.marker, abs_time)
        if self._send(length):
            self.retransmitted += 1
            return True
        return False


class Outbound:
    """One stream's media of one kind, sent to its viewers' :class:`Sink` s.

    Args:
        kind: "video" or "audio".
        clock_rate: the RTP clock (90 kHz video, 48 kHz Opus).
        on_failed: called with a sink whose socket failed (after it is removed).
    """

    def __init__(self, kind: str, clock_rate: int,
                 on_failed: Callable[[Sink], None] | None = None) -> None:
        self.kind = kind
        self.clock_rate = clock_rate
        self.history = History()
        self.sinks: list[Sink] = []
        self.next_index = 0
        self.on_failed = on_failed
        self.frames = 0
        self.nack_requests = 0
        self.retransmitted = 0
        self.unrecoverable = 0
        self.over_budget = 0
        self.plis = 0

    def attach(self, sink: Sink) -> None:
        """Start sending to ``sink`` (video sinks wait for the next keyframe)."""
        if not sink.needs_keyframe:
            sink.start_at(self.next_index)
        sink.attached = True
        self.sinks.append(sink)

    def detach(self, sink: Sink) -> None:
        sink.attached = False
        if sink in self.sinks:
            self.sinks.remove(sink)

    def send(self, frames: Sequence[tuple[Sequence[bytes], int, bool]],
             marker_last: bool = True) -> None:
        """Send ``(payloads, timestamp, keyframe)`` frames to every viewer, in one pass.

        Each frame's packets take the next stream indexes (history first, then the viewers);
        a viewer waiting for a keyframe starts at the first one.
        """
        for _ in self.send_in_slices(frames, marker_last):
            pass

    def send_in_slices(self, frames: Sequence[tuple[Sequence[bytes], int, bool]],
                       marker_last: bool = True, slice_packets: int = SLICE_PACKETS
                       ) -> Iterator[None]:
        """:meth:`send`, yielding after every ~``slice_packets`` packets sent.

        The frames are numbered and put in the history at once (a NACK can be served while
        the pass is under way); the caller lets the loop run at each yield (``await
        asyncio.sleep(0)``) and must finish the pass before starting the next one on this
        Outbound, so every viewer gets the frames in order. A viewer detached meanwhile
        gets nothing more; one attached meanwhile starts with a later pass.
        """
        plan = self._number(frames, marker_last)
        if not plan or not self.sinks:
            return iter(())
        return self._deliver(plan, list(self.sinks), marker_last, slice_packets)

    def _number(self, frames: Sequence[tuple[Sequence[bytes], int, bool]], marker_last: bool
                ) -> list[tuple[int, Sequence[bytes], int, bool]]:
        history = self.history
        plan: list[tuple[int, Sequence[bytes], int, bool]] = []
        index = self.next_index
        for payloads, timestamp, keyframe in frames:
            last = len(payloads) - 1
            for i, payload in enumerate(payloads):
                history.add(HistoryEntry(index + i, payload, timestamp,
                                         marker_last and i == last))
            plan.append((index, payloads, timestamp, keyframe))
            index += len(payloads)
        self.next_index = index
        self.frames += len(frames)
        return plan

    def _deliver(self, plan: list[tuple[int, Sequence[bytes], int, bool]], sinks: list[Sink],
                 marker_last: bool, slice_packets: int) -> Iterator[None]:
        abs_time = abs_send_time(time.time())
        sent = 0
        for sink in sinks:
            if not sink.attached:  # detached (or failed) while the pass was paused
                continue
            for start, payloads, timestamp, keyframe in plan:
                if sink.needs_keyframe:
                    if not keyframe:
                        continue
                    sink.needs_keyframe = False
                    sink.start_at(start)
                sink.send_frame(start, payloads, timestamp, abs_time, marker_last)
                sent += len(payloads)
                if sink.failed:
                    self._fail(sink)
                    break
            if sent >= slice_packets:
                yield
                sent = 0
                abs_time = abs_send_time(time.time())

    def nack(self, sink: Sink, lost: Sequence[int]) -> None:
        """Serve a viewer's NACK (RFC 4585 §6.2.1) from the history."""
        sink.nacks += 1
        self.nack_requests += 1
        if sink.first_index < 0:
            return
        now = time.monotonic()
        if now - sink.rtx_window >= 1.0:
            sink.rtx_window, sink.rtx_budget = now, RETRANSMIT_BUDGET
        abs_time = abs_send_time(time.time())
        for seq in lost[:MAX_NACKED]:
            if sink.rtx_budget <= 0:
                self.over_budget += 1
                continue
            index16 = (seq - sink.seq_offset) & 0xFFFF
            entry = self.history.get(index16, sink.last_index)
            if entry is None or entry.index < sink.first_index:
                self.unrecoverable += 1
                continue
            sink.rtx_budget -= 1
            if sink.retransmit(entry, abs_time):
                self.retransmitted += 1
            elif sink.failed:
                self._fail(sink)
                return

    def pli(self, sink: Sink) -> None:
        """A Picture Loss Indication: pass-through cannot make a keyframe; the next one (the
        publisher's GOP) repairs. Counted."""
        sink.plis += 1
        self.plis += 1

    def receive_report(self, sink: Sink, report: ReceptionReport, now: float) -> None:
        """Keep what a viewer reports about its stream: loss, jitter, and the round trip
        from our sender report it echoes (RFC 3550 §6.4.1: RTT = A - LSR - DLSR, A being
        the middle 32 bits of the NTP time ``now``). A figure that cannot be a round trip
        (an echo of nothing, or of a report from before a clock step) is not kept; a viewer
        misreporting only misreports itself."""
        sink.reports += 1
        sink.lost = max(0, report.packets_lost)
        sink.fraction_lost = report.fraction_lost / 256
        sink.jitter = report.jitter / self.clock_rate
        if report.lsr:
            arrival = (ntp_timestamp(now) >> 16) & 0xFFFFFFFF
            rtt = ((arrival - report.lsr - report.dlsr) & 0xFFFFFFFF) / 65536
            if rtt <= MAX_RTT:
                sink.rtt = rtt

    def report(self, now: float, media_seconds: float | None) -> None:
        """An RTCP sender report (+ SDES) to every viewer (RFC 3550 §6.4.1).

        ``media_seconds`` is the media time being captured at wall time ``now``
        (:class:`~media.webrtc.rtp.MediaClock`); each viewer's RTP timestamp for it is its
        offset plus that time on the RTP clock, so audio and video map to one wall clock.
        """
        if media_seconds is None:
            return
        ntp = ntp_timestamp(now)
        media_ticks = round(media_seconds * self.clock_rate)
        failed: list[Sink] = []
        for sink in self.sinks:
            if sink.first_index < 0:
                continue
            packet = sender_report(sink.ssrc, ntp, media_ticks + sink.ts_offset, sink.packets,
                                   sink.octets, sink.params.cname)
            route = sink.route
            try:
                route.sock.sendto(route.srtp.protect_rtcp(packet), route.addr)
            except (BlockingIOError, InterruptedError):
                sink.dropped += 1
            except OSError as exc:
                sink.failed = True
                sink.error = f"{type(exc).__name__}: {exc}"
                failed.append(sink)
            except Exception:  # pylibsrtp.Error: counted, the next report may pass
                sink.srtcp_errors += 1
        for sink in failed:
            self._fail(sink)

    def _fail(self, sink: Sink) -> None:
        self.detach(sink)
        if self.on_failed is not None:
            self.on_failed(sink)
