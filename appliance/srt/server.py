"""The SRT listener: every publisher on one UDP port, served by one libsrt epoll thread.

Threads (docs/threat-model.md §srt):

* libsrt's own receive thread calls :meth:`SrtHandler.authorize` from the handshake (through
  ``srt_listen_callback``) with the caller's ``streamid``: a wrong key is rejected there,
  before any media flows. It must answer at once: every publisher on the port waits on it.
* One thread of ours waits in ``srt_epoll_uwait``, accepts callers and reads their messages
  (non-blocking ``srt_recvmsg``; 1316-byte MPEG-TS payloads), and hands each batch to the event
  loop with ``call_soon_threadsafe``. It never waits on the loop: bytes beyond
  :data:`MAX_PENDING_BYTES` not yet taken by the loop are dropped and counted.
* Everything else (:meth:`SrtHandler.connection_made`, ``data_received``,
  ``connection_lost``) runs on the loop. :meth:`SrtConnection.close` may be called there; the
  SRT thread carries it out within :data:`POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from appliance.srt import libsrt

logger = logging.getLogger(__name__)

MAX_PENDING_BYTES = 8 << 20
"""Bytes of one connection handed to the loop and not yet processed (about 20 s at 3 Mbit/s)."""
POLL_SECONDS = 0.1
"""The SRT thread looks at close requests and shutdown this often."""
MAX_BATCH_BYTES = 256 << 10
"""Bytes read from one connection before the thread serves the others."""
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SrtOptions:
    host: str
    port: int
    latency_ms: int = 120
    passphrase: str = ""
    idle_timeout: float = 10.0
    max_connections: int = 32


class SrtHandler(Protocol):
    def authorize(self, streamid: str, peer: tuple[str, int]) -> int:
        """SRT thread: 0 accepts the caller, else an ``SRT_REJX_*`` reject reason."""

    def connection_made(self, conn: SrtConnection) -> None: ...

    def data_received(self, conn: SrtConnection, data: bytes) -> None: ...

    def connection_lost(self, conn: SrtConnection, reason: str) -> None: ...


class SrtConnection:
    """One accepted caller (a publisher), as the loop sees it."""

    def __init__(self, server: SrtServer, fd: int, peer: tuple[str, int], streamid: str) -> None:
        self.id = next(_ids)
        self.fd = fd
        self.peer = peer
        self.streamid = streamid
        self.connected_at = time.time()
        self.bytes_received = 0
        self.bytes_dropped = 0
        self.closed = False
        self._pending = 0
        self._server = server

    def close(self) -> None:
        """Disconnect the caller (loop side; idempotent). No data is delivered after it."""
        if not self.closed:
            self.closed = True
            self._server._close_requests.append(self.fd)


class SrtServer:
    """Binds at construction (so start-up knows the real port), serves after :meth:`start`."""

    def __init__(self, options: SrtOptions) -> None:
        """Bind and listen (callers are rejected as *overload* until :meth:`start`).

        Raises:
            SrtUnavailable: libsrt is not installed.
            SrtPortInUse: the port cannot be bound.
            SrtError: an option is refused.
        """
        self._lib = lib = libsrt.load()
        self._handler: SrtHandler | None = None
        self.options = options
        self._socks: dict[int, SrtConnection] = {}
        self._close_requests: deque[int] = deque()
        self._pending_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rejected = 0
        self.bytes_dropped = 0
        # Kept referenced for as long as the listener lives: libsrt holds only the pointer.
        self._callback = libsrt.LISTEN_CALLBACK(self._on_listen)
        self._listener = libsrt.check(lib, lib.srt_create_socket(), "srt_create_socket")
        self._eid = -1
        try:
            self._configure()
            address = libsrt.sockaddr(options.host, options.port)
            try:
                libsrt.check(lib, lib.srt_bind(self._listener, address, len(address)),
                             "srt_bind")
                libsrt.check(lib, lib.srt_listen_callback(self._listener, self._callback, None),
                             "srt_listen_callback")
                libsrt.check(lib, lib.srt_listen(self._listener, 64), "srt_listen")
            except libsrt.SrtError as exc:
                raise libsrt.SrtPortInUse(
                    f"SRT cannot listen on {options.host}:{options.port}/udp ({exc})") from None
            self.port = libsrt.sock_port(lib, self._listener)
            self._eid = libsrt.check(lib, lib.srt_epoll_create(), "srt_epoll_create")
            self._add(self._listener)
        except BaseException:
            self._release()
            raise

    def _configure(self) -> None:
        """Listener options; accepted sockets inherit them."""
        lib, sock, o = self._lib, self._listener, self.options
        libsrt.set_int(lib, sock, libsrt.SRTO_RCVSYN, 0, "SRTO_RCVSYN")
        # Not shared with another listener (libsrt's default would let a second Hearth
        # bind the port and fail only at listen).
        libsrt.set_int(lib, sock, libsrt.SRTO_REUSEADDR, 0, "SRTO_REUSEADDR")
        libsrt.set_int(lib, sock, libsrt.SRTO_LATENCY, o.latency_ms, "SRTO_LATENCY")
        libsrt.set_int(lib, sock, libsrt.SRTO_PEERIDLETIMEO, int(o.idle_timeout * 1000),
                       "SRTO_PEERIDLETIMEO")
        if o.passphrase:
            libsrt.set_string(lib, sock, libsrt.SRTO_PASSPHRASE, o.passphrase.encode(),
                              "SRTO_PASSPHRASE")

    def _add(self, fd: int) -> None:
        events = ctypes.c_int(libsrt.SRT_EPOLL_IN | libsrt.SRT_EPOLL_ERR)
        libsrt.check(self._lib, self._lib.srt_epoll_add_usock(self._eid, fd,
                                                              ctypes.byref(events)),
                     "srt_epoll_add_usock")

    @property
    def connections(self) -> int:
        return len(self._socks)

    def start(self, handler: SrtHandler) -> None:
        """Serve callers with ``handler`` (call on the loop)."""
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"srt-{self.port}", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Stop accepting, disconnect every caller, release libsrt resources."""
        self._stopping = True
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._release()

    def _release(self) -> None:
        lib = self._lib
        for fd in list(self._socks):
            lib.srt_close(fd)
        self._socks.clear()
        if self._listener != libsrt.INVALID_SOCK:
            lib.srt_close(self._listener)
            self._listener = libsrt.INVALID_SOCK
        if self._eid >= 0:
            lib.srt_epoll_release(self._eid)
            self._eid = -1

    # ---- libsrt's receive thread -------------------------------------------------------------

    def _on_listen(self, _opaque: int | None, ns: int, hsversion: int, peeraddr: int | None,
                   streamid: bytes | None) -> int:
        try:
            reason = self._decide(hsversion, peeraddr, streamid)
        except Exception:  # an exception must not cross back into C
            logger.exception("SRT listen callback failed")
            reason = libsrt.SRT_REJX_BAD_REQUEST
        if reason:
            self.rejected += 1
            self._lib.srt_setrejectreason(ns, reason)
            return -1
        return 0

    def _decide(self, hsversion: int, peeraddr: int | None, streamid: bytes | None) -> int:
        handler = self._handler
        if (handler is None or self._stopping
                or len(self._socks) >= self.options.max_connections):
            return libsrt.SRT_REJX_OVERLOAD
        if hsversion < 5 or not peeraddr:  # HSv4 callers cannot send a stream id
            return libsrt.SRT_REJX_BAD_REQUEST
        peer = libsrt.parse_sockaddr(ctypes.string_at(peeraddr, 28))
        text = (streamid or b"")[:libsrt.MAX_STREAMID].decode("utf-8", "replace")
        return handler.authorize(text, peer)

    # ---- our SRT thread ----------------------------------------------------------------------

    def _run(self) -> None:
        events = libsrt.epoll_events(64)
        buf = ctypes.create_string_buffer(libsrt.MAX_PAYLOAD)
        while not self._stopping:
            try:
                self._serve_once(events, buf)
            except Exception:  # a bug here must not silently end SRT ingest for everyone
                logger.exception("SRT: serving callers failed; going on")
                time.sleep(POLL_SECONDS)

    def _serve_once(self, events: ctypes.Array[libsrt.EpollEvent],
                    buf: ctypes.Array[ctypes.c_char]) -> None:
        """Carry out close requests, then wait up to :data:`POLL_SECONDS` and serve."""
        lib = self._lib
        while self._close_requests:
            fd = self._close_requests.popleft()
            conn = self._socks.get(fd)
            if conn is not None:
                self._drop(fd, conn, "closed by Hearth")
        n = lib.srt_epoll_uwait(self._eid, events, len(events), int(POLL_SECONDS * 1000))
        if n < 0:  # not a timeout (uwait answers 0 then): never spin on a failing wait
            time.sleep(POLL_SECONDS)
        for i in range(max(n, 0)):
            fd, flags = events[i].fd, events[i].events
            if fd == self._listener:
                self._accept()
                continue
            conn = self._socks.get(fd)
            if conn is not None:
                self._read(fd, conn, buf, flags)

    def _accept(self) -> None:
        lib = self._lib
        while True:
            addr = ctypes.create_string_buffer(128)
            size = ctypes.c_int(128)
            fd = lib.srt_accept(self._listener, addr, ctypes.byref(size))
            if fd == libsrt.INVALID_SOCK:
                return  # nothing more waiting (SRT_EASYNCRCV) or a failed handshake
            streamid = libsrt.get_string(lib, fd, libsrt.SRTO_STREAMID)
            conn = SrtConnection(self, fd, libsrt.parse_sockaddr(addr.raw[:size.value]),
                                 streamid.rstrip(b"\0").decode("utf-8", "replace"))
            try:
                libsrt.set_int(lib, fd, libsrt.SRTO_RCVSYN, 0, "SRTO_RCVSYN")
                self._add(fd)
            except libsrt.SrtError as exc:
                logger.warning("SRT: cannot serve a caller from %s: %s", conn.peer[0], exc)
                lib.srt_close(fd)
                continue
            self._socks[fd] = conn
            self._post(self._made, conn)

    def _read(self, fd: int, conn: SrtConnection, buf: ctypes.Array[ctypes.c_char],
              flags: int) -> None:
        lib = self._lib
        chunks: list[bytes] = []
        total = 0
        lost = ""
        while total < MAX_BATCH_BYTES:
            n = lib.srt_recvmsg(fd, buf, libsrt.MAX_PAYLOAD)
            if n > 0:
                chunks.append(ctypes.string_at(buf, n))
                total += n
                continue
            code, text = libsrt.last_error(lib)
            if code != libsrt.SRT_EASYNCRCV or flags & libsrt.SRT_EPOLL_ERR:
                lost = text or "connection closed"
            break
        if chunks:
            with self._pending_lock:
                accepted = conn._pending + total <= MAX_PENDING_BYTES
                if accepted:
                    conn._pending += total
            if accepted:
                self._post(self._deliver, conn, b"".join(chunks), total)
            else:
                conn.bytes_dropped += total
                self.bytes_dropped += total
        if lost:
            self._drop(fd, conn, lost)

    def _drop(self, fd: int, conn: SrtConnection, reason: str) -> None:
        self._lib.srt_epoll_remove_usock(self._eid, fd)
        self._lib.srt_close(fd)
        self._socks.pop(fd, None)
        self._post(self._lost, conn, reason)

    def _post(self, callback: object, *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:  # the loop closed under us (shutdown)
            pass

    # ---- back on the loop ----------------------------------------------------------------------

    def _made(self, conn: SrtConnection) -> None:
        if self._handler is not None and not conn.closed:
            self._handler.connection_made(conn)

    def _deliver(self, conn: SrtConnection, data: bytes, size: int) -> None:
        with self._pending_lock:
            conn._pending -= size
        if conn.closed or self._handler is None:
            return
        conn.bytes_received += size
        self._handler.data_received(conn, data)

    def _lost(self, conn: SrtConnection, reason: str) -> None:
        conn.closed = True
        if self._handler is not None:
            self._handler.connection_lost(conn, reason)
