"""HLS/LL-HLS packager: :class:`MediaUnit` in, fMP4 parts, segments and playlists out.

:class:`HlsMuxer` is a pure state machine: no threads, no asyncio, no I/O. ``push()`` costs a
few microseconds per unit plus one fragment build per part, so it runs inline on the event
loop. Everything it produces lives in memory, addressed by name (``init-N.mp4``,
``seg-N.m4s``, ``part-N-I.m4s``), and is freed by a bounded retention policy.

Timing model. The *master* track decides the cuts: video when the stream has video, else
audio. A part is the unit of fragmentation (one ``moof``+``mdat``, ~``part_target``); a segment
is the concatenation of its parts, cut at the first video keyframe at or after
``segment_target`` (audio-only: the first audio frame). A part is sealed when the master unit
*after* it arrives (so the last video sample's duration is exact), and emitted once the other
track has caught up with the part's end, so a part is only ever published complete.

Long GOPs. EXT-X-TARGETDURATION is fixed for the playlist's life (RFC 8216 §6.2.1; the first
playlist is served one part after publish, before any GOP length is known), and each EXTINF
rounded to the nearest integer must stay ≤ it (rfc8216bis §4.4.3.1). A remux cannot create
keyframes, so when a GOP runs past ``target + 0.5 s`` the segment is cut at a part boundary
anyway: the next segment starts with a non-independent part (no ``INDEPENDENT=YES``) and the
playlist drops EXT-X-INDEPENDENT-SEGMENTS while such a segment is listed. The next keyframe
then starts a new segment as soon as the current one is a part long, so joins land on IDRs
again. This also bounds memory for a publisher that never sends another keyframe
(``keyint=infinite``): segments keep completing and retention frees them; :attr:`notice`
tells the operator why.

Program date time comes from the media timeline: the first segment is anchored to the wall
clock when its first unit arrived, every later segment is the previous one plus its EXTINF,
so PDT and summed EXTINF never disagree (reconnects included).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from media.fmp4 import AUDIO_TRACK_ID, VIDEO_TRACK_ID, Sample, TrackRun, fragment, init_segment
from media.hls.errors import MuxerStateError
from media.hls.playlist import (
    LowLatencyInfo,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    VariantEntry,
    render_media_playlist,
    render_multivariant_playlist,
    target_duration_for,
)
from media.units import CLOCK_RATE, AudioConfig, MediaUnit, TrackKind, VideoConfig

__all__ = [
    "CompletedSegment",
    "HlsMuxer",
    "MuxerStateError",
    "MuxerStats",
    "SegmentSink",
    "is_object_name",
]

logger = logging.getLogger(__name__)

OBJECT_NAME_RE = re.compile(
    r"init-(?:0|[1-9][0-9]{0,17})\.mp4"
    r"|seg-(?:0|[1-9][0-9]{0,17})\.m4s"
    r"|part-(?:0|[1-9][0-9]{0,17})-(?:0|[1-9][0-9]{0,5})\.m4s"
)
"""The only names :meth:`HlsMuxer.get` will look up (ASCII digits, no leading zeros)."""
MAX_OBJECT_NAME_LENGTH = 48

AV_SKEW_LIMIT = 2.0
"""Seconds a sealed part waits for the other track before it is emitted without it. Ingest
interleaves within ~1 s; a track that stops must not stall the playlist forever."""

MAX_QUEUED_UNITS = 2_000
"""Cap on units waiting for the other track (≈ 20 s of AAC); older ones are dropped, counted."""

DEFAULT_VIDEO_FRAME_TICKS = CLOCK_RATE // 30
"""Duration given to a lone last video frame when no frame interval has been seen yet."""

PART_TARGET_HEADROOM = 1.1
"""Advertised PART-TARGET over the configured part target. rfc8216bis §4.4.4.9 wants every
part ≤ PART-TARGET and every non-final one ≥ 85 % of it; whole frames cannot always fit a
15 % window (6 frames at 29.97 fps are 0.2002 s: over a 0.2 target, while 5 frames are 83 %),
so parts aim at the configured target and the playlist advertises 10 % more."""

AUDIO_RESYNC_FRAMES = 1
"""Audio decode time is accumulated from frame counts; if the units' dts run ahead of it by more
than this many frames (dropped frames, timestamp jumps) it jumps forward to the dts."""
AUDIO_MAX_LAG_FRAMES = 3
"""If the frame count runs ahead of the units' dts (a publisher whose audio clock is faster than
its timestamps, or timestamps jittering backwards under load), the decode time never moves back:
that would overlap the previous part and decoders see time go backwards. Instead whole frames
are dropped once the audio would play more than this many frames late (3 AAC frames at 48 kHz
are 64 ms, inside the lip-sync tolerance of ITU-R BT.1359 for late audio)."""


@dataclass(frozen=True, slots=True)
class MuxerStats:
    """Counters since construction."""

    segments_emitted: int
    parts_emitted: int
    bytes_total: int
    units_dropped: int
    forced_cuts: int = 0
    """Segments cut without a keyframe because a GOP ran past the target duration."""


@dataclass(frozen=True, slots=True)
class CompletedSegment:
    """A segment exactly as the live playlist lists it, handed to a :class:`SegmentSink`.

    Attributes:
        msn: its media sequence number in the live playlist.
        name: ``seg-N.m4s``; ``parts`` are its bytes: each part's ``moof``+``mdat``, in order.
            The segment is their concatenation; it is never joined on the ingest path (a
            joined copy of every segment made each stream hold its media twice: 10 streams
            held 435 MB instead of 279, issue 17), so write them with ``writev``.
        init_name: ``init-K.mp4``, the EXT-X-MAP it needs; ``init`` is that init segment.
        duration: seconds (exact, from the samples' durations).
        discontinuity: the segment follows a reconnect or a codec change.
        program_date_time: wall-clock time its first part arrived at (seconds since epoch).
        independent: it starts with a keyframe (decodable on its own after its init).
    """

    msn: int
    name: str
    parts: tuple[bytes, ...]
    init_name: str
    init: bytes
    duration: float
    discontinuity: bool
    program_date_time: float
    independent: bool = True

    @property
    def size(self) -> int:
        """The segment's length in bytes (the sum of its parts')."""
        return sum(len(p) for p in self.parts)


class SegmentSink(Protocol):
    """Receives every completed segment (recorder, thumbnailer). Called on the muxer's thread.

    Implementations must return quickly (hand work to a worker); exceptions are logged and
    swallowed so a broken sink cannot disturb live delivery.
    """

    def segment(self, segment: CompletedSegment) -> None: ...

    def end(self) -> None:
        """The muxer ended (after the last :meth:`segment`)."""


def is_object_name(name: str) -> bool:
    """True if ``name`` has the shape of an object the muxer could serve (docs/threat-model.md
    §paths allow-list)."""
    return len(name) <= MAX_OBJECT_NAME_LENGTH and OBJECT_NAME_RE.fullmatch(name) is not None


@dataclass(slots=True)
class _Part:
    name: str
    duration: int  # CLOCK_RATE ticks
    independent: bool
    size: int = 0
    video_frames: int = 0


@dataclass(slots=True)
class _Segment:
    msn: int
    init_index: int
    discontinuity: bool
    program_date_time: float
    parts: list[_Part]
    duration: int = 0  # CLOCK_RATE ticks, set when complete
    independent: bool = True  # starts with a sync sample

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def name(self) -> str:
        return f"seg-{self.msn}.m4s"


@dataclass(slots=True)
class _PendingPart:
    """Master units of a sealed part, waiting for the other track to pass ``end``."""

    start: int
    end: int
    master: list[MediaUnit]
    independent: bool
    first_in_segment: bool
    ends_segment: bool
    arrival: float


class HlsMuxer:
    """Packages a stream of :class:`MediaUnit` into CMAF parts/segments and HLS playlists.

    Args:
        segment_target: seconds; video segments are cut at the first keyframe at or after it.
        part_target: seconds; LL-HLS part duration (EXT-X-PART-INF PART-TARGET); parts are cut
            so as not to exceed it (a single longer frame aside).
        window: segments listed in the playlist. Segments stay fetchable for another
            ``window`` segments after they leave it (RFC 8216 §6.2.2), then are freed.
        clock: wall clock, used for :attr:`updated_at`.
        first_msn: media sequence number of the first segment. Object names (``seg-N``,
            ``part-N-I``, and ``init-K`` from K = first_msn) derive from it, and caches keep
            them for a while (60 s, see appliance/api/hls.py): a new muxer on a playlist URL
            that a previous one used (a channel's next broadcast) should start above the old
            numbers, e.g. at ``int(time.time())`` (segments are ≥ 1 s, so numbers never catch
            up, and an init changes only on a reconnect with new codec settings).
        keyframe_cuts: every keyframe starts a segment. For ladder renditions, whose encoder
            places keyframes exactly where the source's segments start
            (:class:`media.ladder.SegmentCuts`), so their segments line up with the source's.

    Attributes:
        on_update: called (no arguments) after every new part or segment; exceptions it raises
            are logged and swallowed so a broken listener cannot corrupt the muxer.
    """

    def __init__(
        self,
        *,
        segment_target: float = 2.0,
        part_target: float = 0.333,
        window: int = 6,
        clock: Callable[[], float] = time.time,
        first_msn: int = 0,
        keyframe_cuts: bool = False,
    ) -> None:
        if not 0 < part_target <= segment_target:
            raise ValueError(f"need 0 < part_target <= segment_target, got {part_target}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not 0 <= first_msn < 10**15:
            raise ValueError(f"first_msn must be in [0, 1e15), got {first_msn}")
        self.on_update: Callable[[], None] | None = None
        self.sink: SegmentSink | None = None
        """Receives each completed segment and the end (see :class:`SegmentSink`)."""
        self._segment_target = round(segment_target * CLOCK_RATE)
        self._keyframe_cuts = keyframe_cuts
        self._part_target_s = part_target
        self._part_target = round(part_target * CLOCK_RATE)
        self._window = window
        self._clock = clock
        self._skew_limit = round(AV_SKEW_LIMIT * CLOCK_RATE)

        self._video: VideoConfig | None = None
        self._audio: AudioConfig | None = None
        self._init_index = -1
        self._init_base = first_msn  # init-K names start here (see first_msn)
        self._objects: dict[str, bytes] = {}  # init segments and parts, by name
        self._inits: set[int] = set()  # init indices held in _objects
        self._segments: deque[_Segment] = deque()  # complete, retained (≤ 2 × window)
        self._complete: dict[str, _Segment] = {}  # the same segments, by name
        self._open: _Segment | None = None
        self._next_msn = first_msn
        self._fragment_seq = 1
        self._discontinuity_next = False
        self._disc_total = 0  # discontinuity-tagged segments ever completed
        # RFC 8216 §6.2.1: the target duration never changes; the segmenter keeps every EXTINF
        # under target + 0.5 s (rounded ≤ target, rfc8216bis §4.4.3.1) by cutting long GOPs.
        self._target_duration = max(1, math.ceil(round(segment_target, 3)))
        self._max_segment = round((self._target_duration + 0.5) * CLOCK_RATE) - 1
        self._part_max_s = round(part_target * PART_TARGET_HEADROOM, 5)
        self._part_max = math.floor(self._part_max_s * CLOCK_RATE)
        self._ended = False
        self._playlist_cache: dict[tuple[bool, bool], str] = {}
        self.updated_at: float | None = None

        # master track state
        self._cur_units: list[MediaUnit] = []
        self._cur_start = 0
        self._cur_independent = False
        self._cur_first_in_segment = False
        self._cur_arrival = 0.0
        self._seg_start = 0
        self._seg_independent = True
        self._next_pdt: float | None = None  # PDT of the next segment (media timeline)
        self._forced_cuts = 0
        self.notice: str | None = None
        """Operator-facing explanation of a packaging compromise (long GOP), or None."""
        self._last_master_dts: int | None = None
        self._last_master_delta: int | None = None
        self._pending: deque[_PendingPart] = deque()
        # other (slave) track state
        self._slave: deque[MediaUnit] = deque()
        self._slave_horizon: int | None = None
        self._emitted_until: int | None = None
        self._audio_time: int | None = None  # next audio decode time, audio timescale

        self._segments_emitted = 0
        self._parts_emitted = 0
        self._bytes_total = 0
        self._units_dropped = 0

    # --- configuration and input ------------------------------------------------------------

    def set_config(self, video: VideoConfig | None, audio: AudioConfig | None) -> None:
        """Declare the stream's tracks; call before the first unit and after each reconnect.

        A changed configuration closes the open segment, publishes a new init segment
        (``init-1.mp4``, …) and marks the next segment with EXT-X-DISCONTINUITY. An unchanged
        one is a no-op.

        Raises:
            ValueError: if both configs are None.
            MuxerStateError: after :meth:`end`.
        """
        if video is None and audio is None:
            raise ValueError("a stream needs at least one of video and audio")
        if self._ended:
            raise MuxerStateError("set_config() after end()")
        if self._init_index >= 0 and (video, audio) == (self._video, self._audio):
            return
        if self._init_index >= 0:
            self._close_all()
        self._video, self._audio = video, audio
        self._init_index += 1
        self._objects[self._init_name(self._init_index)] = init_segment(video, audio)
        self._inits.add(self._init_index)
        self._evict_inits()

    def push(self, unit: MediaUnit) -> None:
        """Add one access unit. Units arrive in dts order per track, tracks roughly interleaved.

        Video units before the first keyframe (of the stream or after a discontinuity), units
        of a track the config does not declare, units whose dts goes backwards and units that
        arrive after their part was already published are dropped and counted.

        Raises:
            MuxerStateError: before :meth:`set_config` or after :meth:`end`.
        """
        if self._init_index < 0:
            raise MuxerStateError("push() before set_config()")
        if self._ended:
            raise MuxerStateError("push() after end()")
        is_video = unit.kind is TrackKind.VIDEO
        if (self._video is None) if is_video else (self._audio is None):
            self._units_dropped += 1
            return
        if is_video or self._video is None:
            self._push_master(unit)
        else:
            self._push_slave(unit)
        self._emit_ready(force=False)

    def mark_discontinuity(self) -> None:
        """The publisher reconnected: close the open segment; the next one is a discontinuity.

        The timeline stays monotonic (ingest guarantees it); EXT-X-DISCONTINUITY tells players
        that encoder state (and possibly timestamps' cadence) changed.
        """
        if self._ended:
            return
        self._close_all()

    def end(self) -> None:
        """Flush the open segment and finish the playlist with EXT-X-ENDLIST. Idempotent."""
        if self._ended:
            return
        self._close_all(discontinuity=False)
        self._ended = True
        self._changed()
        sink = self.sink
        if sink is not None:
            try:
                sink.end()
            except Exception:
                logger.exception("HLS segment sink failed at end")

    # --- output -----------------------------------------------------------------------------

    def playlist(self, *, low_latency: bool = False, skip: bool = False) -> str | None:
        """Render the media playlist, or None while there is nothing to list.

        The plain rendering needs a complete segment. The low-latency one is available as soon
        as the first part exists: EXT-X-MAP, the open segment's EXT-X-PARTs and a preload
        hint, with no EXTINF yet (valid per rfc8216bis §4.4.4.9 / §4.4.5.3), so LL clients
        can start about one part after publish instead of one GOP.

        Args:
            low_latency: add LL-HLS tags (server control, parts, preload hint).
            skip: with ``low_latency``, render a delta update (EXT-X-SKIP) when the playlist
                is longer than the skip boundary.
        """
        if not self._segments and not (low_latency and self._open is not None and self._open.parts):
            return None
        key = (low_latency, skip and low_latency)
        cached = self._playlist_cache.get(key)
        if cached is not None:
            return cached
        listed = list(self._segments)[-self._window :]
        window_disc = sum(1 for s in listed if s.discontinuity)
        entries = [self._entry(s) for s in listed]
        ll: LowLatencyInfo | None = None
        if low_latency:
            ll = self._low_latency_info()
        if listed:
            media_sequence = listed[0].msn
        else:
            assert self._open is not None  # checked above: only the open segment has parts
            media_sequence = self._open.msn
        independent = all(s.independent for s in listed)
        if ll is not None and ll.open_parts and self._open is not None:
            independent = independent and self._open.independent
        text = render_media_playlist(
            entries,
            target_duration=self._target_duration,
            media_sequence=media_sequence,
            discontinuity_sequence=self._disc_total - window_disc,
            ended=self._ended,
            low_latency=ll,
            skip=key[1],
            independent_segments=independent,
        )
        self._playlist_cache[key] = text
        return text

    def variant(self, uri: str) -> VariantEntry | None:
        """This rendition as a multivariant playlist entry, measured from the media produced.

        BANDWIDTH is the peak and AVERAGE-BANDWIDTH the mean bit rate of the retained
        segments (rfc8216bis §4.4.6.2: the peak segment bit rate, container included), or of
        the parts so far before the first segment completes; FRAME-RATE counts video samples.
        None before the first part.
        """
        measured: list[tuple[int, int, int]] = [
            (s.size, s.duration, sum(p.video_frames for p in s.parts)) for s in self._segments
        ]
        if not measured and self._open is not None and self._open.parts:
            parts = self._open.parts
            measured = [(sum(p.size for p in parts), sum(p.duration for p in parts),
                         sum(p.video_frames for p in parts))]
        measured = [m for m in measured if m[1] > 0]
        if not measured:
            return None
        peak = max(size * 8 * CLOCK_RATE / duration for size, duration, _ in measured)
        total_ticks = sum(d for _, d, _ in measured)
        average = sum(size for size, _, _ in measured) * 8 * CLOCK_RATE / total_ticks
        codecs: list[str] = []
        resolution: tuple[int, int] | None = None
        frame_rate: float | None = None
        if self._video is not None:
            codecs.append(self._video.codec_string)
            resolution = (self._video.width, self._video.height)
            frames = sum(f for _, _, f in measured)
            if frames:
                frame_rate = round(frames * CLOCK_RATE / total_ticks, 3)
        if self._audio is not None:
            codecs.append(self._audio.codec_string)
        return VariantEntry(
            uri=uri,
            bandwidth=math.ceil(peak),
            average_bandwidth=math.ceil(average),
            codecs=tuple(codecs),
            resolution=resolution,
            frame_rate=frame_rate,
        )

    def rendition_report(self, uri: str) -> RenditionReport | None:
        """This rendition as an EXT-X-RENDITION-REPORT of a peer's playlist (rfc8216bis
        §4.4.5.4), None before its first part or once it ended."""
        if self._ended or self.last_msn is None:
            return None
        return RenditionReport(uri=uri, last_msn=self.last_msn, last_part=self.last_part)

    def multivariant_playlist(self, media_uri: str = "media.m3u8") -> str | None:
        """A multivariant playlist with this muxer's media playlist as its one variant.

        None before the first part (BANDWIDTH cannot be measured yet).
        """
        v = self.variant(media_uri)
        return None if v is None else render_multivariant_playlist([v])

    def get(self, name: str) -> bytes | None:
        """Return an object by name, or None for unknown, malformed or expired names.

        A segment is joined from its parts on every call (a copy): servers use
        :meth:`chunks`.
        """
        chunks = self.chunks(name)
        if chunks is None:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def chunks(self, name: str) -> tuple[bytes, ...] | None:
        """Return an object by name as the byte strings it is the concatenation of, without
        copying: one for an init segment or a part, a segment's parts for a segment. None for
        unknown, malformed or expired names (docs/threat-model.md §paths allow-list)."""
        if not is_object_name(name):
            return None
        data = self._objects.get(name)
        if data is not None:
            return (data,)
        seg = self._complete.get(name)
        return None if seg is None else self._parts_of(seg)

    def _parts_of(self, seg: _Segment) -> tuple[bytes, ...]:
        return tuple([self._objects[p.name] for p in seg.parts])

    @property
    def media_sequence(self) -> int:
        """EXT-X-MEDIA-SEQUENCE of the current playlist (0 before the first segment)."""
        if not self._segments:
            return 0
        return list(self._segments)[-self._window :][0].msn

    @property
    def last_msn(self) -> int | None:
        """Media sequence number of the segment holding the newest part (None before any)."""
        if self._open is not None and self._open.parts:
            return self._open.msn
        return self._segments[-1].msn if self._segments else None

    @property
    def last_segment_msn(self) -> int | None:
        """Media sequence number of the newest *complete* segment (None before any)."""
        return self._segments[-1].msn if self._segments else None

    @property
    def part_target(self) -> float:
        """EXT-X-PART-INF PART-TARGET in seconds."""
        return self._part_target_s

    @property
    def last_part(self) -> int | None:
        """Index of the newest part within :attr:`last_msn` (None before any)."""
        if self._open is not None and self._open.parts:
            return len(self._open.parts) - 1
        return len(self._segments[-1].parts) - 1 if self._segments else None

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: fixed at construction, never changes (RFC 8216 §6.2.1)."""
        return self._target_duration

    @property
    def part_target_advertised(self) -> float:
        """EXT-X-PART-INF PART-TARGET: the largest part duration (see PART_TARGET_HEADROOM)."""
        return self._part_max_s

    @property
    def stats(self) -> MuxerStats:
        return MuxerStats(
            segments_emitted=self._segments_emitted,
            parts_emitted=self._parts_emitted,
            bytes_total=self._bytes_total,
            units_dropped=self._units_dropped,
            forced_cuts=self._forced_cuts,
        )

    # --- master track: decides part and segment boundaries -----------------------------------

    def _master_frame_estimate(self) -> int:
        if self._video is None and self._audio is not None:
            return self._audio.samples_per_frame * CLOCK_RATE // self._audio.sample_rate
        if self._last_master_delta:
            return self._last_master_delta
        return DEFAULT_VIDEO_FRAME_TICKS

    def _push_master(self, unit: MediaUnit) -> None:
        dts = unit.dts
        if not self._cur_units:
            # A (re)start: video must begin with a keyframe (sync sample) — RFC 8216 §3 needs
            # each segment to be decodable from its EXT-X-MAP on.
            if not unit.keyframe:
                self._units_dropped += 1
                return
            self._start_part(unit, first_in_segment=True)
            self._seg_start = dts
            self._seg_independent = True
            return
        assert self._last_master_dts is not None
        if dts < self._last_master_dts:
            self._units_dropped += 1
            return
        if dts > self._cur_start:
            delta = dts - self._last_master_dts
            if delta > 0:
                self._last_master_delta = delta
            if dts - self._cur_start > self._part_max and len(self._cur_units) > 1:
                # The previous frame lasted longer than estimated: end the part before it so
                # no part exceeds PART-TARGET (rfc8216bis §4.4.4.9).
                carry = self._cur_units.pop()
                self._next_part(carry.dts, carry)
            seg_len = dts - self._seg_start
            if unit.keyframe and (
                seg_len >= self._segment_target
                or self._keyframe_cuts
                or (not self._seg_independent and seg_len >= self._part_target)
            ):
                self._seal(dts, ends_segment=True)
                self._start_part(unit, first_in_segment=True)
                self._seg_start = dts
                self._seg_independent = True
                return
            estimate = self._master_frame_estimate()
            if dts + 2 * estimate - self._seg_start > self._max_segment:
                # Another frame (with a frame of slack for jitter) would take the segment past
                # target + 0.5 s: cut here although this is no keyframe (module docstring).
                self._seal(dts, ends_segment=True)
                self._start_part(unit, first_in_segment=True)
                self._seg_start = dts
                self._seg_independent = unit.keyframe
                self._forced_cut()
                return
            if dts - self._cur_start + estimate > self._part_max:
                self._next_part(dts, unit)
                return
        self._cur_units.append(unit)
        self._last_master_dts = dts

    def _next_part(self, end: int, nxt: MediaUnit) -> None:
        """Seal the current part at ``end`` and start the next one (same segment) with ``nxt``."""
        self._seal(end, ends_segment=False)
        self._start_part(nxt, first_in_segment=False)

    def _forced_cut(self) -> None:
        self._forced_cuts += 1
        if self.notice is None:
            td = self._target_duration
            self.notice = (
                f"keyframe interval longer than the {td} s segment target: segments are cut "
                "between keyframes, so new viewers may wait up to a keyframe interval for a "
                f"picture (set the encoder's keyframe interval to {td} s; in OBS: Settings → "
                f"Output → Keyframe Interval = {td})"
            )

    def _start_part(self, unit: MediaUnit, *, first_in_segment: bool) -> None:
        self._cur_units = [unit]
        self._cur_start = unit.dts
        self._cur_independent = unit.keyframe
        self._cur_first_in_segment = first_in_segment
        self._cur_arrival = unit.arrival
        self._last_master_dts = unit.dts

    def _seal(self, end: int, *, ends_segment: bool) -> None:
        self._pending.append(
            _PendingPart(
                start=self._cur_start,
                end=end,
                master=self._cur_units,
                independent=self._cur_independent,
                first_in_segment=self._cur_first_in_segment,
                ends_segment=ends_segment,
                arrival=self._cur_arrival,
            )
        )
        self._cur_units = []

    # --- slave track (audio next to video) ---------------------------------------------------

    def _push_slave(self, unit: MediaUnit) -> None:
        if self._slave_horizon is not None and unit.dts < self._slave_horizon:
            self._units_dropped += 1  # dts went backwards
            return
        if self._emitted_until is not None and unit.dts < self._emitted_until:
            self._units_dropped += 1  # its part is already published
            return
        self._slave_horizon = unit.dts
        self._slave.append(unit)
        if not self._cur_units and not self._pending:
            # No video yet: keep only what could still line up with the first keyframe.
            while self._slave and self._slave[0].dts < unit.dts - self._skew_limit:
                self._slave.popleft()
                self._units_dropped += 1
        while len(self._slave) > MAX_QUEUED_UNITS:
            self._slave.popleft()
            self._units_dropped += 1

    # --- emission ---------------------------------------------------------------------------

    def _emit_ready(self, *, force: bool) -> None:
        has_slave = self._video is not None and self._audio is not None
        while self._pending:
            part = self._pending[0]
            if has_slave and not force:
                caught_up = self._slave_horizon is not None and self._slave_horizon >= part.end
                last = self._last_master_dts if self._last_master_dts is not None else part.end
                if not caught_up and last - part.end < self._skew_limit:
                    break
            self._pending.popleft()
            # When flushing, the last part also takes the audio that runs past the last video
            # frame (encoder priming/tail), rather than dropping it.
            self._emit(part, take_all=force and not self._pending)

    def _emit(self, p: _PendingPart, *, take_all: bool = False) -> None:
        runs: list[TrackRun] = []
        if self._video is not None:
            runs.append(self._video_run(p))
            slave: list[MediaUnit] = []
            while self._slave and (take_all or self._slave[0].dts < p.end):
                u = self._slave.popleft()
                if u.dts < p.start and self._emitted_until is None:
                    self._units_dropped += 1  # audio before the first keyframe
                    continue
                slave.append(u)
            if slave and self._audio is not None:
                runs.append(self._audio_run(slave, self._audio))
        elif self._audio is not None:
            runs.append(self._audio_run(p.master, self._audio))
        self._emitted_until = p.end

        if self._open is None:
            pdt = self._next_pdt if self._next_pdt is not None else p.arrival
            self._open = _Segment(
                msn=self._next_msn,
                init_index=self._init_index,
                discontinuity=self._discontinuity_next,
                program_date_time=pdt,
                parts=[],
                independent=p.independent,
            )
            self._next_msn += 1
            self._discontinuity_next = False
        seg = self._open
        data = fragment(self._fragment_seq, runs)
        self._fragment_seq += 1
        part = _Part(
            name=f"part-{seg.msn}-{len(seg.parts)}.m4s",
            duration=p.end - p.start,
            independent=p.independent,
            size=len(data),
            video_frames=len(p.master) if self._video is not None else 0,
        )
        seg.parts.append(part)
        self._objects[part.name] = data
        self._parts_emitted += 1
        self._bytes_total += len(data)
        if p.ends_segment:
            self._complete_open_segment()
        self._changed()

    def _video_run(self, p: _PendingPart) -> TrackRun:
        units = p.master
        samples = []
        for i, u in enumerate(units):
            nxt = units[i + 1].dts if i + 1 < len(units) else p.end
            samples.append(
                Sample(
                    data=u.data,
                    duration=max(0, nxt - u.dts),
                    keyframe=u.keyframe,
                    composition_offset=u.pts - u.dts,
                )
            )
        return TrackRun(VIDEO_TRACK_ID, units[0].dts, samples)

    def _audio_run(self, units: list[MediaUnit], audio: AudioConfig) -> TrackRun:
        rate = audio.sample_rate
        spf = audio.samples_per_frame
        # The dts carries RTMP's millisecond jitter; the decode time is the frame count
        # (ISO/IEC 14496-3: every raw AAC frame holds samples_per_frame samples).
        # Decode time only moves forward: a backwards re-sync would overlap the previous part.
        start = 0
        if self._audio_time is not None:
            while (
                start < len(units) - 1  # a run keeps one frame: lag is caught up over parts
                and self._audio_time - units[start].dts * rate // CLOCK_RATE
                > AUDIO_MAX_LAG_FRAMES * spf
            ):
                start += 1  # the audio would play too late: drop whole frames to catch up
            self._units_dropped += start
        units = units[start:]
        from_dts = units[0].dts * rate // CLOCK_RATE
        if self._audio_time is None or from_dts - self._audio_time > AUDIO_RESYNC_FRAMES * spf:
            self._audio_time = from_dts
        base = self._audio_time
        self._audio_time += spf * len(units)
        samples = [Sample(data=u.data, duration=spf, keyframe=True) for u in units]
        return TrackRun(AUDIO_TRACK_ID, base, samples)

    def _complete_open_segment(self) -> None:
        seg = self._open
        assert seg is not None
        self._open = None
        seg.duration = sum(p.duration for p in seg.parts)
        self._segments.append(seg)
        self._complete[seg.name] = seg
        self._segments_emitted += 1
        if seg.discontinuity:
            self._disc_total += 1
        # PDT of the next segment = this one's + its EXTINF (anchored once, media timeline).
        self._next_pdt = seg.program_date_time + seg.duration / CLOCK_RATE
        if target_duration_for([seg.duration / CLOCK_RATE], self._target_duration) > (
            self._target_duration
        ):  # only a single frame longer than the target can get here
            logger.warning("segment %s lasts %.3f s, over the %d s target duration",
                           seg.name, seg.duration / CLOCK_RATE, self._target_duration)
        sink = self.sink
        if sink is not None:
            init_name = self._init_name(seg.init_index)
            try:
                sink.segment(CompletedSegment(
                    msn=seg.msn, name=seg.name,
                    parts=self._parts_of(seg),
                    init_name=init_name, init=self._objects[init_name],
                    duration=seg.duration / CLOCK_RATE, discontinuity=seg.discontinuity,
                    program_date_time=seg.program_date_time,
                    independent=bool(seg.parts) and seg.parts[0].independent))
            except Exception:
                logger.exception("HLS segment sink failed")
        # RFC 8216 §6.2.2: keep segments that left the playlist for another window.
        while len(self._segments) > 2 * self._window:
            old = self._segments.popleft()
            del self._complete[old.name]
            for part in old.parts:
                self._objects.pop(part.name, None)
        self._evict_inits()

    def _evict_inits(self) -> None:
        used = {s.init_index for s in self._segments}
        used.add(self._init_index)
        if self._open is not None:
            used.add(self._open.init_index)
        for index in self._inits - used:
            del self._objects[self._init_name(index)]
        self._inits &= used

    def _init_name(self, init_index: int) -> str:
        return f"init-{self._init_base + init_index}.mp4"

    def _close_all(self, *, discontinuity: bool = True) -> None:
        """Seal and publish everything buffered, close the open segment, reset track state."""
        if self._cur_units:
            assert self._last_master_dts is not None
            end = self._last_master_dts + self._master_frame_estimate()
            self._seal(end, ends_segment=True)
        elif self._pending:
            self._pending[-1].ends_segment = True
        self._emit_ready(force=True)
        if self._open is not None:
            self._complete_open_segment()
            self._changed()
        self._units_dropped += len(self._slave)
        self._slave.clear()
        self._slave_horizon = None
        self._emitted_until = None
        self._audio_time = None
        self._last_master_dts = None
        self._last_master_delta = None
        # Only once a segment exists: a codec change before the first one (video header, then
        # audio header) is no discontinuity. The first number is first_msn, not 0.
        if discontinuity and self._next_msn > self._init_base:
            self._discontinuity_next = True

    def _changed(self) -> None:
        self._playlist_cache.clear()
        self.updated_at = self._clock()
        callback = self.on_update
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("HLS on_update callback failed")

    # --- playlist snapshot ------------------------------------------------------------------

    def _entry(self, seg: _Segment) -> SegmentEntry:
        return SegmentEntry(
            uri=seg.name,
            duration=seg.duration / CLOCK_RATE,
            map_uri=self._init_name(seg.init_index),
            program_date_time=seg.program_date_time,
            discontinuity=seg.discontinuity,
            parts=tuple(self._part_entry(p) for p in seg.parts),
        )

    @staticmethod
    def _part_entry(part: _Part) -> PartEntry:
        return PartEntry(
            uri=part.name, duration=part.duration / CLOCK_RATE, independent=part.independent
        )

    def _low_latency_info(self) -> LowLatencyInfo:
        seg = self._open
        if self._ended:
            hint = None
        elif seg is not None:
            hint = f"part-{seg.msn}-{len(seg.parts)}.m4s"
        else:
            hint = f"part-{self._next_msn}-0.m4s"
        return LowLatencyInfo(
            part_target=self._part_max_s,
            open_parts=tuple(self._part_entry(p) for p in seg.parts) if seg else (),
            open_map_uri=self._init_name(seg.init_index) if seg else None,
            open_discontinuity=seg.discontinuity if seg else False,
            open_program_date_time=seg.program_date_time if seg else None,
            preload_hint_uri=hint,
        )
