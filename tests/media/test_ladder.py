"""Quality-ladder pieces without the appliance: presets and planning, rendition reports, encoder
detection, and PyAV decode → scale → encode with keyframes forced at the source's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.ladder import choose_encoder
from media.h264 import iter_nalus, nal_type, parse_avcc
from media.hls.playlist import RenditionReport, render_rendition_reports
from media.hls.segmenter import HlsMuxer
from media.ladder import (
    MAX_PRESETS,
    PRESETS,
    LadderError,
    SegmentCuts,
    parse_ladder,
    plan_renditions,
)
from media.transcode import (
    Decoder,
    RenditionEncoder,
    annexb_to_avcc,
    detect_hardware_encoders,
    frame_rate_of,
    rendition_unit,
)
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from tests.media.hls.media_factory import make_stream

VIDEO = make_stream(0.2, audio=False).video

# ---- presets and planning --------------------------------------------------------------------


def test_parse_ladder_contract_spellings() -> None:
    assert parse_ladder("720p,480p,360p") == ("720p", "480p", "360p")
    assert parse_ladder(" 360p, 720P ,360p") == ("720p", "360p")  # tallest first, deduplicated
    assert parse_ladder("off") == parse_ladder("") == parse_ladder([]) == ()
    for bad in ("999p", "720", "off,720p", "720p;480p", "../720p", "720p\x00",
                ",".join(list(PRESETS)[: MAX_PRESETS + 1]), "p" * 500):
        with pytest.raises(LadderError):
            parse_ladder(bad)


@given(st.one_of(st.text(max_size=300), st.lists(st.text(max_size=20), max_size=10),
                 st.lists(st.sampled_from([*PRESETS, "off", ""]), max_size=8)))
@settings(max_examples=300, deadline=None)
def test_parse_ladder_raises_only_its_own_error(spec: str | list[str]) -> None:
    try:
        names = parse_ladder(spec)
    except LadderError:
        return
    assert len(names) <= MAX_PRESETS and all(n in PRESETS for n in names)
    assert list(names) == sorted(names, key=lambda n: -PRESETS[n].height)


def test_plan_never_upscales_and_keeps_aspect_with_even_sizes() -> None:
    plan = plan_renditions(("1080p", "720p", "480p", "360p"), 1280, 720)
    assert [(r.name, r.width, r.height) for r in plan] == [("480p", 854, 480),
                                                           ("360p", 640, 360)]
    # 4:3 and odd sources: even dimensions, aspect kept within one pixel pair.
    assert [(r.width, r.height) for r in plan_renditions(("180p", "144p"), 320, 240)] == [
        (240, 180), (192, 144)]
    odd = plan_renditions(("240p",), 853, 481)
    assert odd[0].width % 2 == 0 and odd[0].height % 2 == 0
    assert abs(odd[0].width / odd[0].height - 853 / 481) < 0.02
    assert plan_renditions(("720p",), 1280, 720) == ()  # same height: the source is that one
    assert plan_renditions(("720p",), 0, 0) == ()


@given(st.integers(16, 8192), st.integers(16, 4320),
       st.lists(st.sampled_from(list(PRESETS)), max_size=MAX_PRESETS))
@settings(max_examples=200, deadline=None)
def test_plan_properties(width: int, height: int, names: list[str]) -> None:
    for r in plan_renditions(names, width, height):
        assert r.height < height and r.width % 2 == 0 and r.height % 2 == 0
        assert r.width <= width + 2


# ---- SegmentCuts mirrors the segmenter ---------------------------------------------------------


def _muxer_starts(units: list[tuple[int, bool]], target: float, part: float) -> list[int]:
    muxer = HlsMuxer(segment_target=target, part_target=part, window=1000)
    muxer.set_config(VIDEO, None)
    for dts, key in units:
        muxer.push(MediaUnit(TrackKind.VIDEO, dts, dts, key, b"\x00\x00\x00\x01\x65", 0.0))
    muxer.end()
    first = next(dts for dts, key in units if key)
    starts, at = [], first
    for seg in muxer._segments:  # exact durations in ticks (EXTINF is rounded to the ms)
        starts.append(at)
        at += seg.duration
    return starts


def _predicted(units: list[tuple[int, bool]], target: float, part: float) -> list[int]:
    cuts = SegmentCuts(target, part)
    return [dts for dts, key in units if cuts.push(dts, key)]


@given(st.lists(st.tuples(st.integers(2700, 3300), st.integers(0, 300)), min_size=5,
                max_size=400),
       st.sampled_from([(2.0, 0.2), (1.0, 0.2), (2.0, 0.333), (4.0, 1.0)]))
@settings(max_examples=150, deadline=None)
def test_segment_cuts_predict_the_muxer(frames: list[tuple[int, int]],
                                        targets: tuple[float, float]) -> None:
    """Jittery frame intervals (RTMP ms timestamps), keyframes anywhere, GOPs up to 300
    frames: the predicted segment starts are exactly the muxer's."""
    dts, units = 0, []
    for i, (step, key) in enumerate(frames):
        units.append((dts, i == 0 or key < 12))
        dts += step
    muxer = _muxer_starts(units, *targets)
    predicted = _predicted(units, *targets)
    assert predicted == muxer


