"""The thin asyncio adapter around :class:`~media.rtmp.session.RtmpServerSession`.

``data_received → session.receive_data → handler.events_received → flush`` (uvicorn's
``h11_impl`` shape). This is the only module of :mod:`media.rtmp` that imports asyncio. It
owns the deadlines (handshake, publish, idle) and the connection caps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol, cast

from .session import (
    ConnectionClosed,
    RtmpEvent,
    RtmpServerSession,
    SessionState,
)

__all__ = ["RtmpConnection", "RtmpHandler", "start_rtmp_server"]

logger = logging.getLogger(__name__)

_connection_ids = itertools.count(1)


class RtmpHandler(Protocol):
    """Implemented by the application; all methods run on the event loop and must not block."""

    def connection_made(self, conn: RtmpConnection) -> None:
        """A TCP connection was accepted (before the handshake)."""

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        """Session events, in order. May call ``conn.session.accept_publish`` etc.;
        :meth:`RtmpConnection.flush` runs right after this returns."""

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        """The connection is gone (called exactly once, after the final events)."""


class _ServerLimits:
    def __init__(
        self,
        *,
        handshake_timeout: float,
        publish_timeout: float,
        idle_timeout: float,
        max_connections: int,
        max_connections_per_ip: int,
        session_factory: Callable[[], RtmpServerSession],
    ) -> None:
        self.handshake_timeout = handshake_timeout
        self.publish_timeout = publish_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.session_factory = session_factory
        self.total = 0
        self.per_ip: dict[str, int] = {}


class RtmpConnection(asyncio.Protocol):
    """One RTMP TCP connection: the session plus its transport and deadlines.

    Attributes:
        session: the sans-I/O session.
        peer: remote (host, port).
        id: process-unique connection number (for logs).
        connected_at: ``time.monotonic()`` when the TCP connection was accepted.
    """

    def __init__(self, handler: RtmpHandler, limits: _ServerLimits) -> None:
        self.session = limits.session_factory()
        self.peer: tuple[str, int] = ("", 0)
        self.id = next(_connection_ids)
        self.connected_at = time.monotonic()
        self._handler = handler
        self._limits = limits
        self._transport: asyncio.Transport | None = None
        self._counted = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline_kind = ""
        self._last_data_at = self.connected_at
        self._reading_paused = False
        self._lost = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        limits = self._limits
        ip = self.peer[0]
        if (
            limits.total >= limits.max_connections
            or limits.per_ip.get(ip, 0) >= limits.max_connections_per_ip
        ):
            logger.warning("rtmp#%d %s refused: connection limit reached", self.id, ip)
            self._lost = True  # the handler never sees this connection
            self._transport.abort()
            return
        limits.total += 1
        limits.per_ip[ip] = limits.per_ip.get(ip, 0) + 1
        self._counted = True
        self._set_deadline("handshake", limits.handshake_timeout)
        logger.debug("rtmp#%d accepted from %s", self.id, ip)
        self._call_handler(lambda: self._handler.connection_made(self))

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self._last_data_at = time.monotonic()
        before = self.session.state
        self.session.receive_data(data)
        self._dispatch()
        self._update_deadline(before)

    def eof_received(self) -> bool | None:
        return None  # let asyncio close the transport; connection_lost reports EOF

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            self._release()
            return
        self._lost = True
        self._cancel_deadline()
        self.session.receive_data(b"")
        self._dispatch(write=False)
        error: BaseException | None = exc or self.session.error
        logger.info(
            "rtmp#%d %s closed after %.1fs, %d bytes: %s",
            self.id,
            self.peer[0],
            time.monotonic() - self.connected_at,
            self.session.bytes_received,
            error if error is not None else "ok",
        )
        self._release()
        self._call_handler(lambda: self._handler.connection_lost(self, error))

    def pause_writing(self) -> None:
        pass  # replies are tiny; nothing to throttle

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------------ public helpers

    def flush(self) -> None:
        """Write pending session bytes; close after the write if the session is ending."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = self.session.data_to_send()
        if data:
            transport.write(data)
        if self.session.state in (SessionState.CLOSING, SessionState.ERROR):
            transport.close()  # flushes the buffer first

    def abort(self) -> None:
        """Drop the TCP connection now, discarding unsent data."""
        if self._transport is not None:
            self._transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (flow control when the consumer is over budget)."""
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading`."""
        if self._transport is not None and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    # ------------------------------------------------------------------ internals

    def _dispatch(self, *, write: bool = True) -> None:
        events = self.session.events()
        if events:
            self._call_handler(lambda: self._handler.events_received(self, events))
        if write and not any(isinstance(e, ConnectionClosed) for e in events):
            self.flush()

    def _call_handler(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            logger.exception("rtmp#%d handler failed; dropping the connection", self.id)
            self.abort()

    def _release(self) -> None:
        self._cancel_deadline()
        if not self._counted:
            return
        self._counted = False
        limits = self._limits
        limits.total -= 1
        ip = self.peer[0]
        remaining = limits.per_ip.get(ip, 1) - 1
        if remaining:
            limits.per_ip[ip] = remaining
        else:
            limits.per_ip.pop(ip, None)

    def _update_deadline(self, before: SessionState) -> None:
        state = self.session.state
        if state is before or self._lost:
            return
        if before is SessionState.HANDSHAKE and state is not SessionState.HANDSHAKE:
            # Publish must be accepted within publish_timeout of the handshake.
            self._set_deadline("publish", self._limits.publish_timeout)
        if state is SessionState.PUBLISHING:
            self._set_deadline("idle", self._limits.idle_timeout)

    def _set_deadline(self, kind: str, delay: float) -> None:
        self._cancel_deadline()
        self._deadline_kind = kind
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._on_deadline)

    def _cancel_deadline(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        if self._lost:
            return
        kind = self._deadline_kind
        if self.session.state is SessionState.PUBLISHING:
            # Re-arm relative to the last received byte; only a stalled publisher is dropped.
            idle = time.monotonic() - self._last_data_at
            if idle < self._limits.idle_timeout:
                self._set_deadline("idle", self._limits.idle_timeout - idle)
                return
            kind = "idle"
        logger.info("rtmp#%d %s %s deadline expired", self.id, self.peer[0], kind)
        self.abort()


async def start_rtmp_server(
    host: str,
    port: int,
    handler_factory: Callable[[], RtmpHandler] | RtmpHandler,
    *,
    handshake_timeout: float = 5.0,
    publish_timeout: float = 10.0,
    idle_timeout: float = 10.0,
    max_connections: int = 64,
    max_connections_per_ip: int = 8,
    session_factory: Callable[[], RtmpServerSession] = RtmpServerSession,
) -> asyncio.Server:
    """Listen for RTMP publishers.

    Args:
        host, port: where to listen (port 0 picks a free port; see ``server.sockets``).
        handler_factory: an :class:`RtmpHandler` shared by all connections, or a zero-argument
            callable returning one per connection.
        handshake_timeout: seconds for C0..C2 before the connection is dropped.
        publish_timeout: seconds from handshake completion until the publish is accepted.
        idle_timeout: seconds without data while publishing before the connection is dropped.
        max_connections, max_connections_per_ip: concurrent connection caps (excess
            connections are aborted on accept).
        session_factory: builds each :class:`RtmpServerSession` (to change its limits).

    Returns:
        The started :class:`asyncio.Server`; close it with ``close()``/``wait_closed()``.
    """
    limits = _ServerLimits(
        handshake_timeout=handshake_timeout,
        publish_timeout=publish_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        session_factory=session_factory,
    )

    def make_handler() -> RtmpHandler:
        if hasattr(handler_factory, "events_received"):
            return cast(RtmpHandler, handler_factory)
        factory = handler_factory
        assert callable(factory)
        return factory()

    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: RtmpConnection(make_handler(), limits), host, port)
