"""FLV audio/video tag *bodies* (the payload of RTMP audio/video messages).

References: Adobe FLV spec v10.1 Annex E.4.2/E.4.3 (legacy ``AUDIODATA``/``VIDEODATA`` with
``AVCVIDEOPACKET``/``AACAUDIODATA``) and Veovera Enhanced RTMP v1/v2 (``IsExHeader``,
FourCC codec signalling, ``CodedFramesX``, ``ModEx``, multitrack).

Parsing names the codec for *every* well-formed body, so the application can refuse
unsupported codecs with a reason; only malformed bodies raise :class:`FlvParseError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import RemoteProtocolError

__all__ = [
    "AudioPacketType",
    "AudioTag",
    "FlvParseError",
    "VideoFrameType",
    "VideoPacketType",
    "VideoTag",
    "parse_audio_tag",
    "parse_video_tag",
]


class FlvParseError(RemoteProtocolError):
    """A malformed FLV audio/video tag body."""


class VideoFrameType(enum.IntEnum):
    """FLV ``FrameType`` (E.4.3.1)."""

    KEY_FRAME = 1
    INTER_FRAME = 2
    DISPOSABLE_INTER_FRAME = 3
    GENERATED_KEY_FRAME = 4
    COMMAND = 5  # "video info/command frame": no picture data


class VideoPacketType(enum.IntEnum):
    """Packet types: legacy ``AVCPacketType`` (0-2) and Enhanced RTMP ``VideoPacketType``."""

    SEQUENCE_HEADER = 0  # AVC sequence header / E-RTMP SequenceStart (decoder config)
    CODED_FRAMES = 1  # AVC NALU / E-RTMP CodedFrames (with composition time)
    NALU = 1
    END_OF_SEQUENCE = 2  # AVC end of sequence / E-RTMP SequenceEnd
    CODED_FRAMES_X = 3  # E-RTMP: coded frames, composition time implicitly 0
    METADATA = 4  # E-RTMP: AMF-encoded metadata (e.g. colorInfo)
    MPEG2TS_SEQUENCE_START = 5
    MULTITRACK = 6  # E-RTMP v2
    MOD_EX = 7  # E-RTMP v2 modifier extension (consumed while parsing, never reported)


class AudioPacketType(enum.IntEnum):
    """Enhanced RTMP v2 ``AudioPacketType``."""

    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    MULTICHANNEL_CONFIG = 4
    MULTITRACK = 5
    MOD_EX = 7


# FLV CodecID (E.4.3.1); 12 is the widespread (non-Adobe) HEVC extension.
_LEGACY_VIDEO_CODECS = {
    2: "h263",
    3: "screen",
    4: "vp6",
    5: "vp6a",
    6: "screen2",
    7: "h264",
    12: "hevc",
}
_AVC_CODEC_ID = 7

_VIDEO_FOURCCS = {
    b"avc1": "h264",
    b"hvc1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
    b"vp08": "vp8",
}
# E-RTMP: only these FourCCs carry an SI24 composition time in CodedFrames.
_FOURCCS_WITH_CTS = frozenset({b"avc1", b"hvc1"})

# FLV SoundFormat (E.4.2.1).
_LEGACY_AUDIO_CODECS = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm_le",
    4: "nellymoser_16k",
    5: "nellymoser_8k",
    6: "nellymoser",
    7: "g711_alaw",
    8: "g711_mulaw",
    10: "aac",
    11: "speex",
    14: "mp3_8k",
    15: "native",
}
_SOUND_FORMAT_AAC = 10
_SOUND_FORMAT_EX_HEADER = 9
_SOUND_RATES = (5512, 11025, 22050, 44100)

_AUDIO_FOURCCS = {
    b"Opus": "opus",
    b"fLaC": "flac",
    b"ac-3": "ac3",
    b"ec-3": "eac3",
    b".mp3": "mp3",
    b"mp4a": "aac",
}

_MANY_TRACKS_MANY_CODECS = 2  # AvMultitrackType


@dataclass(frozen=True, slots=True)
class VideoTag:
    """A parsed video tag body.

    Attributes:
        frame_type: FLV FrameType (see :class:`VideoFrameType`).
        codec: ``"h264"``, ``"hevc"``, ``"av1"``, ``"vp9"``, ``"h263"``…; an unknown FourCC is
            returned verbatim, an unknown legacy id as ``"codec-N"``.
        packet_type: sequence header, coded frames, end of sequence, … For legacy codecs
            other than AVC (which have no packet type) this is ``CODED_FRAMES``.
        composition_time: signed 24-bit composition time offset in ms (0 when absent).
        data: what follows the headers (AVCDecoderConfigurationRecord, length-prefixed
            NAL units, codec config, …; for command frames the command byte).
        is_keyframe: a key frame carrying coded picture data (not a sequence header).
        enhanced: True when the Enhanced RTMP ``IsExHeader`` bit was set.
        fourcc: the E-RTMP FourCC as text, or ``None`` for legacy tags.
    """

    frame_type: int
    codec: str
    packet_type: VideoPacketType
    composition_time: int
    data: bytes
    is_keyframe: bool
    enhanced: bool = False
    fourcc: str | None = None


@dataclass(frozen=True, slots=True)
class AudioTag:
    """A parsed audio tag body.

    Attributes:
        sound_format: FLV SoundFormat (10 = AAC, 9 = Enhanced RTMP ExHeader, …).
        codec: ``"aac"``, ``"mp3"``, ``"opus"``, ``"flac"``, ``"ac3"``…
        aac_packet_type: for AAC, 0 = sequence header (AudioSpecificConfig), 1 = raw frame;
            ``None`` for other codecs.
        data: what follows the headers.
        sample_rate: the legacy SoundRate in Hz as signalled (AAC always signals 44100;
            the real rate is in the AudioSpecificConfig); ``None`` for enhanced tags.
        channels: 1 or 2 as signalled by SoundType; ``None`` for enhanced tags.
        sample_size: 8 or 16 bits as signalled; ``None`` for enhanced tags.
        audio_packet_type: the E-RTMP AudioPacketType, ``None`` for legacy tags.
        fourcc: the E-RTMP FourCC as text, or ``None``.
    """

    sound_format: int
    codec: str
    aac_packet_type: int | None
    data: bytes
    sample_rate: int | None = None
    channels: int | None = None
    sample_size: int | None = None
    audio_packet_type: int | None = None
    fourcc: str | None = None


def _si24(raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    return value - (1 << 24) if value & 0x800000 else value


class _Cursor:
    __slots__ = ("_body", "_kind", "pos")

    def __init__(self, body: bytes, kind: str) -> None:
        self._body = body
        self._kind = kind
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self._body):
            raise FlvParseError(
                f"{self._kind} tag body of {len(self._body)} bytes is truncated in {what}"
            )
        raw = self._body[self.pos : end]
        self.pos = end
        return raw

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> bytes:
        return bytes(self._body[self.pos :])

    def skip_mod_ex(self, packet_type: int, mod_ex: int) -> int:
        # E-RTMP v2 ModEx: modExDataSize = UI8 + 1 (UI16 + 1 when that is 256), the data,
        # then UB[4] modExType + UB[4] packetType; repeat while the packet type is ModEx.
        while packet_type == mod_ex:
            size = self.byte("ModEx size") + 1
            if size == 256:
                size = int.from_bytes(self.take(2, "ModEx size"), "big") + 1
            self.take(size, "ModEx data")
            packet_type = self.byte("ModEx packet type") & 0x0F
        return packet_type


def _fourcc_text(raw: bytes) -> str:
    return raw.decode("latin-1")


def parse_video_tag(body: bytes) -> VideoTag:
    """Parse the body of an RTMP video message.

    Raises:
        FlvParseError: if the body is empty or truncated.
    """
    cur = _Cursor(body, "video")
    first = cur.byte("header")
    if first & 0x80:
        return _parse_ex_video(cur, first)
    frame_type = first >> 4
    codec_id = first & 0x0F
    codec = _LEGACY_VIDEO_CODECS.get(codec_id, f"codec-{codec_id}")
    if frame_type == VideoFrameType.COMMAND:
        return VideoTag(frame_type, codec, VideoPacketType.CODED_FRAMES, 0, cur.rest(), False)
    if codec_id in (_AVC_CODEC_ID, 12):
        # E.4.3.1 AVCVIDEOPACKET: AVCPacketType (UI8) + CompositionTime (SI24).
        packet_type = cur.byte("AVCPacketType")
        composition_time = _si24(cur.take(3, "CompositionTime"))
        if packet_type > VideoPacketType.END_OF_SEQUENCE:
            raise FlvParseError(f"invalid AVCPacketType {packet_type}")
        ptype = VideoPacketType(packet_type)
        is_key = frame_type == VideoFrameType.KEY_FRAME and ptype == VideoPacketType.NALU
        return VideoTag(frame_type, codec, ptype, composition_time, cur.rest(), is_key)
    is_key = frame_type == VideoFrameType.KEY_FRAME
    return VideoTag(frame_type, codec, VideoPacketType.CODED_FRAMES, 0, cur.rest(), is_key)


def _parse_ex_video(cur: _Cursor, first: int) -> VideoTag:
    # E-RTMP ExVideoTagHeader: IsExHeader UB[1], FrameType UB[3], PacketType UB[4].
    frame_type = (first >> 4) & 0x07
    packet_type = cur.skip_mod_ex(first & 0x0F, VideoPacketType.MOD_EX)
    fourcc: bytes | None = None
    reported = packet_type
    if packet_type == VideoPacketType.MULTITRACK:
        multitrack = cur.byte("multitrack type")
        packet_type = multitrack & 0x0F
        if multitrack >> 4 != _MANY_TRACKS_MANY_CODECS:
            fourcc = cur.take(4, "FourCC")
        codec = _VIDEO_FOURCCS.get(fourcc, _fourcc_text(fourcc)) if fourcc else "multitrack"
        return VideoTag(
            frame_type,
            codec,
            VideoPacketType.MULTITRACK,
            0,
            cur.rest(),
            False,
            enhanced=True,
            fourcc=_fourcc_text(fourcc) if fourcc else None,
        )
    fourcc = cur.take(4, "FourCC")
    codec = _VIDEO_FOURCCS.get(fourcc, _fourcc_text(fourcc))
    try:
        ptype = VideoPacketType(reported)
    except ValueError as exc:
        raise FlvParseError(f"reserved enhanced VideoPacketType {reported}") from exc
    composition_time = 0
    if frame_type == VideoFrameType.COMMAND and ptype != VideoPacketType.METADATA:
        # E-RTMP: a command frame carries one VideoCommand byte (returned as ``data``)
        # and no video body.
        if not cur.rest():
            raise FlvParseError("video command frame has no VideoCommand byte")
    elif ptype == VideoPacketType.CODED_FRAMES and fourcc in _FOURCCS_WITH_CTS:
        composition_time = _si24(cur.take(3, "CompositionTime"))
    is_key = frame_type == VideoFrameType.KEY_FRAME and ptype in (
        VideoPacketType.CODED_FRAMES,
        VideoPacketType.CODED_FRAMES_X,
    )
    return VideoTag(
        frame_type,
        codec,
        ptype,
        composition_time,
        cur.rest(),
        is_key,
        enhanced=True,
        fourcc=_fourcc_text(fourcc),
    )


def parse_audio_tag(body: bytes) -> AudioTag:
    """Parse the body of an RTMP audio message.

    Raises:
        FlvParseError: if the body is empty or truncated.
    """
    cur = _Cursor(body, "audio")
    first = cur.byte("header")
    sound_format = first >> 4
    if sound_format == _SOUND_FORMAT_EX_HEADER:
        return _parse_ex_audio(cur, first)
    codec = _LEGACY_AUDIO_CODECS.get(sound_format, f"codec-{sound_format}")
    sample_rate = _SOUND_RATES[(first >> 2) & 0x03]
    sample_size = 16 if first & 0x02 else 8
    channels = 2 if first & 0x01 else 1
    aac_packet_type: int | None = None
    if sound_format == _SOUND_FORMAT_AAC:
        # E.4.2.1 AACAUDIODATA: AACPacketType (0 = AudioSpecificConfig, 1 = raw).
        aac_packet_type = cur.byte("AACPacketType")
        if aac_packet_type > 1:
            raise FlvParseError(f"invalid AACPacketType {aac_packet_type}")
    return AudioTag(
        sound_format,
        codec,
        aac_packet_type,
        cur.rest(),
        sample_rate=sample_rate,
        channels=channels,
        sample_size=sample_size,
    )


def _parse_ex_audio(cur: _Cursor, first: int) -> AudioTag:
    # E-RTMP ExAudioTagHeader: SoundFormat 9, then UB[4] AudioPacketType and a FourCC.
    packet_type = cur.skip_mod_ex(first & 0x0F, AudioPacketType.MOD_EX)
    fourcc: bytes | None = None
    if packet_type == AudioPacketType.MULTITRACK:
        multitrack = cur.byte("multitrack type")
        if multitrack >> 4 != _MANY_TRACKS_MANY_CODECS:
            fourcc = cur.take(4, "FourCC")
    else:
        fourcc = cur.take(4, "FourCC")
    codec = _AUDIO_FOURCCS.get(fourcc, _fourcc_text(fourcc)) if fourcc else "multitrack"
    aac_packet_type: int | None = None
    if fourcc == b"mp4a" and packet_type in (
        AudioPacketType.SEQUENCE_START,
        AudioPacketType.CODED_FRAMES,
    ):
        aac_packet_type = packet_type
    return AudioTag(
        _SOUND_FORMAT_EX_HEADER,
        codec,
        aac_packet_type,
        cur.rest(),
        audio_packet_type=packet_type,
        fourcc=_fourcc_text(fourcc) if fourcc else None,
    )
