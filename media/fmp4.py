"""A small ISO BMFF (fragmented MP4 / CMAF) writer: init segments and moof+mdat fragments.

Pure: configs and samples in, bytes out. Box layouts follow ISO/IEC 14496-12:2015 (section
numbers below), the sample entries ISO/IEC 14496-15 (avc1/avcC) and ISO/IEC 14496-14 (mp4a/
esds), and the brands ISO/IEC 23000-19 (CMAF, ``cmfc``).

Track ids are fixed: video is :data:`VIDEO_TRACK_ID`, audio :data:`AUDIO_TRACK_ID`. Video uses
the 90 kHz media clock (:data:`media.units.CLOCK_RATE`); audio uses its sample rate, so one AAC
frame lasts exactly ``samples_per_frame`` ticks.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from media.units import CLOCK_RATE, AudioConfig, VideoConfig

__all__ = [
    "AUDIO_TRACK_ID",
    "SAMPLE_FLAGS_NON_SYNC",
    "SAMPLE_FLAGS_SYNC",
    "VIDEO_TRACK_ID",
    "Fmp4Error",
    "Sample",
    "TrackRun",
    "box",
    "fragment",
    "full_box",
    "init_segment",
]

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
VIDEO_TIMESCALE = CLOCK_RATE
MOVIE_TIMESCALE = 1000

# §8.8.3.1 sample flags: is_leading(2) depends_on(2) is_depended_on(2) has_redundancy(2)
# padding(3) is_non_sync(1) degradation_priority(16).
SAMPLE_FLAGS_SYNC = 0x0200_0000  # depends_on = 2 (does not depend on others)
SAMPLE_FLAGS_NON_SYNC = 0x0101_0000  # depends_on = 1, sample_is_non_sync_sample = 1

# §8.8.7 tfhd flags / §8.8.8 trun flags.
TFHD_DEFAULT_BASE_IS_MOOF = 0x02_0000
TRUN_DATA_OFFSET = 0x000001
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_CTO = 0x000800
_TRUN_FLAGS = (
    TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS | TRUN_SAMPLE_CTO
)

MAX_BOX_SIZE = 0xFFFF_FFFF
"""We never emit 64-bit ``largesize`` boxes: a part is well under 4 GiB."""

_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000)
_LANGUAGE_UND = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)


class Fmp4Error(ValueError):
    """Inputs that cannot be expressed in the box format (sizes, counts, values)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a fragment.

    Attributes:
        data: the sample bytes (AVCC access unit, or one raw AAC frame).
        duration: in the track's timescale.
        keyframe: sync sample (IDR; always True for audio).
        composition_offset: pts - dts in the track's timescale (may be negative).
    """

    data: bytes
    duration: int
    keyframe: bool
    composition_offset: int = 0


@dataclass(frozen=True, slots=True)
class TrackRun:
    """The samples of one track in one fragment.

    Attributes:
        track_id: :data:`VIDEO_TRACK_ID` or :data:`AUDIO_TRACK_ID`.
        base_media_decode_time: decode time of the first sample in the track's timescale
            (``tfdt``, §8.8.12).
        samples: at least one sample, in decode order.
    """

    track_id: int
    base_media_decode_time: int
    samples: Sequence[Sample]


def box(box_type: bytes, *payloads: bytes) -> bytes:
    """Serialize a box (§4.2): 32-bit size, 4-character type, payload.

    Raises:
        Fmp4Error: if the box would exceed 4 GiB.
    """
    size = 8 + sum(len(p) for p in payloads)
    if size > MAX_BOX_SIZE:
        raise Fmp4Error(f"{box_type!r} box of {size} bytes needs a 64-bit size")
    return struct.pack(">I4s", size, box_type) + b"".join(payloads)


def full_box(box_type: bytes, version: int, flags: int, *payloads: bytes) -> bytes:
    """Serialize a FullBox (§4.2): a box whose payload starts with version(8) and flags(24)."""
    return box(box_type, struct.pack(">I", (version << 24) | flags), *payloads)


# --- init segment ---------------------------------------------------------------------------


def _ftyp() -> bytes:
    # §4.3; CMAF (ISO/IEC 23000-19 §7.2) lists 'cmfc'; 'iso6' covers tfdt v1 / trun v1.
    return box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"mp41")


def _mvhd(next_track_id: int) -> bytes:
    # §8.2.2, version 0; duration 0 because the movie is fragmented (duration lives in mvex).
    return full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0),
        struct.pack(">IH", 0x0001_0000, 0x0100),  # rate 1.0, volume 1.0
        bytes(10),  # reserved
        _UNITY_MATRIX,
        bytes(24),  # pre_defined
        struct.pack(">I", next_track_id),
    )


def _tkhd(track_id: int, *, audio: bool, width: int = 0, height: int = 0) -> bytes:
    # §8.3.2, flags 0x3 = track_enabled | track_in_movie.
    return full_box(
        b"tkhd",
        0,
        0x3,
        struct.pack(">IIIII", 0, 0, track_id, 0, 0),  # times, id, reserved, duration
        bytes(8),  # reserved
        struct.pack(">hhhH", 0, 0, 0x0100 if audio else 0, 0),  # layer, group, volume, reserved
        _UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),  # 16.16 fixed point
    )


def _mdhd(timescale: int) -> bytes:
    # §8.4.2, version 0.
    return full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, _LANGUAGE_UND, 0))


def _hdlr(handler: bytes, name: bytes) -> bytes:
    # §8.4.3.
    return full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, handler), bytes(12), name + b"\x00")


def _dinf() -> bytes:
    # §8.7.1–8.7.2: one self-contained data reference (flags 1 = media in this file).
    return box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))


def _stbl(sample_entry: bytes) -> bytes:
    # §8.5: fragmented tracks have an empty sample table; samples live in moof/trun.
    return box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )


def _avc1(video: VideoConfig) -> bytes:
    # §8.5.2.2 VisualSampleEntry + ISO/IEC 14496-15 §5.4.2.1 (avcC payload = the record).
    if not (0 < video.width <= 0xFFFF and 0 < video.height <= 0xFFFF):
        raise Fmp4Error(f"video size {video.width}x{video.height} does not fit 16 bits")
    return box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # reserved, data_reference_index
        bytes(16),  # pre_defined, reserved, pre_defined[3]
        struct.pack(">HH", video.width, video.height),
        struct.pack(">II", 0x0048_0000, 0x0048_0000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # reserved, frame_count
        bytes(32),  # compressorname
        struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
        box(b"avcC", video.avcc),
    )


def _descriptor(tag: int, *payloads: bytes) -> bytes:
    # ISO/IEC 14496-1 §8.3.3: expandable size, 7 bits per byte, high bit = more bytes follow.
    body = b"".join(payloads)
    size = len(body)
    if size >= 1 << 28:
        raise Fmp4Error(f"descriptor of {size} bytes is too large")
    size_bytes = [size & 0x7F]
    size >>= 7
    while size:
        size_bytes.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes([tag, *reversed(size_bytes)]) + body


def _esds(audio: AudioConfig) -> bytes:
    # ISO/IEC 14496-14 §5.6 + 14496-1 §7.2.6.5/6/7: ES_Descriptor > DecoderConfigDescriptor
    # (objectTypeIndication 0x40 = Audio ISO/IEC 14496-3, streamType 5 = audio) >
    # DecoderSpecificInfo (the AudioSpecificConfig), then SLConfigDescriptor predefined = 2.
    dcd = _descriptor(
        0x04,
        struct.pack(">BB", 0x40, (0x05 << 2) | 1),
        (0).to_bytes(3, "big"),  # bufferSizeDB
        struct.pack(">II", 0, 0),  # maxBitrate, avgBitrate unknown
        _descriptor(0x05, audio.asc),
    )
    es = _descriptor(0x03, struct.pack(">HB", 0, 0), dcd, _descriptor(0x06, b"\x02"))
    return full_box(b"esds", 0, 0, es)


def _mp4a(audio: AudioConfig) -> bytes:
    # §8.5.2.2 AudioSampleEntry (version 0); samplerate is 16.16, 0 when it does not fit.
    rate_field = audio.sample_rate << 16 if audio.sample_rate <= 0xFFFF else 0
    return box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),  # reserved
        struct.pack(">HHHH", min(audio.channels, 0xFFFF), 16, 0, 0),
        struct.pack(">I", rate_field),
        _esds(audio),
    )


def _trak(track_id: int, media: VideoConfig | AudioConfig) -> bytes:
    if isinstance(media, VideoConfig):
        tkhd = _tkhd(track_id, audio=False, width=media.width, height=media.height)
        timescale = VIDEO_TIMESCALE
        handler, name = b"vide", b"Hearth video"
        media_header = full_box(b"vmhd", 0, 1, bytes(8))  # §12.1.2, flags 1 by definition
        entry = _avc1(media)
    else:
        if media.sample_rate <= 0:
            raise Fmp4Error(f"audio sample rate {media.sample_rate} must be positive")
        tkhd = _tkhd(track_id, audio=True)
        timescale = media.sample_rate
        handler, name = b"soun", b"Hearth audio"
        media_header = full_box(b"smhd", 0, 0, bytes(4))  # §12.2.2
        entry = _mp4a(media)
    minf = box(b"minf", media_header, _dinf(), _stbl(entry))
    return box(b"trak", tkhd, box(b"mdia", _mdhd(timescale), _hdlr(handler, name), minf))


def _trex(track_id: int) -> bytes:
    # §8.8.3: defaults are unused because every trun carries per-sample values.
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))


def init_segment(video: VideoConfig | None, audio: AudioConfig | None) -> bytes:
    """Build a CMAF initialization segment: ``ftyp`` + ``moov`` (with ``mvex``).

    Args:
        video: H.264 configuration (track 1, timescale 90 kHz), or None.
        audio: AAC configuration (track 2, timescale = sample rate), or None.

    Returns:
        The init segment bytes (the ``EXT-X-MAP`` resource).

    Raises:
        Fmp4Error: if both configs are None or a value does not fit its field.
    """
    if video is None and audio is None:
        raise Fmp4Error("an init segment needs at least one track")
    traks: list[bytes] = []
    trexs: list[bytes] = []
    if video is not None:
        traks.append(_trak(VIDEO_TRACK_ID, video))
        trexs.append(_trex(VIDEO_TRACK_ID))
    if audio is not None:
        traks.append(_trak(AUDIO_TRACK_ID, audio))
        trexs.append(_trex(AUDIO_TRACK_ID))
    moov = box(b"moov", _mvhd(AUDIO_TRACK_ID + 1), *traks, box(b"mvex", *trexs))
    return _ftyp() + moov


# --- media fragments ------------------------------------------------------------------------


def _trun_parts(run: TrackRun) -> tuple[bytes, bytes]:
    """The trun box split around its data_offset field: (header before, sample table after)."""
    samples = run.samples
    n = len(samples)
    table = bytearray(16 * n)
    pack_into = struct.Struct(">IIIi").pack_into
    try:
        for i, s in enumerate(samples):
            pack_into(
                table,
                16 * i,
                s.duration,
                len(s.data),
                SAMPLE_FLAGS_SYNC if s.keyframe else SAMPLE_FLAGS_NON_SYNC,
                s.composition_offset,
            )
    except struct.error as exc:
        raise Fmp4Error(f"track {run.track_id}: sample value out of range: {exc}") from None
    size = 8 + 4 + 4 + 4 + len(table)  # header, version/flags, sample_count, data_offset
    # §8.8.8 TrackRunBox version 1: signed composition offsets (B-frames before their I/P).
    header = struct.pack(">I4sII", size, b"trun", (1 << 24) | _TRUN_FLAGS, n)
    return header, bytes(table)


def fragment(sequence_number: int, tracks: Sequence[TrackRun]) -> bytes:
    """Build one CMAF fragment: ``moof`` (mfhd + one traf per track) followed by one ``mdat``.

    Each ``traf`` has ``tfhd`` with default-base-is-moof (§8.8.7), ``tfdt`` version 1 with a
    64-bit baseMediaDecodeTime (§8.8.12) and a version 1 ``trun`` (§8.8.8) carrying per-sample
    duration, size, flags and signed composition offset, and a data_offset pointing into the
    mdat, where the tracks' sample data follow each other in ``tracks`` order.

    Args:
        sequence_number: the mfhd sequence number (§8.8.5), strictly increasing per stream.
        tracks: one run per track present in the fragment, each with at least one sample.

    Returns:
        ``moof`` + ``mdat`` bytes.

    Raises:
        Fmp4Error: if there are no tracks, a run has no samples, or a value does not fit.
    """
    if not tracks:
        raise Fmp4Error("a fragment needs at least one track run")
    if not 0 <= sequence_number <= 0xFFFF_FFFF:
        raise Fmp4Error(f"sequence number {sequence_number} does not fit 32 bits")
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
    # (traf prefix incl. trun header, sample table, the samples' data, its size): the data
    # are copied once, into the fragment, not joined per track first.
    pieces: list[tuple[bytes, bytes, list[bytes], int]] = []
    for run in tracks:
        if not run.samples:
            raise Fmp4Error(f"track {run.track_id} run has no samples")
        if not 0 <= run.base_media_decode_time < 1 << 64:
            raise Fmp4Error(f"baseMediaDecodeTime {run.base_media_decode_time} out of range")
        tfhd = full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", run.track_id))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_media_decode_time))
        trun_header, table = _trun_parts(run)
        traf_size = 8 + len(tfhd) + len(tfdt) + len(trun_header) + 4 + len(table)
        prefix = struct.pack(">I4s", traf_size, b"traf") + tfhd + tfdt + trun_header
        data = [s.data for s in run.samples]
        pieces.append((prefix, table, data, sum(map(len, data))))
    moof_size = 8 + len(mfhd) + sum(len(p) + 4 + len(t) for p, t, _, _ in pieces)
    mdat_size = 8 + sum(size for _, _, _, size in pieces)
    if moof_size + mdat_size > MAX_BOX_SIZE:
        raise Fmp4Error(f"fragment of {moof_size + mdat_size} bytes is too large")
    out = [struct.pack(">I4s", moof_size, b"moof"), mfhd]
    # data_offset is relative to the first byte of the moof (default-base-is-moof).
    offset = moof_size + 8
    for prefix, table, _, size in pieces:
        out += [prefix, struct.pack(">i", offset), table]
        offset += size
    out.append(struct.pack(">I4s", mdat_size, b"mdat"))
    for _, _, data, _ in pieces:
        out += data
    return b"".join(out)
