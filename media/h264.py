"""H.264 helpers: avcC parsing, SPS parsing, AVCC NALU framing and Annex-B conversion.

Pure functions over bytes, shared by the HLS packager (which keeps AVCC framing, as fMP4 does)
and WebRTC (which needs Annex-B with SPS/PPS in front of every IDR picture).

Spec references are to ITU-T H.264 (08/2021) and ISO/IEC 14496-15 (AVC file format).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from media.units import VideoConfig

__all__ = [
    "NAL_AUD",
    "NAL_IDR",
    "NAL_PPS",
    "NAL_SEI",
    "NAL_SLICE",
    "NAL_SPS",
    "H264Error",
    "Sps",
    "build_avcc",
    "contains_idr",
    "is_idr",
    "iter_nalus",
    "nal_type",
    "parse_avcc",
    "parse_sps",
    "split_annexb",
]

# H.264 Table 7-1: nal_unit_type values this module cares about.
NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_FILLER = 12

START_CODE = b"\x00\x00\x00\x01"
VALID_LENGTH_SIZES = (1, 2, 4)
"""ISO/IEC 14496-15 §5.3.3.1.2: lengthSizeMinusOne is 0, 1 or 3 (a 3-byte prefix is invalid)."""

# The big-endian NALU length prefix of each valid size.
_LENGTH_PREFIX = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}

MAX_PARAMETER_SETS = 32
"""H.264 §7.4.2.1.1 allows 32 SPS ids (and avcC has 5 bits for the count)."""

MAX_DIMENSION_MBS = 1024
"""Upper bound on picture width/height in macroblocks (16 384 px) — far above level 6.2."""

MAX_EXP_GOLOMB_LEADING_ZEROS = 31
"""ue(v) values we accept fit in 32 bits; more leading zeros means garbage input."""

MAX_REF_FRAMES_IN_POC_CYCLE = 255
"""H.264 §7.4.2.1.1: num_ref_frames_in_pic_order_cnt_cycle is in 0..255."""

# H.264 §7.3.2.1.1: profiles whose SPS carries chroma_format_idc, bit depths and scaling lists.
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})

# H.264 Table 6-1: (SubWidthC, SubHeightC) per chroma_format_idc (1 = 4:2:0, 2 = 4:2:2, 3 = 4:4:4).
_SUB_WH = {1: (2, 2), 2: (2, 1), 3: (1, 1)}


class H264Error(ValueError):
    """Malformed or unsupported H.264 data (truncated NALUs, bad avcC, impossible SPS)."""


def nal_type(nalu: bytes) -> int:
    """Return ``nal_unit_type`` (H.264 §7.3.1: the low 5 bits of the first byte).

    Raises:
        H264Error: if ``nalu`` is empty.
    """
    if not nalu:
        raise H264Error("empty NAL unit has no header")
    return nalu[0] & 0x1F


def is_idr(nalu: bytes) -> bool:
    """True if ``nalu`` is a coded slice of an IDR picture (nal_unit_type 5)."""
    return bool(nalu) and nalu[0] & 0x1F == NAL_IDR


def _check_length_size(length_size: int) -> None:
    if length_size not in VALID_LENGTH_SIZES:
        raise H264Error(f"NALU length size must be 1, 2 or 4, got {length_size}")


def _nalu_spans(data: bytes, length_size: int) -> Iterator[tuple[int, int]]:
    """``(offset, size)`` of each NAL unit in AVCC-framed ``data``, validating the framing."""
    _check_length_size(length_size)
    read_length = _LENGTH_PREFIX[length_size].unpack_from  # (no slice per NALU)
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < length_size:
            raise H264Error(
                f"truncated NALU length prefix at offset {pos}: {end - pos} of {length_size} bytes"
            )
        (size,) = read_length(data, pos)
        pos += length_size
        if size == 0:
            raise H264Error(f"zero-length NALU at offset {pos - length_size}")
        if size > end - pos:
            raise H264Error(
                f"NALU length {size} at offset {pos - length_size} exceeds the "
                f"{end - pos} bytes remaining"
            )
        yield pos, size
        pos += size


def iter_nalus(data: bytes, length_size: int) -> Iterator[bytes]:
    """Split AVCC-framed data (big-endian length prefix before each NALU) into NAL units.

    Args:
        data: one access unit (``MediaUnit.data`` for video).
        length_size: bytes per length prefix (``VideoConfig.nal_length_size``).

    Returns:
        An iterator over the NAL units, without their prefixes.

    Raises:
        H264Error: on an invalid ``length_size``, a truncated prefix, a zero-length NALU, or a
            length that runs past the end of ``data`` (the iterator raises when it gets there;
            callers that must not act on partial input should materialize it with ``list()``).
    """
    view = memoryview(data)
    for pos, size in _nalu_spans(data, length_size):
        yield bytes(view[pos : pos + size])


def contains_idr(data: bytes, length_size: int) -> bool:
    """True if the AVCC-framed access unit contains an IDR slice.

    Runs for every ingested video frame, so it reads NAL headers in place (no copies).

    Raises:
        H264Error: if the framing is invalid.
    """
    for pos, _ in _nalu_spans(data, length_size):
        if data[pos] & 0x1F == NAL_IDR:
            return True  # (what any() did: the framing after the IDR is not walked)
    return False


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream on 3- or 4-byte start codes (H.264 §B.2).

    Trailing zero bytes before a start code (trailing_zero_8bits) are dropped.
    """
    out: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        nalu = data[start:end].rstrip(b"\x00") if nxt >= 0 else data[start:end]
        if nalu:
            out.append(nalu)
        i = nxt
    return out


