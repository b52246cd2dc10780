"""The placeholder track an aiortc sender is created with: aiortc needs a track to make a
``sendonly`` transceiver with SSRCs, but Hearth sends the media itself
(:mod:`media.webrtc.fanout`, :func:`media.webrtc.compat.take_over_sender`).
"""

from __future__ import annotations

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet
from av.stream import Stream

__all__ = ["SenderTrack"]


class SenderTrack(MediaStreamTrack):
    """A track that only gives an aiortc sender its kind and id (so the answer is
    ``sendonly`` with SSRCs); the media goes out through :mod:`media.webrtc.fanout` and
    aiortc never reads it (:func:`media.webrtc.compat.take_over_sender`)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Packet[Stream]:
        raise MediaStreamError
