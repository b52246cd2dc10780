"""Pure HLS media playlist rendering (RFC 8216, and draft-pantos-hls-rfc8216bis for LL-HLS).

Text in, text out: the segmenter snapshots its state into these frozen dataclasses and
:func:`render_media_playlist` turns them into an m3u8 document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "LowLatencyInfo",
    "PartEntry",
    "RenditionReport",
    "SegmentEntry",
    "VariantEntry",
    "format_program_date_time",
    "render_media_playlist",
    "render_multivariant_playlist",
    "render_rendition_reports",
    "target_duration_for",
]

VERSION_FMP4 = 7
"""RFC 8216 §7: EXT-X-MAP in a playlist without I-frames needs ≥ 6; we declare 7."""
VERSION_LOW_LATENCY = 9
"""rfc8216bis §8: EXT-X-SKIP (delta updates) needs version 9; LL playlists declare 9."""

PART_LIST_TARGET_DURATIONS = 3
"""rfc8216bis §6.2.2: EXT-X-PART tags older than three target durations from the end of the
playlist SHOULD be removed. We list the parts of a segment only when the whole segment starts
inside that horizon, and (so that strict parsers such as ``hls-parser`` that count segments
agree) only on the last :data:`PART_LIST_MAX_SEGMENTS` entries."""
PART_LIST_MAX_SEGMENTS = 3
"""Entries (the open segment counts as one) that may carry EXT-X-PART tags."""

SKIP_TARGET_DURATIONS = 6
"""rfc8216bis §4.4.3.8: the Skip Boundary (CAN-SKIP-UNTIL) MUST be at least six target durations.
We advertise exactly that minimum; delta updates then skip whatever the playlist holds beyond
it, so the live window must be longer than 6 × TD for ``_HLS_skip`` to save anything."""


@dataclass(frozen=True, slots=True)
class PartEntry:
    """A partial segment (rfc8216bis §4.4.4.9 EXT-X-PART)."""

    uri: str
    duration: float
    independent: bool


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """A complete media segment and the tags that apply to it.

    Attributes:
        uri: segment URI relative to the playlist.
        duration: EXTINF seconds.
        map_uri: the init segment (EXT-X-MAP) the segment needs.
        program_date_time: wall-clock time (epoch seconds) of its first sample, or None.
        discontinuity: preceded by EXT-X-DISCONTINUITY.
        parts: its partial segments (LL-HLS), possibly empty.
    """

    uri: str
    duration: float
    map_uri: str
    program_date_time: float | None
    discontinuity: bool
    parts: tuple[PartEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class LowLatencyInfo:
    """The LL-HLS state that is not per segment.

    Attributes:
        part_target: EXT-X-PART-INF PART-TARGET seconds.
        open_parts: parts of the segment still being produced (after the last EXTINF).
        open_map_uri: init segment of the open segment (if it differs, EXT-X-MAP is repeated).
        open_discontinuity: the open segment starts after a discontinuity.
        preload_hint_uri: the next part's URI (EXT-X-PRELOAD-HINT), None once ended.
        part_hold_back: PART-HOLD-BACK seconds; defaults to 3 × part_target.
    """

    part_target: float
    open_parts: tuple[PartEntry, ...] = ()
    open_map_uri: str | None = None
    open_discontinuity: bool = False
    open_program_date_time: float | None = None
    preload_hint_uri: str | None = None
    part_hold_back: float | None = field(default=None)


@dataclass(frozen=True, slots=True)
class VariantEntry:
    """One EXT-X-STREAM-INF of a multivariant playlist (rfc8216bis §4.4.6.2).

    Attributes:
        uri: the media playlist, relative to the multivariant playlist.
        bandwidth: peak segment bit rate, bits/s (BANDWIDTH, REQUIRED).
        average_bandwidth: average segment bit rate, bits/s (AVERAGE-BANDWIDTH), or None.
        codecs: RFC 6381 codec strings, e.g. ``("avc1.64001f", "mp4a.40.2")``.
        resolution: (width, height) of the video, or None for audio-only.
        frame_rate: measured video frame rate, or None.
    """

    uri: str
    bandwidth: int
    average_bandwidth: int | None
    codecs: tuple[str, ...]
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None


def format_program_date_time(epoch: float) -> str:
    """ISO 8601 with milliseconds and ``Z`` (RFC 8216 §4.3.2.6): ``2024-01-01T00:00:00.000Z``."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _fmt(seconds: float, places: int) -> str:
    return f"{seconds:.{places}f}"


