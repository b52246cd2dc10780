"""AAC → Opus for WebRTC (browsers have no AAC over RTP): decode, resample to 48 kHz stereo,
encode 20 ms Opus frames. One transcoder per stream, shared by every peer.

Synchronous and CPU-bound (~1.3 % of a core per stream): call :meth:`AacToOpus.transcode`
from a worker thread, never from the event loop.
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.packet import Packet
from av.stream import Stream

from media.units import CLOCK_RATE, AudioConfig, MediaUnit

__all__ = ["AacToOpus", "OPUS_RATE"]

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
