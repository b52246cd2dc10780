"""Connection hygiene of the public HTTP site: per-address cap, request head and body deadlines.

Kept apart from :mod:`appliance.api.http` (which needs :class:`~appliance.state.AppState`) so
that ``AppState`` can name :class:`AddressCap` without an import cycle.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from media.rtmp.server import FilteredServer, RefusalLog, bind_tcp

# ---- connection hygiene for the public site -------------------------------------------------
# aiohttp has no request-head deadline and no per-address cap (docs/threat-model.md §http):
# the head deadline is aiohttp's keep-alive timer (an idle connection, one still sending its
# request head included, is closed that long after connecting or after its last response),
# the body deadline is :func:`body_timeout_middleware`, and the cap is :class:`CappedTCPSite`.


class AddressCap:
    """Counts open connections per remote address; refusals go to an aggregated log."""

    def __init__(self, per_address: int, refusals: RefusalLog) -> None:
        self.per_address = per_address
        self.refusals = refusals
        self.open: Counter[str] = Counter()

    def acquire(self, addr: str) -> bool:
        if self.open[addr] >= self.per_address:
            self.refusals.count("per-address-limit")
            return False
        self.open[addr] += 1
        return True

    def admits(self, addr: str) -> bool:
        """Would a new connection from ``addr`` be admitted? (Counts the refusal if not.)"""
        if self.open[addr] >= self.per_address:
            self.refusals.count("per-address-limit")
            return False
        return True

    def release(self, addr: str) -> None:
        self.open[addr] -= 1
        if self.open[addr] <= 0:
            del self.open[addr]


_REFUSED = asyncio.Protocol()  # placeholder inner protocol of refused connections


class _CappedConnection(asyncio.Protocol):
    """Admits a connection to aiohttp's request handler only under the per-address cap.

    A thin forwarding layer: asyncio calls only these methods on a protocol, and aiohttp keeps
    using the transport it is given (WebSocket upgrades included).
    """

    __slots__ = ("_addr", "_cap", "_factory", "_inner")

    def __init__(self, factory: Callable[[], asyncio.Protocol], cap: AddressCap) -> None:
        self._factory = factory
        self._inner: asyncio.Protocol = _REFUSED
        self._cap = cap
        self._addr: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        addr = str(peer[0]) if isinstance(peer, tuple) and peer else "unix"
        if not self._cap.acquire(addr):
            cast(asyncio.Transport, transport).abort()
            return
        self._addr = addr
        # aiohttp's handler (parser, buffers, task) is built only for admitted connections:
        # a refused flood costs an accept and an abort, nothing more.
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._addr is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._addr is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._addr is None:
            return
        self._cap.release(self._addr)
        self._addr = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._addr is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._addr is not None:
            self._inner.resume_writing()


class CappedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose connections pass :class:`AddressCap` first (HTTP and WebSocket:
    a WebSocket is an upgraded HTTP connection)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, cap: AddressCap,
                 backlog: int = 128, sock: socket.socket | None = None) -> None:
        """``sock``: serve this bound, listening socket instead of binding ``host:port``."""
        super().__init__(runner, host, port, backlog=backlog, reuse_address=True)
        self.cap = cap
        self._sock = sock

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        cap = self.cap
        sock = self._sock
        if sock is None:
            sock = await bind_tcp(self._host, self._port)
        # Refused addresses are turned away before asyncio builds a transport for them
        # (FilteredServer); _CappedConnection does the accounting of admitted ones.
        filtered = FilteredServer(sock, lambda: _CappedConnection(server, cap), cap.admits,
                                  backlog=self._backlog)
        self._server = cast(asyncio.Server, filtered)  # aiohttp uses close() and sockets
        self._bound_port = sock.getsockname()[1]


def body_timeout_middleware(timeout: float) -> Any:
    """Read request bodies under a deadline before the handler runs (slow-body attacks).

    The body is cached by aiohttp, so handlers' ``read()``/``json()``/``text()`` reuse it;
    ``client_max_size`` still bounds it.
    """

    @web.middleware
    async def body_timeout(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.body_exists and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            try:
                async with asyncio.timeout(timeout):
                    await request.read()
            except TimeoutError:
                return web.json_response(
                    {"error": f"request body not received within {timeout:g} s"}, status=408,
                    headers={"Connection": "close"})
        resp: web.StreamResponse = await handler(request)
        return resp

    return body_timeout
