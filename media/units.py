"""The one internal media currency: codec configs and media units.

Ingest turns FLV tags into :class:`MediaUnit` values; the HLS segmenter, recorder, thumbnailer
and WebRTC tracks read them. Nothing downstream of ingest knows RTMP.

Timestamps are integers on a 90 kHz clock (:data:`CLOCK_RATE`, the MPEG convention, so WebRTC
and MPEG-TS need no rescaling) on a monotonic 64-bit timeline that starts near 0 for each
stream and never goes backwards, even across publisher reconnects. Ingest normalizes RTMP's
32-bit millisecond timestamps (wrap-around, jumps, resets after reconnect) before units are
built.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

CLOCK_RATE = 90_000
"""Ticks per second of every :class:`MediaUnit` timestamp."""


class TrackKind(enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """H.264 decoder configuration, taken from the AVC sequence header.

    Attributes:
        avcc: the AVCDecoderConfigurationRecord exactly as received (ISO/IEC 14496-15 §5.3.3.1);
            it becomes the fMP4 ``avcC`` box payload unchanged.
        sps: sequence parameter set NAL units (without length prefix or start code).
        pps: picture parameter set NAL units.
        nal_length_size: bytes in each NALU length prefix of :attr:`MediaUnit.data` (1, 2 or 4).
        width, height: luma size in pixels after cropping, from the first SPS.
        profile_idc, level_idc: from the first SPS, e.g. 100 and 31 → ``avc1.64001f``.
        constraint_flags: the byte between profile and level in the SPS.
    """

    avcc: bytes
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    nal_length_size: int
    width: int
    height: int
    profile_idc: int
    level_idc: int
    constraint_flags: int
    codec: str = "h264"

    @property
    def codec_string(self) -> str:
        """RFC 6381 codecs parameter, e.g. ``avc1.64001f``."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """AAC decoder configuration, taken from the AAC sequence header.

    Attributes:
        asc: the AudioSpecificConfig as received (ISO/IEC 14496-3 §1.6.2.1); becomes the
            fMP4 ``esds`` DecoderSpecificInfo unchanged.
        object_type: audio object type (2 = AAC-LC).
        sample_rate: sampling frequency in Hz.
        channels: channel count (channelConfiguration).
        samples_per_frame: 1024 for AAC-LC (960 for the rare short-frame variant).
    """

    asc: bytes
    object_type: int
    sample_rate: int
    channels: int
    samples_per_frame: int = 1024
    codec: str = "aac"

    @property
    def codec_string(self) -> str:
        """RFC 6381 codecs parameter, e.g. ``mp4a.40.2``."""
        return f"mp4a.40.{self.object_type}"


@dataclass(frozen=True, slots=True)
class MediaUnit:
    """One access unit: a coded video picture or one AAC frame.

    Attributes:
        kind: video or audio.
        dts: decode timestamp, :data:`CLOCK_RATE` ticks on the stream's monotonic timeline.
        pts: presentation timestamp (``dts + composition offset``); equals ``dts`` for audio.
        keyframe: True for an IDR picture (video); always True for audio.
        data: video: NAL units each prefixed by a big-endian length of
            ``VideoConfig.nal_length_size`` bytes (AVCC framing, as in FLV and fMP4);
            audio: one raw AAC frame (no ADTS header).
        arrival: wall-clock time (``time.time()``) at which the unit arrived at the server;
            used for ``EXT-X-PROGRAM-DATE-TIME`` and latency measurement, never for timing.
    """

    kind: TrackKind
    dts: int
    pts: int
    keyframe: bool
    data: bytes
    arrival: float

    @property
    def composition_offset(self) -> int:
        return self.pts - self.dts


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """The codec configuration in force from this point of a stream on.

    The one type for it end to end: the depacketizer emits it when a sequence header arrives,
    the hub primes new readers with it, the HLS muxer and WebRTC tracks consume it.
    """

    video: VideoConfig | None
    audio: AudioConfig | None
