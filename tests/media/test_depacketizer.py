"""FLV tag bodies → configs and media units; codec refusal; malformed input."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.depacketizer import (
    FlvDepacketizer,
    MalformedMediaError,
    MediaError,
    UnsupportedCodecError,
)
from media.h264 import build_avcc
from media.units import CodecConfig, MediaUnit, TrackKind
from tests.media.hls.media_factory import make_stream


def _video_tag(frame: bytes, *, key: bool, packet_type: int, cts: int = 0,
               codec_id: int = 7) -> bytes:
    first = ((1 if key else 2) << 4) | codec_id
    return bytes([first, packet_type]) + struct.pack(">i", cts)[1:] + frame


def _audio_tag(data: bytes, packet_type: int) -> bytes:
    return bytes([0xAF, packet_type]) + data


@pytest.fixture(scope="module")
def stream():  # type: ignore[no-untyped-def]
    return make_stream(2.0, gop=10)


def test_sequence_headers_then_frames(stream) -> None:  # type: ignore[no-untyped-def]
    d = FlvDepacketizer(clock=lambda: 42.0)
    out = d.video_tag(0, _video_tag(stream.video.avcc, key=True, packet_type=0))
    assert out == [CodecConfig(stream.video, None)]
    assert d.video_tag(0, _video_tag(stream.video.avcc, key=True, packet_type=0)) == []
    out = d.audio_tag(0, _audio_tag(stream.audio.asc, 0))
    assert out == [CodecConfig(stream.video, stream.audio)]
    units = []
    for u in stream.units:
        ms = u.dts // 90
        if u.kind is TrackKind.VIDEO:
            cts = (u.pts - u.dts) // 90
            units += d.video_tag(ms, _video_tag(u.data, key=u.keyframe, packet_type=1, cts=cts))
        else:
            units += d.audio_tag(ms, _audio_tag(u.data, 1))
    assert all(isinstance(u, MediaUnit) for u in units)
    assert len(units) == len(stream.units)
    video = [u for u in units if isinstance(u, MediaUnit) and u.kind is TrackKind.VIDEO]
    assert video[0].keyframe and video[0].arrival == 42.0
    assert [u.keyframe for u in video] == [u.keyframe for u in stream.of(TrackKind.VIDEO)]
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))


def test_frames_before_config_are_dropped_and_counted(stream) -> None:  # type: ignore[no-untyped-def]
    d = FlvDepacketizer()
    u = stream.of(TrackKind.VIDEO)[0]
    assert d.video_tag(0, _video_tag(u.data, key=True, packet_type=1)) == []
    assert d.frames_before_config == 1


@pytest.mark.parametrize("body, codec", [
    (bytes([0x1C, 1, 0, 0, 0, 0]), "hevc"),  # legacy codec id 12
    (bytes([0x90]) + b"hvc1" + b"\x00" * 8, "hevc"),  # Enhanced RTMP FourCC
    (bytes([0x90]) + b"av01" + b"\x00" * 8, "av1"),
    (bytes([0x22, 0x00]), "h263"),
])
def test_other_video_codecs_are_refused_with_advice(body: bytes, codec: str) -> None:
    with pytest.raises(UnsupportedCodecError) as info:
        FlvDepacketizer().video_tag(0, body)
    assert info.value.codec == codec
    assert "H.264" in str(info.value)


def test_other_audio_codecs_are_refused() -> None:
    with pytest.raises(UnsupportedCodecError, match=r"'mp3'.*AAC"):
        FlvDepacketizer().audio_tag(0, bytes([0x2F]) + b"\xff\xfb\x90\x00")


def test_malformed_nalu_length_is_reported(stream) -> None:  # type: ignore[no-untyped-def]
    d = FlvDepacketizer()
    d.video_tag(0, _video_tag(stream.video.avcc, key=True, packet_type=0))
    with pytest.raises(MalformedMediaError, match="exceeds"):
        d.video_tag(40, _video_tag(b"\x00\x00\x10\x00\x65", key=True, packet_type=1))


def test_bad_sequence_header_is_reported() -> None:
    with pytest.raises(MalformedMediaError, match="AVC sequence header"):
        FlvDepacketizer().video_tag(0, _video_tag(b"\x01\x64", key=True, packet_type=0))
    with pytest.raises(MalformedMediaError, match="AudioSpecificConfig"):
        FlvDepacketizer().audio_tag(0, _audio_tag(b"", 0))


def test_repeated_timestamps_stay_strictly_increasing(stream) -> None:  # type: ignore[no-untyped-def]
    d = FlvDepacketizer()
    d.video_tag(0, _video_tag(stream.video.avcc, key=True, packet_type=0))
    frames = stream.of(TrackKind.VIDEO)[:3]
    dts = [d.video_tag(100, _video_tag(f.data, key=f.keyframe, packet_type=1))[0].dts
           for f in frames]
    assert dts[0] < dts[1] < dts[2]


@given(st.binary(max_size=200), st.booleans(), st.integers(0, 2**32 - 1))
def test_arbitrary_tags_raise_only_media_errors(body: bytes, video: bool, ts: int) -> None:
    d = FlvDepacketizer()
    avcc = build_avcc([bytes.fromhex("6764001eacd940a02ff9610000030001000003003c8f162d96")],
                      [bytes.fromhex("68ebecb22c")])
    d.video_tag(0, _video_tag(avcc, key=True, packet_type=0))
    try:
        (d.video_tag if video else d.audio_tag)(ts, body)
    except MediaError:
        pass


def _x264_avcc(pix_fmt: str, profile: str | None = None) -> bytes:
    """An avcC from a real libx264 encode (PyAV) in ``pix_fmt``."""
    from fractions import Fraction

    import av
    import numpy as np

    from media.h264 import split_annexb

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 64, pix_fmt
    codec.time_base = Fraction(1, 25)
    options = {"preset": "ultrafast"}
    if profile:
        options["profile"] = profile
    codec.options = options
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
    frame = frame.reformat(format=pix_fmt)
    frame.pts = 0
    data = b"".join(bytes(p) for p in codec.encode(frame)) + b"".join(
        bytes(p) for p in codec.encode(None))
    nalus = split_annexb(data)
    sps = [n for n in nalus if n[0] & 0x1F == 7][:1]
    pps = [n for n in nalus if n[0] & 0x1F == 8][:1]
    return build_avcc(sps, pps)


@pytest.mark.parametrize(("pix_fmt", "profile", "problem"), [
    ("yuv444p", None, "High 4:4:4 Predictive profile"),
    ("yuv422p", None, "High 4:2:2 profile"),
    ("yuv420p10le", None, "High 10 profile"),
])
def test_undecodable_h264_profiles_are_refused_with_the_reason(
        pix_fmt: str, profile: str | None, problem: str) -> None:
    """Issue 10 #11: what browsers and Apple devices cannot decode is refused, saying why."""
    from media.depacketizer import UnsupportedProfileError

    d = FlvDepacketizer()
    with pytest.raises(UnsupportedProfileError) as err:
        d.video_tag(0, _video_tag(_x264_avcc(pix_fmt, profile), key=True, packet_type=0))
    assert problem in str(err.value) and "Profile: high" in str(err.value)
    assert isinstance(err.value, UnsupportedCodecError)


