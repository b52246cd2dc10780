"""WHIP ingest (RFC 9725), the pure parts: offer checks, RTP frame reassembly, H.264 access
units → :class:`~media.units.MediaUnit`, RTP/RTCP timestamps → one 90 kHz session clock.

No asyncio, no aiortc: :mod:`appliance.whip` feeds these from aiortc's receiver (which keeps
doing SRTP, RTX unwrapping, NACK and RTCP receiver reports) through the hooks in
:mod:`media.webrtc.compat`. Nothing here decodes video; Opus → AAC for HLS is
:class:`media.webrtc.opus.OpusToAac`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from media.h264 import H264Error, config_from_parameter_sets, split_access_unit
from media.units import CLOCK_RATE, VideoConfig

__all__ = [
    "AccessUnit",
    "FrameReassembler",
    "H264Access",
    "RtpFrame",
    "SessionClock",
    "WhipMediaError",
    "WhipOffer",
    "WhipOfferError",
    "check_offer",
]

MAX_OFFER_LINES = 2000
"""A browser's offer has ~100 lines; OBS's fewer. More is only parsing work for us."""
MAX_LINE_CHARS = 4096
MAX_M_LINES = 4
"""A WHIP publisher sends one audio and one video section; a few spare for ones we refuse
politely (e.g. a data channel) and no more (docs/threat-model.md §whip)."""
MAX_FORMATS = 64
OPUS = ("opus", 48000)

_RTPMAP = re.compile(r"^a=rtpmap:(\d{1,3}) ([A-Za-z0-9_.-]{1,32})/(\d{1,6})(?:/\d{1,2})?\s*$")
_FMTP = re.compile(r"^a=fmtp:(\d{1,3}) (.{0,1024})$")
_DIRECTIONS = ("a=sendonly", "a=sendrecv", "a=recvonly", "a=inactive")


class WhipOfferError(ValueError):
    """An offer this server cannot take; ``status`` is the HTTP answer (400, 415 or 422)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WhipOffer:
    """What the checks found: the H.264 (packetization-mode 1) and Opus payload types offered,
    in the publisher's order of preference."""

    h264: tuple[int, ...]
    opus: tuple[int, ...]


@dataclass
class _Section:
    kind: str
    formats: list[int]
    direction: str = "a=sendrecv"
    codecs: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)


def _sections(sdp: str) -> list[_Section]:
    if not sdp.startswith("v=0"):
        raise WhipOfferError(400, "not an SDP offer (it must start with v=0)")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_OFFER_LINES:
        raise WhipOfferError(400, f"offer has more than {MAX_OFFER_LINES} lines")
    sections: list[_Section] = []
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            raise WhipOfferError(400, f"offer line longer than {MAX_LINE_CHARS} characters")
        if line.startswith("m="):
            if len(sections) >= MAX_M_LINES:
                raise WhipOfferError(400, f"offer has more than {MAX_M_LINES} media sections")
            parts = line[2:].split()
            if len(parts) < 4:
                raise WhipOfferError(400, f"malformed media line {line[:80]!r}")
            formats = [int(p) for p in parts[3:MAX_FORMATS + 3] if p.isdigit() and len(p) <= 3]
            sections.append(_Section(kind=parts[0], formats=formats))
        elif sections:
            _attribute(sections[-1], line)
    return sections


def _attribute(section: _Section, line: str) -> None:
    if line.strip() in _DIRECTIONS:
        section.direction = line.strip()
    elif m := _RTPMAP.match(line):
        section.codecs[int(m[1])] = (m[2].lower(), int(m[3]))
    elif m := _FMTP.match(line):
        params = {}
        for item in m[2].split(";")[:32]:
            key, sep, value = item.strip().partition("=")
            if sep:
                params[key.strip().lower()] = value.strip()
        section.fmtp[int(m[1])] = params


