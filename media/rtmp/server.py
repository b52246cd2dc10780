"""The thin asyncio adapter around :class:`~media.rtmp.session.RtmpServerSession`.

``data_received → session.receive_data → handler.events_received → flush`` (uvicorn's
``h11_impl`` shape; an attached publish's media skip the events and reach the handler's
sink from inside ``receive_data``, :meth:`RtmpServerSession.set_media_sink`). This is the
only module of :mod:`media.rtmp` that imports asyncio. It owns the deadlines (handshake,
publish, idle), the connection caps and the budgets of unauthenticated peers
(docs/threat-model.md §rtmp-pre-auth):

* until its publish is accepted, a connection may send :attr:`PreAuthBudget.bytes_per_second`
  and have :attr:`PreAuthBudget.chunks_per_second` chunks parsed (token buckets with a
  burst); over budget, parsing holds and reading pauses until the bucket refills, so a flood
  of tiny messages costs bounded CPU and the kernel's TCP window pushes back on the sender;
* its buffered input is bounded per connection (reading pauses) and across all
  unauthenticated connections (the connection that crosses the line is dropped);
* at most :attr:`PreAuthBudget.max_connections` unauthenticated connections exist at once; a
  new one evicts the oldest unauthenticated connection of the address holding the most,
  so an attacker filling the table cannot lock a legitimate publisher out;
* refusals are counted per reason and logged as one summary line per interval, never one
  line per event (:class:`RefusalLog`).

Read coalescing (:class:`ReadCoalescing`, docs/architecture.md "Ingest hot path"): a 3 Mbit/s
ffmpeg or OBS publish arrives in ~60 bursts a second, half of them a few bytes (the chunk header
of the next audio message, written ahead of its payload), and every wake-up of the loop for a
read costs more than parsing what it reads. Once a publish is accepted, the socket's
``SO_RCVLOWAT`` asks the kernel to report it readable only when a message can complete: the
bytes the message being received still needs, or at a message boundary half the smallest
message of the last second (so a complete message is never held back), capped at ``window``
seconds of the measured bit rate. Bytes that cannot complete anything (a header sent ahead)
wait for the rest; a mark is cleared when reads stall (an unpublish, a ping, a stream that
changed its shape) so nothing waits longer than ``stall`` plus one timer period.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from .session import (
    ConnectionClosed,
    RtmpEvent,
    RtmpServerSession,
    SessionState,
)

__all__ = [
    "FilteredServer",
    "PreAuthBudget",
    "ReadCoalescing",
    "RefusalLog",
    "RtmpConnection",
    "RtmpHandler",
    "RtmpServerStats",
    "start_rtmp_server",
]

logger = logging.getLogger(__name__)

_connection_ids = itertools.count(1)

MAX_WRITE_BUFFER = 1 << 20
"""A peer that leaves this many reply bytes unread (e.g. flooding pings without reading the
pongs) is dropped: our replies may not grow memory without bound."""

LISTEN_BACKLOG = 128
"""Pending TCP accepts the kernel may queue. asyncio also accepts up to this many connections
in one callback, so a larger value lets a connection flood hold the loop longer per burst;
what overflows waits in the kernel (a client's SYN is retried), and eviction (see the module
docstring) guarantees room once a legitimate publisher is accepted."""


@dataclass(frozen=True, slots=True)
class PreAuthBudget:
    """What a connection may cost before its publish is accepted.

    An honest client needs about 4 KiB and 20 chunks before publishing (handshake, connect,
    createStream, publish), so these leave a wide margin while bounding what a keyless
    peer can make us do.
    """

    bytes_per_second: float = 64 * 1024
    burst_bytes: float = 128 * 1024
    chunks_per_second: float = 200.0
    """Chunks parsed per second (each chunk, however small, costs parsing CPU)."""
    burst_chunks: float = 400.0
    total_chunks_per_second: float = 2000.0
    """Chunks parsed per second across *all* unauthenticated connections, shared equally
    among them: many addresses each within their own budget cannot add up to a loaded loop.
    An honest client needs about 20 (see MIN_PREAUTH_BURST_CHUNKS)."""
    max_buffered_bytes: int = 256 * 1024
    """Unparsed plus partially reassembled bytes per connection before reading pauses."""
    max_buffered_total: int = 16 << 20
    """The same across all unauthenticated connections; the one crossing it is dropped."""
    max_connections: int = 48
    """Unauthenticated connections at once (new ones evict the oldest, see module doc)."""
    connects_per_second: float = 2.0
    """New connections per second from one address (token bucket, refused at accept). OBS
    retries every few seconds; a flood from many addresses is slowed to this rate each, so
    a newcomer lives long enough in the pre-auth table to finish its handshake."""
    connect_burst: float = 8.0


@dataclass(frozen=True, slots=True)
class ReadCoalescing:
    """How a publishing connection's reads are batched with ``SO_RCVLOWAT`` (module doc).

    ``window`` 0 (the default) turns coalescing off: every arriving byte wakes the loop, the
    kernel default. Measured (bench/read_coalescing.py, docs/architecture.md "Ingest hot
    path"): with a publisher that disables Nagle's algorithm (OBS/librtmp, ffmpeg
    ``-tcp_nodelay 1``) it adds no latency and halves reads; with one that does not (ffmpeg's
    default) the held chunk header is not acknowledged, the sender's Nagle holds the payload
    until our delayed ACK (~40 ms), and parts appear 20-50 ms later. Hence opt-in.
    """

    window: float = 0.0
    """The low-water mark never exceeds this many seconds of the measured bit rate."""
    max_bytes: int = 64 * 1024
    """Cap of the low-water mark (well under the default receive buffer)."""
    rate_interval: float = 1.0
    """Seconds over which the bit rate and the smallest message are measured (the mark
    follows them at this pace; until the first measurement there is no mark)."""
    stall: float = 0.1
    """A connection with a mark whose last read is older than this has the mark cleared (the
    queued bytes, fewer than the mark, are read at once) until the next rate measurement.
    Publishers pace frames with gaps of up to ~50 ms (ffmpeg ``-re`` at 30 fps), so a shorter
    value would clear the mark of a healthy stream."""

    @property
    def enabled(self) -> bool:
        return self.window > 0 and hasattr(socket, "SO_RCVLOWAT")


class RefusalLog:
    """Counts refusals per reason and logs one summary line per interval.

    A flood of refused connections must cost the log one line per ``interval``, not one line
    per connection (issue: 38,000 lines in 30 s).

    Args:
        log: where the summaries go.
        what: prefix of the summary line ("rtmp").
        interval: seconds between summaries (the first count of a quiet period schedules one).
    """

    def __init__(self, log: logging.Logger, what: str, interval: float = 10.0) -> None:
        self._log = log
        self._what = what
        self.interval = interval
        self._pending: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        """Refusals per reason since start."""
        self._handle: asyncio.TimerHandle | None = None

    def count(self, reason: str, n: int = 1) -> None:
        """Record ``n`` refusals for ``reason`` (never logs by itself)."""
        self._pending[reason] += n
        self.totals[reason] += n
        if self._handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._handle = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Log the pending counts now (one line) and reset them."""
        self._handle = None
        if not self._pending:
            return
        parts = ", ".join(f"{reason} x{n}" for reason, n in self._pending.most_common())
        self._log.warning("%s refused %d in the last %.0f s: %s", self._what,
                          sum(self._pending.values()), self.interval, parts)
        self._pending.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.flush()