@dataclass(frozen=True, slots=True)
class AnnexBAccessUnit:
    """One access unit of an Annex-B stream (MPEG-TS, RTP) taken apart for fMP4.

    Parameter sets belong in the avcC (ISO/IEC 14496-15 §5.3.3.1), so they are kept apart;
    access unit delimiters and filler data are dropped; the other NAL units are the sample.
    """

    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    coded: tuple[bytes, ...]
    keyframe: bool
    """An IDR picture is among the coded NAL units."""

    def sample(self) -> bytes:
        """The coded NAL units as an AVCC sample (4-byte big-endian lengths)."""
        return b"".join(len(n).to_bytes(4, "big") + n for n in self.coded)


def split_access_unit(data: bytes, *, max_parameter_sets: int = 8) -> AnnexBAccessUnit:
    """Take an Annex-B access unit apart (see :class:`AnnexBAccessUnit`).

    At most ``max_parameter_sets`` SPS and as many PPS are kept (an encoder sends one of
    each; the bound keeps a hostile unit from growing the avcC).

    Raises:
        H264Error: no NAL unit at all, or one with forbidden_zero_bit set (H.264 §7.4.1).
    """
    nalus = split_annexb(data)
    if not nalus:
        raise H264Error("no NAL unit (not an Annex-B access unit)")
    sps: list[bytes] = []
    pps: list[bytes] = []
    coded: list[bytes] = []
    keyframe = False
    for nalu in nalus:
        if nalu[0] & 0x80:
            raise H264Error("NAL unit with forbidden_zero_bit set")
        kind = nalu[0] & 0x1F
        if kind == NAL_SPS:
            if len(sps) < max_parameter_sets:
                sps.append(nalu)
        elif kind == NAL_PPS:
            if len(pps) < max_parameter_sets:
                pps.append(nalu)
        elif kind not in (NAL_AUD, NAL_FILLER):
            keyframe |= kind == NAL_IDR
            coded.append(nalu)
    return AnnexBAccessUnit(tuple(sps), tuple(pps), tuple(coded), keyframe)


def config_from_parameter_sets(sps: Sequence[bytes], pps: Sequence[bytes]
                               ) -> tuple[VideoConfig, str | None]:
    """The :class:`VideoConfig` for in-band parameter sets, and why viewers' players cannot
    decode that video (:func:`playback_problem`), or ``None``.

    Raises:
        H264Error: malformed parameter sets.
    """
    config = parse_avcc(build_avcc(sps, pps))
    return config, playback_problem(parse_sps(config.sps[0]))


# --- bit-level parsing (H.264 §7.2) ---------------------------------------------------------


