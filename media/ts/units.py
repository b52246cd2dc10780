"""PES frames from :mod:`media.ts.demux` → codec configs and :class:`MediaUnit`s.

This is where MPEG-TS-isms end, as :mod:`media.depacketizer` is for FLV:

* H.264 (``stream_type`` 0x1B) arrives as Annex-B byte streams (H.264 Annex B) with SPS/PPS
  in band; they become a :class:`VideoConfig` (an avcC built from them) whenever they change,
  and the other NAL units become AVCC-framed units (4-byte lengths; access unit delimiters,
  filler data and parameter sets are left out: the avcC carries those).
* AAC in ADTS (``stream_type`` 0x0F, ISO/IEC 13818-7 §6.2) becomes an
  :class:`AudioConfig` from the ADTS header and one unit per raw frame; a PES holding several
  frames gives them consecutive timestamps from the PES's PTS.
* Timestamps: 33-bit 90 kHz PTS/DTS (§2.4.3.7) unwrapped onto one 64-bit clock for the session
  (audio and video share it, so A/V sync is kept); the broadcast moves that clock onto its own
  monotonic timeline (``LiveBroadcast.publish_units``, media.timeline.SessionRebaser), which
  also turns a jump (a discontinuity) into a rebase. PCR is not needed for that and ignored.

Other codecs raise :class:`~media.depacketizer.UnsupportedCodecError`, damaged frames
:class:`~media.depacketizer.MalformedMediaError`; both are :class:`MediaError`, the only
errors raised here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from media.aac import SAMPLING_FREQUENCIES, AacError, build_asc, parse_asc
from media.depacketizer import (
    MAX_COMPOSITION_MS,
    MalformedMediaError,
    UnsupportedCodecError,
    UnsupportedProfileError,
)
from media.h264 import H264Error, config_from_parameter_sets, split_access_unit
from media.ts.demux import (
    AUDIO_STREAM_TYPES,
    VIDEO_STREAM_TYPES,
    ElementaryStream,
    PesFrame,
    ProgramChanged,
)
from media.units import CLOCK_RATE, AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig

STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_AAC_ADTS = 0x0F
_WRAP = 1 << 33
_MAX_COMPOSITION = MAX_COMPOSITION_MS * (CLOCK_RATE // 1000)
MAX_HELD_UNITS = 300
"""Units held at the start until every track of the program has its config (a few seconds)."""
MAX_PARAMETER_SETS = 8
"""SPS or PPS NAL units kept from one access unit (an encoder sends one of each)."""

Output = MediaUnit | CodecConfig


class Unwrapper:
    """33-bit timestamps → one 64-bit clock, by the signed difference to the last value."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._ext = 0

    def __call__(self, ts: int) -> int:
        ts &= _WRAP - 1
        if self._last is None:
            self._ext = ts
        else:
            delta = (ts - self._last) % _WRAP
            if delta >= _WRAP // 2:
                delta -= _WRAP
            self._ext += delta
        self._last = ts
        return self._ext


