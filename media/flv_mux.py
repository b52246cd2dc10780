"""Media units → FLV tag bodies (the reverse of :mod:`media.depacketizer`), for RTMP out.

Stream copy, no re-encode: a :class:`~media.units.MediaUnit` already holds AVCC-framed H.264
or a raw AAC frame, so a tag body is a few header bytes in front of the unit's data (Adobe
FLV spec v10.1 §E.4.3.1 VIDEODATA/AVCVIDEOPACKET, §E.4.2.1 AUDIODATA/AACAUDIODATA). The
sequence headers come from :class:`~media.units.CodecConfig`: the ``avcC`` record and the
AudioSpecificConfig exactly as ingest received them.

Timestamps: RTMP carries 32-bit milliseconds. :class:`FlvTagMuxer` starts each connection's
timeline at 0 from the first unit it sends (a target sees a fresh stream after every
reconnect) and keeps both tracks on the same base.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.units import CLOCK_RATE, AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig

__all__ = ["FlvTag", "FlvTagMuxer", "aac_frame", "aac_sequence_header", "avc_frame",
           "avc_sequence_header"]

_TICKS_PER_MS = CLOCK_RATE // 1000

_AVC_KEY = 0x17  # frame type 1 (key) << 4 | codec id 7 (AVC)
_AVC_INTER = 0x27  # frame type 2 (inter) << 4 | codec id 7
_AAC_FLAGS = 0xAF  # sound format 10 (AAC), 44 kHz, 16-bit, stereo: §E.4.2.1 says always so


def avc_sequence_header(config: VideoConfig) -> bytes:
    """AVCPacketType 0: the AVCDecoderConfigurationRecord."""
    return bytes((_AVC_KEY, 0, 0, 0, 0)) + config.avcc


def avc_frame(unit: MediaUnit) -> bytes:
    """AVCPacketType 1 with the composition time offset (SI24, ms)."""
    cto = (unit.pts - unit.dts) // _TICKS_PER_MS
    cto = max(-0x800000, min(0x7FFFFF, cto)) & 0xFFFFFF
    head = bytes((_AVC_KEY if unit.keyframe else _AVC_INTER, 1)) + cto.to_bytes(3, "big")
    return head + unit.data


def aac_sequence_header(config: AudioConfig) -> bytes:
    """AACPacketType 0: the AudioSpecificConfig."""
    return bytes((_AAC_FLAGS, 0)) + config.asc


def aac_frame(unit: MediaUnit) -> bytes:
    """AACPacketType 1: one raw AAC frame."""
    return bytes((_AAC_FLAGS, 1)) + unit.data


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One tag to send: ``video`` (else audio), timestamp in ms, the tag body."""

    video: bool
    timestamp: int
    body: bytes


class FlvTagMuxer:
    """Turns a reader's items into FLV tags for one connection.

    Only H.264 and AAC travel in classic FLV; a track in another codec (Opus from a WebRTC
    ingest, say) is left out and counted in :attr:`skipped`. Sequence headers are emitted
    when the config first arrives and whenever it changes (an encoder restart).
    """

    def __init__(self) -> None:
        self._video: VideoConfig | None = None
        self._audio: AudioConfig | None = None
        self._base: int | None = None
        self._last_ms = 0
        self.skipped = 0
        """Units not sent because their codec cannot travel in FLV."""

    def metadata(self) -> dict[str, float | str | bool]:
        """``onMetaData`` values for the current config (what platforms show as stream info)."""
        meta: dict[str, float | str | bool] = {"encoder": "Hearth (stream copy)"}
        if self._video is not None:
            meta.update(width=float(self._video.width), height=float(self._video.height),
                        videocodecid=7.0)
        if self._audio is not None:
            meta.update(audiocodecid=10.0, audiosamplerate=float(self._audio.sample_rate),
                        audiochannels=float(self._audio.channels),
                        stereo=self._audio.channels >= 2)
        return meta

    def config(self, config: CodecConfig) -> list[FlvTag]:
        """Sequence headers for whatever changed in ``config`` (H.264/AAC only)."""
        tags: list[FlvTag] = []
        video = config.video if config.video is not None and config.video.codec == "h264" \
            else None
        audio = config.audio if config.audio is not None and config.audio.codec == "aac" \
            else None
        if video is not None and video != self._video:
            tags.append(FlvTag(True, self._last_ms, avc_sequence_header(video)))
        if audio is not None and audio != self._audio:
            tags.append(FlvTag(False, self._last_ms, aac_sequence_header(audio)))
        self._video, self._audio = video, audio
        return tags

    def unit(self, unit: MediaUnit) -> FlvTag | None:
        """The tag for one unit, or None if its track's codec is not H.264/AAC."""
        is_video = unit.kind is TrackKind.VIDEO
        if (self._video if is_video else self._audio) is None:
            self.skipped += 1
            return None
        if self._base is None:
            self._base = unit.dts
        ms = max(0, (unit.dts - self._base) // _TICKS_PER_MS) & 0xFFFFFFFF
        self._last_ms = ms
        return FlvTag(is_video, ms, avc_frame(unit) if is_video else aac_frame(unit))
