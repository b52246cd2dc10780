"""H.264 profile negotiation for a sender that cannot re-encode (RFC 6184 §8.1, §8.2.2).

A WHEP viewer's offer lists the H.264 payload types it can decode, each with a
``profile-level-id`` (three bytes: ``profile_idc``, the constraint flags ``profile-iop`` and
``level_idc``). Hearth forwards the publisher's bitstream as it is, so the answer must name
the profile that bitstream really has, and only for a payload type whose offered profile can
decode it. :func:`choose_h264` makes that choice from the source's SPS fields; it is pure and
raises only :class:`ProfileMismatch`.

Rules (RFC 6184 §8.1 table of ``profile_idc``/``profile-iop``; the profile must be the same in
offer and answer, as libwebrtc and werift check):

* The profile of a ``profile-level-id`` is classified like RFC 6184 Table 5 / libwebrtc:
  Constrained Baseline, Baseline, Main, Constrained High, High, High 4:4:4 Predictive, or
  "other" (exact ``profile_idc`` only).
* A source can go to an offered payload whose profile is the same, or a superset:
  Constrained Baseline decodes as Baseline, Main, Constrained High, High and High 4:4:4
  Predictive; Main and Constrained High as High and High 4:4:4 Predictive; High as High
  4:4:4 Predictive (H.264 Annex A.2: decoders of the larger profile decode these
  bitstreams). Baseline with FMO/ASO is only Baseline.
* Same profile: the answer carries the source's own three bytes. A superset profile: the
  offered profile bytes with the source's level (the answer must name the offered profile).
* ``packetization-mode`` must be 1 (we send FU-A and STAP-A, RFC 6184 §6.3).
* Level: the answer states the source's level. When it is higher than the offered level the
  payload is still chosen (see ``level_exceeds``): browsers offer level 3.1 out of habit and
  decode higher levels, and refusing would make every 1080p stream unwatchable. The caller
  logs it. ``level-asymmetry-allowed=1`` is echoed when offered (RFC 6184 §8.1).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "H264Offer",
    "H264Answer",
    "H264Profile",
    "ProfileLevelId",
    "ProfileMismatch",
    "choose_h264",
    "classify",
    "describe",
]

_PLID_RE = re.compile(r"^[0-9a-fA-F]{6}$")
DEFAULT_PROFILE_LEVEL_ID = "42001f"
"""RFC 6184 §8.1: without ``profile-level-id`` the stream is Baseline level 1 (we use the
commonly assumed 3.1, as aiortc and libwebrtc do; only the profile matters for the choice)."""


class ProfileMismatch(ValueError):
    """No offered H.264 payload type can carry the source's profile."""


class H264Profile(enum.Enum):
    CONSTRAINED_BASELINE = "Constrained Baseline"
    BASELINE = "Baseline"
    MAIN = "Main"
    CONSTRAINED_HIGH = "Constrained High"
    HIGH = "High"
    PREDICTIVE_HIGH_444 = "High 4:4:4 Predictive"
    OTHER = "other"


# RFC 6184 §8.1 Table 5 as used by libwebrtc: (profile_idc, mask of iop bits that must be 1,
# mask of iop bits that must be 0) → profile. First match wins.
_TABLE: tuple[tuple[int, int, int, H264Profile], ...] = (
    (0x42, 0x40, 0x0F, H264Profile.CONSTRAINED_BASELINE),  # x1xx0000
    (0x4D, 0x80, 0x0F, H264Profile.CONSTRAINED_BASELINE),  # 1xxx0000
    (0x58, 0xC0, 0x0F, H264Profile.CONSTRAINED_BASELINE),  # 11xx0000
    (0x42, 0x00, 0x4F, H264Profile.BASELINE),              # x0xx0000
    (0x58, 0x80, 0x4F, H264Profile.BASELINE),              # 10xx0000
    (0x4D, 0x00, 0xAF, H264Profile.MAIN),                  # 0x0x0000
    (0x64, 0x0C, 0xF3, H264Profile.CONSTRAINED_HIGH),      # 00001100
    (0x64, 0x00, 0xFF, H264Profile.HIGH),                  # 00000000
    (0xF4, 0x00, 0xFF, H264Profile.PREDICTIVE_HIGH_444),   # 00000000
)

