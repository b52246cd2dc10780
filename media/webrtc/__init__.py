"""WebRTC building blocks: RTP packetization and the per-viewer send path (fan-out), WHIP
receive helpers, AAC ↔ Opus, host-candidate gathering in a port range, and the stray-datagram
guard in front of aioice/aiortc; every aiortc/aioice internal is in :mod:`media.webrtc.compat`."""

from media.webrtc.guard import DatagramGuard, guard_connection

__all__ = ["DatagramGuard", "guard_connection"]