class FilteredServer:
    """A listening socket whose new connections pass ``admit(address)`` before asyncio builds
    anything for them (a minimal stand-in for :class:`asyncio.Server`).

    asyncio's own accept path creates a task, a transport and a protocol for every
    connection, so refusing a flood of connections from one address in ``connection_made``
    still costs the loop most of a connection's set-up per attempt; measured, a one-address
    connect flood held the loop long enough to stall LL-HLS parts. Here a refused connection
    costs one ``accept()`` and a reset. ``admit`` only checks; the protocol still does the
    accounting (the check and the accounting can disagree only in the admitting direction).

    Args:
        sock: a bound socket (``listen`` is called here).
        factory: builds the protocol of an admitted connection.
        admit: called with the peer's address; False refuses the connection with a reset.
        backlog: ``listen`` backlog, and the most connections taken per readable event.
    """

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.BaseProtocol],
                 admit: Callable[[str], bool], *, backlog: int = 128) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = factory
        self._admit = admit
        self._backlog = backlog
        self._tasks: set[asyncio.Task[object]] = set()
        self._serving = True
        self.sockets = [sock]
        sock.setblocking(False)
        sock.listen(backlog)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # Out of file descriptors or memory: stop accepting for a second, as asyncio
                # does, instead of spinning on a readable socket.
                logger.warning("accept failed: %s; pausing accepts for 1 s", exc)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(1.0, self._resume)
                return
            address = str(addr[0]) if isinstance(addr, tuple) and addr else ""
            if not self._admit(address):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                conn.close()
                continue
            conn.setblocking(False)
            task: asyncio.Task[object] = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> object:
        try:
            return await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()
            return None

    def _resume(self) -> None:
        if self._serving:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop accepting (established connections are left to their owners)."""
        if not self._serving:
            return
        self._serving = False
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


_DONE_STATES = frozenset({SessionState.CLOSING, SessionState.CLOSED, SessionState.ERROR})
_MAX_TRACKED_ADDRESSES = 10_000
MIN_PREAUTH_BURST_CHUNKS = 32.0
"""The smallest chunk burst of an unauthenticated connection: what connect, createStream and
publish take, so a newcomer's publish is never held however many connections compete."""
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


