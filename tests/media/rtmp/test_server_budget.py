"""The asyncio adapter's pre-authentication budgets, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from media.rtmp.server import (
    PreAuthBudget,
    RefusalLog,
    RtmpConnection,
    RtmpServerStats,
    start_rtmp_server,
)
from media.rtmp.session import PublishRequested, RtmpEvent
from tests.helpers import attacks
from tests.media.rtmp.rtmp_factory import ClientWriter


@dataclass
class Handler:
    delay: float = 0.0
    conns: list[RtmpConnection] = field(default_factory=list)
    accepted: int = 0

    def connection_made(self, conn: RtmpConnection) -> None:
        self.conns.append(conn)

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        for ev in events:
            if isinstance(ev, PublishRequested):
                if ev.stream_name == "good":
                    conn.session.accept_publish(ev.message_stream_id)
                    self.accepted += 1
                else:
                    def refuse(msid: int = ev.message_stream_id) -> None:
                        conn.session.reject_publish(msid, "NetStream.Publish.BadName", "no")
                        conn.flush()

                    asyncio.get_running_loop().call_later(self.delay, refuse)

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        pass


@dataclass
class Server:
    port: int
    stats: RtmpServerStats
    handler: Handler


@pytest.fixture
async def make_server() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def make(budget: PreAuthBudget, **kw: float) -> Server:
        stats = RtmpServerStats(RefusalLog(logging.getLogger("test.rtmp"), "rtmp", 0.5))
        handler = Handler(delay=kw.pop("delay", 0.0))
        srv = await start_rtmp_server("127.0.0.1", 0, handler, budget=budget, stats=stats,
                                      **kw)  # type: ignore[arg-type]
        servers.append(srv)
        return Server(srv.sockets[0].getsockname()[1], stats, handler)

    yield make
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def _publish(port: int, name: str, source: str = "127.0.0.1") -> bytes:
    return await attacks.publish_named("127.0.0.1", port, source, name)


async def test_chunk_budget_bounds_parsing_of_a_ping_flood(make_server: object) -> None:
    """A keyless ping flood is parsed at the budgeted rate, not at line rate."""
    server: Server = await make_server(PreAuthBudget(chunks_per_second=100, burst_chunks=100))  # type: ignore[operator]
    stop = asyncio.Event()
    flood = asyncio.ensure_future(attacks.tiny_message_flood(
        "127.0.0.1", server.port, ["127.0.0.2"], stop, per_address=1))
    await asyncio.sleep(1.5)
    stop.set()
    stats = await flood
    parsed = sum(c.session.chunks_received for c in server.handler.conns)
    assert stats.bytes_sent > 100_000  # the client sent thousands of pings
    assert parsed <= 100 + 100 * 2.5  # burst + rate x elapsed (generous)
    assert server.stats.refusals.totals["pre-auth-budget"] >= 1


async def test_publisher_is_not_metered_after_acceptance(make_server: object) -> None:
    server: Server = await make_server(PreAuthBudget(chunks_per_second=20, burst_chunks=40))  # type: ignore[operator]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await attacks.rtmp_handshake(reader, writer)
        client = ClientWriter()
        writer.write(attacks.connect_bytes(client) + client.command(0, "createStream", 2.0, None)
                     + client.command(1, "publish", 3.0, None, "good", "live"))
        await writer.drain()
        for _ in range(50):
            if server.handler.accepted:
                break
            await asyncio.sleep(0.05)
        conn = server.handler.conns[0]
        assert conn.authenticated and conn.session.chunk_allowance is None
        assert server.stats.preauth_connections == 0
        writer.write(b"".join(client.audio(1, i, b"\xaf\x01" + bytes(50)) for i in range(2000)))
        await writer.drain()
        for _ in range(100):
            if conn.session.messages_received >= 2000:
                break
            await asyncio.sleep(0.05)
        assert conn.session.messages_received >= 2000  # far above the pre-auth budget
    finally:
        writer.transport.abort()


async def test_eviction_keeps_room_for_a_new_publisher(make_server: object) -> None:
    """With the pre-auth table full of idle connections, a newcomer evicts the oldest of the
    busiest address and can publish."""
    server: Server = await make_server(PreAuthBudget(max_connections=6))  # type: ignore[operator]
    writers = []
    for i in range(6):
        _, w = await asyncio.open_connection("127.0.0.1", server.port,
                                             local_addr=(f"127.0.0.{3 + i % 2}", 0))
        writers.append(w)
    await asyncio.sleep(0.2)
    assert server.stats.preauth_connections == 6
    try:
        replies = await _publish(server.port, "good", "127.0.0.9")
        assert b"NetStream.Publish.Start" in replies
        assert server.stats.evicted >= 1
        assert server.stats.preauth_connections <= 6
    finally:
        for w in writers:
            w.transport.abort()


async def test_refusal_log_summarises(make_server: object,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """Fifty refused connections are one summary line, not fifty."""
    server: Server = await make_server(PreAuthBudget(), max_connections_per_ip=1)  # type: ignore[operator]
    caplog.set_level(logging.INFO, logger="test.rtmp")
    _, keep = await asyncio.open_connection("127.0.0.1", server.port,
                                            local_addr=("127.0.0.5", 0))
    try:
        for _ in range(50):
            with contextlib.suppress(OSError):
                r, w = await asyncio.open_connection("127.0.0.1", server.port,
                                                     local_addr=("127.0.0.5", 0))
                await r.read(1)
                w.transport.abort()
        await asyncio.sleep(0.8)
    finally:
        keep.transport.abort()
    lines = [r for r in caplog.records if r.name == "test.rtmp"]
    assert len(lines) == 1
    assert "per-address-limit x50" in lines[0].getMessage()


async def test_late_refusal_after_delete_stream_is_still_sent(make_server: object) -> None:
    """The wrong-key + deleteStream race over a socket, with a delayed refusal."""
    server: Server = await make_server(PreAuthBudget(), delay=0.3)  # type: ignore[operator]
    replies = await attacks.wrong_key_then_delete("127.0.0.1", server.port, "127.0.0.1")
    assert b"NetStream.Publish.BadName" in replies


async def test_unread_replies_drop_the_connection(make_server: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that floods pings but never reads the pongs is dropped, not buffered forever."""
    import media.rtmp.server as rtmp_server

    # The mechanism, not the 1 MiB figure: a smaller cap needs a 16× shorter flood (the full
    # one took > 20 s of pure-Python parsing on a loaded CI box).
    monkeypatch.setattr(rtmp_server, "MAX_WRITE_BUFFER", 64 << 10)
    server: Server = await make_server(PreAuthBudget(  # type: ignore[operator]
        chunks_per_second=1e6, burst_chunks=1e6, total_chunks_per_second=1e6,
        bytes_per_second=1e9, burst_bytes=1e9))
    # A small receive buffer: the pongs back up after kilobytes, not after the megabytes
    # loopback autotuning would accept (which took > 20 s of flooding on a loaded CI box).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    transport = writer.transport
    try:
        await attacks.rtmp_handshake(reader, writer)
        transport.pause_reading()  # never read again
        blob = attacks._ping_blob()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(20):
                while True:
                    writer.write(blob)
                    await writer.drain()
        assert server.stats.refusals.totals["unread-replies"] == 1
    finally:
        transport.abort()