def _rbsp(nalu: bytes) -> bytes:
    """Strip emulation_prevention_three_byte (H.264 §7.4.1: 0x000003 → 0x0000)."""
    if b"\x00\x00\x03" not in nalu:
        return nalu
    out = bytearray()
    zeros = 0
    for b in nalu:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class _BitReader:
    """MSB-first bit reader with ue(v)/se(v) Exp-Golomb (H.264 §9.1); raises H264Error."""

    __slots__ = ("_bits", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._bits = int.from_bytes(data, "big")
        self._pos = len(data) * 8  # bits remaining
        self._what = what

    def u(self, n: int) -> int:
        if n > self._pos:
            raise H264Error(f"{self._what} truncated: needed {n} more bits, {self._pos} left")
        self._pos -= n
        return (self._bits >> self._pos) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_LEADING_ZEROS:
                raise H264Error(f"{self._what}: Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + (self.u(zeros) if zeros else 0)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True, slots=True)
class Sps:
    """The fields of a sequence parameter set that packaging needs (H.264 §7.3.2.1.1)."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    seq_parameter_set_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    width: int
    height: int


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    # H.264 §7.3.2.1.1.1 scaling_list(): only the delta_scale syntax matters for skipping.
    last_scale = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise H264Error(f"SPS delta_scale {delta} out of range -128..127")
            next_scale = (last_scale + delta + 256) % 256
        last_scale = next_scale if next_scale != 0 else last_scale


def _read_high_profile_fields(r: _BitReader) -> tuple[int, bool, int, int]:
    """The High-profile SPS fields (§7.3.2.1.1): chroma format, bit depths, scaling lists.

    Returns ``(chroma_format_idc, separate_colour_plane, bit_depth_luma, bit_depth_chroma)``.
    """
    chroma_format_idc = r.ue()
    if chroma_format_idc > 3:
        raise H264Error(f"chroma_format_idc {chroma_format_idc} out of range 0..3")
    separate_colour_plane = r.flag() if chroma_format_idc == 3 else False
    bit_depth_luma = r.ue() + 8
    bit_depth_chroma = r.ue() + 8
    if bit_depth_luma > 14 or bit_depth_chroma > 14:
        raise H264Error(f"bit depth {bit_depth_luma}/{bit_depth_chroma} exceeds 14")
    r.flag()  # qpprime_y_zero_transform_bypass_flag
    if r.flag():  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma_format_idc != 3 else 12):
            if r.flag():  # seq_scaling_list_present_flag[i]
                _skip_scaling_list(r, 16 if i < 6 else 64)
    return chroma_format_idc, separate_colour_plane, bit_depth_luma, bit_depth_chroma


def _skip_pic_order_cnt_fields(r: _BitReader) -> None:
    """pic_order_cnt_type and the fields it selects (§7.3.2.1.1), validated and skipped."""
    poc_type = r.ue()
    if poc_type == 0:
        if r.ue() > 12:
            raise H264Error("log2_max_pic_order_cnt_lsb_minus4 exceeds 12")
    elif poc_type == 1:
        r.flag()  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > MAX_REF_FRAMES_IN_POC_CYCLE:
            raise H264Error(f"num_ref_frames_in_pic_order_cnt_cycle {cycle} exceeds 255")
        for _ in range(cycle):
            r.se()
    elif poc_type != 2:
        raise H264Error(f"pic_order_cnt_type {poc_type} out of range 0..2")


def parse_sps(nalu: bytes) -> Sps:
    """Parse an SPS NAL unit (with its 1-byte NAL header) up to the frame cropping fields.

    Args:
        nalu: the SPS NAL unit, without length prefix or start code.

    Returns:
        The parsed :class:`Sps`, with ``width``/``height`` in luma pixels after cropping
        (H.264 §7.4.2.1.1, equations 7-18 to 7-22 and the frame_crop_* semantics).

    Raises:
        H264Error: if the NALU is not an SPS, is truncated, or holds out-of-range values.
    """
    if not nalu:
        raise H264Error("SPS is empty")
    if nalu[0] & 0x80:
        raise H264Error("SPS has forbidden_zero_bit set")
    if nalu[0] & 0x1F != NAL_SPS:
        raise H264Error(f"expected SPS (nal_unit_type 7), got nal_unit_type {nalu[0] & 0x1F}")
    r = _BitReader(_rbsp(nalu[1:]), "SPS")
    profile_idc = r.u(8)
    constraint_flags = r.u(8)
    level_idc = r.u(8)
    sps_id = r.ue()
    if sps_id >= MAX_PARAMETER_SETS:
        raise H264Error(f"seq_parameter_set_id {sps_id} out of range 0..31")
    chroma_format_idc = 1  # §7.4.2.1.1: inferred 4:2:0 when absent
    separate_colour_plane = False
    bit_depth_luma = bit_depth_chroma = 8
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc, separate_colour_plane, bit_depth_luma, bit_depth_chroma = (
            _read_high_profile_fields(r)
        )
    log2_max_frame_num_minus4 = r.ue()
    if log2_max_frame_num_minus4 > 12:
        raise H264Error(f"log2_max_frame_num_minus4 {log2_max_frame_num_minus4} exceeds 12")
    _skip_pic_order_cnt_fields(r)
    r.ue()  # max_num_ref_frames
    r.flag()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.flag()  # mb_adaptive_frame_field_flag
    r.flag()  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if r.flag():  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = r.ue(), r.ue(), r.ue(), r.ue()
    # vui_parameters_present_flag and the VUI follow; nothing there changes the picture size.

    field_factor = 1 if frame_mbs_only else 2
    height_mbs = height_map_units * field_factor  # equation 7-18 (FrameHeightInMbs)
    if width_mbs > MAX_DIMENSION_MBS or height_mbs > MAX_DIMENSION_MBS:
        raise H264Error(f"picture size {width_mbs}x{height_mbs} macroblocks is implausible")
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_unit_x, crop_unit_y = 1, field_factor  # equations 7-19, 7-20
    else:
        sub_w, sub_h = _SUB_WH[chroma_array_type]
        crop_unit_x, crop_unit_y = sub_w, sub_h * field_factor  # equations 7-21, 7-22
    width = width_mbs * 16 - crop_unit_x * (crop_left + crop_right)
    height = height_mbs * 16 - crop_unit_y * (crop_top + crop_bottom)
    if width <= 0 or height <= 0:
        raise H264Error(
            f"frame cropping ({crop_left},{crop_right},{crop_top},{crop_bottom}) leaves no "
            f"picture of {width_mbs * 16}x{height_mbs * 16}"
        )
    return Sps(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        seq_parameter_set_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        frame_mbs_only=frame_mbs_only,
        width=width,
        height=height,
    )


# --- Playback policy -----------------------------------------------------------------------

PROFILE_NAMES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
    44: "CAVLC 4:4:4 Intra",
    83: "Scalable Baseline",
    86: "Scalable High",
    118: "Multiview High",
    128: "Stereo High",
}
"""H.264 Annex A profile names by profile_idc."""

PLAYABLE_PROFILES = frozenset({66, 77, 100})
"""Baseline (incl. Constrained Baseline, constraint_set1), Main and High (incl. Constrained
High): what browsers (MSE), Apple devices and WebRTC decode. High 10, 4:2:2 and 4:4:4
profiles are not decodable there (Annex A.2; the RFC 6381 ``avc1.6e``/``7a``/``f4`` codecs
are refused by Chrome's and Safari's MSE)."""

_CHROMA_NAMES = {0: "4:0:0 (monochrome)", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}


def playback_problem(sps: Sps) -> str | None:
    """Why viewers' players cannot decode video with this SPS, or ``None`` if they can.

    Accepted: 8-bit 4:2:0 Baseline, Main or High (and their Constrained variants).
    """
    if sps.profile_idc not in PLAYABLE_PROFILES:
        name = PROFILE_NAMES.get(sps.profile_idc, f"profile_idc {sps.profile_idc}")
        return f"H.264 {name} profile"
    if sps.chroma_format_idc != 1:
        return f"{_CHROMA_NAMES.get(sps.chroma_format_idc, '?')} chroma"
    if sps.bit_depth_luma != 8 or sps.bit_depth_chroma != 8:
        return f"{sps.bit_depth_luma}-bit video"
    return None


# --- AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) --------------------------------


def _read_parameter_sets(
    record: bytes, pos: int, count: int, expected_type: int, what: str
) -> tuple[list[bytes], int]:
    sets: list[bytes] = []
    for i in range(count):
        if pos + 2 > len(record):
            raise H264Error(f"avcC truncated in {what} #{i} length")
        (size,) = struct.unpack_from(">H", record, pos)
        pos += 2
        if size == 0:
            raise H264Error(f"avcC {what} #{i} is empty")
        if pos + size > len(record):
            raise H264Error(
                f"avcC {what} #{i} length {size} exceeds the {len(record) - pos} bytes remaining"
            )
        nalu = record[pos : pos + size]
        if nalu[0] & 0x1F != expected_type:
            raise H264Error(f"avcC {what} #{i} has nal_unit_type {nalu[0] & 0x1F}")
        sets.append(nalu)
        pos += size
    return sets, pos


def parse_avcc(record: bytes) -> VideoConfig:
    """Parse an AVCDecoderConfigurationRecord into a :class:`VideoConfig`.

    Width, height, profile, constraint flags and level come from the first SPS (the avcC
    header bytes are copies, and encoders occasionally get them wrong). Trailing High-profile
    extension fields (chroma_format etc., §5.3.3.1.2) are ignored; the record is kept verbatim.

    Args:
        record: the record, e.g. from an FLV AVC sequence header or an MP4 ``avcC`` box.

    Returns:
        The decoder configuration.

    Raises:
        H264Error: if the record is truncated, has the wrong version, a 3-byte length size,
            no SPS or no PPS, or an unparsable SPS.
    """
    if len(record) < 7:
        raise H264Error(f"avcC truncated: {len(record)} bytes, need at least 7")
    if record[0] != 1:
        raise H264Error(f"avcC configurationVersion {record[0]} is not 1")
    length_size = (record[4] & 0x03) + 1
    if length_size not in VALID_LENGTH_SIZES:
        raise H264Error("avcC lengthSizeMinusOne 2 (3-byte NALU lengths) is invalid")
    num_sps = record[5] & 0x1F
    if num_sps == 0:
        raise H264Error("avcC carries no SPS")
    sps, pos = _read_parameter_sets(record, 6, num_sps, NAL_SPS, "SPS")
    if pos >= len(record):
        raise H264Error("avcC truncated before numOfPictureParameterSets")
    num_pps = record[pos]
    if num_pps == 0:
        raise H264Error("avcC carries no PPS")
    pps, pos = _read_parameter_sets(record, pos + 1, num_pps, NAL_PPS, "PPS")
    first = parse_sps(sps[0])
    return VideoConfig(
        avcc=bytes(record),
        sps=tuple(sps),
        pps=tuple(pps),
        nal_length_size=length_size,
        width=first.width,
        height=first.height,
        profile_idc=first.profile_idc,
        level_idc=first.level_idc,
        constraint_flags=first.constraint_flags,
    )


def build_avcc(sps: Sequence[bytes], pps: Sequence[bytes], nal_length_size: int = 4) -> bytes:
    """Build an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1.1) from SPS/PPS.

    Args:
        sps: SPS NAL units (1..31), the first one supplies profile/compatibility/level.
        pps: PPS NAL units (1..255).
        nal_length_size: 1, 2 or 4.

    Returns:
        The record bytes (without High-profile extension fields, which are optional for
        readers of version 1 records).

    Raises:
        H264Error: on empty/too many parameter sets or a bad length size.
    """
    _check_length_size(nal_length_size)
    if not 1 <= len(sps) <= 31 or not 1 <= len(pps) <= 255:
        raise H264Error(f"avcC needs 1..31 SPS and 1..255 PPS, got {len(sps)} and {len(pps)}")
    first = sps[0]
    if len(first) < 4:
        raise H264Error("SPS too short for profile/level bytes")
    out = bytearray(
        [1, first[1], first[2], first[3], 0xFC | (nal_length_size - 1), 0xE0 | len(sps)]
    )
    for nalu in sps:
        out += struct.pack(">H", len(nalu)) + nalu
    out.append(len(pps))
    for nalu in pps:
        out += struct.pack(">H", len(nalu)) + nalu
    return bytes(out)
