"""WebRTC egress building blocks: pre-encoded tracks, AAC → Opus, host-candidate gathering in a
port range, and the stray-datagram guard in front of aioice/aiortc."""

from media.webrtc.guard import DatagramGuard, guard_connection
from media.webrtc.tracks import EncodedTrack, video_packet

__all__ = ["DatagramGuard", "EncodedTrack", "guard_connection", "video_packet"]
