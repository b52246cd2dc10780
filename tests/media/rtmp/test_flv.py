"""FLV audio/video tag body parsing (FLV spec E.4.2/E.4.3, Enhanced RTMP v1/v2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtmp.errors import RtmpError
from media.rtmp.flv import (
    AudioTag,
    FlvParseError,
    VideoPacketType,
    VideoTag,
    parse_audio_tag,
    parse_video_tag,
)


def test_avc_sequence_header() -> None:
    """E.4.3.1: key frame + codec 7, AVCPacketType 0 carries the AVCDecoderConfigurationRecord."""
    tag = parse_video_tag(b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f")
    assert tag == VideoTag(
        1, "h264", VideoPacketType.SEQUENCE_HEADER, 0, b"\x01\x64\x00\x1f", False
    )


def test_avc_nalu_with_negative_composition_time() -> None:
    """E.4.3.1: CompositionTime is a signed 24-bit value."""
    tag = parse_video_tag(b"\x27\x01\xff\xff\xfe" + b"\x00\x00\x00\x01\x41")
    assert tag.packet_type is VideoPacketType.NALU
    assert tag.composition_time == -2
    assert not tag.is_keyframe
    assert tag.data == b"\x00\x00\x00\x01\x41"


def test_avc_keyframe() -> None:
    tag = parse_video_tag(b"\x17\x01\x00\x00\x28" + b"\x00\x00\x00\x01\x65")
    assert tag.is_keyframe and tag.composition_time == 40


def test_avc_end_of_sequence() -> None:
    assert parse_video_tag(b"\x17\x02\x00\x00\x00").packet_type is VideoPacketType.END_OF_SEQUENCE


@pytest.mark.parametrize(
    ("first", "codec"), [(0x22, "h263"), (0x14, "vp6"), (0x13, "screen"), (0x2C, "hevc")]
)
def test_legacy_codecs_are_named(first: int, codec: str) -> None:
    """Non-H.264 codecs parse, so the application can refuse them with a reason."""
    body = bytes([first]) + bytes(8)
    assert parse_video_tag(body).codec == codec


@pytest.mark.parametrize(
    ("fourcc", "codec"),
    [(b"hvc1", "hevc"), (b"av01", "av1"), (b"vp09", "vp9"), (b"avc1", "h264"), (b"xyz1", "xyz1")],
)
def test_enhanced_sequence_start(fourcc: bytes, codec: str) -> None:
    """E-RTMP: IsExHeader | FrameType << 4 | PacketType, then the FourCC."""
    tag = parse_video_tag(bytes([0x80 | 0x10 | 0]) + fourcc + b"config")
    assert tag.enhanced and tag.codec == codec
    assert tag.packet_type is VideoPacketType.SEQUENCE_HEADER
    assert tag.data == b"config" and tag.fourcc == fourcc.decode()


def test_enhanced_coded_frames_hevc_has_cts() -> None:
    """E-RTMP: CodedFrames for hvc1/avc1 carries an SI24 composition time."""
    tag = parse_video_tag(b"\x91hvc1\x00\x00\x21frame")
    assert tag.composition_time == 0x21 and tag.data == b"frame" and tag.is_keyframe


def test_enhanced_coded_frames_x_has_no_cts() -> None:
    """E-RTMP: CodedFramesX implies a composition time of 0."""
    tag = parse_video_tag(b"\xa3hvc1frame")
    assert tag.packet_type is VideoPacketType.CODED_FRAMES_X
    assert tag.composition_time == 0 and tag.data == b"frame" and not tag.is_keyframe


def test_enhanced_av1_coded_frames_no_cts() -> None:
    tag = parse_video_tag(b"\x91av01obu")
    assert tag.data == b"obu" and tag.codec == "av1"


def test_enhanced_mod_ex_is_skipped() -> None:
    """E-RTMP v2: ModEx data is skipped and the real packet type follows."""
    tag = parse_video_tag(b"\x97" + b"\x02" + b"abc" + b"\x03" + b"av01data")
    assert tag.packet_type is VideoPacketType.CODED_FRAMES_X and tag.data == b"data"


def test_enhanced_multitrack_is_named() -> None:
    tag = parse_video_tag(b"\x96" + b"\x01" + b"hvc1rest")
    assert tag.packet_type is VideoPacketType.MULTITRACK and tag.codec == "hevc"


@pytest.mark.parametrize("body", [b"", b"\x17", b"\x17\x01\x00", b"\x90hv", b"\x97\xff"])
def test_truncated_video(body: bytes) -> None:
    with pytest.raises(FlvParseError):
        parse_video_tag(body)


def test_aac_sequence_header() -> None:
    """E.4.2.1: SoundFormat 10 (AAC), AACPacketType 0 = AudioSpecificConfig."""
    tag = parse_audio_tag(b"\xaf\x00\x12\x10")
    assert tag == AudioTag(10, "aac", 0, b"\x12\x10", 44100, 2, 16)


def test_aac_raw() -> None:
    tag = parse_audio_tag(b"\xaf\x01rawaac")
    assert tag.aac_packet_type == 1 and tag.data == b"rawaac"


def test_mp3_mono() -> None:
    tag = parse_audio_tag(b"\x2a" + b"frame")
    assert (tag.codec, tag.channels, tag.sample_rate, tag.aac_packet_type) == (
        "mp3",
        1,
        22050,
        None,
    )


@pytest.mark.parametrize(
    ("fourcc", "codec"), [(b"Opus", "opus"), (b"fLaC", "flac"), (b"mp4a", "aac"), (b"ac-3", "ac3")]
)
def test_enhanced_audio(fourcc: bytes, codec: str) -> None:
    """E-RTMP: SoundFormat 9 (ExHeader) + AudioPacketType + FourCC."""
    tag = parse_audio_tag(b"\x90" + fourcc + b"cfg")
    assert tag.codec == codec and tag.audio_packet_type == 0 and tag.data == b"cfg"


def test_enhanced_aac_packet_type_mapped() -> None:
    assert parse_audio_tag(b"\x91mp4araw").aac_packet_type == 1


@pytest.mark.parametrize("body", [b"", b"\xaf", b"\xaf\x05", b"\x90Op"])
def test_malformed_audio(body: bytes) -> None:
    with pytest.raises(FlvParseError):
        parse_audio_tag(body)


@given(st.binary(max_size=64))
def test_arbitrary_bodies_only_raise_rtmp_error(body: bytes) -> None:
    """Malformed media bodies raise FlvParseError (an RtmpError), never anything else."""
    for parse in (parse_audio_tag, parse_video_tag):
        try:
            parse(body)
        except RtmpError:
            pass