@pytest.mark.parametrize("profile", ["baseline", "main", "high"])
def test_8bit_420_profiles_are_accepted(profile: str) -> None:
    d = FlvDepacketizer()
    out = d.video_tag(0, _video_tag(_x264_avcc("yuv420p", profile), key=True, packet_type=0))
    assert len(out) == 1


def _reference_frame(d: FlvDepacketizer, ts: int, body: bytes, video: bool) -> object:
    """What the tag-parser path makes of a frame body (the fast paths must agree)."""
    from media.rtmp.errors import RtmpError
    from media.rtmp.flv import parse_audio_tag, parse_video_tag

    try:
        parse_video_tag(body) if video else parse_audio_tag(body)
    except (RtmpError, ValueError):
        return MalformedMediaError
    try:
        if video:
            tag = parse_video_tag(body)
            return d._video_frame(ts, tag.composition_time, tag.data)
        atag = parse_audio_tag(body)
        return d._audio_frame(ts, atag.data)
    except MediaError as exc:
        return type(exc)


@given(st.binary(max_size=60), st.sampled_from([0x17, 0x27, 0x37, 0x47, 0x07, 0x67]),
       st.integers(0, 2**32 - 1))
def test_video_fast_path_matches_the_tag_parser(tail: bytes, first: int, ts: int) -> None:
    """The in-place read of legacy AVC NALU tags gives what parse_video_tag gives."""
    stream = make_stream(0.2, gop=5)
    made = []
    for _ in range(2):
        d = FlvDepacketizer(clock=lambda: 1.0)
        d.video_tag(0, _video_tag(stream.video.avcc, key=True, packet_type=0))
        made.append(d)
    body = bytes([first, 1]) + tail
    try:
        fast: object = made[0].video_tag(ts, body)
    except MediaError as exc:
        fast = type(exc)
    assert fast == _reference_frame(made[1], ts, body, True)


@given(st.binary(max_size=20), st.integers(0, 2**32 - 1))
def test_audio_fast_path_matches_the_tag_parser(tail: bytes, ts: int) -> None:
    stream = make_stream(0.2, gop=5)
    made = []
    for _ in range(2):
        d = FlvDepacketizer(clock=lambda: 1.0)
        d.audio_tag(0, _audio_tag(stream.audio.asc, 0))
        made.append(d)
    body = bytes([0xAF, 1]) + tail
    assert made[0].audio_tag(ts, body) == _reference_frame(made[1], ts, body, False)