# Which offered profiles can decode a source of a given profile. H.264 Annex A.2: decoders
# of a profile also decode the bitstreams of the profiles it contains; a High 4:4:4
# Predictive decoder decodes High (A.2.11), which matters because Chromium built without
# a platform decoder offers 42001f, 42e01f, 4d001f and f4001f but no 64xxxx.
_PH444 = H264Profile.PREDICTIVE_HIGH_444
_DECODABLE_AS: Mapping[H264Profile, frozenset[H264Profile]] = {
    H264Profile.CONSTRAINED_BASELINE: frozenset({
        H264Profile.CONSTRAINED_BASELINE, H264Profile.BASELINE, H264Profile.MAIN,
        H264Profile.CONSTRAINED_HIGH, H264Profile.HIGH, _PH444}),
    H264Profile.BASELINE: frozenset({H264Profile.BASELINE}),
    H264Profile.MAIN: frozenset({H264Profile.MAIN, H264Profile.HIGH, _PH444}),
    H264Profile.CONSTRAINED_HIGH: frozenset({
        H264Profile.CONSTRAINED_HIGH, H264Profile.HIGH, _PH444}),
    H264Profile.HIGH: frozenset({H264Profile.HIGH, _PH444}),
    _PH444: frozenset({_PH444}),
}


@dataclass(frozen=True, slots=True)
class ProfileLevelId:
    """The three bytes of an H.264 ``profile-level-id`` (RFC 6184 §8.1)."""

    profile_idc: int
    profile_iop: int
    level_idc: int

    @classmethod
    def parse(cls, text: str) -> ProfileLevelId:
        """Parse six hex digits. Raises :class:`ProfileMismatch` on anything else."""
        if not _PLID_RE.fullmatch(text):
            raise ProfileMismatch(f"invalid profile-level-id {text[:16]!r}")
        raw = bytes.fromhex(text)
        return cls(raw[0], raw[1], raw[2])

    def __str__(self) -> str:
        return f"{self.profile_idc:02x}{self.profile_iop:02x}{self.level_idc:02x}"

    @property
    def profile(self) -> H264Profile:
        return classify(self.profile_idc, self.profile_iop)

    @property
    def level(self) -> float:
        """The level as a number (3.1, 4.0, ...); level 1b is reported as 1.0."""
        return self.level_idc / 10


def classify(profile_idc: int, profile_iop: int) -> H264Profile:
    """The profile named by ``profile_idc`` and the constraint flags (RFC 6184 Table 5)."""
    for idc, ones, zeros, profile in _TABLE:
        if profile_idc == idc and profile_iop & ones == ones and profile_iop & zeros == 0:
            return profile
    # Flags outside the table (e.g. reserved bits set by an encoder): fall back on the idc.
    return {0x42: H264Profile.BASELINE, 0x4D: H264Profile.MAIN,
            0x64: H264Profile.HIGH}.get(profile_idc, H264Profile.OTHER)


def describe(plid: ProfileLevelId) -> str:
    """``High level 3.1 (64001f)`` for messages."""
    name = plid.profile.value if plid.profile is not H264Profile.OTHER else \
        f"profile_idc {plid.profile_idc}"
    return f"{name} level {plid.level:.1f} ({plid})"


@dataclass(frozen=True, slots=True)
class H264Offer:
    """One offered H.264 payload type: its number and its ``a=fmtp`` parameters."""

    payload_type: int
    parameters: Mapping[str, object]

    @property
    def packetization_mode(self) -> int:
        try:
            return int(str(self.parameters.get("packetization-mode", "0")))
        except ValueError:
            return -1

    @property
    def level_asymmetry_allowed(self) -> bool:
        return str(self.parameters.get("level-asymmetry-allowed", "0")) == "1"

    @property
    def profile_level_id(self) -> ProfileLevelId:
        return ProfileLevelId.parse(
            str(self.parameters.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID)))


