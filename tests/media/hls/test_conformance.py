"""Playlist conformance over a stream's life, checked by independent strict parsers.

Timing comes from real publisher cadences (RTMP millisecond timestamps): 29.97 fps with a
60-frame GOP (OBS "2 s" at NTSC rates: 2.002 s segments) and an 8 s / 250-frame GOP (OBS's
"auto" keyframe interval); payloads are real H.264/AAC units recycled (the packager never
decodes them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import m3u8
import pytest

from appliance.config import HlsConfig
from media.hls import HlsMuxer
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from tests.helpers.strict_hls import assert_strictly_valid
from tests.media.hls.media_factory import SyntheticStream, make_stream

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def source() -> SyntheticStream:
    return make_stream(2.0, gop=25)


def cadence(source: SyntheticStream, *, seconds: float, fps: float, gop: int,
            start_ms: int = 0, keyframes: bool = True) -> Iterator[MediaUnit]:
    """Units as RTMP delivers them: ms timestamps, video at ``fps``, AAC 48 kHz, interleaved."""
    video = source.of(TrackKind.VIDEO)
    audio = source.of(TrackKind.AUDIO)
    units: list[MediaUnit] = []
    n_video = int(seconds * fps)
    for i in range(n_video):
        ms = start_ms + round(i * 1000 / fps)
        key = (keyframes and i % gop == 0) or i == 0
        data = video[0 if key else 1 + i % (len(video) - 1)].data
        units.append(MediaUnit(TrackKind.VIDEO, ms * 90, ms * 90, key, data, T0 + ms / 1000))
    n_audio = int(seconds * 48_000 / 1024)
    for k in range(n_audio):
        ms = start_ms + round(k * 1024_000 / 48_000)
        data = audio[k % len(audio)].data
        units.append(MediaUnit(TrackKind.AUDIO, ms * 90, ms * 90, True, data, T0 + ms / 1000))
    units.sort(key=lambda u: (u.dts, u.kind is TrackKind.AUDIO))
    return iter(units)


def muxer_for(source: SyntheticStream, **kw: float) -> HlsMuxer:
    cfg = HlsConfig()
    m = HlsMuxer(segment_target=cfg.segment_target, part_target=cfg.part_target,
                 window=cfg.window, **kw)  # type: ignore[arg-type]
    m.set_config(source.video, source.audio)
    return m


def shapes(m: HlsMuxer, units: Iterator[MediaUnit], out: list[str]) -> None:
    """Push units, keeping every distinct LL, plain and delta rendering."""
    for u in units:
        m.push(u)
        for ll, skip in ((True, False), (False, False), (True, True)):
            text = m.playlist(low_latency=ll, skip=skip)
            if text is not None and (not out or out[-1] != text):
                out.append(text)


def life(source: SyntheticStream, *, fps: float, gop: int, keyframes: bool = True) -> tuple[
        HlsMuxer, list[str]]:
    """Start, 30 s steady, reconnect (discontinuity), 14 s more, end."""
    m = muxer_for(source)
    seen: list[str] = []
    shapes(m, cadence(source, seconds=30, fps=fps, gop=gop, keyframes=keyframes), seen)
    m.mark_discontinuity()
    shapes(m, cadence(source, seconds=14, fps=fps, gop=gop, start_ms=30_100,
                      keyframes=keyframes), seen)
    m.end()
    seen.append(m.playlist(low_latency=True) or "")
    seen.append(m.playlist() or "")
    return m, seen


CADENCES = [pytest.param(30000 / 1001, 60, id="29.97fps-60gop"),
            pytest.param(30000 / 1001, 250, id="29.97fps-250gop-8s"),
            pytest.param(25.0, 50, id="25fps-50gop")]


@pytest.mark.parametrize(("fps", "gop"), CADENCES)
def test_every_shape_passes_strict_parsers(source: SyntheticStream, fps: float,
                                           gop: int) -> None:
    """m3u8 and hls-parser (strict) accept start, steady, reconnect, end and delta shapes."""
    m, seen = life(source, fps=fps, gop=gop)
    assert any("#EXTINF" not in t and "#EXT-X-PART:" in t for t in seen), "start shape"
    assert any("#EXT-X-SKIP:SKIPPED-SEGMENTS=" in t for t in seen), "delta shape skips"
    assert any("#EXT-X-DISCONTINUITY\n" in t for t in seen), "reconnect shape"
    assert seen[-1].endswith("#EXT-X-ENDLIST\n")
    # a sample keeps the node round trip short; every distinct shape class is in it
    sample = seen[:40] + seen[40::7] + seen[-40:]
    assert_strictly_valid(sample)
    assert_strictly_valid([m.multivariant_playlist() or ""])


@pytest.mark.parametrize(("fps", "gop"), CADENCES)
def test_target_duration_never_changes(source: SyntheticStream, fps: float, gop: int) -> None:
    """RFC 8216 §6.2.1: EXT-X-TARGETDURATION is the same in every playlist of a stream."""
    _, seen = life(source, fps=fps, gop=gop)
    targets = {re.search(r"#EXT-X-TARGETDURATION:(\d+)", t)[1] for t in seen}  # type: ignore[index]
    assert targets == {"2"}
    for text in seen:
        for d in re.findall(r"#EXTINF:([0-9.]+),", text):
            assert round(float(d)) <= 2


def test_long_gop_segments_are_marked_not_independent(source: SyntheticStream) -> None:
    """Cuts inside an 8 s GOP: the segment's first part lacks INDEPENDENT=YES and the playlist
    drops EXT-X-INDEPENDENT-SEGMENTS; keyframes still start segments."""
    m, seen = life(source, fps=30000 / 1001, gop=250)
    assert m.stats.forced_cuts > 0
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in seen[-3]
    steady = m.playlist(low_latency=True) or ""
    parts = re.findall(r'#EXT-X-PART:DURATION=[0-9.]+,URI="part-(\d+)-0\.m4s"(,INDEPENDENT=YES)?',
                       steady)
    assert parts and any(not ind for _, ind in parts), "a cut segment's first part"
    assert any(ind for _, ind in parts), "a keyframe still starts a segment"
    short, short_seen = life(source, fps=30000 / 1001, gop=60)
    assert short.stats.forced_cuts == 0 and short.notice is None
    assert all("#EXT-X-INDEPENDENT-SEGMENTS" in t for t in short_seen)


def test_program_date_time_follows_the_media_timeline(source: SyntheticStream) -> None:
    """PDT(n+1) = PDT(n) + EXTINF(n) to the millisecond, across the reconnect too."""
    m, _ = life(source, fps=30000 / 1001, gop=60)
    pl = m3u8.loads(m.playlist() or "")
    assert any(s.discontinuity for s in pl.segments)
    for a, b in zip(pl.segments, pl.segments[1:], strict=False):
        assert a.current_program_date_time is not None
        gap = (b.current_program_date_time - a.current_program_date_time).total_seconds()
        assert abs(gap - a.duration) <= 0.0015, (a.uri, gap, a.duration)


def test_no_keyframes_after_the_first_bounds_memory(source: SyntheticStream) -> None:
    """Issue 10 item 7: ``keyint=infinite`` still completes segments, retention frees them,
    plain clients get segments, and the muxer says why."""
    m = muxer_for(source)
    for u in cadence(source, seconds=120, fps=30, gop=10**9):
        m.push(u)
    assert m.stats.segments_emitted >= 45
    assert m.notice is not None
    plain = m3u8.loads(m.playlist() or "")
    assert len(plain.segments) == HlsConfig().window
    retained = sum(len(m.get(f"seg-{n}.m4s") or b"") for n in range(m.stats.segments_emitted))
    objects = len(m._objects)
    assert objects <= 2 * HlsConfig().window * 15 + 4
    assert retained < m.stats.bytes_total / 2


def test_default_window_makes_delta_updates_skip(source: SyntheticStream) -> None:
    """rfc8216bis §6.2.5.1: with the default window the playlist is longer than the Skip
    Boundary (6 × target), so _HLS_skip=YES actually skips segments."""
    m = muxer_for(source)
    for u in cadence(source, seconds=40, fps=30, gop=60):
        m.push(u)
    full = m3u8.loads(m.playlist(low_latency=True) or "")
    delta = m.playlist(low_latency=True, skip=True) or ""
    skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta)[1])  # type: ignore[index]
    assert skipped >= 2
    assert len(m3u8.loads(delta).segments) == len(full.segments) - skipped


def test_multivariant_is_measured(source: SyntheticStream) -> None:
    m = muxer_for(source)
    assert m.multivariant_playlist() is None
    for u in cadence(source, seconds=10, fps=30000 / 1001, gop=60):
        m.push(u)
    pl = m3u8.loads(m.multivariant_playlist() or "")
    assert pl.is_variant and len(pl.playlists) == 1
    info = pl.playlists[0].stream_info
    assert pl.playlists[0].uri == "media.m3u8"
    assert source.video is not None and source.audio is not None
    assert info.codecs == f"{source.video.codec_string},{source.audio.codec_string}"
    assert info.resolution == (source.video.width, source.video.height)
    assert info.frame_rate == pytest.approx(29.97, abs=0.02)
    seg_rates = []
    for n in range(m.stats.segments_emitted):
        data = m.get(f"seg-{n}.m4s")
        if data is not None:
            seg = next(s for s in m._segments if s.msn == n)
            seg_rates.append(len(data) * 8 * CLOCK_RATE / seg.duration)
    assert info.bandwidth == pytest.approx(max(seg_rates), rel=0.001)
    assert info.average_bandwidth <= info.bandwidth


def test_parts_fit_part_target_at_ntsc_rates(source: SyntheticStream) -> None:
    """rfc8216bis §4.4.4.9 at 29.97 fps: every part ≤ PART-TARGET, non-final ≥ 85 %."""
    m = muxer_for(source)
    for u in cadence(source, seconds=12, fps=30000 / 1001, gop=60):
        m.push(u)
    text = m.playlist(low_latency=True) or ""
    target = float(re.search(r"PART-TARGET=([0-9.]+)", text)[1])  # type: ignore[index]
    segs = text.split("#EXTINF")
    for chunk in segs:
        durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([0-9.]+)", chunk)]
        assert all(d <= target for d in durations)
        assert all(d >= 0.85 * target for d in durations[:-1])
    _ = dataclasses


def test_first_msn_numbers_objects_from_there(source: SyntheticStream) -> None:
    """A muxer reusing a playlist URL starts above its predecessor's names (cache safety)."""
    m = HlsMuxer(first_msn=1_700_000_000)
    m.set_config(source.video, source.audio)
    for u in cadence(source, seconds=6, fps=30, gop=60):
        m.push(u)
    pl = m3u8.loads(m.playlist(low_latency=True) or "")
    assert pl.media_sequence == 1_700_000_000
    assert pl.segments[0].uri == "seg-1700000000.m4s"
    assert m.get("seg-1700000000.m4s") and m.get("part-1700000000-0.m4s")
    with pytest.raises(ValueError):
        HlsMuxer(first_msn=-1)


@pytest.mark.parametrize("first_msn", [0, 1_700_000_000])
def test_headers_before_the_first_segment_are_no_discontinuity(source: SyntheticStream,
                                                               first_msn: int) -> None:
    """ffmpeg/OBS send the video sequence header, then the audio one: two configs before any
    media. That is the start of the stream, not a reconnect, whatever first_msn is."""
    m = HlsMuxer(first_msn=first_msn)
    m.set_config(source.video, None)
    m.set_config(source.video, source.audio)
    for u in cadence(source, seconds=6, fps=30, gop=60):
        m.push(u)
    text = m.playlist(low_latency=True) or ""
    assert "#EXT-X-DISCONTINUITY\n" not in text, text
    m.mark_discontinuity()  # a real reconnect still is one
    for u in cadence(source, seconds=4, fps=30, gop=60, start_ms=7000):
        m.push(u)
    assert (m.playlist(low_latency=True) or "").count("#EXT-X-DISCONTINUITY\n") == 1
