"""FLV audio/video tag bodies (as carried by RTMP) → codec configs and :class:`MediaUnit`s.

This is where RTMP-isms end: sequence headers become :class:`VideoConfig`/:class:`AudioConfig`,
coded frames become units on the stream's monotonic timeline (see :mod:`media.timeline`).
Hearth packages H.264 video and AAC audio; other codecs raise :class:`UnsupportedCodecError`
with a reason fit for the operator. Malformed frames raise :class:`MalformedMediaError`; the
caller drops and counts them and disconnects a publisher that keeps sending them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from media.aac import AacError, parse_asc
from media.h264 import H264Error, contains_idr, parse_avcc, parse_sps, playback_problem
from media.rtmp.errors import RtmpError
from media.rtmp.flv import VideoPacketType, parse_audio_tag, parse_video_tag
from media.timeline import Timeline
from media.units import CLOCK_RATE, AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig

_TICKS_PER_MS = CLOCK_RATE // 1000
_CODED = (VideoPacketType.CODED_FRAMES, VideoPacketType.CODED_FRAMES_X)
_AVC_CODEC_ID = 7  # FLV CodecID (E.4.3.1)
_COMMAND = 5  # FLV FrameType "video info/command frame"
_SOUND_FORMAT_AAC = 10  # FLV SoundFormat (E.4.2.1)
MAX_COMPOSITION_MS = 10_000
"""A composition offset beyond ±10 s is not B-frame reordering; it is a broken encoder."""


class MediaError(ValueError):
    """Base for media the appliance cannot package."""


class UnsupportedCodecError(MediaError):
    """A track uses a codec Hearth does not package; the message is for the operator."""

    def __init__(self, kind: TrackKind, codec: str) -> None:
        advice = (
            "set the encoder to H.264 (x264, NVENC H.264, QuickSync H.264…)"
            if kind is TrackKind.VIDEO
            else "set the audio encoder to AAC"
        )
        super().__init__(
            f"unsupported {kind.value} codec {codec!r}: Hearth packages H.264 video and AAC "
            f"audio; {advice}"
        )
        self.kind = kind
        self.codec = codec


class UnsupportedProfileError(UnsupportedCodecError):
    """H.264 that browsers and Apple devices cannot decode (High 10, 4:2:2, 4:4:4...)."""

    def __init__(self, problem: str) -> None:
        MediaError.__init__(
            self,
            f"unsupported video: {problem}; viewers' browsers and phones cannot decode it. "
            "In OBS set Output → Profile: high (or main) and Settings → Advanced → "
            "Color Format: NV12 (8-bit 4:2:0)",
        )
        self.kind = TrackKind.VIDEO
        self.codec = f"h264 ({problem})"
        self.problem = problem


class MalformedMediaError(MediaError):
    """A frame or sequence header could not be parsed."""




Output = MediaUnit | CodecConfig


class FlvDepacketizer:
    """Converts one stream's FLV tag bodies, across publisher sessions, into units."""

    def __init__(self, timeline: Timeline | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.timeline = timeline or Timeline()
        self._clock = clock
        self.video: VideoConfig | None = None
        self.audio: AudioConfig | None = None
        # Each track's last DTS (plain attributes: a dict keyed by TrackKind hashes the enum
        # member in Python code, twice per unit).
        self._last_video_dts: int | None = None
        self._last_audio_dts: int | None = None
        self.frames_before_config = 0

    def new_session(self, floor: int = -1, config: CodecConfig | None = None) -> None:
        """A new publisher connection: expect fresh sequence headers and a restarted clock.

        Args:
            floor: the stream's highest timestamp so far (another ingest may have fed it).
            config: the codec configuration the stream has now (another ingest may have
                changed it), so an unchanged sequence header is recognised as such.
        """
        self.timeline.new_session(floor)
        if config is not None:
            self.video, self.audio = config.video, config.audio

    def _dts(self, timestamp_ms: int, last: int | None) -> int:
        """The DTS of a unit of a track whose last DTS was ``last`` (None: none yet)."""
        dts = self.timeline.map(timestamp_ms)
        if last is not None and dts <= last:
            dts = last + 1  # keep each track strictly increasing (bad encoders repeat stamps)
        return dts

    def video_tag(self, timestamp_ms: int, body: bytes) -> list[Output]:
        if len(body) > 5 and body[0] & 0x8F == _AVC_CODEC_ID and body[0] >> 4 != _COMMAND \
                and body[1] == VideoPacketType.NALU:
            # The common case, read in place (what parse_video_tag returns for it): a legacy
            # AVCVIDEOPACKET NALU tag, FLV spec E.4.3.1, with its SI24 CompositionTime.
            composition = (body[2] << 16) | (body[3] << 8) | body[4]
            if composition & 0x800000:
                composition -= 1 << 24
            return self._video_frame(timestamp_ms, composition, body[5:])
        try:
            tag = parse_video_tag(body)
        except (RtmpError, ValueError) as exc:
            raise MalformedMediaError(f"bad video tag: {exc}") from None
        if tag.codec != "h264":
            raise UnsupportedCodecError(TrackKind.VIDEO, tag.codec)
        if tag.packet_type is VideoPacketType.SEQUENCE_HEADER:
            try:
                config = parse_avcc(tag.data)
                problem = playback_problem(parse_sps(config.sps[0]))
            except H264Error as exc:
                raise MalformedMediaError(f"bad AVC sequence header: {exc}") from None
            if problem is not None:
                raise UnsupportedProfileError(problem)
            if config == self.video:
                return []
            self.video = config
            return [CodecConfig(self.video, self.audio)]
        if tag.packet_type not in _CODED:
            return []  # end of sequence, metadata and other enhanced packet types
        return self._video_frame(timestamp_ms, tag.composition_time, tag.data)

    def _video_frame(self, timestamp_ms: int, composition: int, data: bytes) -> list[Output]:
        if not data:
            return []
        if self.video is None:
            self.frames_before_config += 1
            return []
        if abs(composition) > MAX_COMPOSITION_MS:
            raise MalformedMediaError(f"composition time {composition} ms out of range")
        try:
            # Walks (and so validates) the NALU framing. FLV's frame type is advisory: the
            # IDR NAL unit decides, since segments may only start at a real IDR.
            keyframe = contains_idr(data, self.video.nal_length_size)
        except H264Error as exc:
            raise MalformedMediaError(f"bad H.264 frame: {exc}") from None
        dts = self._last_video_dts = self._dts(timestamp_ms, self._last_video_dts)
        return [
            MediaUnit(
                kind=TrackKind.VIDEO,
                dts=dts,
                pts=dts + composition * _TICKS_PER_MS,
                keyframe=keyframe,
                data=data,
                arrival=self._clock(),
            )
        ]

    def audio_tag(self, timestamp_ms: int, body: bytes) -> list[Output]:
        if len(body) > 2 and body[0] >> 4 == _SOUND_FORMAT_AAC and body[1] == 1:
            # The common case, read in place: a legacy AACAUDIODATA raw frame (E.4.2.2).
            return self._audio_frame(timestamp_ms, body[2:])
        try:
            tag = parse_audio_tag(body)
        except (RtmpError, ValueError) as exc:
            raise MalformedMediaError(f"bad audio tag: {exc}") from None
        if tag.codec != "aac":
            raise UnsupportedCodecError(TrackKind.AUDIO, tag.codec)
        if tag.aac_packet_type == 0:
            try:
                config = parse_asc(tag.data)
            except AacError as exc:
                raise MalformedMediaError(f"bad AudioSpecificConfig: {exc}") from None
            if config == self.audio:
                return []
            self.audio = config
            return [CodecConfig(self.video, self.audio)]
        if tag.aac_packet_type != 1:
            return []  # E-RTMP SequenceEnd and other non-frame packets
        return self._audio_frame(timestamp_ms, tag.data)

    def _audio_frame(self, timestamp_ms: int, data: bytes) -> list[Output]:
        if not data:
            return []
        if self.audio is None:
            self.frames_before_config += 1
            return []
        dts = self._last_audio_dts = self._dts(timestamp_ms, self._last_audio_dts)
        return [
            MediaUnit(
                kind=TrackKind.AUDIO, dts=dts, pts=dts, keyframe=True, data=data,
                arrival=self._clock(),
            )
        ]