class RtmpServerStats:
    """Live counters of one server (read by dashboards; mutated by the connections)."""

    def __init__(self, log: RefusalLog) -> None:
        self.refusals = log
        self.connections = 0
        self.preauth_connections = 0
        self.preauth_buffered = 0
        self.evicted = 0


class RtmpHandler(Protocol):
    """Implemented by the application; all methods run on the event loop and must not block."""

    def connection_made(self, conn: RtmpConnection) -> None:
        """A TCP connection was accepted (before the handshake)."""

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        """Session events, in order. May call ``conn.session.accept_publish`` etc.;
        :meth:`RtmpConnection.flush` runs right after this returns. Media of a publish given a
        sink (``conn.session.set_media_sink``) go to that sink instead."""

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
        budget: PreAuthBudget,
        stats: RtmpServerStats,
        coalescing: ReadCoalescing,
    ) -> None:
        self.handshake_timeout = handshake_timeout
        self.coalescing = coalescing
        # Connections with a low-water mark set, checked for stalls by one timer for all.
        self.coalesced: set[RtmpConnection] = set()
        self._stall_timer: asyncio.TimerHandle | None = None
        self.publish_timeout = publish_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.session_factory = session_factory
        self.budget = budget
        self.stats = stats
        self.total = 0
        self.per_ip: dict[str, int] = {}
        # Unauthenticated connections, oldest first (dicts keep insertion order).
        self.preauth: dict[int, RtmpConnection] = {}
        self.preauth_per_ip: Counter[str] = Counter()
        self._connect_buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def connect_allowed(self, address: str) -> bool:
        """Take a token from ``address``'s new-connection bucket (bounded LRU of addresses)."""
        now = time.monotonic()
        bucket = self._connect_buckets.get(address)
        if bucket is None:
            bucket = _Bucket(self.budget.connects_per_second, self.budget.connect_burst, now)
            self._connect_buckets[address] = bucket
            if len(self._connect_buckets) > _MAX_TRACKED_ADDRESSES:
                self._connect_buckets.popitem(last=False)
        else:
            self._connect_buckets.move_to_end(address)
        if bucket.refill(now) < 1:
            return False
        bucket.take(1)
        return True

    def eviction_victim(self) -> RtmpConnection | None:
        """The unauthenticated connection to drop for a newcomer.

        First one whose publish was already decided against it (a refusal pending or sent:
        it needs no slot), else the oldest of the address holding the most. A legitimate
        client is one young connection from its address and finishes its handshake quickly;
        with new connections rate-limited per address, a newcomer lives long enough in the
        table to get there.
        """
        if not self.preauth_per_ip:
            return None
        for conn in self.preauth.values():  # oldest first
            if conn.session.awaiting_decision or conn.session.state in _DONE_STATES:
                return conn
        busiest = max(self.preauth_per_ip.values())
        for conn in self.preauth.values():
            if self.preauth_per_ip[conn.peer[0]] == busiest:
                return conn
        return None

    def watch_stalls(self, conn: RtmpConnection) -> None:
        """Check ``conn`` for stalled reads until its low-water mark is cleared."""
        self.coalesced.add(conn)
        if self._stall_timer is None:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.coalescing.stall, self._check_stalls)

    def _check_stalls(self) -> None:
        self._stall_timer = None
        now = time.monotonic()
        for conn in list(self.coalesced):
            conn._check_stall(now)
        if self.coalesced:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.coalescing.stall, self._check_stalls)

    def chunk_share(self) -> float:
        """Chunks per second each unauthenticated connection may use now: its own budget, or
        an equal share of the total budget when many connections compete."""
        return min(self.budget.chunks_per_second,
                   self.budget.total_chunks_per_second / max(1, len(self.preauth)))


