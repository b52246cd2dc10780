"""Guard between the UDP socket and aioice/aiortc against stray datagrams
(docs/threat-model.md §whep).

Reproduced with aiortc 1.16 / aioice 0.13: one zero-length datagram from any address to an
established peer's ICE port ends the session. aioice hands every non-STUN datagram to the
connection without checking its source, and aiortc's DTLS transport reads ``data[0]``
(IndexError). aioice's receive queue is also unbounded.

:func:`guard_connection` wraps each of a connection's UDP protocols so that:

* empty datagrams are dropped;
* STUN messages pass (aioice authenticates them with MESSAGE-INTEGRITY itself);
* anything else passes only from a remote address of this ICE session's check list
  (candidates the peer signalled in its offer, and peer-reflexive ones learnt from its
  authenticated STUN requests): the peer may send DTLS over its own choice of pair before
  this side's check of that pair completed (werift does, over IPv6 while this side validated
  IPv4); junk from any other address or port is dropped. Only while the connection's
  receive queue is below :data:`MAX_QUEUED_DATAGRAMS`.

Call it after candidates are gathered (``setLocalDescription``) and before the answer is
sent, so no datagram can reach an unguarded socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from media.webrtc.compat import (
    Connection,
    protocols,
    queued_datagrams,
    validated_remote_addrs,
)

__all__ = ["DatagramGuard", "guard_connection", "looks_like_stun", "MAX_QUEUED_DATAGRAMS"]

MAX_QUEUED_DATAGRAMS = 1024
"""Datagrams waiting for aiortc per connection; more means the peer floods us: drop."""
STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"


def looks_like_stun(data: bytes) -> bool:
    """RFC 8489 §5/§6: top two bits zero, 20-byte header, magic cookie at offset 4."""
    return len(data) >= 20 and data[0] < 4 and data[4:8] == STUN_MAGIC_COOKIE


@dataclass
class DatagramGuard:
    """Counters of one guarded connection."""

    dropped_empty: int = 0
    dropped_stray: int = 0
    dropped_flood: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_empty + self.dropped_stray + self.dropped_flood


def guard_connection(connection: Connection) -> DatagramGuard:
    """Wrap every UDP protocol of ``connection`` (idempotent); returns its counters."""
    existing: DatagramGuard | None = getattr(connection, "_hearth_guard", None)
    guard = existing or DatagramGuard()
    setattr(connection, "_hearth_guard", guard)  # noqa: B010
    for protocol in protocols(connection):
        if getattr(protocol, "_hearth_guarded", False):
            continue
        protocol.datagram_received = _guarded(  # type: ignore[method-assign,assignment]
            protocol.datagram_received, connection, guard)
        protocol._hearth_guarded = True  # type: ignore[attr-defined]
    return guard


def _guarded(receive: Callable[[bytes | str, tuple[Any, ...]], None], connection: Connection,
             guard: DatagramGuard) -> Callable[[bytes | str, tuple[Any, ...]], None]:
    def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
        if not data:
            guard.dropped_empty += 1
            return
        if isinstance(data, bytes) and looks_like_stun(data):
            receive(data, addr)
            return
        if (addr[0], addr[1]) not in validated_remote_addrs(connection):
            guard.dropped_stray += 1
            return
        if queued_datagrams(connection) >= MAX_QUEUED_DATAGRAMS:
            guard.dropped_flood += 1
            return
        receive(data, addr)

    return datagram_received
