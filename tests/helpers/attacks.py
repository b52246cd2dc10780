"""Hostile clients for loopback tests and ``bench/hostile.py`` (docs/threat-model.md).

Each attack is an ``async`` function that runs until its ``stop`` event is set, from one or
more source addresses (any of 127.0.0.0/8 works on Linux loopback), reconnecting whenever the
server drops it, and counts what happened in an :class:`AttackStats`. The probes measure what
the attacks must not break: /healthz latency, the gap between LL-HLS parts, the server's RSS
and CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from media.rtmp.handshake import HANDSHAKE_SIZE
from media.rtmp.messages import UserControl, UserControlEventType
from tests.media.rtmp.rtmp_factory import C1, ClientWriter, chunk, connect_command

ESC_CLEAR = "\x1b[2J"


@dataclass
class AttackStats:
    """What an attack did: connections opened, refused or cut, and bytes sent."""

    connects: int = 0
    refused: int = 0
    dropped: int = 0
    bytes_sent: int = 0
    replies: list[bytes] = field(default_factory=list)


def sources(count: int, first: int = 2) -> list[str]:
    """``count`` loopback source addresses 127.0.0.<first>.. (127.0.1.x beyond 255)."""
    return [f"127.0.{(first + i) // 250}.{(first + i) % 250 + 1}" for i in range(count)]


async def _open(host: str, port: int, source: str,
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0)), 5)


async def rtmp_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"\x03" + C1)
    await asyncio.wait_for(reader.readexactly(1 + 2 * HANDSHAKE_SIZE), 10)
    writer.write(bytes(HANDSHAKE_SIZE))
    await writer.drain()


def connect_bytes(client: ClientWriter, app: str = "live") -> bytes:
    name, txid, obj = connect_command(app)
    return client.command(0, name, txid, obj)


def _ping_blob(size: int = 64 * 1024) -> bytes:
    ping = ClientWriter().message(
        2, 4, 0, UserControl(UserControlEventType.PING_REQUEST, b"\0\0\0\1").serialize())
    return ping * (size // len(ping))


def _one_byte_chunks_blob() -> bytes:
    # SetChunkSize 1, then 60 KB metadata messages split into 1-byte chunks (2 bytes each).
    client = ClientWriter()
    out = client.set_chunk_size(1)
    payload = b"\x02\x00\x0aonMetaData" + bytes(60_000)
    out += client.message(4, 18, 0, payload)
    return out


async def _flood_loop(host: str, port: int, source: str, blob: bytes, stats: AttackStats,
                      stop: asyncio.Event, *, connect_first: bool) -> None:
    while not stop.is_set():
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await _open(host, port, source)
            stats.connects += 1
            await rtmp_handshake(reader, writer)
            prefix = connect_bytes(ClientWriter()) if connect_first else b""
            writer.write(prefix)
            drain_replies = asyncio.ensure_future(_discard(reader))
            try:
                while not stop.is_set():
                    writer.write(blob)
                    stats.bytes_sent += len(blob)
                    await asyncio.wait_for(writer.drain(), 2)
            finally:
                drain_replies.cancel()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            stats.dropped += 1
            await asyncio.sleep(0.05)
        finally:
            if writer is not None:
                writer.transport.abort()


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while await reader.read(65536):
            pass


async def tiny_message_flood(host: str, port: int, addrs: Sequence[str], stop: asyncio.Event,
                             *, per_address: int = 4) -> AttackStats:
    """Keyless connections flooding 18-byte ping requests and 1-byte chunks (issue 10 #1)."""
    stats = AttackStats()
    pings, ones = _ping_blob(), _one_byte_chunks_blob()
    await asyncio.gather(*(
        _flood_loop(host, port, a, pings if i % 2 == 0 else ones, stats, stop,
                    connect_first=i % 2 == 1)
        for a in addrs for i in range(per_address)))
    return stats


async def big_message_starts(host: str, port: int, addrs: Sequence[str], stop: asyncio.Event,
                             *, per_address: int = 8, declared: int = 8 << 20) -> AttackStats:
    """Keyless connections each beginning an 8 MiB message and never finishing (issue 10 #2)."""
    stats = AttackStats()

    async def one(source: str) -> None:
        while not stop.is_set():
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await _open(host, port, source)
                stats.connects += 1
                await rtmp_handshake(reader, writer)
                client = ClientWriter()
                writer.write(client.set_chunk_size(0xFFFFFF))
                writer.write(chunk(0, 6, bytes(1 << 20), length=declared, type_id=9, msid=1))
                stats.bytes_sent += 1 << 20
                await asyncio.wait_for(writer.drain(), 5)
                while not stop.is_set() and not reader.at_eof():
                    await asyncio.sleep(0.2)
                    writer.write(bytes(1024))  # keep it "alive", never finish
                    await asyncio.wait_for(writer.drain(), 5)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                stats.dropped += 1
                await asyncio.sleep(0.05)
            finally:
                if writer is not None:
                    writer.transport.abort()

    await asyncio.gather(*(one(a) for a in addrs for _ in range(per_address)))
    return stats


async def half_open_handshakes(host: str, port: int, addrs: Sequence[str],
                               stop: asyncio.Event, *, per_address: int = 40) -> AttackStats:
    """Connections that send half a C1 and wait (issue 10 #3), reopened when cut."""
    stats = AttackStats()

    async def one(source: str) -> None:
        while not stop.is_set():
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await _open(host, port, source)
                stats.connects += 1
                writer.write(b"\x03" + C1[:700])
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 30)
                stats.dropped += 1
            except (OSError, TimeoutError):
                stats.refused += 1
                await asyncio.sleep(0.1)
            finally:
                if writer is not None:
                    writer.transport.abort()

    await asyncio.gather(*(one(a) for a in addrs for _ in range(per_address)))
    return stats


