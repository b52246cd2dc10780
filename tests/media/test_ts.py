"""MPEG-TS demuxer and depacketizer: real streams from ffmpeg checked against PyAV's own demux,
and truncated, oversized, hostile and flooding input (docs/threat-model.md §srt)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.depacketizer import MediaError, UnsupportedCodecError
from media.ts import PesFrame, ProgramChanged, TsDemuxer, TsDepacketizer, TsError, TsProblem
from media.ts.demux import MAX_PES_BYTES, MAX_UNSYNCED_BYTES, crc32_mpeg2
from media.ts.units import Unwrapper
from media.units import CodecConfig, MediaUnit, TrackKind

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")

WRAP = 1 << 33


def _ffmpeg_ts(path: Path, *extra: str, seconds: float = 2.0) -> bytes:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
         "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", str(seconds),
         "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "25", "-bf", "2", "-c:a", "aac",
         *extra, "-f", "mpegts", str(path)], check=True, timeout=60)
    return path.read_bytes()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("ts") / "a.ts"
    return path, _ffmpeg_ts(path)


def demux_all(data: bytes, chunk: int = 1316) -> tuple[list[MediaUnit | CodecConfig],
                                                        list[TsProblem]]:
    demuxer, units = TsDemuxer(), TsDepacketizer()
    out: list[MediaUnit | CodecConfig] = []
    problems: list[TsProblem] = []

    def handle(events: list) -> None:  # type: ignore[type-arg]
        for ev in events:
            if isinstance(ev, ProgramChanged):
                units.program(ev)
            elif isinstance(ev, PesFrame):
                out.extend(units.frame(ev))
            else:
                problems.append(ev)

    for i in range(0, len(data), chunk):
        handle(demuxer.feed(data[i:i + chunk]))
    handle(demuxer.flush())
    return out, problems


def _units(out: list[MediaUnit | CodecConfig], kind: TrackKind) -> list[MediaUnit]:
    return [o for o in out if isinstance(o, MediaUnit) and o.kind is kind]


# ---- real streams ----------------------------------------------------------------------------


def test_matches_pyav_demux(stream: tuple[Path, bytes]) -> None:
    """Every video access unit and AAC frame, with the timestamps PyAV (FFmpeg) reads."""
    path, data = stream
    out, problems = demux_all(data)
    assert problems == []
    with av.open(str(path)) as container:
        ref = [(p.stream.type, p.pts, p.dts, p.is_keyframe)
               for p in container.demux() if p.size]
    ref_video = [r for r in ref if r[0] == "video"]
    video = _units(out, TrackKind.VIDEO)
    assert [(u.pts, u.dts, u.keyframe) for u in video] == [r[1:] for r in ref_video]
    assert any(u.pts != u.dts for u in video)  # B-frames kept their composition offset
    audio = _units(out, TrackKind.AUDIO)
    # PyAV's mpegts demuxer splits PES into ADTS frames the same way.
    assert [u.dts for u in audio] == [r[1] for r in ref if r[0] == "audio"]
    configs = [o for o in out if isinstance(o, CodecConfig)]
    # Held until both tracks are configured: packaging starts once, with both.
    assert out[0] == configs[0] and len(configs) == 1
    assert configs[-1].video is not None and configs[-1].video.width == 160
    assert configs[-1].audio is not None and configs[-1].audio.sample_rate == 48000
    assert configs[-1].audio.codec_string == "mp4a.40.2"
    # AVCC framing with 4-byte lengths, no parameter sets or delimiters left in band.
    for u in video:
        pos = 0
        while pos < len(u.data):
            size = int.from_bytes(u.data[pos:pos + 4], "big")
            assert u.data[pos + 4] & 0x1F not in (7, 8, 9)
            pos += 4 + size
        assert pos == len(u.data)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(min_value=1, max_value=5000))
def test_chunking_does_not_matter(stream: tuple[Path, bytes], chunk: int) -> None:
    _, data = stream
    out, problems = demux_all(data, chunk)
    ref, _ = demux_all(data)
    assert problems == []
    assert [(type(o), getattr(o, "dts", None)) for o in out] == [
        (type(o), getattr(o, "dts", None)) for o in ref]


def test_33_bit_wrap(tmp_path: Path) -> None:
    """PTS/DTS wrap at 2^33 (about 26.5 h): the session clock keeps counting up."""
    data = _ffmpeg_ts(tmp_path / "wrap.ts", "-output_ts_offset", str(WRAP / 90000 - 2.5))
    out, problems = demux_all(data)
    assert problems == []
    for kind in TrackKind:
        dts = [u.dts for u in _units(out, kind)]
        assert all(b > a for a, b in itertools.pairwise(dts))
        assert dts[0] < WRAP < dts[-1]  # crossed the wrap without a jump
        steps = [b - a for a, b in itertools.pairwise(dts)]
        assert max(steps) < 90000 // 10


def test_unwrapper_goes_backwards_a_little() -> None:
    u = Unwrapper()
    assert u(WRAP - 10) == WRAP - 10
    assert u(5) == WRAP + 5
    assert u(WRAP - 20) == WRAP - 20  # audio slightly before video, across the wrap


# ---- damaged and hostile input ---------------------------------------------------------------


def test_lost_packet_is_a_continuity_problem_and_recovers(stream: tuple[Path, bytes]) -> None:
    _, data = stream
    packets = [data[i:i + 188] for i in range(0, len(data), 188)]
    video_pid = 256
    continuations = [i for i, p in enumerate(packets)
                     if ((p[1] & 0x1F) << 8 | p[2]) == video_pid and not p[1] & 0x40]
    middle = continuations[len(continuations) // 2]
    out, problems = demux_all(b"".join(packets[:middle] + packets[middle + 1:]))
    assert len(problems) == 1 and "continuity" in problems[0].reason
    full, _ = demux_all(data)
    assert len(_units(out, TrackKind.VIDEO)) == len(_units(full, TrackKind.VIDEO)) - 1


def test_garbage_inside_the_stream_resyncs(stream: tuple[Path, bytes]) -> None:
    _, data = stream
    cut = 188 * 60
    out, problems = demux_all(data[:cut] + b"\x47garbage\x00" * 50 + data[cut:])
    assert problems and "sync" in problems[0].reason
    full, _ = demux_all(data)
    assert len(_units(out, TrackKind.VIDEO)) >= len(_units(full, TrackKind.VIDEO)) - 2


def test_not_a_transport_stream_is_refused() -> None:
    demuxer = TsDemuxer()
    with pytest.raises(TsError, match="sync"):
        for _ in range(10):
            demuxer.feed(b"FLV\x01\x05" + b"\x00" * (MAX_UNSYNCED_BYTES // 4))


def _packet(pid: int, cc: int, payload: bytes, *, pusi: bool = False) -> bytes:
    header = bytes([0x47, (0x40 if pusi else 0) | pid >> 8, pid & 0xFF, 0x10 | cc & 0x0F])
    room = 184 - len(payload)
    if room > 0:  # adaptation field stuffing (§2.4.3.5)
        header = header[:3] + bytes([0x30 | cc & 0x0F])
        af = bytes([room - 1]) + (b"\x00" + b"\xff" * (room - 2) if room > 1 else b"")
        return header + af + payload
    return header + payload[:184]


def _section(table_id: int, body: bytes) -> bytes:
    head = bytes([table_id, 0xB0 | (len(body) + 9) >> 8, (len(body) + 9) & 0xFF,
                  0, 1, 0xC1, 0, 0])
    section = head + body
    return b"\x00" + section + crc32_mpeg2(section).to_bytes(4, "big")


def _program(*streams: tuple[int, int]) -> bytes:
    pat = _packet(0, 0, _section(0x00, b"\x00\x01\xf0\x00"), pusi=True)
    body = b"\xe1\x00\xf0\x00" + b"".join(
        bytes([stream_type, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, 0]) for stream_type, pid in streams)
    return pat + _packet(0x1000, 0, _section(0x02, body), pusi=True)


def test_unsupported_codecs_are_named() -> None:
    demuxer, units = TsDemuxer(), TsDepacketizer()
    [event] = demuxer.feed(_program((0x24, 0x100), (0x0F, 0x101)))
    assert isinstance(event, ProgramChanged)
    with pytest.raises(UnsupportedCodecError, match="hevc"):
        units.program(event)
    demuxer = TsDemuxer()
    [event] = demuxer.feed(_program((0x1B, 0x100), (0x03, 0x101)))
    with pytest.raises(UnsupportedCodecError, match="mp3"):
        units.program(event)


def test_bad_crc_section_is_a_problem() -> None:
    data = bytearray(_program((0x1B, 0x100)))
    data[-8] ^= 0x01  # inside the PMT's stream loop
    events = TsDemuxer().feed(bytes(data))
    assert [type(e) for e in events] == [TsProblem]
    assert "CRC" in events[0].reason  # type: ignore[union-attr]


def test_oversized_pes_is_dropped_and_memory_stays_bounded() -> None:
    demuxer = TsDemuxer()
    demuxer.feed(_program((0x1B, 0x100)))
    events = demuxer.feed(_packet(0x100, 0, b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05"
                                  + b"\x21\x00\x01\x00\x01" + b"\x00" * 170, pusi=True))
    assert events == []
    filler = b"\xaa" * 184
    problems: list[object] = []
    for i in range(MAX_PES_BYTES // 184 + 2):
        problems += demuxer.feed(_packet(0x100, (i + 1) & 0x0F, filler))
    assert len(problems) == 1 and "exceeds" in problems[0].reason  # type: ignore[attr-defined]
    assert all(p.size == 0 for p in demuxer._pes.values())


def test_hostile_pes_headers() -> None:
    units = TsDepacketizer()
    demuxer = TsDemuxer()
    units.program(demuxer.feed(_program((0x1B, 0x100), (0x0F, 0x101)))[0])  # type: ignore[arg-type]
    bad = [
        b"\x00\x00\x02\xe0\x00\x00",  # no start code
        b"\x00\x00\x01\xe0\x00\x00\x80\x80\xff",  # header length past the packet
        b"\x00\x00\x01\xe0\x00\x00\x80\x40\x05" + b"\x00" * 5,  # DTS without PTS
    ]
    for i, pes in enumerate(bad):
        events = demuxer.feed(_packet(0x100, i, pes, pusi=True)) + demuxer.flush()
        assert [type(e) for e in events] == [TsProblem], pes


@pytest.mark.parametrize("adts, message", [
    (b"\xff\xf1\x50\x80\x01", "truncated"),
    (b"\x00\x00\x50\x80\x02\x00\xfc", "sync"),
    (b"\xff\xf1\x50\x80\xff\xff\xfc", "does not fit"),
    (b"\xff\xf1\x50\x80\x01\x1f\xfd" + b"\x00" * 2, "raw data blocks"),
    (b"\xff\xf1\x7c\x80\x01\x1f\xfc" + b"\x00" * 2, "reserved"),
    (b"\xff\xf1\x50\x00\x01\x1f\xfc" + b"\x00" * 2, "channelConfiguration 0"),
])
def test_hostile_adts(adts: bytes, message: str) -> None:
    units = TsDepacketizer()
    units.audio_pid = 0x101
    with pytest.raises(MediaError, match=message):
        units.frame(PesFrame(0x101, 0x0F, 0, None, adts))


def test_hostile_h264() -> None:
    units = TsDepacketizer()
    units.video_pid = 0x100
    with pytest.raises(MediaError, match="Annex-B"):
        units.frame(PesFrame(0x100, 0x1B, 0, None, b"\x01\x02\x03"))
    with pytest.raises(MediaError, match="parameter sets"):
        units.frame(PesFrame(0x100, 0x1B, 0, None, b"\x00\x00\x01\x67\x00\x00\x01\x68\xce"))
    with pytest.raises(MediaError, match="without a PTS"):
        units.frame(PesFrame(0x100, 0x1B, None, None, b"\x00\x00\x01\x65"))
    # A frame before any SPS/PPS is counted, not published.
    assert units.frame(PesFrame(0x100, 0x1B, 0, None, b"\x00\x00\x01\x65\x88")) == []
    assert units.frames_before_config == 1


def test_flood_of_program_tables_is_cheap() -> None:
    """Repeated identical PMTs skip the CRC and emit nothing after the first."""
    demuxer = TsDemuxer()
    program = _program((0x1B, 0x100), (0x0F, 0x101))
    assert len(demuxer.feed(program)) == 1
    pat, pmt = program[:188], program[188:]
    flood = b"".join(
        _packet(0, i & 0x0F, pat[5:], pusi=True) + _packet(0x1000, i & 0x0F, pmt[5:], pusi=True)
        for i in range(1, 2000))
    assert demuxer.feed(flood) == []


# ---- property tests --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=600), max_size=12))
def test_arbitrary_bytes_raise_only_ts_error(chunks: list[bytes]) -> None:
    demuxer = TsDemuxer()
    try:
        for chunk in chunks:
            demuxer.feed(b"\x47" + chunk)
        demuxer.flush()
    except TsError:
        pass


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
                min_size=1, max_size=40))
def test_mutated_streams_raise_only_media_errors(stream: tuple[Path, bytes],
                                                 edits: list[tuple[int, int]]) -> None:
    """Flipped bytes anywhere in a real stream: the demuxer raises only TsError, the
    depacketizer only MediaError (what the ingest counts as malformed)."""
    _, data = stream
    mutated = bytearray(data[:188 * 120])
    for pos, value in edits:
        mutated[pos % len(mutated)] = value
    demuxer, units = TsDemuxer(), TsDepacketizer()
    try:
        events = demuxer.feed(bytes(mutated)) + demuxer.flush()
    except TsError:
        return
    for ev in events:
        try:
            if isinstance(ev, ProgramChanged):
                units.program(ev)
            elif isinstance(ev, PesFrame):
                units.frame(ev)
        except MediaError:
            pass


@settings(max_examples=200, deadline=None)
@given(pid=st.sampled_from([0x100, 0x101]), pts=st.one_of(st.none(), st.integers(0, WRAP - 1)),
       dts=st.one_of(st.none(), st.integers(0, WRAP - 1)), data=st.binary(max_size=400))
def test_arbitrary_pes_payloads_raise_only_media_errors(pid: int, pts: int | None,
                                                        dts: int | None, data: bytes) -> None:
    units = TsDepacketizer()
    units.video_pid, units.audio_pid = 0x100, 0x101
    for prefix in (b"", b"\x00\x00\x01", b"\xff\xf1"):
        try:
            units.frame(PesFrame(pid, 0x1B if pid == 0x100 else 0x0F, pts, dts, prefix + data))
        except MediaError:
            pass