async def test_connection_rate_per_address_is_limited_at_accept(make_server: object) -> None:
    """Beyond the burst, new connections from one address are reset at accept (they never
    reach the handler), while another address still connects."""
    server: Server = await make_server(  # type: ignore[operator]
        PreAuthBudget(connects_per_second=0.5, connect_burst=4), max_connections_per_ip=100)
    writers = []
    for _ in range(10):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", server.port,
                                                 local_addr=("127.0.0.7", 0))
            writers.append(w)
    await asyncio.sleep(0.3)
    try:
        assert len(server.handler.conns) == 4
        assert server.stats.refusals.totals["connect-rate"] == 6
        assert b"NetStream.Publish.Start" in await _publish(server.port, "good", "127.0.0.8")
    finally:
        for w in writers:
            w.transport.abort()


async def test_total_chunk_budget_bounds_many_addresses(make_server: object) -> None:
    """Many addresses, each within its own budget, cannot add up beyond the total budget."""
    server: Server = await make_server(PreAuthBudget(  # type: ignore[operator]
        chunks_per_second=1000, burst_chunks=1000, total_chunks_per_second=100))
    stop = asyncio.Event()
    flood = asyncio.ensure_future(attacks.tiny_message_flood(
        "127.0.0.1", server.port, attacks.sources(4, first=30), stop, per_address=1))
    await asyncio.sleep(1.5)
    stop.set()
    await flood
    parsed = sum(c.session.chunks_received for c in server.handler.conns)
    assert parsed <= 100 + 100 * 2.5  # one second's burst + rate x elapsed (generous)