def check_offer(sdp: str) -> WhipOffer:
    """Check a WHIP offer before any WebRTC work is spent on it.

    Rules: an SDP (``v=0``) of at most :data:`MAX_OFFER_LINES` lines and :data:`MAX_M_LINES`
    media sections; exactly one video section that sends (sendonly/sendrecv) and offers H.264
    with packetization-mode 1 (RFC 6184 §6.3: the single-NAL mode 0 cannot carry frames larger
    than the MTU); at most one audio section, which must offer Opus/48000 (RFC 7587). Hearth
    forwards the publisher's H.264 without re-encoding, so other video codecs cannot be taken.

    Raises:
        WhipOfferError: 400 for a malformed or oversized offer, 422 for codecs or sections
            this server does not take. Nothing else.
    """
    sections = _sections(sdp)
    video = [s for s in sections if s.kind == "video"]
    audio = [s for s in sections if s.kind == "audio"]
    others = sorted({s.kind for s in sections} - {"video", "audio"})
    if others:
        raise WhipOfferError(422, "only audio and video sections can be published here, not "
                                  + ", ".join(o[:20] for o in others))
    if len(video) != 1 or len(audio) > 1:
        raise WhipOfferError(422, "offer one video section (H.264) and at most one audio "
                                  "section (Opus)")
    for s in sections:
        if s.direction not in ("a=sendonly", "a=sendrecv"):
            raise WhipOfferError(422, f"the {s.kind} section does not send media "
                                      f"({s.direction[2:]}); a WHIP offer publishes")
    v = video[0]
    h264 = tuple(pt for pt in v.formats if v.codecs.get(pt, ("", 0))[0] == "h264"
                 and v.fmtp.get(pt, {}).get("packetization-mode") == "1")
    if not h264:
        offered = sorted({v.codecs[pt][0] for pt in v.formats if pt in v.codecs})
        raise WhipOfferError(422, "video must be H.264 with packetization-mode 1 (Hearth "
                                  "forwards it without re-encoding); offered: "
                                  + (", ".join(o[:20] for o in offered[:8]) or "nothing"))
    opus: tuple[int, ...] = ()
    if audio:
        a = audio[0]
        opus = tuple(pt for pt in a.formats if a.codecs.get(pt) == OPUS)
        if not opus:
            offered = sorted({a.codecs[pt][0] for pt in a.formats if pt in a.codecs})
            raise WhipOfferError(422, "audio must be Opus/48000; offered: "
                                      + (", ".join(o[:20] for o in offered[:8]) or "nothing"))
    return WhipOffer(h264=h264, opus=opus)


# ---- RTP frames -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpFrame:
    """One frame's RTP payloads, depacketized and concatenated, in sequence order.

    Attributes:
        timestamp: the RTP timestamp (32 bits) of its packets.
        data: for H.264, an Annex-B access unit (aiortc's depayloader puts start codes in);
            for Opus, one packet.
        after_loss: packets were lost before this frame (a video decoder would miss
            references until the next IDR).
        arrival: when its last packet arrived (receiver's ``time.time()``).
    """

    timestamp: int
    data: bytes
    after_loss: bool
    arrival: float


@dataclass(slots=True)
class _Packet:
    timestamp: int
    marker: bool
    data: bytes
    arrival: float


class FrameReassembler:
    """Reorders one SSRC's RTP packets and returns whole frames (a jitter buffer that waits
    only when a packet is missing).

    A video frame is the run of packets with one timestamp, ended by the marker bit (RFC 6184
    §5.1) or by the next timestamp. A missing packet holds later frames back for up to
    ``loss_timeout`` seconds (time for NACK and retransmission, RFC 4585 §6.2.1); then it is
    given up, the frame it belonged to is dropped (its start is unknown) and the next whole
    frame is flagged ``after_loss``. With ``single_packet_frames`` (audio) every packet is a
    frame. At most ``max_packets`` wait; beyond that the oldest gap is given up at once.
    """

    def __init__(self, *, single_packet_frames: bool = False, loss_timeout: float = 0.3,
                 max_packets: int = 2048) -> None:
        self._single = single_packet_frames
        self.loss_timeout = loss_timeout
        self.max_packets = max_packets
        self._packets: dict[int, _Packet] = {}
        self._next: int | None = None  # extended sequence number expected next
        self._highest = -1
        self._gap_since: float | None = None
        self._lost = False
        self._clean = True  # the packet before _next ended a frame
        self.packets_lost = 0
        self.frames_dropped = 0
        self.late_packets = 0

    def _extend(self, seq: int) -> int:
        if self._highest < 0:
            return seq
        base = self._highest & ~0xFFFF
        ext = base | seq
        if ext < self._highest - 0x8000:
            ext += 0x10000
        elif ext > self._highest + 0x8000 and ext >= 0x10000:
            ext -= 0x10000
        return ext

    def add(self, seq: int, timestamp: int, marker: bool, data: bytes,
            now: float) -> list[RtpFrame]:
        """Add one packet (``seq`` 16 bits); returns the frames now complete, in order."""
        ext = self._extend(seq & 0xFFFF)
        if self._next is None:
            self._next = ext
        if ext < self._next or ext in self._packets:
            self.late_packets += 1
            return []
        self._highest = max(self._highest, ext)
        self._packets[ext] = _Packet(timestamp & 0xFFFFFFFF, marker, data, now)
        return self._drain(now)

    def _skip_to(self, ext: int) -> None:
        assert self._next is not None
        self.packets_lost += sum(1 for k in range(self._next, ext) if k not in self._packets)
        for k in [k for k in self._packets if k < ext]:
            del self._packets[k]
        self._next = ext
        self._gap_since = None
        self._lost = True
        self._clean = self._single  # the packet before ``ext`` may have been mid-frame

    def _drain(self, now: float) -> list[RtpFrame]:
        out: list[RtpFrame] = []
        while self._packets:
            result = self._take_frame()
            if isinstance(result, RtpFrame):
                out.append(result)
                self._gap_since = None
                continue
            if result is None:
                continue  # a frame dropped (unknown start)
            missing = result
            beyond = [k for k in self._packets if k > missing]
            if not beyond:
                break  # nothing after it yet: the sender has not sent it, not a loss
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < self.loss_timeout and \
                    len(self._packets) < self.max_packets:
                break  # wait for the retransmission
            self._skip_to(min(beyond))
        return out

    def _take_frame(self) -> RtpFrame | int | None:
        """The frame starting at ``_next`` if all its packets are here; else the sequence
        number it waits for; None when a frame was dropped."""
        assert self._next is not None
        first = self._packets.get(self._next)
        if first is None:
            return self._next
        end = self._next
        while True:
            pkt = self._packets[end]
            if self._single or pkt.marker:
                break
            following = self._packets.get(end + 1)
            if following is None:
                return end + 1
            if following.timestamp != first.timestamp:
                break  # a lost or missing marker: the timestamp change ends it too
            end += 1
        packets = [self._packets.pop(k) for k in range(self._next, end + 1)]
        self._next = end + 1
        clean, self._clean = self._clean, True
        if not clean:
            self.frames_dropped += 1
            return None  # its first packets may be missing: never hand out half a frame
        lost, self._lost = self._lost, False
        return RtpFrame(timestamp=first.timestamp, data=b"".join(p.data for p in packets),
                        after_loss=lost, arrival=packets[-1].arrival)