class TsDepacketizer:
    """One publisher session's PES frames → units on the session's own 90 kHz clock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._unwrap = Unwrapper()
        self.video_pid: int | None = None
        self.audio_pid: int | None = None
        self.video: VideoConfig | None = None
        self.audio: AudioConfig | None = None
        self._sps: tuple[bytes, ...] = ()
        self._pps: tuple[bytes, ...] = ()
        self._adts_key: tuple[int, int, int] | None = None
        self._held: list[MediaUnit] | None = []  # None once the start is released
        self.frames_before_config = 0

    def program(self, event: ProgramChanged) -> None:
        """Choose the streams to package: the first H.264 and the first ADTS AAC.

        Raises:
            UnsupportedCodecError: if the program's video (or audio) is another codec.
        """
        self.video_pid = self._pick(event.streams, VIDEO_STREAM_TYPES, STREAM_TYPE_H264,
                                    TrackKind.VIDEO)
        self.audio_pid = self._pick(event.streams, AUDIO_STREAM_TYPES, STREAM_TYPE_AAC_ADTS,
                                    TrackKind.AUDIO)

    @staticmethod
    def _pick(streams: tuple[ElementaryStream, ...], kind_types: frozenset[int], wanted: int,
              kind: TrackKind) -> int | None:
        for s in streams:
            if s.stream_type == wanted:
                return s.pid
        for s in streams:
            if s.stream_type in kind_types:
                raise UnsupportedCodecError(kind, s.codec)
        return None

    def frame(self, frame: PesFrame) -> list[Output]:
        """Units (and a config, when it changed) from one PES frame of a chosen stream.

        At the start of a session units are held until every track the program lists has its
        config (a transport stream carries audio and video configs in band, not up front as
        RTMP's sequence headers), so packaging starts with both tracks and no discontinuity;
        after :data:`MAX_HELD_UNITS` a track that never configured is given up on.

        Raises:
            MalformedMediaError: a frame that cannot be packaged (drop and count it).
            UnsupportedCodecError: H.264 that browsers cannot decode (High 10, 4:2:2, ...).
        """
        if frame.pid == self.video_pid:
            out = self._video(frame)
        elif frame.pid == self.audio_pid:
            out = self._audio(frame)
        else:
            return []
        return out if self._held is None else self._hold(out)

    def _hold(self, out: list[Output]) -> list[Output]:
        assert self._held is not None
        self._held += [o for o in out if isinstance(o, MediaUnit)]
        complete = ((self.video_pid is None or self.video is not None)
                    and (self.audio_pid is None or self.audio is not None))
        if not complete and len(self._held) <= MAX_HELD_UNITS:
            return []
        held, self._held = self._held, None
        if self.video is None and self.audio is None:
            return list(held)
        return [CodecConfig(self.video, self.audio), *held]

    # ---- video -------------------------------------------------------------------------------

    def _video(self, frame: PesFrame) -> list[Output]:
        if frame.pts is None:
            raise MalformedMediaError("H.264 PES without a PTS")
        try:
            unit = split_access_unit(frame.data, max_parameter_sets=MAX_PARAMETER_SETS)
        except H264Error as exc:
            raise MalformedMediaError(f"H.264 PES: {exc}") from None
        out: list[Output] = []
        if (unit.sps and unit.sps != self._sps) or (unit.pps and unit.pps != self._pps):
            self._sps = unit.sps or self._sps
            self._pps = unit.pps or self._pps
            if self._sps and self._pps:
                config = self._video_config()
                if config != self.video:
                    self.video = config
                    out.append(CodecConfig(self.video, self.audio))
        if self.video is None:
            self.frames_before_config += 1
            return out
        if not unit.coded:
            return out
        pts = self._unwrap(frame.pts)
        dts = pts if frame.dts is None else pts - self._offset(frame.pts, frame.dts)
        out.append(MediaUnit(
            kind=TrackKind.VIDEO, dts=dts, pts=pts, keyframe=unit.keyframe,
            data=unit.sample(), arrival=self._clock(),
        ))
        return out

    @staticmethod
    def _offset(pts: int, dts: int) -> int:
        """``pts - dts`` (the composition offset) across a 33-bit wrap."""
        offset = (pts - dts) % _WRAP
        if offset >= _WRAP // 2:
            offset -= _WRAP
        if not 0 <= offset <= _MAX_COMPOSITION:
            raise MalformedMediaError(f"PTS − DTS of {offset} ticks is out of range")
        return offset

    def _video_config(self) -> VideoConfig:
        try:
            config, problem = config_from_parameter_sets(self._sps, self._pps)
        except H264Error as exc:
            self._sps = self._pps = ()
            raise MalformedMediaError(f"bad H.264 parameter sets: {exc}") from None
        if problem is not None:
            raise UnsupportedProfileError(problem)
        return config

    # ---- audio -------------------------------------------------------------------------------

    def _audio(self, frame: PesFrame) -> list[Output]:
        if frame.pts is None:
            raise MalformedMediaError("AAC PES without a PTS")
        data = frame.data
        out: list[Output] = []
        pos = 0
        index = 0
        base = self._unwrap(frame.pts)
        while pos < len(data):
            header, size, config = self._adts(data, pos)
            if config != self.audio:
                self.audio = config
                out.append(CodecConfig(self.video, self.audio))
            offset = index * config.samples_per_frame * CLOCK_RATE // config.sample_rate
            out.append(MediaUnit(
                kind=TrackKind.AUDIO, dts=base + offset, pts=base + offset, keyframe=True,
                data=data[pos + header:pos + size], arrival=self._clock(),
            ))
            pos += size
            index += 1
        return out

    def _adts(self, data: bytes, pos: int) -> tuple[int, int, AudioConfig]:
        """(header length, frame length, config) of the ADTS frame at ``pos``."""
        if len(data) - pos < 7:
            raise MalformedMediaError(f"truncated ADTS header ({len(data) - pos} bytes)")
        b = data[pos:pos + 7]
        if b[0] != 0xFF or b[1] & 0xF6 != 0xF0:
            raise MalformedMediaError("ADTS sync word missing (audio is not AAC in ADTS)")
        header = 7 if b[1] & 0x01 else 9
        size = ((b[3] & 0x03) << 11) | (b[4] << 3) | (b[5] >> 5)
        if size <= header or pos + size > len(data):
            raise MalformedMediaError(f"ADTS frame length {size} does not fit its PES")
        if b[6] & 0x03:
            raise MalformedMediaError("ADTS frames with several raw data blocks are not "
                                      "supported")
        index = (b[2] >> 2) & 0x0F
        if index >= len(SAMPLING_FREQUENCIES):
            raise MalformedMediaError(f"ADTS sampling_frequency_index {index} is reserved")
        object_type = ((b[2] >> 6) & 0x03) + 1
        channels = ((b[2] & 0x01) << 2) | (b[3] >> 6)
        key = (object_type, index, channels)
        if key == self._adts_key and self.audio is not None:
            return header, size, self.audio
        try:
            config = parse_asc(build_asc(object_type, SAMPLING_FREQUENCIES[index], channels))
        except AacError as exc:
            raise MalformedMediaError(f"bad ADTS header: {exc}") from None
        self._adts_key = key
        return header, size, config
