"""aiortc tracks that yield pre-encoded ``Packet[Stream]``s, so aiortc packetizes without encoding.

aiortc's ``RTCRtpSender`` calls ``encoder.pack(packet)`` for anything that is not a decoded
frame (aiortc ``rtcrtpsender._next_encoded_frame``): H.264 access units go out as they came
from the publisher, once converted to Annex-B (the H.264 packer splits on start codes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet
from av.stream import Stream

from media.h264 import annexb_with_parameter_sets
from media.units import CLOCK_RATE, MediaUnit, VideoConfig

__all__ = ["EncodedTrack", "SenderTrack", "opus_packet", "video_packet", "VIDEO_TIME_BASE"]

VIDEO_TIME_BASE = Fraction(1, CLOCK_RATE)
DEFAULT_TRACK_CAPACITY = 256
"""Packets a peer may lag behind (~4 s of 30 fps video + Opus); then it skips to a keyframe."""


def video_packet(unit: MediaUnit, config: VideoConfig) -> Packet[Stream]:
    """One H.264 access unit as an Annex-B packet with SPS/PPS before every IDR (RFC 6184 §8.4).

    Done once per stream; every peer's track shares the packet (aiortc only reads it).
    """
    packet = av.Packet(annexb_with_parameter_sets(unit.data, config))
    packet.pts = unit.pts
    packet.dts = unit.dts
    packet.time_base = VIDEO_TIME_BASE
    return packet


OPUS_TIME_BASE = Fraction(1, 48_000)


def opus_packet(unit: MediaUnit) -> Packet[Stream]:
    """One Opus packet as received from a WHIP publisher, timed on the 48 kHz RTP clock
    (RFC 7587 §4.1), for every WebRTC viewer as is."""
    packet = av.Packet(unit.data)
    packet.pts = packet.dts = unit.dts * 48_000 // CLOCK_RATE
    packet.time_base = OPUS_TIME_BASE
    return packet


class EncodedTrack(MediaStreamTrack):
    """A track fed with encoded packets by :meth:`push`; never blocks the feeder.

    Video tracks start at a keyframe; when the consumer (aiortc's sender, paced by the network)
    lags by more than ``capacity`` packets, the backlog is dropped and counted and the track
    resumes at the next keyframe.
    """

    def __init__(self, kind: str, capacity: int = DEFAULT_TRACK_CAPACITY) -> None:
        super().__init__()
        self.kind = kind
        self._queue: deque[Packet[Stream]] = deque()
        self._capacity = capacity
        self._wakeup = asyncio.Event()
        self._needs_keyframe = kind == "video"
        self._ended = False
        self.dropped = 0
        self.sent = 0

    def push(self, packet: Packet[Stream], keyframe: bool = True) -> None:
        if self._ended:
            return
        if self._needs_keyframe:
            if not keyframe:
                return
            self._needs_keyframe = False
        if len(self._queue) >= self._capacity:
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video" and not keyframe:
                self._needs_keyframe = True
                return
        self._queue.append(packet)
        self._wakeup.set()

    def finish(self) -> None:
        """No more packets: ``recv`` raises :class:`MediaStreamError` after the backlog."""
        self._ended = True
        self._wakeup.set()

    async def recv(self) -> Packet[Stream]:
        while not self._queue:
            if self._ended or self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        self.finish()
        super().stop()


class SenderTrack(MediaStreamTrack):
    """A track that only gives an aiortc sender its kind and id (so the answer is
    ``sendonly`` with SSRCs); the media goes out through :mod:`media.webrtc.fanout` and
    aiortc never reads it (:func:`media.webrtc.compat.take_over_sender`)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Packet[Stream]:
        raise MediaStreamError
