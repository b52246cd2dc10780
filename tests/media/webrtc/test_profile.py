"""media.webrtc.profile: choosing the H.264 payload type and fmtp for a pass-through sender."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.webrtc.profile import (
    H264Offer,
    H264Profile,
    ProfileLevelId,
    ProfileMismatch,
    choose_h264,
    classify,
    h264_offers,
)

HIGH_31 = ProfileLevelId.parse("64001f")
CB_31 = ProfileLevelId.parse("42e01f")


def offer(pt: int, plid: str | None, mode: str = "1", lasym: bool = True) -> H264Offer:
    params: dict[str, object] = {"packetization-mode": mode}
    if plid is not None:
        params["profile-level-id"] = plid
    if lasym:
        params["level-asymmetry-allowed"] = "1"
    return H264Offer(pt, params)


@pytest.mark.parametrize(("plid", "profile"), [
    ("42e01f", H264Profile.CONSTRAINED_BASELINE), ("42c01e", H264Profile.CONSTRAINED_BASELINE),
    ("4de01f", H264Profile.CONSTRAINED_BASELINE), ("58f01f", H264Profile.CONSTRAINED_BASELINE),
    ("42001f", H264Profile.BASELINE), ("42a01f", H264Profile.BASELINE),
    ("4d001f", H264Profile.MAIN), ("4d401f", H264Profile.MAIN),
    ("640c1f", H264Profile.CONSTRAINED_HIGH), ("64001f", H264Profile.HIGH),
    ("f4001f", H264Profile.PREDICTIVE_HIGH_444), ("6e001f", H264Profile.OTHER),
])
def test_classify_rfc6184_table(plid: str, profile: H264Profile) -> None:
    assert ProfileLevelId.parse(plid).profile is profile


def test_high_source_takes_the_high_payload_and_answers_its_own_bytes() -> None:
    # Chromium's order: CB 42001f/42e01f first, then 4d001f, then High 640c1f/64001f.
    offers = [offer(102, "42001f"), offer(106, "42e01f"), offer(108, "4d001f"),
              offer(112, "64001f"), offer(114, "640c1f")]
    answer = choose_h264(ProfileLevelId.parse("640028"), offers)
    assert answer.payload_type == 112
    assert answer.parameters["profile-level-id"] == "640028"
    assert answer.parameters["packetization-mode"] == "1"
    assert answer.parameters["level-asymmetry-allowed"] == "1"
    assert answer.level_exceeds  # level 4.0 over an offered 3.1


def test_high_only_offer_is_accepted_for_a_high_source() -> None:
    answer = choose_h264(HIGH_31, [offer(96, "64001f")])
    assert (answer.payload_type, str(answer.profile_level_id)) == (96, "64001f")
    assert not answer.level_exceeds


def test_high_source_to_chromium_without_a_high_payload_uses_high_444_predictive() -> None:
    """Chromium with only its software decoder offers 42001f/42e01f/4d001f/f4001f: a High
    stream goes out under f4 (a High 4:4:4 Predictive decoder decodes High, H.264 A.2)."""
    offers = [offer(103, "42001f"), offer(107, "42001f", mode="0"), offer(109, "42e01f"),
              offer(117, "4d001f"), offer(41, "f4001f"), offer(43, "f4001f", mode="0")]
    answer = choose_h264(ProfileLevelId.parse("64000d"), offers)
    assert (answer.payload_type, str(answer.profile_level_id)) == (41, "f4000d")


def test_constrained_baseline_source_prefers_exact_then_fits_high() -> None:
    assert choose_h264(CB_31, [offer(96, "64001f"), offer(97, "42e01f")]).payload_type == 97
    answer = choose_h264(ProfileLevelId.parse("42c015"), [offer(96, "640c1f")])
    # The answer must name the offered profile (peers compare profiles), at our level.
    assert str(answer.profile_level_id) == "640c15"


def test_main_source_goes_to_high_not_baseline() -> None:
    main = ProfileLevelId.parse("4d4028")
    with pytest.raises(ProfileMismatch, match=r"Main level 4\.0"):
        choose_h264(main, [offer(96, "42e01f"), offer(97, "42001f")])
    assert choose_h264(main, [offer(96, "42e01f"), offer(98, "64001f")]).payload_type == 98


def test_high_source_refused_by_a_baseline_only_offer_with_the_reason() -> None:
    with pytest.raises(ProfileMismatch) as err:
        choose_h264(HIGH_31, [offer(96, "42e01f"), offer(97, "42001f")])
    text = str(err.value)
    assert "High level 3.1 (64001f)" in text and "42e01f" in text


def test_packetization_mode_0_cannot_carry_fu_a() -> None:
    with pytest.raises(ProfileMismatch):
        choose_h264(HIGH_31, [offer(96, "64001f", mode="0")])
    # No packetization-mode means mode 0 (RFC 6184 §8.1).
    with pytest.raises(ProfileMismatch):
        choose_h264(HIGH_31, [H264Offer(96, {"profile-level-id": "64001f"})])


def test_missing_profile_level_id_is_baseline_and_asymmetry_is_echoed_only_if_offered() -> None:
    answer = choose_h264(CB_31, [offer(96, None, lasym=False)])
    assert "level-asymmetry-allowed" not in answer.parameters
    with pytest.raises(ProfileMismatch):
        choose_h264(HIGH_31, [offer(96, None)])


def test_other_profiles_need_the_same_profile_idc() -> None:
    high10 = ProfileLevelId.parse("6e0028")
    assert classify(0x6E, 0) is H264Profile.OTHER
    with pytest.raises(ProfileMismatch):
        choose_h264(high10, [offer(96, "64001f")])
    assert choose_h264(high10, [offer(96, "6e001f")]).payload_type == 96


CHROMIUM_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 112 113\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n"
    "a=rtpmap:112 h264/90000\r\n"
    "a=fmtp:112 level-asymmetry-allowed=1; packetization-mode=1; profile-level-id=64001f\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=rtpmap:5 H264/90000\r\n"
)


def test_h264_offers_reads_the_video_section_in_order() -> None:
    offers = h264_offers(CHROMIUM_OFFER)
    assert [o.payload_type for o in offers] == [102, 112]
    assert str(offers[1].profile_level_id) == "64001f"
    assert offers[1].packetization_mode == 1 and offers[1].level_asymmetry_allowed


@pytest.mark.parametrize("sdp", ["", "m=video", "m=video 9 X 96\na=rtpmap:96",
                                 "m=video 9 X 96\na=rtpmap:x H264/90000\na=fmtp:96",
                                 "m=video 9 X 999 96\na=rtpmap:96 H264/90000\na=fmtp:96 ;;=;a",
                                 "m=video 9 X 96\n" + "a=fmtp:96 " + "k=v;" * 100000])
def test_h264_offers_hostile_input(sdp: str) -> None:
    for o in h264_offers(sdp):
        try:
            assert len(str(o.profile_level_id)) == 6
        except ProfileMismatch:
            pass


@given(st.text(max_size=2000))
def test_h264_offers_never_raises(sdp: str) -> None:
    h264_offers(sdp)


@given(st.text(max_size=12), st.sampled_from(["0", "1", "x", ""]), st.binary(min_size=3,
                                                                            max_size=3))
def test_choose_raises_only_profile_mismatch(plid: str, mode: str, source: bytes) -> None:
    src = ProfileLevelId(source[0], source[1], source[2])
    try:
        answer = choose_h264(src, [H264Offer(96, {"profile-level-id": plid,
                                                  "packetization-mode": mode})])
    except ProfileMismatch:
        return
    assert answer.payload_type == 96
    assert ProfileLevelId.parse(str(answer.parameters["profile-level-id"])) == \
        answer.profile_level_id