def render_media_playlist(
    segments: Sequence[SegmentEntry],
    *,
    target_duration: int,
    media_sequence: int,
    discontinuity_sequence: int,
    ended: bool,
    low_latency: LowLatencyInfo | None = None,
    skip: bool = False,
    independent_segments: bool = True,
) -> str:
    """Render a media playlist.

    Args:
        segments: the complete segments in the sliding window, oldest first.
        target_duration: EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1), an integer ≥ every EXTINF.
        media_sequence: msn of ``segments[0]`` (§4.3.3.2).
        discontinuity_sequence: discontinuities that slid out before ``segments[0]``
            (§4.3.3.3).
        ended: append EXT-X-ENDLIST (§4.3.3.4).
        low_latency: LL-HLS state; None renders a plain RFC 8216 playlist.
        skip: render a delta update (rfc8216bis §6.2.5.1) replacing segments older than the
            skip boundary by EXT-X-SKIP; ignored without ``low_latency``.
        independent_segments: every listed segment starts with a sync sample, so the playlist
            may carry EXT-X-INDEPENDENT-SEGMENTS (rfc8216bis §4.4.2.1, which applies it to
            every segment of the document). False while a segment cut inside a long GOP is
            listed.

    Returns:
        The playlist text, newline-terminated.
    """
    ll = low_latency
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION_LOW_LATENCY if ll else VERSION_FMP4}"]
    lines.append(f"#EXT-X-TARGETDURATION:{target_duration}")
    skip_until = SKIP_TARGET_DURATIONS * target_duration
    if ll is not None:
        lines += _low_latency_header(ll, ended, skip_until)
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")

    open_duration = sum(p.duration for p in ll.open_parts) if ll is not None else 0.0
    total = sum(s.duration for s in segments) + open_duration
    # rfc8216bis §6.2.5.1: segments entirely before the skip boundary may be skipped.
    skipped = 0
    if ll is not None and skip and not ended:
        skipped = _skippable(segments, total, skip_until)
    if skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")

    # rfc8216bis §6.2.2: only segments starting within 3 × TD of the end keep their parts, and
    # only the last few entries (the open segment, when it has parts, is one of them).
    part_horizon = total - PART_LIST_TARGET_DURATIONS * target_duration
    # The open segment counts once it has parts or a preload hint (its first part's).
    open_entries = 1 if ll is not None and not ended and (
        ll.open_parts or ll.preload_hint_uri is not None) else 0
    first_with_parts = len(segments) - (PART_LIST_MAX_SEGMENTS - open_entries)
    elapsed = sum(s.duration for s in segments[:skipped])
    current_map: str | None = None
    for index, seg in enumerate(segments[skipped:], start=skipped):
        if seg.discontinuity:
            # Shown even on the first listed segment: its discontinuity number is
            # EXT-X-DISCONTINUITY-SEQUENCE plus the tags before it (RFC 8216 §4.3.3.3).
            lines.append("#EXT-X-DISCONTINUITY")
        if seg.map_uri != current_map:
            # §4.3.2.5: EXT-X-MAP applies to every following segment until the next one.
            lines.append(f'#EXT-X-MAP:URI="{seg.map_uri}"')
            current_map = seg.map_uri
        if seg.program_date_time is not None:
            lines.append(
                f"#EXT-X-PROGRAM-DATE-TIME:{format_program_date_time(seg.program_date_time)}"
            )
        if ll is not None and index >= first_with_parts and elapsed >= part_horizon - 1e-6:
            lines += [_part_line(p) for p in seg.parts]
        lines.append(f"#EXTINF:{_fmt(seg.duration, 3)},")
        lines.append(seg.uri)
        elapsed += seg.duration

    if ll is not None and not ended:
        lines += _live_edge(ll, current_map)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _low_latency_header(ll: LowLatencyInfo, ended: bool, skip_until: float) -> list[str]:
    hold_back = ll.part_hold_back if ll.part_hold_back is not None else 3 * ll.part_target
    # rfc8216bis §4.4.3.8: PART-HOLD-BACK ≥ 2 × PART-TARGET, SHOULD be ≥ 3 ×; round up.
    hold_back_ms = math.ceil(hold_back * 1000 - 1e-6) / 1000
    control = f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={_fmt(hold_back_ms, 3)}"
    if not ended:
        control += f",CAN-SKIP-UNTIL={_fmt(skip_until, 1)}"
    return [
        f"#EXT-X-SERVER-CONTROL:{control}",
        f"#EXT-X-PART-INF:PART-TARGET={_fmt(ll.part_target, 5)}",
    ]