class _Bucket:
    """A token bucket that may go into debt (bytes already read cannot be refused)."""

    __slots__ = ("burst", "level", "rate", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.updated = now

    def refill(self, now: float) -> float:
        self.level = min(self.burst, self.level + (now - self.updated) * self.rate)
        self.updated = now
        return self.level

    def take(self, amount: float) -> None:
        self.level -= amount

    def seconds_until_positive(self) -> float:
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate


READ_BUFFER_SIZE = 64 * 1024
"""Bytes per socket read into the connection's reused buffer. asyncio's default reads into a
fresh 256 KiB ``bytes`` per call (an mmap'd allocation: 12 µs per read against 1.3 µs for
``recv_into`` a reused buffer, measured); 64 KiB is more than a 3 Mbit/s publisher sends
between two reads."""


class RtmpConnection(asyncio.BufferedProtocol):
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
        self._budget_paused = False
        self._resume_handle: asyncio.TimerHandle | None = None
        self._lost = False
        self._preauth = False
        self._accounted = 0  # bytes counted in stats.preauth_buffered for this connection
        self._close_reason = ""
        budget = limits.budget
        self._bytes = _Bucket(budget.bytes_per_second, budget.burst_bytes, self.connected_at)
        self._chunks = _Bucket(budget.chunks_per_second, budget.burst_chunks, self.connected_at)
        # Read coalescing (module doc): the socket, its current SO_RCVLOWAT (1 = kernel
        # default), the target from the measured rate, and the rate measurement.
        self._sock: socket.socket | None = None
        self._lowat = 1
        self._lowat_cap = 0  # from the measured rate; 0 = no mark
        self._lowat_floor = 1  # at a message boundary: half the smallest recent message
        self._rate_bytes = 0
        self._rate_since = 0.0
        self._read_view = memoryview(bytearray(READ_BUFFER_SIZE))

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        limits = self._limits
        ip = self.peer[0]
        if limits.total >= limits.max_connections:
            self._refuse_at_accept("connection-limit")
            return
        if limits.per_ip.get(ip, 0) >= limits.max_connections_per_ip:
            self._refuse_at_accept("per-address-limit")
            return
        if len(limits.preauth) >= limits.budget.max_connections:
            victim = limits.eviction_victim()
            if victim is not None:
                limits.stats.evicted += 1
                # Released at once, not when asyncio reports the loss: one accept callback
                # may take many connections, and each must see the room the eviction made.
                victim._release()
                victim.drop("evicted")
        limits.total += 1
        limits.per_ip[ip] = limits.per_ip.get(ip, 0) + 1
        limits.stats.connections = limits.total
        self._counted = True
        self._preauth = True
        limits.preauth[self.id] = self
        limits.preauth_per_ip[ip] += 1
        limits.stats.preauth_connections = len(limits.preauth)
        self._set_deadline("handshake", limits.handshake_timeout)
        logger.debug("rtmp#%d accepted from %s", self.id, ip)
        self._call_handler(lambda: self._handler.connection_made(self))

    def _refuse_at_accept(self, reason: str) -> None:
        self._limits.stats.refusals.count(reason)
        self._lost = True  # the handler never sees this connection
        assert self._transport is not None
        self._transport.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        # asyncio.BufferedProtocol: the transport reads into this, then calls buffer_updated;
        # the session copies what it gets, so one buffer serves every read.
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        with self._read_view[:nbytes] as data:
            self.data_received(data)

    def data_received(self, data: bytes | memoryview) -> None:
        if self._lost:
            return
        now = time.monotonic()
        self._last_data_at = now
        if self._preauth:
            self._bytes.refill(now)
            self._bytes.take(len(data))
        self._feed(data)
        if self._sock is not None:
            self._coalesce(now, len(data))

    # ------------------------------------------------------------------ read coalescing

    def _start_coalescing(self) -> None:
        if not self._limits.coalescing.enabled or self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is None or sock.type != socket.SOCK_STREAM:
            return
        self._sock = sock
        self._rate_since = time.monotonic()
        self._rate_bytes = 0
        self.session.take_smallest_message()  # measure from the publish on

    def _coalesce(self, now: float, received: int) -> None:
        """After a read: re-measure the rate once per interval and set the low-water mark."""
        policy = self._limits.coalescing
        session = self.session
        self._rate_bytes += received
        elapsed = now - self._rate_since
        if elapsed >= policy.rate_interval:
            self._lowat_cap = min(int(self._rate_bytes / elapsed * policy.window),
                                  policy.max_bytes)
            self._lowat_floor = max(1, session.take_smallest_message() // 2)
            self._rate_bytes = 0
            self._rate_since = now
        want = 1
        if self._lowat_cap > 1 and session.state is SessionState.PUBLISHING:
            # Not while a command may be waiting for its answer (unpublish, close).
            want = min(self._lowat_cap, session.bytes_to_next_message or self._lowat_floor)
        self._set_lowat(max(1, want))

    def _set_lowat(self, lowat: int) -> None:
        if lowat == self._lowat or self._sock is None:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
        except OSError:
            self._sock = None  # not supported here: read byte by byte as before
            self._limits.coalesced.discard(self)
            return
        self._lowat = lowat
        if lowat > 1:
            self._limits.watch_stalls(self)
        else:
            self._limits.coalesced.discard(self)

    def _check_stall(self, now: float) -> None:
        """Called by the server's stall timer: clear a mark that holds bytes back too long
        (the rate dropped, or the peer waits for an answer); the next measurement sets it
        again."""
        if self._lost:
            self._limits.coalesced.discard(self)
            return
        if now - self._last_data_at > self._limits.coalescing.stall:
            self._lowat_cap = 0
            self._set_lowat(1)

    def _feed(self, data: bytes | memoryview | None) -> None:
        """Feed ``data`` (or resume held parsing when None) under the pre-auth budget."""
        session = self.session
        before = session.state
        metered = self._preauth
        if metered:
            # Fair shares instead of one shared bucket: a shared bucket goes to whichever
            # connection resumes first, and a newcomer (the owner) could starve behind a
            # flood. The burst shrinks with the share too (but stays enough for a publish).
            share = self._limits.chunk_share()
            self._chunks.rate = share
            self._chunks.burst = min(self._limits.budget.burst_chunks,
                                     max(share, MIN_PREAUTH_BURST_CHUNKS))
            self._chunks.refill(time.monotonic())
            session.set_chunk_allowance(max(0, int(self._chunks.level)))
        chunks_before = session.chunks_received
        if data is None:
            session.resume_parsing()
        else:
            session.receive_data(data)
        if metered:
            self._chunks.take(session.chunks_received - chunks_before)
        self._dispatch()
        self._update_deadline(before)
        if self._preauth and not self._lost:
            if session.authenticated:
                self._leave_preauth()
            else:
                self._enforce_budget()

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
        if self.session.authenticated:
            logger.info(
                "rtmp#%d %s closed after %.1fs, %d bytes: %s",
                self.id,
                self.peer[0],
                time.monotonic() - self.connected_at,
                self.session.bytes_received,
                self._close_reason or (error if error is not None else "ok"),
            )
        else:
            # Unauthenticated peers are counted, not logged one by one (RefusalLog).
            reason = self._close_reason
            if not reason:
                if self.session.error is not None:
                    reason = "protocol-error"
                elif self.session.state is SessionState.HANDSHAKE:
                    reason = "closed-in-handshake"
                else:
                    reason = "closed-before-publish"
            self._limits.stats.refusals.count(reason)
            logger.debug("rtmp#%d %s closed before publishing (%s): %s", self.id,
                         self.peer[0], reason, error if error is not None else "ok")
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
            if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                self.drop("unread-replies")
                return
        if self.session.state in (SessionState.CLOSING, SessionState.ERROR):
            transport.close()  # flushes the buffer first

    def abort(self) -> None:
        """Drop the TCP connection now, discarding unsent data."""
        if self._transport is not None:
            self._transport.abort()

    def drop(self, reason: str) -> None:
        """Abort with ``reason`` recorded for the close log / refusal counts."""
        if not self._close_reason:
            self._close_reason = reason
        self.abort()

    @property
    def low_water_mark(self) -> int:
        """The socket's current SO_RCVLOWAT as set by read coalescing (1: kernel default)."""
        return self._lowat

    @property
    def authenticated(self) -> bool:
        """True once the handler accepted this connection's publish."""
        return self.session.authenticated

    def pause_reading(self) -> None:
        """Stop reading from the socket (flow control when the consumer is over budget)."""
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading` (reading stays paused while over the pre-auth budget)."""
        if self._transport is not None and self._reading_paused and not self._budget_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    # ------------------------------------------------------------------ pre-auth budget

    def _account_buffered(self) -> int:
        """Update the global pre-auth memory figure; returns this connection's share."""
        buffered = self.session.buffered_bytes
        stats = self._limits.stats
        stats.preauth_buffered += buffered - self._accounted
        self._accounted = buffered
        return buffered

    def _enforce_budget(self) -> None:
        budget = self._limits.budget
        buffered = self._account_buffered()
        if self._limits.stats.preauth_buffered > budget.max_buffered_total:
            self.drop("pre-auth-memory")
            return
        wait = max(self._bytes.seconds_until_positive(),
                   self._chunks.seconds_until_positive() if self.session.held_by_allowance
                   else 0.0)
        if buffered > budget.max_buffered_bytes and wait == 0.0:
            # Input waits for the peer's publish decision (or is a huge partial message):
            # stop reading until the decision; the deadlines bound how long.
            wait = 0.25
        if wait > 0.0:
            if not self._budget_paused:
                self._limits.stats.refusals.count("pre-auth-budget")
            self._budget_pause(wait)

    def _budget_pause(self, wait: float) -> None:
        if self._transport is None:
            return
        if not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._budget_paused = True
        if self._resume_handle is None:
            loop = asyncio.get_running_loop()
            self._resume_handle = loop.call_later(max(0.02, min(wait, 1.0)),
                                                  self._budget_resume)

    def _budget_resume(self) -> None:
        self._resume_handle = None
        if self._lost:
            return
        self._budget_paused = False
        if self._transport is not None and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        self._feed(None)

    def _leave_preauth(self) -> None:
        limits = self._limits
        if not self._preauth:
            return
        self._preauth = False
        self._start_coalescing()
        limits.stats.preauth_buffered -= self._accounted
        self._accounted = 0
        limits.preauth.pop(self.id, None)
        ip = self.peer[0]
        limits.preauth_per_ip[ip] -= 1
        if limits.preauth_per_ip[ip] <= 0:
            del limits.preauth_per_ip[ip]
        limits.stats.preauth_connections = len(limits.preauth)
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self._budget_paused:
            self._budget_paused = False
            self.resume_reading()

    # ------------------------------------------------------------------ internals

    def _dispatch(self, *, write: bool = True) -> None:
        # Loop: a decision taken by the handler (accept_publish) resumes held parsing, which
        # may queue more events.
        closed = False
        while events := self.session.events():
            closed = closed or any(isinstance(e, ConnectionClosed) for e in events)
            self._call_handler(lambda: self._handler.events_received(self, events))
            if self._lost and not closed:
                break
        if write and not closed:
            self.flush()

    def _call_handler(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            logger.exception("rtmp#%d handler failed; dropping the connection", self.id)
            self.abort()

    def _release(self) -> None:
        self._cancel_deadline()
        self._limits.coalesced.discard(self)
        self._sock = None
        if not self._counted:
            return
        self._leave_preauth()
        self._counted = False
        limits = self._limits
        limits.total -= 1
        limits.stats.connections = limits.total
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
        logger.debug("rtmp#%d %s %s deadline expired", self.id, self.peer[0], kind)
        self.drop(f"{kind}-deadline")


async def bind_tcp(host: str | None, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (the first address it resolves to, SO_REUSEADDR),
    not yet listening: what :class:`FilteredServer` serves (RTMP here, HTTP in the appliance)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


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
    budget: PreAuthBudget | None = None,
    stats: RtmpServerStats | None = None,
    sock: socket.socket | None = None,
    coalescing: ReadCoalescing | None = None,
) -> FilteredServer:
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
        budget: what an unauthenticated connection may cost (:class:`PreAuthBudget`).
        stats: counters to update (pass one to read them; refusal summaries are logged to
            this module's logger every 10 s).
        sock: an already bound and listening socket to serve instead of ``host``/``port``
            (the appliance binds its listeners before it builds its configuration).
        coalescing: read batching of publishing connections (:class:`ReadCoalescing`; off by
            default).

    Returns:
        The started :class:`FilteredServer` (``sockets``, ``close()``, ``wait_closed()`` as
        :class:`asyncio.Server`).
    """
    limits = _ServerLimits(
        handshake_timeout=handshake_timeout,
        publish_timeout=publish_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        session_factory=session_factory,
        budget=budget or PreAuthBudget(),
        stats=stats or RtmpServerStats(RefusalLog(logger, "rtmp")),
        coalescing=coalescing or ReadCoalescing(),
    )

    def make_handler() -> RtmpHandler:
        if hasattr(handler_factory, "events_received"):
            return cast(RtmpHandler, handler_factory)
        factory = handler_factory
        assert callable(factory)
        return factory()

    def admit(address: str) -> bool:
        # The same caps RtmpConnection.connection_made enforces, checked before asyncio
        # builds a transport (see FilteredServer).
        if limits.total >= limits.max_connections:
            limits.stats.refusals.count("connection-limit")
            return False
        if limits.per_ip.get(address, 0) >= limits.max_connections_per_ip:
            limits.stats.refusals.count("per-address-limit")
            return False
        if not limits.connect_allowed(address):
            limits.stats.refusals.count("connect-rate")
            return False
        return True

    if sock is None:
        sock = await bind_tcp(host, port)
    return FilteredServer(sock, lambda: RtmpConnection(make_handler(), limits), admit,
                          backlog=LISTEN_BACKLOG)
