"""RTMP handshake (RTMP 1.0 §5.2), server side, "simple" form.

The client sends C0 (version byte) and C1 (1536 bytes: time, zero, random); we answer S0,
S1 and S2 (an echo of C1, §5.2.4) and then read C2. Clients that put a Flash-style HMAC
digest into C1 (FFmpeg, librtmp/OBS) fall back to the simple handshake when S1's "zero"
field is zero, so we accept and echo their C1 without validating any digest.
"""

from __future__ import annotations

import os
import struct

from .errors import RemoteProtocolError

__all__ = ["HANDSHAKE_SIZE", "RTMP_VERSION", "check_c0", "make_s0_s1_s2"]

RTMP_VERSION = 3
"""§5.2.2: the only version defined by the spec."""

HANDSHAKE_SIZE = 1536
"""§5.2.3: size of C1/S1/C2/S2."""


def check_c0(c0: bytes) -> None:
    """Validate C0 (§5.2.2).

    Raises:
        RemoteProtocolError: if the version byte is not 3 (6 meant encrypted RTMPE).
    """
    if len(c0) != 1 or c0[0] != RTMP_VERSION:
        version = c0[0] if c0 else None
        raise RemoteProtocolError(f"unsupported RTMP version {version!r} in C0 (expected 3)")


def make_s0_s1_s2(c1: bytes, *, server_time: int = 0, random_bytes: bytes | None = None) -> bytes:
    """Build S0+S1+S2 for a received C1.

    Args:
        c1: the client's 1536-byte C1.
        server_time: the 4-byte epoch field of S1 (§5.2.3), milliseconds.
        random_bytes: 1528 bytes for S1 (defaults to ``os.urandom``; injectable for tests).

    Raises:
        RemoteProtocolError: if ``c1`` is not 1536 bytes.
    """
    if len(c1) != HANDSHAKE_SIZE:
        raise RemoteProtocolError(f"C1 must be {HANDSHAKE_SIZE} bytes, got {len(c1)}")
    if random_bytes is None:
        random_bytes = os.urandom(HANDSHAKE_SIZE - 8)
    if len(random_bytes) != HANDSHAKE_SIZE - 8:
        raise ValueError("random_bytes must be 1528 bytes")
    # §5.2.3: time (4) + zero (4) + random (1528). A zero "version" field tells digest-aware
    # clients that we speak the simple handshake.
    s1 = struct.pack(">II", server_time & 0xFFFFFFFF, 0) + random_bytes
    # §5.2.4: S2 echoes C1.
    return bytes((RTMP_VERSION,)) + s1 + c1
