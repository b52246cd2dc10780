"""fMP4 box writer: init segment + fragments must demux and decode with FFmpeg (PyAV)."""

from __future__ import annotations

import struct

import pytest

from media.fmp4 import (
    AUDIO_TRACK_ID,
    SAMPLE_FLAGS_NON_SYNC,
    SAMPLE_FLAGS_SYNC,
    VIDEO_TRACK_ID,
    Fmp4Error,
    Sample,
    TrackRun,
    fragment,
    init_segment,
)
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from tests.media.hls.media_factory import SyntheticStream, demux, make_stream


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert size >= 8 and pos + size <= end, (kind, size)
        out.append((kind, pos, size))
        pos += size
    assert pos == end
    return out


def _child(
    data: bytes, parent: tuple[bytes, int, int], kind: bytes, header: int = 8
) -> tuple[bytes, int, int]:
    _, off, size = parent
    return next(b for b in _boxes(data, off + header, off + size) if b[0] == kind)


def _package(stream: SyntheticStream, frames_per_fragment: int = 10) -> bytes:
    """Fragments of N video frames (plus the audio in the same span), straight through fmp4."""
    video = stream.of(TrackKind.VIDEO)
    audio = stream.of(TrackKind.AUDIO)
    out = [init_segment(stream.video, stream.audio)]
    rate = stream.audio.sample_rate if stream.audio else 1
    spf = stream.audio.samples_per_frame if stream.audio else 1
    a_time = audio[0].dts * rate // CLOCK_RATE if audio else 0
    seq = 1
    for i in range(0, len(video), frames_per_fragment):
        chunk = video[i : i + frames_per_fragment]
        end = video[i + frames_per_fragment].dts if i + frames_per_fragment < len(video) else None
        last = i + frames_per_fragment >= len(video)
        samples = []
        for j, u in enumerate(chunk):
            nxt = chunk[j + 1].dts if j + 1 < len(chunk) else (end or u.dts + 3600)
            samples.append(Sample(u.data, nxt - u.dts, u.keyframe, u.pts - u.dts))
        runs = [TrackRun(VIDEO_TRACK_ID, chunk[0].dts, samples)]
        a_units = [u for u in audio if u.dts >= chunk[0].dts and (last or u.dts < (end or 0))]
        if i == 0:
            a_units = [u for u in audio if last or u.dts < (end or 0)]
        if a_units:
            runs.append(
                TrackRun(AUDIO_TRACK_ID, a_time, [Sample(u.data, spf, True) for u in a_units])
            )
            a_time += spf * len(a_units)
        out.append(fragment(seq, runs))
        seq += 1
    return b"".join(out)


def test_init_segment_structure() -> None:
    s = make_stream(1.0)
    init = init_segment(s.video, s.audio)
    top = _boxes(init)
    assert [b[0] for b in top] == [b"ftyp", b"moov"]
    assert init[8:12] == b"iso6" and b"cmfc" in init[16 : top[0][2]]
    moov = top[1]
    kinds = [b[0] for b in _boxes(init, moov[1] + 8, moov[1] + moov[2])]
    assert kinds == [b"mvhd", b"trak", b"trak", b"mvex"]
    assert b"avcC" in init and b"esds" in init and init.count(b"trex") == 2