async def wrong_key_then_delete(host: str, port: int, source: str,
                                key: str = "hk_nobody_wrongkey") -> bytes:
    """publish with a wrong key followed at once by deleteStream (issue 10 #4); returns all
    bytes the server sent until it closed the connection (within 15 s)."""
    reader, writer = await _open(host, port, source)
    try:
        await rtmp_handshake(reader, writer)
        client = ClientWriter()
        writer.write(connect_bytes(client) + client.command(0, "createStream", 2.0, None))
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(client.command(1, "publish", 3.0, None, key, "live")
                     + client.command(0, "deleteStream", 4.0, None, 1.0))
        await writer.drain()
        received = bytearray()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(15):
                while chunk_ := await reader.read(65536):
                    received += chunk_
        return bytes(received)
    finally:
        writer.transport.abort()


async def publish_named(host: str, port: int, source: str, name: str) -> bytes:
    """A raw publish with an arbitrary (hostile) stream name; returns the server's bytes."""
    reader, writer = await _open(host, port, source)
    try:
        await rtmp_handshake(reader, writer)
        client = ClientWriter()
        writer.write(connect_bytes(client) + client.command(0, "createStream", 2.0, None)
                     + client.command(1, "publish", 3.0, None, name, "live"))
        await writer.drain()
        received = bytearray()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(10):
                while chunk_ := await reader.read(65536):
                    received += chunk_
        return bytes(received)
    finally:
        writer.transport.abort()


async def wrong_key_flood(host: str, port: int, addrs: Sequence[str], stop: asyncio.Event,
                          *, per_address: int = 2) -> AttackStats:
    """Publishes with random wrong keys, each connection waiting for its refusal."""
    stats = AttackStats()

    async def one(source: str) -> None:
        while not stop.is_set():
            key = f"hk_{os.urandom(6).hex()}_{os.urandom(8).hex()}"
            try:
                reply = await asyncio.wait_for(publish_named(host, port, source, key), 15)
                stats.connects += 1
                if b"NetStream.Publish.BadName" in reply:
                    stats.refused += 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                stats.dropped += 1
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one(a) for a in addrs for _ in range(per_address)))
    return stats


async def slowloris(host: str, port: int, addrs: Sequence[str], stop: asyncio.Event, *,
                    per_address: int = 50, interval: float = 2.0) -> AttackStats:
    """HTTP clients sending one request-head byte every ``interval`` seconds (issue 10 #6).

    ``replies`` collects, per connection, how long the server kept it open (as ASCII)."""
    stats = AttackStats()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000

    async def one(source: str) -> None:
        while not stop.is_set():
            writer: asyncio.StreamWriter | None = None
            opened = time.monotonic()
            try:
                reader, writer = await _open(host, port, source)
                stats.connects += 1
                for byte in head:
                    if stop.is_set() or reader.at_eof():
                        break
                    writer.write(bytes((byte,)))
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(1), interval) == b"":
                            break
                stats.dropped += 1
                stats.replies.append(f"{time.monotonic() - opened:.1f}".encode())
            except (OSError, TimeoutError):
                stats.refused += 1
                await asyncio.sleep(0.2)
            finally:
                if writer is not None:
                    writer.transport.abort()

    await asyncio.gather(*(one(a) for a in addrs for _ in range(per_address)))
    return stats


async def open_websockets(base: str, path: str, source: str, count: int,
                          hold: float) -> tuple[int, int]:
    """Open ``count`` WebSockets from ``source``; returns (opened, refused)."""
    import aiohttp

    opened = refused = 0
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for _ in range(count):
            try:
                ws = await asyncio.wait_for(session.ws_connect(base + path), 5)
                sockets.append(ws)
                opened += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                refused += 1
        await asyncio.sleep(hold)
        for ws in sockets:
            await ws.close()
    return opened, refused