def _skippable(segments: Sequence[SegmentEntry], total: float, skip_until: float) -> int:
    """How many leading segments end before the skip boundary (rfc8216bis §6.2.5.1)."""
    skipped = 0
    elapsed = 0.0
    for seg in segments:
        if total - elapsed - seg.duration < skip_until:
            break
        elapsed += seg.duration
        skipped += 1
    return skipped


def _live_edge(ll: LowLatencyInfo, current_map: str | None) -> list[str]:
    """The parts of the segment still being written, then the preload hint."""
    lines: list[str] = []
    if ll.open_parts:
        if ll.open_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if ll.open_map_uri is not None and ll.open_map_uri != current_map:
            lines.append(f'#EXT-X-MAP:URI="{ll.open_map_uri}"')
        if ll.open_program_date_time is not None:
            pdt = format_program_date_time(ll.open_program_date_time)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt}")
        lines += [_part_line(p) for p in ll.open_parts]
    if ll.preload_hint_uri is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{ll.preload_hint_uri}"')
    return lines


def render_multivariant_playlist(variants: Sequence[VariantEntry]) -> str:
    """Render a multivariant playlist (rfc8216bis §4.4.6) listing ``variants`` in order.

    Raises:
        ValueError: without variants (a multivariant playlist needs at least one).
    """
    if not variants:
        raise ValueError("a multivariant playlist needs at least one variant")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION_FMP4}"]
    for v in variants:
        attrs = [f"BANDWIDTH={v.bandwidth}"]
        if v.average_bandwidth is not None:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
        # §4.4.6.2: CODECS SHOULD be present, a quoted comma-separated list (RFC 6381).
        attrs.append(f'CODECS="{",".join(v.codecs)}"')
        if v.resolution is not None:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate is not None:
            # §4.4.6.2: FRAME-RATE is the maximum frame rate rounded to three decimal places.
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class RenditionReport:
    """rfc8216bis §4.4.5.4 EXT-X-RENDITION-REPORT: where another rendition of the same
    content is, so a low-latency client can switch to it with one blocking request.

    Attributes:
        uri: that rendition's media playlist, relative to the playlist carrying the report.
        last_msn: its newest media sequence number (of its newest part).
        last_part: index of its newest part within ``last_msn``, or None without parts.
    """

    uri: str
    last_msn: int
    last_part: int | None


def render_rendition_reports(reports: Sequence[RenditionReport]) -> str:
    """EXT-X-RENDITION-REPORT lines (newline-terminated) to append to a live LL media playlist.

    rfc8216bis §4.4.5.4: one per peer rendition; LAST-MSN and LAST-PART are that rendition's
    newest segment and part. Media-playlist tags that apply to no segment may sit at the end.
    """
    lines = []
    for r in reports:
        line = f'#EXT-X-RENDITION-REPORT:URI="{r.uri}",LAST-MSN={r.last_msn}'
        if r.last_part is not None:
            line += f",LAST-PART={r.last_part}"
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def _part_line(part: PartEntry) -> str:
    line = f'#EXT-X-PART:DURATION={_fmt(part.duration, 5)},URI="{part.uri}"'
    return line + ",INDEPENDENT=YES" if part.independent else line


def target_duration_for(durations: Sequence[float], floor: int) -> int:
    """Smallest target duration that ``durations`` satisfy, at least ``floor``.

    rfc8216bis §4.4.3.1 (RFC 8216 §4.3.3.1): each EXTINF *rounded to the nearest integer* must
    be ≤ the target duration, so 2.002 s (60 frames at 29.97 fps) fits a target of 2.
    """
    return max([floor, *(math.floor(round(d, 3) + 0.5) for d in durations)])
