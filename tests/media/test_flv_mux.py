"""Units → FLV tags for restream (media/flv_mux.py): the depacketizer reads back what the
muxer writes; headers on the first config and on every change; codecs FLV cannot carry
(Opus from a WebRTC ingest) are left out and counted."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from media.flv_mux import FlvTagMuxer
from media.rtmp.flv import parse_audio_tag, parse_video_tag
from media.units import AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig

VIDEO = VideoConfig(avcc=b"\x01\x64\x00\x1f\xff\xe1\x00\x04SPS!\x01\x00\x03PPS", sps=(b"SPS!",),
                    pps=(b"PPS",), nal_length_size=4, width=640, height=360, profile_idc=100,
                    level_idc=31, constraint_flags=0)
AUDIO = AudioConfig(asc=b"\x11\x90", object_type=2, sample_rate=48000, channels=2)


def unit(kind: TrackKind, dts: int, pts: int | None = None, key: bool = True) -> MediaUnit:
    return MediaUnit(kind, dts, dts if pts is None else pts, key, b"\x00\x00\x00\x01\x65", 0.0)


def test_headers_then_frames_that_parse_back() -> None:
    mux = FlvTagMuxer()
    tags = mux.config(CodecConfig(VIDEO, AUDIO))
    assert [(t.video, t.timestamp) for t in tags] == [(True, 0), (False, 0)]
    seq = parse_video_tag(tags[0].body)
    assert seq.packet_type == 0 and seq.data == VIDEO.avcc
    assert parse_audio_tag(tags[1].body).data == AUDIO.asc
    v = mux.unit(unit(TrackKind.VIDEO, 900_000, 900_000 + 6000))
    a = mux.unit(unit(TrackKind.AUDIO, 900_000 + 1920))
    assert v is not None and a is not None
    parsed = parse_video_tag(v.body)
    assert (v.timestamp, parsed.composition_time, parsed.is_keyframe) == (0, 66, True)
    assert a.timestamp == 21 and parse_audio_tag(a.body).data == b"\x00\x00\x00\x01\x65"
    inter = mux.unit(unit(TrackKind.VIDEO, 900_000 + 3000, key=False))
    assert inter is not None and not parse_video_tag(inter.body).is_keyframe
    meta = mux.metadata()
    assert meta["width"] == 640.0 and meta["audiosamplerate"] == 48000.0


def test_headers_again_only_when_the_config_changes() -> None:
    mux = FlvTagMuxer()
    mux.config(CodecConfig(VIDEO, AUDIO))
    assert mux.config(CodecConfig(VIDEO, AUDIO)) == []
    changed = mux.config(CodecConfig(replace(VIDEO, avcc=VIDEO.avcc + b"\x00"), AUDIO))
    assert [t.video for t in changed] == [True]


def test_codecs_flv_cannot_carry_are_left_out() -> None:
    mux = FlvTagMuxer()
    opus = replace(AUDIO, codec="opus")
    assert [t.video for t in mux.config(CodecConfig(VIDEO, opus))] == [True]
    assert mux.unit(unit(TrackKind.AUDIO, 0)) is None
    assert mux.skipped == 1
    assert "audiocodecid" not in mux.metadata()


@given(st.integers(-(1 << 40), 1 << 40), st.integers(-(1 << 31), 1 << 31))
def test_any_timestamps_make_valid_tags(dts: int, offset: int) -> None:
    mux = FlvTagMuxer()
    mux.config(CodecConfig(VIDEO, AUDIO))
    first = mux.unit(unit(TrackKind.VIDEO, 0))
    tag = mux.unit(unit(TrackKind.VIDEO, dts, dts + offset))
    assert first is not None and tag is not None
    assert 0 <= tag.timestamp <= 0xFFFFFFFF
    parsed = parse_video_tag(tag.body)
    assert -0x800000 <= parsed.composition_time <= 0x7FFFFF