def test_av_fragments_demux_and_decode() -> None:
    """Codecs, size, rate, packet counts, monotonic dts, durations, all frames decode."""
    s = make_stream(4.0)
    tracks = demux(_package(s))
    v, a = tracks["video"], tracks["audio"]
    assert (v.codec, v.width, v.height) == ("h264", 320, 240)
    assert (a.codec, a.sample_rate) == ("aac", 48000)
    assert len(v.dts) == v.decoded == s.video_frames
    assert len(a.dts) == a.decoded == s.audio_frames
    assert v.dts == sorted(v.dts) and a.dts == sorted(a.dts)
    assert set(v.durations) == {CLOCK_RATE // 25}
    assert set(a.durations) == {1920}  # 1024 samples at 48 kHz in 90 kHz ticks
    assert v.dts == [u.dts for u in s.of(TrackKind.VIDEO)]
    assert v.keyframes == [u.keyframe for u in s.of(TrackKind.VIDEO)]


def test_bframes_composition_offsets() -> None:
    """trun v1 signed composition offsets give back the encoder's pts (§8.8.8)."""
    s = make_stream(3.0, audio=False, bframes=2)
    src = s.of(TrackKind.VIDEO)
    assert any(u.pts != u.dts for u in src)
    v = demux(_package(s, frames_per_fragment=7))["video"]
    assert v.pts == [u.pts for u in src]
    assert v.decoded == len(src)


def test_negative_composition_offset_and_versions() -> None:
    frag = fragment(
        7, [TrackRun(VIDEO_TRACK_ID, 2**40, [Sample(b"\x00\x00\x00\x01\x65", 3000, True, -3000)])]
    )
    moof, mdat = _boxes(frag)
    assert (moof[0], mdat[0]) == (b"moof", b"mdat")
    traf = _child(frag, moof, b"traf")
    tfdt = _child(frag, traf, b"tfdt")
    assert frag[tfdt[1] + 8] == 1 and struct.unpack_from(">Q", frag, tfdt[1] + 12)[0] == 2**40
    trun = _child(frag, traf, b"trun")
    version_flags, count, offset = struct.unpack_from(">IIi", frag, trun[1] + 8)
    assert version_flags >> 24 == 1 and count == 1
    assert frag[offset : offset + 5] == b"\x00\x00\x00\x01\x65"  # data_offset from moof start
    duration, size, flags, cto = struct.unpack_from(">IIIi", frag, trun[1] + 20)
    assert (duration, size, flags, cto) == (3000, 5, SAMPLE_FLAGS_SYNC, -3000)
    tfhd = _child(frag, traf, b"tfhd")
    assert struct.unpack_from(">I", frag, tfhd[1] + 8)[0] & 0xFFFFFF == 0x020000


def test_two_tracks_data_offsets_point_at_their_samples() -> None:
    frag = fragment(
        1,
        [
            TrackRun(VIDEO_TRACK_ID, 0, [Sample(b"V1", 10, True), Sample(b"V22", 10, False)]),
            TrackRun(AUDIO_TRACK_ID, 0, [Sample(b"A333", 1024, True)]),
        ],
    )
    moof, _mdat = _boxes(frag)
    offsets = []
    for traf in [b for b in _boxes(frag, moof[1] + 8, moof[1] + moof[2]) if b[0] == b"traf"]:
        trun = _child(frag, traf, b"trun")
        offsets.append(struct.unpack_from(">i", frag, trun[1] + 16)[0])
    assert frag[offsets[0] : offsets[0] + 5] == b"V1V22"
    assert frag[offsets[1] : offsets[1] + 4] == b"A333"
    assert SAMPLE_FLAGS_NON_SYNC.to_bytes(4, "big") in frag


def test_audio_only_and_video_only_init() -> None:
    a = make_stream(2.0, video=False)
    tracks = demux(_package_audio_only(a))
    assert list(tracks) == ["audio"] and tracks["audio"].decoded == a.audio_frames
    v = make_stream(2.0, audio=False)
    tracks = demux(_package(v))
    assert list(tracks) == ["video"] and tracks["video"].decoded == v.video_frames


def _package_audio_only(s: SyntheticStream) -> bytes:
    assert s.audio is not None
    units: list[MediaUnit] = s.of(TrackKind.AUDIO)
    out = [init_segment(None, s.audio)]
    for seq, i in enumerate(range(0, len(units), 16), start=1):
        samples = [Sample(u.data, 1024, True) for u in units[i : i + 16]]
        out.append(fragment(seq, [TrackRun(AUDIO_TRACK_ID, i * 1024, samples)]))
    return b"".join(out)


def test_invalid_inputs_raise_fmp4error() -> None:
    with pytest.raises(Fmp4Error):
        init_segment(None, None)
    with pytest.raises(Fmp4Error):
        fragment(1, [])
    with pytest.raises(Fmp4Error):
        fragment(1, [TrackRun(1, 0, [])])
    with pytest.raises(Fmp4Error):
        fragment(1, [TrackRun(1, -1, [Sample(b"x", 1, True)])])
    with pytest.raises(Fmp4Error):
        fragment(1, [TrackRun(1, 0, [Sample(b"x", -1, True)])])
