"""AAC → Opus for WebRTC (browsers have no AAC over RTP): decode, resample to 48 kHz stereo,
encode 20 ms Opus frames. One transcoder per stream, shared by every peer. And the other way
for WHIP ingest: Opus → AAC once per broadcast for HLS (:class:`OpusToAac`).

Synchronous and CPU-bound (~1.3 % of a core per stream): call :meth:`AacToOpus.transcode`
from a worker thread, never from the event loop.
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.packet import Packet
from av.stream import Stream

from media.aac import parse_asc
from media.units import CLOCK_RATE, AudioConfig, MediaUnit, TrackKind

__all__ = ["AacToOpus", "OPUS_RATE", "OpusToAac"]

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz (RFC 7587 recommends 20 ms)
OPUS_TIME_BASE = Fraction(1, OPUS_RATE)


class AacToOpus:
    """Stateful transcoder; timestamps follow the AAC units' dts (A/V sync with video).

    Args:
        config: the AAC stream's configuration (AudioSpecificConfig is the decoder extradata).
        bitrate: Opus bits per second.
    """

    def __init__(self, config: AudioConfig, bitrate: int = 96_000) -> None:
        self.config = config
        self._decoder = av.CodecContext.create("aac", "r")
        self._decoder.extradata = config.asc
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "s16"
        self._encoder.bit_rate = bitrate
        self._encoder.time_base = OPUS_TIME_BASE
        self._encoder.options = {"application": "lowdelay", "frame_duration": "20"}
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        self._fifo = av.AudioFifo()
        self._next_pts: int | None = None  # 48 kHz samples
        self.frames_in = 0
        self.errors = 0

    def reset(self) -> None:
        """A discontinuity: timestamps are re-derived from the next unit."""
        self._next_pts = None
        self._fifo = av.AudioFifo()

    def transcode(self, units: list[MediaUnit]) -> list[Packet[Stream]]:
        """Turn AAC units into Opus packets (``time_base`` 1/48000). Never raises on bad data."""
        out: list[Packet[Stream]] = []
        for unit in units:
            self.frames_in += 1
            start = unit.dts * OPUS_RATE // CLOCK_RATE
            if self._next_pts is None or abs(self._next_pts + self._fifo.samples - start) > \
                    OPUS_FRAME * 4:
                # First unit or a timestamp jump: restart the output clock at this unit.
                self._fifo = av.AudioFifo()
                self._next_pts = start
            try:
                frames = self._decoder.decode(av.Packet(unit.data))
            except av.FFmpegError:
                self.errors += 1
                continue
            for frame in frames:
                for resampled in self._resampler.resample(frame):
                    resampled.pts = None
                    self._fifo.write(resampled)
            while self._fifo.samples >= OPUS_FRAME:
                chunk = self._fifo.read(OPUS_FRAME)
                assert chunk is not None
                chunk.pts = self._next_pts
                chunk.time_base = OPUS_TIME_BASE
                self._next_pts += OPUS_FRAME
                for packet in self._encoder.encode(chunk):
                    packet.time_base = OPUS_TIME_BASE
                    out.append(packet)
        return out


AAC_FRAME = 1024
RESYNC_SAMPLES = 480


class OpusToAac:
    """Opus (from a WHIP publisher) → AAC-LC for HLS and recordings, once per broadcast.

    Decodes Opus packets (RFC 7587, 48 kHz), re-frames the PCM into 1024-sample AAC frames and
    encodes them with FFmpeg's AAC encoder. Output timestamps follow the Opus units' own
    timestamps (so A/V sync with the video survives), restarting on a jump of more than a few
    frames (a loss, a discontinuity). Synchronous and CPU-bound: run :meth:`transcode` on a
    worker thread, never on the event loop.

    Args:
        bitrate: AAC bits per second.
    """

    def __init__(self, bitrate: int = 128_000) -> None:
        self._decoder = av.CodecContext.create("libopus", "r")
        self._decoder.sample_rate = OPUS_RATE
        self._decoder.layout = "stereo"
        self._encoder = av.CodecContext.create("aac", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "fltp"
        self._encoder.bit_rate = bitrate
        self._encoder.time_base = OPUS_TIME_BASE
        self._encoder.open()
        self.config = parse_asc(bytes(self._encoder.extradata or b""))
        """The AudioSpecificConfig of the output (AAC-LC, 48 kHz, stereo)."""
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=OPUS_RATE)
        self._fifo = av.AudioFifo()
        self._next_pts: int | None = None  # 48 kHz samples
        self.frames_in = 0
        self.errors = 0

    def transcode(self, units: list[MediaUnit]) -> list[MediaUnit]:
        """Turn Opus units (dts in 90 kHz ticks) into AAC units. Never raises on bad data."""
        out: list[MediaUnit] = []
        for unit in units:
            self.frames_in += 1
            start = unit.dts * OPUS_RATE // CLOCK_RATE
            # 10 ms: the session clock is sample-exact between packets, so anything more is a
            # loss or the one lip-sync correction after the first RTCP sender report.
            if self._next_pts is None or abs(self._next_pts + self._fifo.samples - start) > \
                    RESYNC_SAMPLES:
                self._fifo = av.AudioFifo()
                self._next_pts = start
            try:
                frames = self._decoder.decode(av.Packet(unit.data))
            except av.FFmpegError:
                self.errors += 1
                continue
            for frame in frames:
                for resampled in self._resampler.resample(frame):
                    resampled.pts = None
                    self._fifo.write(resampled)
            while self._fifo.samples >= AAC_FRAME:
                chunk = self._fifo.read(AAC_FRAME)
                assert chunk is not None
                chunk.pts = self._next_pts
                chunk.time_base = OPUS_TIME_BASE
                self._next_pts += AAC_FRAME
                for packet in self._encoder.encode(chunk):
                    if packet.pts is None:
                        continue
                    dts = packet.pts * CLOCK_RATE // OPUS_RATE
                    out.append(MediaUnit(kind=TrackKind.AUDIO, dts=dts, pts=dts,
                                         keyframe=True, data=bytes(packet),
                                         arrival=unit.arrival))
        return out