def test_segment_cuts_obs_default_gop() -> None:
    """29.97 fps, a 250-frame GOP, 2 s target: cuts between keyframes before 2.5 s, then the
    keyframe a part later."""
    units = [(round(i * 3003), i % 250 == 0) for i in range(600)]
    assert _predicted(units, 2.0, 0.2) == _muxer_starts(units, 2.0, 0.2)
    cuts = SegmentCuts(2.0, 0.2)
    assert not cuts.push(100, False)  # no keyframe yet: nothing starts
    assert cuts.push(200, True)
    cuts.reset()
    assert cuts.push(300, True)


# ---- rendition reports (rfc8216bis §4.4.5.4) -------------------------------------------------


def test_rendition_report_lines() -> None:
    text = render_rendition_reports([RenditionReport("../media.m3u8", 1700000012, 3),
                                     RenditionReport("360p/media.m3u8", 7, None)])
    assert text == ('#EXT-X-RENDITION-REPORT:URI="../media.m3u8",LAST-MSN=1700000012,'
                    'LAST-PART=3\n#EXT-X-RENDITION-REPORT:URI="360p/media.m3u8",LAST-MSN=7\n')
    assert render_rendition_reports([]) == ""


# ---- encoders ----------------------------------------------------------------------------------


def test_hardware_detection_says_none_on_this_box() -> None:
    """libavcodec here lists h264_nvenc and h264_v4l2m2m, but no device answers."""
    assert detect_hardware_encoders() == []
    assert detect_hardware_encoders(probe=lambda codec: codec == "h264_nvenc") == ["nvenc"]


def test_choose_encoder() -> None:
    assert choose_encoder("auto", []).codec == "libx264"
    assert "found: none" in choose_encoder("auto", []).note
    assert choose_encoder("auto", ["nvenc"]).codec == "h264_nvenc"
    assert choose_encoder("software", ["nvenc"]).codec == "libx264"
    fallback = choose_encoder("vaapi", [])
    assert fallback.codec == "libx264" and "no such device" in fallback.note
    assert choose_encoder("v4l2m2m", ["v4l2m2m"]).codec == "h264_v4l2m2m"


def test_frame_rate_of() -> None:
    assert frame_rate_of([]) == 30.0
    assert frame_rate_of([3000, 3000, 3003, 0, -5]) == pytest.approx(30.0)
    assert frame_rate_of([3600] * 5) == pytest.approx(25.0)


def test_annexb_to_avcc_drops_parameter_sets_and_delimiters() -> None:
    sps, pps, aud, idr = b"\x67\x64", b"\x68\xee", b"\x09\xf0", b"\x65\x88\x80"
    data, params = annexb_to_avcc(b"".join(b"\x00\x00\x00\x01" + n for n in (aud, sps, pps, idr)))
    assert params == [sps, pps]
    assert data == len(idr).to_bytes(4, "big") + idr


def test_transcode_forces_idr_at_source_keyframes_without_bframes() -> None:
    """A B-frame source (ultrafast + bf=2, GOP 13): the rendition's IDRs land on exactly the
    source keyframes' pts, it has no B-frames (pts never goes back), and its keyframe dts equals
    the source keyframe's dts (the segmenter's cut points line up)."""
    source = make_stream(2.0, audio=False, gop=13, bframes=2)
    assert source.video is not None
    video = source.of(TrackKind.VIDEO)
    assert any(u.pts < max(v.pts for v in video[:i]) for i, u in enumerate(video) if i)  # B
    key_pts = {u.pts for u in video if u.keyframe}
    key_dts = {u.dts for u in video if u.keyframe}
    (plan,) = plan_renditions(("144p",), source.video.width, source.video.height)
    decoder = Decoder(source.video)
    encoder = RenditionEncoder(plan, 25.0)
    config = encoder.config
    assert (config.width, config.height) == (192, 144)
    assert parse_avcc(config.avcc) == config
    offset = next(u.pts - u.dts for u in video if u.keyframe)
    out = []
    frames = [f for u in video for f in decoder.decode(u)] + decoder.decode(None)
    assert len(frames) == len(video)
    for frame in frames:
        out += encoder.encode(frame, keyframe=frame.pts in key_pts)
    out += encoder.encode(None, keyframe=False)
    assert len(out) == len(video)
    assert {f.pts for f in out if f.keyframe} == key_pts
    pts = [f.pts for f in out]
    assert pts == sorted(pts)  # no reordering: no B-frames
    units = [rendition_unit(f, offset, 0.0) for f in out]
    assert {u.dts for u in units if u.keyframe} == key_dts
    for f in out:
        kinds = {nal_type(n) for n in iter_nalus(f.data, 4)}
        assert 7 not in kinds and 8 not in kinds  # parameter sets live in avcC
        assert (5 in kinds) == f.keyframe
    assert encoder.cpu_seconds > 0 and encoder.frames == len(video)
    assert all(u.pts - u.dts == offset for u in units)
    assert units[-1].pts < 3 * CLOCK_RATE
