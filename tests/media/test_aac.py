"""AudioSpecificConfig parsing (ISO/IEC 14496-3 §1.6.2.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.aac import AacError, build_asc, parse_asc
from tests.media.hls.media_factory import make_stream


def _bits(spec: str) -> bytes:
    spec = spec.replace(" ", "")
    spec += "0" * (-len(spec) % 8)
    return bytes(int(spec[i : i + 8], 2) for i in range(0, len(spec), 8))


def test_real_ffmpeg_asc() -> None:
    """The native FFmpeg AAC encoder's ASC: AAC-LC, 48 kHz, stereo."""
    cfg = make_stream(1.0, video=False).audio
    assert cfg is not None
    assert (cfg.object_type, cfg.sample_rate, cfg.channels) == (2, 48000, 2)
    assert cfg.samples_per_frame == 1024
    assert cfg.codec_string == "mp4a.40.2"


def test_known_vectors() -> None:
    """0x1210 = AAC-LC 44.1 kHz stereo; 0x1188 = AAC-LC 48 kHz mono."""
    c = parse_asc(b"\x12\x10")
    assert (c.object_type, c.sample_rate, c.channels) == (2, 44100, 2)
    c = parse_asc(b"\x11\x88")
    assert (c.object_type, c.sample_rate, c.channels) == (2, 48000, 1)


def test_escape_object_type_and_explicit_frequency() -> None:
    """AOT 31 escape (32 + 6 bits) and samplingFrequencyIndex 0xF (24-bit rate)."""
    c = parse_asc(build_asc(2, 50_000, 2))
    assert c.sample_rate == 50_000
    with pytest.raises(AacError, match="object type 33 is not supported"):
        parse_asc(build_asc(33, 48000, 2))  # escape decodes to 33 (not AAC) → clear error
    # 11111 000001 = escape → 32 + 1 = 33; the 6 extra bits are consumed before the rate.
    assert build_asc(33, 48000, 2)[0] >> 3 == 31


def test_explicit_sbr_and_ps_signalling() -> None:
    """HE-AAC (AOT 5) / HE-AACv2 (AOT 29): core rate is the timing clock; type kept for codecs."""
    # aot=5, core 24 kHz (6), stereo, ext 48 kHz (3), core aot=2, GASpecificConfig 000
    c = parse_asc(_bits("00101 0110 0010 0011 00010 000"))
    assert (c.object_type, c.sample_rate, c.channels, c.codec_string) == (5, 24000, 2, "mp4a.40.5")
    c = parse_asc(_bits("11101 0110 0001 0011 00010 000"))
    assert (c.object_type, c.channels) == (29, 1)


def test_frame_length_flag_selects_960() -> None:
    assert parse_asc(_bits("00010 0011 0010 100")).samples_per_frame == 960


def test_errors_are_precise() -> None:
    with pytest.raises(AacError, match="truncated"):
        parse_asc(b"\x12")
    with pytest.raises(AacError, match="truncated"):
        parse_asc(b"")
    with pytest.raises(AacError, match="reserved"):
        parse_asc(_bits("00010 1101 0010 000"))  # index 0xD
    with pytest.raises(AacError, match="channelConfiguration 0"):
        parse_asc(_bits("00010 0011 0000 000"))
    with pytest.raises(AacError, match="channelConfiguration 9 is reserved"):
        parse_asc(_bits("00010 0011 1001 000"))
    with pytest.raises(AacError, match="out of range"):
        parse_asc(_bits("00010 1111" + "0" * 24 + "0010 000"))  # explicit 0 Hz


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=16))
def test_garbage_raises_only_aacerror(data: bytes) -> None:
    try:
        cfg = parse_asc(data)
    except AacError:
        return
    assert cfg.sample_rate > 0 and cfg.channels > 0


@given(
    st.sampled_from([1, 2, 3, 4]),
    st.sampled_from([8000, 16000, 22050, 44100, 48000, 96000, 12345]),
    st.sampled_from([1, 2, 6]),
)
def test_build_parse_round_trip(aot: int, rate: int, channels: int) -> None:
    c = parse_asc(build_asc(aot, rate, channels))
    assert (c.object_type, c.sample_rate, c.channels) == (aot, rate, channels)
