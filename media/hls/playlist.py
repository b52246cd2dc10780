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
    "target_duration_for",
    "PartEntry",
    "SegmentEntry",
    "format_program_date_time",
    "render_media_playlist",
]

VERSION_FMP4 = 7
"""RFC 8216 §7: EXT-X-MAP in a playlist without I-frames needs ≥ 6; we declare 7."""
VERSION_LOW_LATENCY = 9
"""rfc8216bis §8: EXT-X-SKIP (delta updates) needs version 9; LL playlists declare 9."""

PART_LIST_TARGET_DURATIONS = 3
"""rfc8216bis §4.4.4.9: EXT-X-PART tags older than three target durations from the end of the
playlist SHOULD be removed."""

SKIP_TARGET_DURATIONS = 6
"""rfc8216bis §4.4.3.8: CAN-SKIP-UNTIL MUST be at least six target durations."""


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
    # Every segment starts with a sync sample (video cuts only at IDR pictures).
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")

    open_duration = sum(p.duration for p in ll.open_parts) if ll is not None else 0.0
    total = sum(s.duration for s in segments) + open_duration
    # rfc8216bis §6.2.5.1: segments entirely before the skip boundary may be skipped.
    skipped = 0
    if ll is not None and skip and not ended:
        skipped = _skippable(segments, total, skip_until)
    if skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")

    part_horizon = total - PART_LIST_TARGET_DURATIONS * target_duration
    elapsed = sum(s.duration for s in segments[:skipped])
    current_map: str | None = None
    for seg in segments[skipped:]:
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
        if ll is not None and elapsed + seg.duration > part_horizon:
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


def _part_line(part: PartEntry) -> str:
    line = f'#EXT-X-PART:DURATION={_fmt(part.duration, 5)},URI="{part.uri}"'
    return line + ",INDEPENDENT=YES" if part.independent else line


def target_duration_for(durations: Sequence[float], floor: int) -> int:
    """Smallest integer ≥ every duration and ≥ ``floor`` (RFC 8216 §4.3.3.1)."""
    # Round to the millisecond first so 2.0000001 (float noise) does not become 3.
    return max([floor, *(math.ceil(round(d, 3)) for d in durations)])