@dataclass(frozen=True, slots=True)
class H264Answer:
    """The chosen payload type and the ``a=fmtp`` parameters to answer with."""

    payload_type: int
    parameters: dict[str, str | int]
    profile_level_id: ProfileLevelId
    level_exceeds: bool
    """The source's level is above the level the offer named for this payload type."""


def choose_h264(source: ProfileLevelId, offers: Iterable[H264Offer]) -> H264Answer:
    """Pick the offered payload type that can carry ``source``; build the answer's fmtp.

    Preference: a payload type with exactly the source's profile, then the offer's order.

    Raises:
        ProfileMismatch: none can (the message names the source and what was offered).
    """
    source_profile = source.profile
    candidates: list[tuple[int, int, H264Offer, ProfileLevelId]] = []
    seen: list[str] = []
    for index, offer in enumerate(offers):
        try:
            offered = offer.profile_level_id
        except ProfileMismatch:
            seen.append("invalid")
            continue
        seen.append(f"{offered} mode {offer.packetization_mode}")
        if offer.packetization_mode != 1:
            continue
        if source_profile is H264Profile.OTHER:
            ok = offered.profile_idc == source.profile_idc
            exact = ok
        else:
            exact = offered.profile is source_profile
            ok = offered.profile in _DECODABLE_AS[source_profile]
        if ok:
            candidates.append((0 if exact else 1, index, offer, offered))
    if not candidates:
        offered_text = ", ".join(seen) if seen else "no H.264"
        raise ProfileMismatch(
            f"the stream is H.264 {describe(source)}; the offer has no H.264 payload type "
            f"(packetization-mode 1) whose profile can decode it (offered: {offered_text})")
    exact_rank, _, offer, offered = min(candidates, key=lambda c: (c[0], c[1]))
    if exact_rank == 0:
        answer_plid = source
    else:
        answer_plid = ProfileLevelId(offered.profile_idc, offered.profile_iop, source.level_idc)
    params: dict[str, str | int] = {}
    if offer.level_asymmetry_allowed:
        params["level-asymmetry-allowed"] = "1"
    params["packetization-mode"] = "1"
    params["profile-level-id"] = str(answer_plid)
    return H264Answer(offer.payload_type, params, answer_plid,
                      level_exceeds=source.level_idc > offered.level_idc)


MAX_FMTP_PARAMS = 32


def h264_offers(sdp: str) -> list[H264Offer]:
    """The H.264 payload types of the first video m-section of an SDP offer, in offer order.

    Reads ``m=video`` format list, ``a=rtpmap:<pt> H264/90000`` and ``a=fmtp:<pt> k=v;...``
    (RFC 8866 §6.6/§6.15). Tolerant: malformed lines are skipped; never raises.
    """
    lines = sdp.replace("\r\n", "\n").split("\n")
    in_video = False
    order: list[int] = []
    h264: set[int] = set()
    fmtp: dict[int, dict[str, object]] = {}
    for line in lines:
        if line.startswith("m="):
            if in_video:
                break
            parts = line[2:].split()
            in_video = bool(parts) and parts[0] == "video"
            if in_video:
                order = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
            continue
        if not in_video:
            continue
        if line.startswith("a=rtpmap:"):
            head, _, rest = line[9:].partition(" ")
            if head.isdigit() and rest.split("/")[0].strip().upper() == "H264":
                h264.add(int(head))
        elif line.startswith("a=fmtp:"):
            head, _, rest = line[7:].partition(" ")
            if not head.isdigit():
                continue
            params: dict[str, object] = {}
            for item in rest.split(";")[:MAX_FMTP_PARAMS]:
                key, sep, value = item.strip().partition("=")
                if sep and key:
                    params[key.strip().lower()] = value.strip()
            fmtp[int(head)] = params
    return [H264Offer(pt, fmtp.get(pt, {})) for pt in order if pt in h264]
