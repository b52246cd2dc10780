"""HlsMuxer end to end with real H.264/AAC: cuts, parts, playlists, retention, names."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable

import pytest

from media.hls import HlsMuxer, MuxerStateError
from media.hls.segmenter import AUDIO_MAX_LAG_FRAMES
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from tests.media.hls.media_factory import SyntheticStream, demux, make_stream


@dataclasses.dataclass
class Seg:
    uri: str
    duration: float
    discontinuity: bool
    map_uri: str
    pdt: str | None
    parts: list[tuple[str, float, bool]]


@dataclasses.dataclass
class Parsed:
    tags: dict[str, str]
    segments: list[Seg]
    open_parts: list[tuple[str, float, bool]]
    preload_hint: str | None
    ended: bool
    lines: list[str]


def parse(text: str) -> Parsed:
    """A strict line-by-line reader of the tags we emit (RFC 8216 §4)."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    tags: dict[str, str] = {}
    segs: list[Seg] = []
    parts: list[tuple[str, float, bool]] = []
    disc = False
    map_uri = ""
    pdt: str | None = None
    duration: float | None = None
    hint = None
    ended = False
    for line in lines[1:]:
        assert line, "no blank lines"
        if line.startswith("#EXT-X-PART:"):
            m = re.fullmatch(
                r'#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)"(,INDEPENDENT=YES)?', line
            )
            assert m, line
            parts.append((m[2], float(m[1]), bool(m[3])))
        elif line.startswith("#EXTINF:"):
            m = re.fullmatch(r"#EXTINF:([0-9]+\.[0-9]{3}),", line)
            assert m, line
            duration = float(m[1])
        elif line == "#EXT-X-DISCONTINUITY":
            disc = True
        elif line.startswith("#EXT-X-MAP:"):
            m = re.fullmatch(r'#EXT-X-MAP:URI="(init-\d+\.mp4)"', line)
            assert m, line
            map_uri = m[1]
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = line.split(":", 1)[1]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", pdt)
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            m = re.fullmatch(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', line)
            assert m, line
            hint = m[1]
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line.startswith("#"):
            name, _, value = line[1:].partition(":")
            tags[name] = value
        else:
            assert duration is not None, f"URI without EXTINF: {line}"
            segs.append(Seg(line, duration, disc, map_uri, pdt, parts))
            disc, pdt, duration, parts = False, None, None, []
    return Parsed(tags, segs, parts, hint, ended, lines)


def early_audio(stream: SyntheticStream) -> int:
    """Audio frames before the first video frame: dropped, a segment starts at a keyframe."""
    first_video = min((u.dts for u in stream.of(TrackKind.VIDEO)), default=0)
    return sum(1 for u in stream.of(TrackKind.AUDIO) if u.dts < first_video)


def feed(muxer: HlsMuxer, units: Iterable[MediaUnit]) -> list[str]:
    """Push units, collecting every playlist rendered along the way (plain and LL)."""
    seen: list[str] = []
    for u in units:
        muxer.push(u)
        for ll in (False, True):
            text = muxer.playlist(low_latency=ll)
            if text is not None and (not seen or seen[-1] != text):
                seen.append(text)
    return seen


def run(stream: SyntheticStream, **kwargs: float) -> tuple[HlsMuxer, list[str]]:
    muxer = HlsMuxer(**kwargs)  # type: ignore[arg-type]
    muxer.set_config(stream.video, stream.audio)
    seen = feed(muxer, stream.units)
    muxer.end()
    return muxer, seen


def shifted(stream: SyntheticStream, ticks: int) -> list[MediaUnit]:
    return [dataclasses.replace(u, dts=u.dts + ticks, pts=u.pts + ticks) for u in stream.units]


def test_no_plain_playlist_before_first_segment() -> None:
    s = make_stream(6.0)
    muxer = HlsMuxer()
    muxer.set_config(s.video, s.audio)
    assert muxer.playlist() is None and muxer.last_msn is None
    assert muxer.playlist(low_latency=True) is None  # no part yet either
    for u in s.units:
        if u.dts >= 2 * CLOCK_RATE:
            break
        muxer.push(u)
    assert muxer.playlist() is None
    assert muxer.last_part is not None  # parts exist before the first segment completes


def test_low_latency_playlist_from_the_first_part() -> None:
    """rfc8216bis: an LL playlist may list only the open segment's parts (no EXTINF yet)."""
    s = make_stream(6.0)
    muxer = HlsMuxer(part_target=0.25)
    muxer.set_config(s.video, s.audio)
    first: str | None = None
    for u in s.units:
        muxer.push(u)
        first = muxer.playlist(low_latency=True)
        if first is not None:
            break
    assert first is not None
    assert muxer.stats.parts_emitted == 1 and muxer.stats.segments_emitted == 0
    assert muxer.playlist() is None  # the plain rendering still waits for a segment
    pl = parse(first)
    assert pl.segments == [] and "#EXTINF" not in first
    assert pl.tags["EXT-X-VERSION"] == "9"
    assert pl.tags["EXT-X-MEDIA-SEQUENCE"] == "0"
    assert pl.tags["EXT-X-DISCONTINUITY-SEQUENCE"] == "0"
    assert pl.tags["EXT-X-TARGETDURATION"] == "2"
    assert "CAN-BLOCK-RELOAD=YES" in pl.tags["EXT-X-SERVER-CONTROL"]
    assert "PART-HOLD-BACK=" in pl.tags["EXT-X-SERVER-CONTROL"]
    # PART-TARGET is the configured target plus headroom (PART_TARGET_HEADROOM)
    assert float(pl.tags["EXT-X-PART-INF"].split("=")[1]) == pytest.approx(0.275)
    # EXT-X-MAP and PROGRAM-DATE-TIME come before the first part; the part is independent.
    map_at = pl.lines.index('#EXT-X-MAP:URI="init-0.mp4"')
    pdt_at = next(i for i, x in enumerate(pl.lines) if x.startswith("#EXT-X-PROGRAM-DATE-TIME:"))
    part_at = next(i for i, x in enumerate(pl.lines) if x.startswith("#EXT-X-PART:"))
    assert map_at < part_at and pdt_at < part_at
    assert [(uri, ind) for uri, _, ind in pl.open_parts] == [("part-0-0.m4s", True)]
    assert 0.2 <= pl.open_parts[0][1] <= 0.25 + 1e-9
    assert muxer.get("part-0-0.m4s") and muxer.get("init-0.mp4")
    assert pl.preload_hint == "part-0-1.m4s"
    assert pl.lines[-1].startswith("#EXT-X-PRELOAD-HINT:") and not pl.ended
    # The part plus the init segment is playable on its own.
    data = (muxer.get("init-0.mp4") or b"") + (muxer.get("part-0-0.m4s") or b"")
    assert demux(data)["video"].decoded > 0
    # A delta request before any segment renders the same (nothing to skip).
    assert "EXT-X-SKIP" not in (muxer.playlist(low_latency=True, skip=True) or "")
    # Later parts keep being listed until the segment completes, then it gets its EXTINF.
    for u in s.units:
        if u.dts <= s.units[0].dts:
            continue
        muxer.push(u)
        if muxer.stats.segments_emitted:
            break
    done = parse(muxer.playlist(low_latency=True) or "")
    assert done.segments[0].uri == "seg-0.m4s" and len(done.segments[0].parts) >= 2
    assert done.tags["EXT-X-MEDIA-SEQUENCE"] == "0"


@pytest.mark.parametrize(("gop", "expected"), [(25, 2.0), (30, 2.4), (15, 2.4)])
def test_segments_cut_at_first_keyframe_after_target(gop: int, expected: float) -> None:
    """A segment ends at the first keyframe at or after segment_target, never elsewhere."""
    s = make_stream(8.0, gop=gop)
    muxer, _ = run(s, segment_target=2.0)
    pl = parse(muxer.playlist() or "")
    durations = [seg.duration for seg in pl.segments]
    assert durations[:-1] == [expected] * (len(durations) - 1)
    for seg in pl.segments:
        tracks = demux((muxer.get("init-0.mp4") or b"") + (muxer.get(seg.uri) or b""))
        assert tracks["video"].keyframes[0]
        assert tracks["video"].decoded == len(tracks["video"].dts) > 0
        assert tracks["audio"].decoded == len(tracks["audio"].dts) > 0


def test_parts_near_part_target_and_sum_to_segment() -> None:
    """rfc8216bis §4.4.4.9: parts ≤ PART-TARGET; non-final parts ≥ 85 % of it."""
    s = make_stream(8.0)
    muxer, _ = run(s, part_target=0.333)
    pl = parse(muxer.playlist(low_latency=True) or "")
    target = float(pl.tags["EXT-X-PART-INF"].split("=")[1])
    assert pl.segments[-1].parts, "parts of recent segments are listed"
    for seg in [x for x in pl.segments if x.parts]:
        assert seg.parts[0][2], "a segment's first part starts with a keyframe"
        assert all(d <= target for _, d, _ in seg.parts)
        assert all(d >= 0.85 * target for _, d, ind in seg.parts[:-1] if not ind)
        assert math.isclose(sum(d for _, d, _ in seg.parts), seg.duration, abs_tol=1e-3)
        joined = b"".join(muxer.get(uri) or b"" for uri, _, _ in seg.parts)
        assert joined == muxer.get(seg.uri)


def test_whole_stream_demuxes_with_every_unit() -> None:
    s = make_stream(6.0)
    muxer, _ = run(s, window=20)
    assert muxer.stats.units_dropped == early_audio(s) == 1
    pl = parse(muxer.playlist() or "")
    data = (muxer.get("init-0.mp4") or b"") + b"".join(muxer.get(x.uri) or b"" for x in pl.segments)
    tracks = demux(data)
    assert tracks["video"].decoded == s.video_frames
    assert tracks["audio"].decoded == s.audio_frames - early_audio(s)
    assert tracks["video"].dts == sorted(tracks["video"].dts)
    assert tracks["audio"].dts == sorted(tracks["audio"].dts)
    assert muxer.stats.bytes_total == sum(len(muxer.get(x.uri) or b"") for x in pl.segments)
    assert muxer.stats.segments_emitted == len(pl.segments)


def test_bframes_keep_their_pts() -> None:
    s = make_stream(6.0, bframes=2)
    muxer, _ = run(s, window=20)
    pl = parse(muxer.playlist() or "")
    data = (muxer.get("init-0.mp4") or b"") + b"".join(muxer.get(x.uri) or b"" for x in pl.segments)
    video = demux(data)["video"]
    assert video.pts == [u.pts for u in s.of(TrackKind.VIDEO)]
    assert video.decoded == s.video_frames


def test_audio_only_and_video_only() -> None:
    for s in (make_stream(6.0, video=False), make_stream(6.0, audio=False)):
        muxer, _ = run(s, window=20)
        pl = parse(muxer.playlist() or "")
        assert len(pl.segments) >= 3
        td = int(pl.tags["EXT-X-TARGETDURATION"])
        assert all(round(seg.duration) <= td for seg in pl.segments)
        data = (muxer.get("init-0.mp4") or b"") + b"".join(
            muxer.get(x.uri) or b"" for x in pl.segments
        )
        tracks = demux(data)
        kind = "video" if s.video else "audio"
        assert list(tracks) == [kind]
        assert tracks[kind].decoded == (s.video_frames if s.video else s.audio_frames)


def test_audio_lagging_video_is_waited_for() -> None:
    """Audio arriving up to ~0.8 s after the video with the same dts still lands in its part."""
    s = make_stream(6.0)
    lag = int(0.8 * CLOCK_RATE)
    units = sorted(s.units, key=lambda u: u.dts + (lag if u.kind is TrackKind.AUDIO else 0))
    muxer = HlsMuxer(window=20)
    muxer.set_config(s.video, s.audio)
    feed(muxer, units)
    muxer.end()
    assert muxer.stats.units_dropped == early_audio(s)
    pl = parse(muxer.playlist() or "")
    data = (muxer.get("init-0.mp4") or b"") + b"".join(muxer.get(x.uri) or b"" for x in pl.segments)
    assert demux(data)["audio"].decoded == s.audio_frames - early_audio(s)


def test_playlist_rules_over_time() -> None:
    """Media sequence continuity, rounded EXTINF ≤ a target that never changes (RFC 8216
    §6.2.1), PDT on every segment, even with GOPs longer than the target."""
    s = make_stream(20.0, gop=75)  # 3 s GOPs: longer than the 2 s target
    muxer, seen = run(s, segment_target=2.0, window=3)
    first_msn: dict[str, int] = {}
    targets = set()
    for text in [*seen, muxer.playlist() or ""]:
        pl = parse(text)
        target = int(pl.tags["EXT-X-TARGETDURATION"])
        targets.add(target)
        msn = int(pl.tags["EXT-X-MEDIA-SEQUENCE"])
        for i, seg in enumerate(pl.segments):
            assert seg.uri == f"seg-{msn + i}.m4s"
            assert round(seg.duration) <= target
            assert seg.pdt is not None
            first_msn.setdefault(seg.uri, msn)
        assert pl.tags["EXT-X-VERSION"] in ("7", "9")
        if pl.segments:
            assert pl.segments[0].map_uri == "init-0.mp4"
        else:  # an LL playlist before the first segment: parts of the open one only
            assert pl.open_parts and '#EXT-X-MAP:URI="init-0.mp4"' in pl.lines
            assert msn == 0 and pl.tags["EXT-X-VERSION"] == "9"
    assert targets == {2}
    assert muxer.stats.forced_cuts > 0 and muxer.notice and "Keyframe Interval" in muxer.notice
    assert parse(muxer.playlist() or "").ended


def test_discontinuity_and_new_init_on_config_change() -> None:
    a = make_stream(6.0)
    b = make_stream(6.0, width=160, height=128)
    muxer = HlsMuxer(window=3)
    muxer.set_config(a.video, a.audio)
    feed(muxer, a.units)
    offset = a.units[-1].dts + CLOCK_RATE
    muxer.mark_discontinuity()
    muxer.set_config(b.video, b.audio)  # changed SPS: new init segment, EXT-X-MAP repeated
    muxer.set_config(b.video, b.audio)  # unchanged: no-op
    pl = parse(muxer.playlist() or "")
    n_before = len(pl.segments)
    feed(muxer, shifted(b, offset)[: len(b.units) // 2])
    pl = parse(muxer.playlist() or "")
    disc = [seg for seg in pl.segments if seg.discontinuity]
    assert len(disc) == 1
    assert disc[0].map_uri == "init-1.mp4"
    assert '#EXT-X-MAP:URI="init-1.mp4"' in pl.lines
    assert muxer.get("init-1.mp4") is not None
    init1 = (muxer.get("init-1.mp4") or b"") + (muxer.get(disc[0].uri) or b"")
    assert demux(init1)["video"].width == 160
    assert pl.tags["EXT-X-DISCONTINUITY-SEQUENCE"] == "0"
    feed(muxer, shifted(b, offset)[len(b.units) // 2 :])
    muxer.end()
    pl = parse(muxer.playlist() or "")
    assert pl.ended
    if not any(seg.discontinuity for seg in pl.segments):
        assert pl.tags["EXT-X-DISCONTINUITY-SEQUENCE"] == "1"  # it slid out of the window
    assert n_before >= 1


def test_discontinuity_sequence_counts_slid_out_discontinuities() -> None:
    s = make_stream(6.0)
    muxer = HlsMuxer(window=2)
    muxer.set_config(s.video, s.audio)
    feed(muxer, s.units)
    muxer.mark_discontinuity()
    for k in range(1, 3):
        feed(muxer, shifted(s, k * (s.units[-1].dts + CLOCK_RATE)))
    pl = parse(muxer.playlist() or "")
    assert [seg.discontinuity for seg in pl.segments] == [False, False]
    assert pl.tags["EXT-X-DISCONTINUITY-SEQUENCE"] == "1"
    assert muxer.get("init-1.mp4") is None  # config unchanged: same init


def test_retention_keeps_objects_one_window_after_they_leave() -> None:
    """RFC 8216 §6.2.2: what a playlist listed stays fetchable for another window, then is freed."""
    s = make_stream(40.0)
    window = 3
    muxer = HlsMuxer(window=window)
    muxer.set_config(s.video, s.audio)
    listed_at: dict[str, int] = {}  # uri → index of the last segment-count when it was listed
    for u in s.units:
        muxer.push(u)
        text = muxer.playlist(low_latency=True)
        if text is None:
            continue
        pl = parse(text)
        produced = muxer.stats.segments_emitted
        for seg in pl.segments:
            for uri in [seg.uri, *(p[0] for p in seg.parts)]:
                listed_at[uri] = produced
        for uri, when in listed_at.items():
            if produced - when < window:
                assert muxer.get(uri) is not None, uri
    assert muxer.get("seg-0.m4s") is None  # eventually freed: memory is bounded
    assert muxer.get("part-0-0.m4s") is None
    assert len([u for u in listed_at if u.startswith("seg-") and muxer.get(u)]) <= 2 * window


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "seg-1.m4s/../",
        "%2e%2e%2fseg-1.m4s",
        "seg-1.m4s%00",
        "seg-01.m4s",
        "./seg-1.m4s",
        "SEG-1.M4S",
        "seg-1.ts",
        "index.m3u8",
        "init-99999999999999999999.mp4",
        "part-1-1-1.m4s",
        "seg-\u0661.m4s",
        "seg-1.m4s\n",
        "",
        "x" * 10_000,
        "seg--1.m4s",
        "/seg-1.m4s",
        "seg-1.m4s?x=1",
        "..\\seg-1.m4s",
    ],
)
def test_hostile_names_return_none(name: str) -> None:
    s = make_stream(6.0)
    muxer, _ = run(s)
    assert muxer.get("seg-1.m4s") is not None
    assert muxer.get(name) is None


def test_low_latency_rendering() -> None:
    s = make_stream(10.0)
    muxer = HlsMuxer(part_target=0.333, window=6)
    muxer.set_config(s.video, s.audio)
    updates: list[int] = []
    muxer.on_update = lambda: updates.append(muxer.stats.parts_emitted)
    feed(muxer, s.units[: len(s.units) * 3 // 4])
    text = muxer.playlist(low_latency=True) or ""
    pl = parse(text)
    assert pl.tags["EXT-X-VERSION"] == "9"
    control = pl.tags["EXT-X-SERVER-CONTROL"]
    assert "CAN-BLOCK-RELOAD=YES" in control
    hold_back = float(re.search(r"PART-HOLD-BACK=([0-9.]+)", control)[1])  # type: ignore[index]
    assert hold_back >= round(3 * 0.333, 3)
    assert float(re.search(r"CAN-SKIP-UNTIL=([0-9.]+)", control)[1]) >= 6 * 2  # type: ignore[index]
    assert float(pl.tags["EXT-X-PART-INF"].split("=")[1]) == pytest.approx(0.3663)
    assert pl.open_parts, "parts of the open segment are listed"
    assert pl.preload_hint == f"part-{muxer.last_msn}-{(muxer.last_part or 0) + 1}.m4s"
    assert pl.open_parts[-1][0] == f"part-{muxer.last_msn}-{muxer.last_part}.m4s"
    assert all(muxer.get(uri) for uri, _, _ in pl.open_parts)
    assert muxer.get(pl.preload_hint) is None  # not yet produced
    # parts are only listed for the last ~3 target durations
    assert not pl.segments[0].parts or len(pl.segments) <= 3
    assert updates and updates == sorted(updates) and len(updates) >= muxer.stats.parts_emitted
    # plain playlist stays plain
    plain = muxer.playlist() or ""
    assert (
        "#EXT-X-PART" not in plain and "PRELOAD-HINT" not in plain and "SERVER-CONTROL" not in plain
    )


def test_delta_update_skips_old_segments() -> None:
    """rfc8216bis §6.2.5.1: EXT-X-SKIP replaces segments older than CAN-SKIP-UNTIL."""
    s = make_stream(40.0)
    muxer = HlsMuxer(window=12)
    muxer.set_config(s.video, s.audio)
    feed(muxer, s.units)
    full = parse(muxer.playlist(low_latency=True) or "")
    delta = parse(muxer.playlist(low_latency=True, skip=True) or "")
    skipped = int(delta.tags["EXT-X-SKIP"].split("=")[1])
    assert skipped > 0
    assert [x.uri for x in delta.segments] == [x.uri for x in full.segments[skipped:]]
    assert sum(x.duration for x in delta.segments) >= 12
    assert delta.tags["EXT-X-MEDIA-SEQUENCE"] == full.tags["EXT-X-MEDIA-SEQUENCE"]
    assert "EXT-X-SKIP" not in (muxer.playlist(skip=True) or "")


def test_misuse_raises() -> None:
    s = make_stream(1.0)
    muxer = HlsMuxer()
    with pytest.raises(MuxerStateError):
        muxer.push(s.units[0])
    with pytest.raises(ValueError):
        muxer.set_config(None, None)
    muxer.set_config(s.video, s.audio)
    muxer.end()
    with pytest.raises(MuxerStateError):
        muxer.push(s.units[0])
    with pytest.raises(ValueError):
        HlsMuxer(part_target=3.0, segment_target=2.0)


def test_leading_non_keyframes_and_foreign_units_are_dropped() -> None:
    s = make_stream(4.0, audio=False)
    video = s.of(TrackKind.VIDEO)
    muxer = HlsMuxer()
    muxer.set_config(s.video, None)
    audio_unit = dataclasses.replace(video[0], kind=TrackKind.AUDIO)
    feed(muxer, [video[1], video[2], audio_unit, *video[25:]])
    muxer.end()
    assert muxer.stats.units_dropped == 3
    pl = parse(muxer.playlist() or "")
    data = (muxer.get("init-0.mp4") or b"") + b"".join(muxer.get(x.uri) or b"" for x in pl.segments)
    assert demux(data)["video"].decoded == len(video) - 25


def test_broken_on_update_does_not_break_the_muxer(caplog: pytest.LogCaptureFixture) -> None:
    s = make_stream(4.0)
    muxer = HlsMuxer()
    muxer.set_config(s.video, s.audio)

    def boom() -> None:
        raise RuntimeError("listener bug")

    muxer.on_update = boom
    feed(muxer, s.units)
    muxer.end()
    assert muxer.stats.segments_emitted == 2
    assert "on_update" in caplog.text


@pytest.mark.parametrize("rate", [0.97, 1.03])
def test_audio_decode_time_never_goes_back_when_timestamps_drift(rate: float) -> None:
    """Audio dts drifting from the frame count (a publisher whose timestamps run slower or faster
    than its audio clock, or jitter under load) never makes decode times overlap: the frame-count
    clock only jumps forward, and a lagging run drops whole frames to stay within a few frames."""
    s = make_stream(6.0)
    audio = s.of(TrackKind.AUDIO)
    first = audio[0].dts
    drifted = {
        id(u): dataclasses.replace(u, dts=first + round((u.dts - first) * rate),
                                   pts=first + round((u.dts - first) * rate))
        for u in audio
    }
    units = sorted((drifted.get(id(u), u) for u in s.units), key=lambda u: u.dts)
    muxer = HlsMuxer(window=20)
    muxer.set_config(s.video, s.audio)
    feed(muxer, units)
    muxer.end()
    pl = parse(muxer.playlist() or "")
    data = (muxer.get("init-0.mp4") or b"") + b"".join(muxer.get(x.uri) or b"" for x in pl.segments)
    tracks = demux(data)
    dts = tracks["audio"].dts
    assert dts == sorted(dts) and len(set(dts)) == len(dts), "audio decode time went backwards"
    spf = CLOCK_RATE * 1024 // 48_000
    # Every emitted frame plays within AUDIO_MAX_LAG_FRAMES (+1 for part granularity) of its dts.
    emitted = sorted(u.dts for u in units if u.kind is TrackKind.AUDIO)
    assert tracks["audio"].decoded >= 0.9 * len(emitted) * min(1.0, rate)
    assert dts[-1] - emitted[-1] <= (AUDIO_MAX_LAG_FRAMES + 1) * spf


def test_segment_is_its_parts_without_a_copy() -> None:
    """A segment is served and handed to sinks as its parts (the very part objects, never a
    joined copy: issue 17), and it is exactly their concatenation."""
    s = make_stream(8.0)
    done: list[object] = []

    class Sink:
        def segment(self, seg: object) -> None:
            done.append(seg)

        def end(self) -> None:
            pass

    muxer = HlsMuxer(part_target=0.5)
    muxer.sink = Sink()
    muxer.set_config(s.video, s.audio)
    for u in s.units:
        muxer.push(u)
    pl = parse(muxer.playlist(low_latency=True) or "")
    seg = pl.segments[-1]
    chunks = muxer.chunks(seg.uri)
    assert chunks is not None and len(chunks) == len(seg.parts) >= 2
    for chunk, (uri, _, _) in zip(chunks, seg.parts, strict=True):
        part = muxer.chunks(uri)
        assert part is not None and part[0] is chunk, "the part object itself, not a copy"
    assert muxer.get(seg.uri) == b"".join(chunks)
    handed = [d for d in done if getattr(d, "name", None) == seg.uri]
    assert len(handed) == 1
    assert all(a is b for a, b in zip(handed[0].parts, chunks, strict=True))  # type: ignore[attr-defined]
    assert handed[0].size == len(b"".join(chunks))  # type: ignore[attr-defined]
    for bad in ("seg-999.m4s", "../seg-0.m4s", "seg-00.m4s", "init-9.mp4", ""):
        assert muxer.chunks(bad) is None and muxer.get(bad) is None