# ---- probes ------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    healthz_ms: list[float] = field(default_factory=list)
    healthz_failures: int = 0
    part_times: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0

    def part_gap(self) -> float:
        times = self.part_times
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))

    def percentile(self, q: float) -> float:
        data = sorted(self.healthz_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))]

    def rss_growth_mib(self) -> float:
        return (max(self.rss_kib) - self.rss_kib[0]) / 1024 if self.rss_kib else float("nan")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_PART_RE = re.compile(r'#EXT-X-PART:.*URI="([^"]+)"')


async def probe(base: str, stream_id: str, pid: int, stop: asyncio.Event) -> ProbeResult:
    """Until ``stop``: /healthz every 0.1 s, the playlist's newest part every 0.05 s, RSS."""
    result = ProbeResult()
    cpu0 = cpu_seconds(pid)
    loop = asyncio.get_running_loop()

    def get(url: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body

    async def healthz() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await loop.run_in_executor(None, get, base + "/healthz")
                result.healthz_ms.append((time.perf_counter() - started) * 1000)
            except OSError:
                result.healthz_failures += 1
            await asyncio.sleep(0.1)

    async def parts() -> None:
        last = ""
        url = f"{base}/hls/{stream_id}/media.m3u8"
        while not stop.is_set():
            with contextlib.suppress(OSError):
                text = (await loop.run_in_executor(None, get, url)).decode()
                found = _PART_RE.findall(text)
                if found and found[-1] != last:
                    last = found[-1]
                    result.part_times.append(time.monotonic())
            await asyncio.sleep(0.05)

    async def memory() -> None:
        while not stop.is_set():
            result.rss_kib.append(rss_kib(pid))
            await asyncio.sleep(0.25)

    await asyncio.gather(healthz(), parts(), memory())
    result.cpu_seconds = cpu_seconds(pid) - cpu0
    return result


async def run_for(seconds: float, attack: Callable[[asyncio.Event], Awaitable[object]],
                  measure: Callable[[asyncio.Event], Awaitable[ProbeResult]],
                  ) -> tuple[object, ProbeResult]:
    """Run ``attack`` and ``measure`` side by side for ``seconds``."""
    stop = asyncio.Event()
    attack_task = asyncio.ensure_future(attack(stop))
    probe_task = asyncio.ensure_future(measure(stop))
    await asyncio.sleep(seconds)
    stop.set()
    attacked = await asyncio.wait_for(attack_task, 40)
    probed = await asyncio.wait_for(probe_task, 40)
    return attacked, probed


def forged_chat_event(victim_pubkey: str, address: str, content: str) -> dict[str, object]:
    """A kind 1311 claiming ``victim_pubkey`` with a garbage signature."""
    return {"id": "0" * 64, "pubkey": victim_pubkey, "created_at": int(time.time()),
            "kind": 1311, "tags": [["a", address]], "content": content, "sig": "0" * 128}


def deep_json(levels: int = 3000) -> str:
    return json.dumps({"type": "event"})[:-1] + ', "event": ' + "[" * levels + "]" * levels + "}"


# ---- a separate attacking process (so the attacker's own CPU does not skew the probes) -------


ATTACKS = ("tiny", "big", "halfopen", "wrongkey", "slowloris")


async def _run_named(name: str, host: str, rtmp_port: int, http_port: int,
                     addrs: list[str], per_address: int, seconds: float) -> AttackStats:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    if name == "tiny":
        return await tiny_message_flood(host, rtmp_port, addrs, stop, per_address=per_address)
    if name == "big":
        return await big_message_starts(host, rtmp_port, addrs, stop, per_address=per_address)
    if name == "halfopen":
        return await half_open_handshakes(host, rtmp_port, addrs, stop,
                                          per_address=per_address)
    if name == "wrongkey":
        return await wrong_key_flood(host, rtmp_port, addrs, stop, per_address=per_address)
    return await slowloris(host, http_port, addrs, stop, per_address=per_address)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tests.helpers.attacks NAME --rtmp-port P --http-port Q [...]``: run one
    attack for ``--seconds`` and print its :class:`AttackStats` as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description="Run one hostile-client attack.")
    parser.add_argument("name", choices=ATTACKS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rtmp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--first", type=int, default=2)
    parser.add_argument("--per-address", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    stats = asyncio.run(_run_named(args.name, args.host, args.rtmp_port, args.http_port,
                                   sources(args.sources, args.first), args.per_address,
                                   args.seconds))
    print(json.dumps({"connects": stats.connects, "refused": stats.refused,
                      "dropped": stats.dropped, "bytes_sent": stats.bytes_sent}))


if __name__ == "__main__":
    main()
