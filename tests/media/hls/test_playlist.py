"""Pure playlist rendering rules (RFC 8216 §4, rfc8216bis LL-HLS)."""

from __future__ import annotations

import pytest

from media.hls.playlist import (
    LowLatencyInfo,
    PartEntry,
    SegmentEntry,
    VariantEntry,
    format_program_date_time,
    render_media_playlist,
    render_multivariant_playlist,
    target_duration_for,
)


def _seg(i: int, *, disc: bool = False, init: int = 0, parts: int = 0) -> SegmentEntry:
    return SegmentEntry(
        uri=f"seg-{i}.m4s",
        duration=2.0,
        map_uri=f"init-{init}.mp4",
        program_date_time=1_700_000_000.0 + 2 * i,
        discontinuity=disc,
        parts=tuple(PartEntry(f"part-{i}-{k}.m4s", 0.5, k == 0) for k in range(parts)),
    )


def test_plain_playlist_header_and_segments() -> None:
    text = render_media_playlist(
        [_seg(5), _seg(6)],
        target_duration=2,
        media_sequence=5,
        discontinuity_sequence=0,
        ended=False,
    )
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:5",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init-0.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z",
        "#EXTINF:2.000,",
        "seg-5.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:32.000Z",
        "#EXTINF:2.000,",
        "seg-6.m4s",
    ]


def test_discontinuity_repeats_map_only_when_init_changes() -> None:
    """RFC 8216 §4.3.2.5: EXT-X-MAP applies until the next EXT-X-MAP."""
    text = render_media_playlist(
        [_seg(1), _seg(2, disc=True), _seg(3, disc=True, init=1)],
        target_duration=2,
        media_sequence=1,
        discontinuity_sequence=4,
        ended=True,
    )
    lines = text.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 2
    assert lines.count('#EXT-X-MAP:URI="init-0.mp4"') == 1
    assert lines.index('#EXT-X-MAP:URI="init-1.mp4"') < lines.index("seg-3.m4s")
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:4" in lines


def test_first_listed_segment_keeps_its_discontinuity_tag() -> None:
    text = render_media_playlist(
        [_seg(1, disc=True)],
        target_duration=2,
        media_sequence=1,
        discontinuity_sequence=0,
        ended=False,
    )
    assert "#EXT-X-DISCONTINUITY" in text.splitlines()


def test_low_latency_tags() -> None:
    ll = LowLatencyInfo(
        part_target=0.5,
        open_parts=(PartEntry("part-9-0.m4s", 0.5, True),),
        open_map_uri="init-0.mp4",
        preload_hint_uri="part-9-1.m4s",
    )
    segs = [_seg(i, parts=4) for i in range(3, 9)]
    text = render_media_playlist(
        segs,
        target_duration=2,
        media_sequence=3,
        discontinuity_sequence=0,
        ended=False,
        low_latency=ll,
    )
    lines = text.splitlines()
    assert "#EXT-X-VERSION:9" in lines
    assert (
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.0"
        in lines
    )
    assert "#EXT-X-PART-INF:PART-TARGET=0.50000" in lines
    # rfc8216bis §6.2.2: parts only for segments starting within the last three target
    # durations (6 s of 12.5 s: segment 6 starts 6.5 s from the end), so 7, 8 and the open one
    assert not any(line.startswith('#EXT-X-PART:DURATION=0.50000,URI="part-6-') for line in lines)
    assert '#EXT-X-PART:DURATION=0.50000,URI="part-7-0.m4s",INDEPENDENT=YES' in lines
    assert lines[-2] == '#EXT-X-PART:DURATION=0.50000,URI="part-9-0.m4s",INDEPENDENT=YES'
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-9-1.m4s"'


def test_skip_only_before_the_skip_boundary() -> None:
    ll = LowLatencyInfo(part_target=0.5, preload_hint_uri="part-20-0.m4s")
    segs = [_seg(i) for i in range(10, 20)]  # 20 s; boundary 6 × 2 = 12 s
    text = render_media_playlist(
        segs,
        target_duration=2,
        media_sequence=10,
        discontinuity_sequence=0,
        ended=False,
        low_latency=ll,
        skip=True,
    )
    lines = text.splitlines()
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=4" in lines
    assert "seg-13.m4s" not in lines and "seg-14.m4s" in lines
    assert lines.index('#EXT-X-MAP:URI="init-0.mp4"') > lines.index(
        "#EXT-X-SKIP:SKIPPED-SEGMENTS=4"
    )


def test_target_duration_rounding() -> None:
    """rfc8216bis §4.4.3.1: EXTINF rounded to the nearest integer must be ≤ the target."""
    assert target_duration_for([2.0000001], 2) == 2
    assert target_duration_for([2.002], 2) == 2  # 60 frames at 29.97 fps
    assert target_duration_for([2.4], 2) == 2
    assert target_duration_for([2.5], 2) == 3
    assert target_duration_for([1.0], 4) == 4


def test_parts_only_on_the_last_three_entries() -> None:
    """Short segments: the time horizon alone would list parts on four entries."""
    ll = LowLatencyInfo(part_target=0.5, open_parts=(PartEntry("part-9-0.m4s", 0.5, True),),
                        preload_hint_uri="part-9-1.m4s")
    segs = [_seg(i, parts=2) for i in range(3, 9)]
    segs = [SegmentEntry(s.uri, 1.0, s.map_uri, None, False, s.parts) for s in segs]
    text = render_media_playlist(segs, target_duration=2, media_sequence=3,
                                 discontinuity_sequence=0, ended=False, low_latency=ll)
    with_parts = {line.split('"')[1].split("-")[1] for line in text.splitlines()
                  if line.startswith("#EXT-X-PART:")}
    assert with_parts == {"7", "8", "9"}


def test_independent_segments_tag_is_optional() -> None:
    text = render_media_playlist([_seg(0)], target_duration=2, media_sequence=0,
                                 discontinuity_sequence=0, ended=False,
                                 independent_segments=False)
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text


def test_multivariant_playlist() -> None:
    """rfc8216bis §4.4.6.2: BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION, FRAME-RATE."""
    text = render_multivariant_playlist([VariantEntry(
        "media.m3u8", 3_100_000, 2_900_000, ("avc1.64001f", "mp4a.40.2"), (1280, 720), 29.97)])
    assert text.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:7",
        '#EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2900000,'
        'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970',
        "media.m3u8"]
    with pytest.raises(ValueError):
        render_multivariant_playlist([])


def test_program_date_time_format() -> None:
    assert format_program_date_time(0.5) == "1970-01-01T00:00:00.500Z"