# ---- H.264 access units ------------------------------------------------------------------------


class WhipMediaError(ValueError):
    """A frame that cannot be packaged; ``fatal`` ones end the session (unplayable profile)."""

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One H.264 picture in AVCC framing (4-byte lengths), as :class:`MediaUnit` data."""

    data: bytes
    keyframe: bool


MAX_ACCESS_UNIT = 8 * 1024 * 1024
"""An 8 MB picture is far beyond any live encoder's; bigger means a broken or hostile peer."""


class H264Access:
    """Annex-B access units from RTP → AVCC units and a :class:`VideoConfig` from in-band
    SPS/PPS (browsers and OBS send them before every IDR, RFC 6184 §8.4).

    SPS, PPS and access unit delimiters are taken out of the unit data (they live in the
    ``avcC``; the WebRTC egress puts them back before each IDR). Frames before the first
    SPS/PPS/IDR, and after a loss until the next IDR, are dropped and counted (the caller
    asks for a keyframe).
    """

    def __init__(self) -> None:
        self.config: VideoConfig | None = None
        self._sps: tuple[bytes, ...] = ()
        self._pps: tuple[bytes, ...] = ()
        self._need_idr = True
        self.dropped = 0

    def push(self, annexb: bytes, *, after_loss: bool = False
             ) -> tuple[VideoConfig | None, AccessUnit | None]:
        """One access unit → (a new config or None, the unit or None when dropped).

        Raises:
            WhipMediaError: malformed framing (not fatal) or an unplayable SPS (fatal).
        """
        if len(annexb) > MAX_ACCESS_UNIT:
            raise WhipMediaError(f"access unit of {len(annexb)} bytes")
        if not annexb.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
            raise WhipMediaError("access unit does not start with a NAL unit")
        try:
            unit = split_access_unit(annexb)
        except H264Error as exc:
            raise WhipMediaError(f"access unit: {exc}") from None
        # The last parameter sets seen stay in force (browsers repeat them before each IDR).
        self._sps = unit.sps[-1:] or self._sps
        self._pps = unit.pps[-1:] or self._pps
        new_config: VideoConfig | None = None
        if self._sps and self._pps and (
                self.config is None or self.config.sps != self._sps
                or self.config.pps != self._pps):
            new_config = self._config(self._sps, self._pps)
            self.config = new_config
        if after_loss:
            self._need_idr = True
        if (self._need_idr and not unit.keyframe) or self.config is None or not unit.coded:
            self.dropped += 1
            return new_config, None
        self._need_idr = False
        return new_config, AccessUnit(data=unit.sample(), keyframe=unit.keyframe)

    @property
    def needs_keyframe(self) -> bool:
        return self._need_idr

    @staticmethod
    def _config(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> VideoConfig:
        try:
            config, problem = config_from_parameter_sets(sps, pps)
        except H264Error as exc:
            raise WhipMediaError(f"bad SPS/PPS: {exc}") from None
        if problem is not None:
            raise WhipMediaError(
                f"unsupported video: {problem}; viewers' browsers and phones cannot decode it",
                fatal=True)
        return config


# ---- clocks ------------------------------------------------------------------------------------

NTP_FRACTION = 1 << 32
SR_TOLERANCE = 0.02
"""Seconds by which a sender report may disagree with the previous one of its track (after
the RTP clock's progress) and still be trusted; a sender's own clocks agree to far better."""


@dataclass(slots=True)
class _Track:
    rate: int
    last_ext: int | None = None
    first_ext: int = 0
    first_tick: int = 0
    sr_ext: int | None = None
    sr_wall: float = 0.0
    previous_sr: tuple[int, float] | None = None


class SessionClock:
    """RTP timestamps of one WHIP session's tracks → one 90 kHz clock, lip-synced by RTCP SR.

    Each track's 32-bit RTP timestamps are unwrapped. Until a track's first sender report it
    is placed by arrival: its first packet at the receiver's elapsed time since the session's
    first packet, then advancing by its own RTP clock. A sender report (RFC 3550 §6.4.1) gives
    the sender's wall clock (NTP) for an RTP timestamp; once a track has two reports that
    agree (within :data:`SR_TOLERANCE`), it is placed by the sender's wall clock, so audio and
    video line up as the sender captured them (RFC 3550 §6.4.1 "lip synchronization"),
    whatever the network did to their arrival. Reports that disagree with the sender's own
    RTP clock are ignored (counted in ``reports_rejected``).
    """

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}
        self._t0: float | None = None
        self._wall_ref: float | None = None  # sender wall time at session tick 0
        self.reports_rejected = 0

    def add_track(self, name: str, clock_rate: int) -> None:
        self._tracks[name] = _Track(rate=clock_rate)

    def _unwrap(self, track: _Track, rtp: int) -> int:
        rtp &= 0xFFFFFFFF
        if track.last_ext is None:
            return rtp
        delta = (rtp - track.last_ext) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return track.last_ext + delta

    def _place(self, track: _Track, ext: int) -> int:
        if track.sr_ext is not None and self._wall_ref is not None:
            wall = track.sr_wall + (ext - track.sr_ext) / track.rate
            return round((wall - self._wall_ref) * CLOCK_RATE)
        return track.first_tick + (ext - track.first_ext) * CLOCK_RATE // track.rate

    def ticks(self, name: str, rtp: int, arrival: float) -> int:
        """The session tick of a frame of track ``name`` with RTP timestamp ``rtp``."""
        track = self._tracks[name]
        ext = self._unwrap(track, rtp)
        if track.last_ext is None:
            if self._t0 is None:
                self._t0 = arrival
            track.first_ext = ext
            track.first_tick = round((arrival - self._t0) * CLOCK_RATE)
        track.last_ext = ext if track.last_ext is None else max(track.last_ext, ext)
        return self._place(track, ext)

    def sender_report(self, name: str, ntp: int, rtp: int) -> int:
        """An RTCP SR for track ``name``: 64-bit NTP timestamp ``ntp`` ↔ RTP ``rtp``.

        Returns how many ticks it moved the track (0 while there is no media to anchor to).
        """
        track = self._tracks.get(name)
        if track is None or track.last_ext is None:
            return 0  # no media yet: nothing to anchor it to
        ext = self._unwrap(track, rtp)
        wall = (ntp >> 32) + (ntp & 0xFFFFFFFF) / NTP_FRACTION
        previous, track.previous_sr = track.previous_sr, (ext, wall)
        if previous is None:
            return 0  # one report alone proves nothing: wait for a second that agrees
        predicted = previous[1] + (ext - previous[0]) / track.rate
        if abs(predicted - wall) > SR_TOLERANCE:
            # This sender's reports disagree with its own RTP clock (seen from relays that
            # pair "now" with whatever RTP timestamp they last forwarded): keep placing this
            # track as before rather than jumping with every report.
            self.reports_rejected += 1
            return 0
        before = self._place(track, track.last_ext)
        if self._wall_ref is None:
            # First report of the session: keep this track's placement continuous.
            here = track.first_tick + (ext - track.first_ext) * CLOCK_RATE // track.rate
            self._wall_ref = wall - here / CLOCK_RATE
        track.sr_ext, track.sr_wall = ext, wall
        return self._place(track, track.last_ext) - before

    @property
    def synced(self) -> bool:
        """Every track has had a sender report."""
        return bool(self._tracks) and all(t.sr_ext is not None for t in self._tracks.values())
