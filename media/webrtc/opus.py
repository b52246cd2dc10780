"""AAC → Opus for WebRTC (browsers have no AAC over RTP): decode, resample to 48 kHz stereo,
encode 20 ms Opus frames. One transcoder per stream, shared by every peer. And the other way
for WHIP ingest: Opus → AAC once per broadcast for HLS (:class:`OpusToAac`).

Synchronous and CPU-bound (~1.3 % of a core per stream): call :meth:`AacToOpus.transcode`
from a worker thread, never from the event loop.
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet
from av.stream import Stream

from media.aac import parse_asc
from media.units import CLOCK_RATE, AudioConfig, MediaUnit, TrackKind

__all__ = ["AacToOpus", "OPUS_RATE", "OpusToAac"]

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz (RFC 7587 recommends 20 ms)
OPUS_TIME_BASE = Fraction(1, OPUS_RATE)


class _Reframer:
    """What both directions share: decode, resample to 48 kHz stereo, and cut the PCM into
    frames of the encoder's size whose timestamps follow the input units' own (so A/V sync with
    the video survives), restarting that clock when the input jumps by more than ``resync``
    samples (a loss, a discontinuity)."""

    def __init__(self, decoder: AudioCodecContext, sample_format: str, frame_size: int,
                 resync: int) -> None:
        self._decoder = decoder
        self._resampler = av.AudioResampler(format=sample_format, layout="stereo",
                                            rate=OPUS_RATE)
        self._frame_size = frame_size
        self._resync = resync
        self._fifo = av.AudioFifo()
        self._next_pts: int | None = None  # 48 kHz samples
        self.frames_in = 0
        self.errors = 0

    def reset(self) -> None:
        """A discontinuity: timestamps are re-derived from the next unit."""
        self._next_pts = None
        self._fifo = av.AudioFifo()

    def _frames(self, unit: MediaUnit) -> list[av.AudioFrame]:
        """``unit`` decoded and re-framed: the frames now complete (``time_base`` 1/48000)."""
        self.frames_in += 1
        start = unit.dts * OPUS_RATE // CLOCK_RATE
        if self._next_pts is None or abs(self._next_pts + self._fifo.samples - start) > \
                self._resync:
            self._fifo = av.AudioFifo()
            self._next_pts = start
        try:
            decoded = self._decoder.decode(av.Packet(unit.data))
        except av.FFmpegError:
            self.errors += 1
            return []
        for frame in decoded:
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                self._fifo.write(resampled)
        out: list[av.AudioFrame] = []
        while self._fifo.samples >= self._frame_size:
            chunk = self._fifo.read(self._frame_size)
            assert chunk is not None
            chunk.pts = self._next_pts
            chunk.time_base = OPUS_TIME_BASE
            self._next_pts += self._frame_size
            out.append(chunk)
        return out


class AacToOpus(_Reframer):
    """Stateful transcoder; timestamps follow the AAC units' dts (A/V sync with video).

    Args:
        config: the AAC stream's configuration (AudioSpecificConfig is the decoder extradata).
        bitrate: Opus bits per second.
    """

    def __init__(self, config: AudioConfig, bitrate: int = 96_000) -> None:
        decoder = av.CodecContext.create("aac", "r")
        decoder.extradata = config.asc
        # First unit or a jump of more than four 20 ms frames: restart the output clock.
        super().__init__(decoder, "s16", OPUS_FRAME, OPUS_FRAME * 4)
        self.config = config
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "s16"
        self._encoder.bit_rate = bitrate
        self._encoder.time_base = OPUS_TIME_BASE
        self._encoder.options = {"application": "lowdelay", "frame_duration": "20"}

    def transcode(self, units: list[MediaUnit]) -> list[Packet[Stream]]:
        """Turn AAC units into Opus packets (``time_base`` 1/48000). Never raises on bad data."""
        out: list[Packet[Stream]] = []
        for unit in units:
            for chunk in self._frames(unit):
                for packet in self._encoder.encode(chunk):
                    packet.time_base = OPUS_TIME_BASE
                    out.append(packet)
        return out


AAC_FRAME = 1024
RESYNC_SAMPLES = 480
"""10 ms: the WHIP session clock is sample-exact between packets, so anything more is a loss
or the one lip-sync correction after the first RTCP sender report."""


class OpusToAac(_Reframer):
    """Opus (from a WHIP publisher) → AAC-LC for HLS and recordings, once per broadcast.

    Decodes Opus packets (RFC 7587, 48 kHz), re-frames the PCM into 1024-sample AAC frames and
    encodes them with FFmpeg's AAC encoder. Synchronous and CPU-bound: run :meth:`transcode` on
    a worker thread, never on the event loop.

    Args:
        bitrate: AAC bits per second.
    """

    def __init__(self, bitrate: int = 128_000) -> None:
        decoder = av.CodecContext.create("libopus", "r")
        decoder.sample_rate = OPUS_RATE
        decoder.layout = "stereo"
        super().__init__(decoder, "fltp", AAC_FRAME, RESYNC_SAMPLES)
        self._encoder = av.CodecContext.create("aac", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "fltp"
        self._encoder.bit_rate = bitrate
        self._encoder.time_base = OPUS_TIME_BASE
        self._encoder.open()
        self.config = parse_asc(bytes(self._encoder.extradata or b""))
        """The AudioSpecificConfig of the output (AAC-LC, 48 kHz, stereo)."""

    def transcode(self, units: list[MediaUnit]) -> list[MediaUnit]:
        """Turn Opus units (dts in 90 kHz ticks) into AAC units. Never raises on bad data."""
        out: list[MediaUnit] = []
        for unit in units:
            for chunk in self._frames(unit):
                for packet in self._encoder.encode(chunk):
                    if packet.pts is None:
                        continue
                    dts = packet.pts * CLOCK_RATE // OPUS_RATE
                    out.append(MediaUnit(kind=TrackKind.AUDIO, dts=dts, pts=dts,
                                         keyframe=True, data=bytes(packet),
                                         arrival=unit.arrival))
        return out
