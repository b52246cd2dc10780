"""The pure WHIP parts (media/webrtc/whip.py) and Opus → AAC: offer checks (with hostile and
arbitrary input), RTP frame reassembly under reordering and loss, H.264 access units with
in-band SPS/PPS, RTCP-SR lip sync."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.h264 import START_CODE, iter_nalus
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from media.webrtc.opus import OpusToAac
from media.webrtc.whip import (
    MAX_M_LINES,
    FrameReassembler,
    H264Access,
    SessionClock,
    WhipMediaError,
    WhipOfferError,
    check_offer,
)
from tests.media.hls.media_factory import make_stream

CHROME_OFFER = "\r\n".join([
    "v=0", "o=- 571483289869179196 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "a=group:BUNDLE 0 1", "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "c=IN IP4 0.0.0.0",
    "a=mid:0", "a=sendonly", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2", "a=fmtp:63 111/111", "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:13 CN/8000",
    "a=rtpmap:110 telephone-event/48000", "a=rtpmap:126 telephone-event/8000",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114 45 46", "c=IN IP4 0.0.0.0",
    "a=mid:1", "a=sendonly", "a=rtcp-mux",
    "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "a=rtpmap:103 H264/90000",
    "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    "a=rtpmap:104 rtx/90000", "a=fmtp:104 apt=103",
    "a=rtpmap:107 H264/90000",
    "a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
    "a=rtpmap:108 rtx/90000", "a=fmtp:108 apt=107",
    "a=rtpmap:109 H264/90000",
    "a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:114 rtx/90000", "a=fmtp:114 apt=109",
    "a=rtpmap:45 AV1/90000", "a=rtpmap:46 rtx/90000", "a=fmtp:46 apt=45", "",
])


# ---- offers ------------------------------------------------------------------------------------


def test_a_browser_offer_is_taken_with_its_h264_mode1_and_opus() -> None:
    """RFC 6184 §6.3: only packetization-mode 1 payload types; Opus/48000 for audio."""
    offer = check_offer(CHROME_OFFER)
    assert offer.h264 == (103, 109) and offer.opus == (111,)
    assert check_offer(CHROME_OFFER.replace("\r\n", "\n")).h264 == (103, 109)


@pytest.mark.parametrize(("mutate", "status", "words"), [
    (lambda s: s.replace("H264/90000", "VP9/90000"), 422, "H.264"),
    (lambda s: s.replace("packetization-mode=1", "packetization-mode=0"), 422, "H.264"),
    (lambda s: s.replace("opus/48000/2", "ISAC/16000"), 422, "Opus"),
    (lambda s: s.replace("a=sendonly", "a=recvonly"), 422, "does not send"),
    (lambda s: s.replace("m=audio", "m=video"), 422, "one video"),
    (lambda s: s + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", 422,
     "application"),
    (lambda s: s + "m=audio 9 RTP 0\r\n" * MAX_M_LINES, 400, "media sections"),
    (lambda s: s + "a=x\r\n" * 3000, 400, "lines"),
    (lambda s: s + "a=" + "x" * 5000 + "\r\n", 400, "longer"),
    (lambda s: s[4:], 400, "v=0"),
    (lambda s: s.replace("m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114 45 46",
                         "m=video 9"), 400, "malformed"),
])
def test_offers_this_server_cannot_take_are_refused_with_the_reason(
        mutate: object, status: int, words: str) -> None:
    with pytest.raises(WhipOfferError) as info:
        check_offer(mutate(CHROME_OFFER))  # type: ignore[operator]
    assert info.value.status == status and words in info.value.reason


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000) | st.lists(
    st.sampled_from(CHROME_OFFER.split("\r\n")), max_size=80).map("\r\n".join))
def test_arbitrary_offers_raise_only_whip_offer_error(text: str) -> None:
    """Any text either passes or raises WhipOfferError (hypothesis: nothing else escapes)."""
    try:
        check_offer(text)
    except WhipOfferError as exc:
        assert exc.status in (400, 422) and exc.reason


# ---- frame reassembly --------------------------------------------------------------------------


def _packets(frames: list[tuple[int, list[bytes]]], seq0: int = 65530
             ) -> list[tuple[int, int, bool, bytes]]:
    out = []
    seq = seq0
    for ts, parts in frames:
        for i, part in enumerate(parts):
            out.append((seq & 0xFFFF, ts, i == len(parts) - 1, part))
            seq += 1
    return out


FRAMES = [(1000 + 3000 * n, [bytes([n, i]) * 10 for i in range(1 + n % 3)]) for n in range(12)]


def _run(buf: FrameReassembler, packets: list[tuple[int, int, bool, bytes]],
         now: float = 0.0, step: float = 0.001) -> list[object]:
    frames: list[object] = []
    for p in packets:
        frames += buf.add(*p, now=now)
        now += step
    return frames


def test_frames_come_out_whole_in_order_across_reordering_and_wraparound() -> None:
    packets = _packets(FRAMES)  # the sequence numbers wrap at 65535 → 0
    shuffled = packets[:]
    for i in range(1, len(shuffled) - 2, 3):  # local reordering, as a network does
        shuffled[i], shuffled[i + 2] = shuffled[i + 2], shuffled[i]
    for order in (packets, shuffled):
        frames = _run(FrameReassembler(), order)
        assert [(f.timestamp, f.data) for f in frames] == [  # type: ignore[attr-defined]
            (ts, b"".join(parts)) for ts, parts in FRAMES]
        assert not any(f.after_loss for f in frames)  # type: ignore[attr-defined]


def test_duplicates_and_late_packets_are_ignored() -> None:
    packets = _packets(FRAMES)
    buf = FrameReassembler()
    frames = _run(buf, packets + packets[:5])
    assert len(frames) == len(FRAMES) and buf.late_packets == 5


def test_a_lost_packet_waits_for_the_retransmission_then_is_given_up() -> None:
    """A gap holds later frames for loss_timeout (NACK time); then the frame missing a packet
    is dropped, and the next whole one is flagged after_loss."""
    packets = _packets(FRAMES)
    lost = 4  # inside frame 2 (frames 0,1 have 1 and 2 packets)
    late = packets[lost]
    rest = packets[:lost] + packets[lost + 1:]
    buf = FrameReassembler(loss_timeout=0.3)
    early = _run(buf, rest[:8], now=0.0, step=0.01)
    assert len(early) == 2  # frames 0 and 1; 2 is incomplete, the rest wait behind it
    assert buf.add(*late, now=0.2)  # the retransmission arrives in time: all flows again
    buf2 = FrameReassembler(loss_timeout=0.3)
    frames = _run(buf2, rest, now=0.0, step=0.05)  # no retransmission
    stamps = [f.timestamp for f in frames]  # type: ignore[attr-defined]
    assert FRAMES[2][0] not in stamps and len(frames) == len(FRAMES) - 1
    flagged = [f for f in frames if f.after_loss]  # type: ignore[attr-defined]
    assert [f.timestamp for f in flagged] == [FRAMES[3][0]]  # type: ignore[attr-defined]
    assert buf2.packets_lost == 1


def test_a_frame_whose_start_was_lost_is_never_handed_out() -> None:
    packets = _packets(FRAMES)
    first_of_frame_5 = sum(len(p) for _, p in FRAMES[:5])
    frames = _run(FrameReassembler(loss_timeout=0.0),
                  packets[:first_of_frame_5] + packets[first_of_frame_5 + 1:], step=0.01)
    assert FRAMES[5][0] not in [f.timestamp for f in frames]  # type: ignore[attr-defined]


def test_audio_frames_are_single_packets_and_a_gap_is_skipped_quickly() -> None:
    buf = FrameReassembler(single_packet_frames=True, loss_timeout=0.06)
    packets = [(n, n * 960, True, bytes([n])) for n in range(10)]
    frames = _run(buf, packets[:3] + packets[4:], step=0.02)
    assert [f.data for f in frames] == [bytes([n]) for n in range(10) if n != 3]  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.booleans(),
                          st.binary(max_size=8)), max_size=200),
       st.booleans())
def test_arbitrary_packets_never_raise_and_stay_bounded(
        packets: list[tuple[int, int, bool, bytes]], single: bool) -> None:
    buf = FrameReassembler(single_packet_frames=single, max_packets=64)
    for i, p in enumerate(packets):
        for frame in buf.add(*p, now=i * 0.01):
            assert isinstance(frame.data, bytes)
        assert len(buf._packets) <= 64 + 1


# ---- H.264 access units -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream():  # type: ignore[no-untyped-def]
    return make_stream(1.2, gop=10, audio=False)


def _annexb(unit: MediaUnit, sps: bytes, pps: bytes, *, aud: bool = True) -> bytes:
    nalus = list(iter_nalus(unit.data, 4))
    head = [b"\x09\xf0"] if aud else []
    if unit.keyframe:
        head += [sps, pps]
    return b"".join(START_CODE + n for n in head + nalus)


def test_in_band_parameter_sets_become_the_config_and_units_are_avcc(stream) -> None:  # type: ignore[no-untyped-def]
    video = stream.of(TrackKind.VIDEO)
    sps, pps = stream.video.sps[0], stream.video.pps[0]
    access = H264Access()
    config, unit = access.push(_annexb(video[0], sps, pps))
    assert config is not None and unit is not None and unit.keyframe
    assert (config.sps, config.pps, config.width, config.height) == (
        (sps,), (pps,), stream.video.width, stream.video.height)
    assert unit.data == video[0].data  # SPS, PPS and the AUD taken out; 4-byte lengths
    for u in video[1:]:
        again, out = access.push(_annexb(u, sps, pps))
        assert again is None and out is not None and out.data == u.data
        assert out.keyframe == u.keyframe


def test_frames_before_a_keyframe_and_after_a_loss_wait_for_an_idr(stream) -> None:  # type: ignore[no-untyped-def]
    video = stream.of(TrackKind.VIDEO)
    sps, pps = stream.video.sps[0], stream.video.pps[0]
    access = H264Access()
    assert access.push(_annexb(video[1], sps, pps)) == (None, None)  # no SPS/PPS/IDR yet
    assert access.push(_annexb(video[0], sps, pps))[1] is not None
    _, unit = access.push(_annexb(video[2], sps, pps), after_loss=True)
    assert unit is None and access.needs_keyframe and access.dropped == 2
    _, unit = access.push(_annexb(video[10], sps, pps))
    assert unit is not None and unit.keyframe and not access.needs_keyframe


@pytest.mark.parametrize("data", [b"", b"\x01\x02\x03", b"\x00\x00\x01\x80abc",
                                  b"\x00\x00\x00\x01", b"\x00\x00\x01\x67\x00\x00\x00\x01\x68\xce"])
def test_malformed_access_units_raise_whip_media_error(data: bytes) -> None:
    with pytest.raises(WhipMediaError) as info:
        H264Access().push(data)
    assert not info.value.fatal


def test_an_unplayable_profile_is_fatal() -> None:
    """High 4:4:4 from a publisher: nobody could watch it, so the session is refused."""
    buf = __import__("io").BytesIO()
    with av.open(buf, "w", format="h264") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv444p"
        for i in range(2):
            frame = av.VideoFrame(64, 64, "yuv444p")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    with pytest.raises(WhipMediaError) as info:
        H264Access().push(buf.getvalue())
    assert info.value.fatal and "4:4:4" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_access_units_raise_only_whip_media_error(data: bytes, loss: bool) -> None:
    try:
        H264Access().push(b"\x00\x00\x01" + data, after_loss=loss)
    except WhipMediaError:
        pass


# ---- clocks ------------------------------------------------------------------------------------


def _ntp(seconds: float) -> int:
    return int(seconds * (1 << 32))


def test_sender_reports_line_audio_up_with_video_whatever_the_arrival() -> None:
    """RFC 3550 §6.4.1: audio captured at the same instant as a video frame gets its tick,
    even though it arrived 150 ms later and the two RTP clocks started apart."""
    clock = SessionClock()
    clock.add_track("video", 90_000)
    clock.add_track("audio", 48_000)
    v0, a0 = 123_456, 4_000_000_000  # random RTP origins; audio wraps soon
    t = 1000.0
    assert clock.ticks("video", v0, arrival=t) == 0
    late = clock.ticks("audio", a0, arrival=t + 0.150)
    assert late == round(0.150 * CLOCK_RATE)  # before any report: placed by arrival
    # Sender clock: video RTP v0 and audio RTP a0 were both captured at NTP 5000.0; one
    # report alone is not trusted, a second that agrees with the RTP clock is.
    assert clock.sender_report("video", _ntp(5000.0), v0) == 0
    assert clock.sender_report("audio", _ntp(5000.0), a0) == 0
    assert not clock.synced
    clock.sender_report("video", _ntp(5000.5), v0 + 45_000)
    clock.sender_report("audio", _ntp(5000.5), (a0 + 24_000) & 0xFFFFFFFF)
    assert clock.synced
    one_second_later_v = clock.ticks("video", v0 + 90_000, arrival=t + 1.01)
    one_second_later_a = clock.ticks("audio", (a0 + 48_000) & 0xFFFFFFFF, arrival=t + 1.2)
    assert one_second_later_v == CLOCK_RATE
    assert one_second_later_a == one_second_later_v  # same capture instant, same tick


def test_reports_that_disagree_with_the_rtp_clock_are_ignored() -> None:
    """A relay that pairs "now" with the last RTP timestamp it forwarded: no jumps."""
    clock = SessionClock()
    clock.add_track("video", 90_000)
    assert clock.ticks("video", 1000, arrival=10.0) == 0
    clock.sender_report("video", _ntp(100.0), 1000)
    assert clock.sender_report("video", _ntp(101.0), 1000 + 45_000) == 0  # 0.5 s off
    assert clock.reports_rejected == 1 and not clock.synced
    assert clock.ticks("video", 1000 + 90_000, arrival=11.3) == CLOCK_RATE


def test_rtp_timestamps_unwrap() -> None:
    clock = SessionClock()
    clock.add_track("video", 90_000)
    first = clock.ticks("video", 0xFFFF_0000, arrival=0.0)
    after = clock.ticks("video", 0x0000_FFFF, arrival=1.0)
    assert after - first == 0x1FFFF


# ---- Opus → AAC ----------------------------------------------------------------------------------


NOISE = random.Random(7).randbytes(4400)


def _opus_units(seconds: float) -> list[MediaUnit]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48_000, "stereo", "s16"
    enc.time_base = Fraction(1, 48_000)
    units = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.sample_rate = 48_000
        frame.planes[0].update(NOISE[i % 7 * 64:][:3840])
        frame.pts = i * 960
        for packet in enc.encode(frame):
            dts = packet.pts * CLOCK_RATE // 48_000
            units.append(MediaUnit(TrackKind.AUDIO, dts, dts, True, bytes(packet), 0.0))
    return units


def test_opus_becomes_aac_that_ffmpeg_decodes_with_continuous_timestamps() -> None:
    units = _opus_units(1.0)
    t = OpusToAac()
    aac = t.transcode(units[:20]) + t.transcode(units[20:]) + t.transcode([
        MediaUnit(TrackKind.AUDIO, 0, 0, True, b"\xff\x00garbage", 0.0)])
    assert t.config.sample_rate == 48_000 and t.config.channels == 2
    assert len(aac) >= 40 and t.errors <= 1
    steps = {b.dts - a.dts for a, b in itertools.pairwise(aac)}
    assert steps == {1024 * CLOCK_RATE // 48_000}
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = t.config.asc
    decoded = sum(f.samples for u in aac for f in dec.decode(av.Packet(u.data)))
    assert decoded >= 0.8 * 48_000
