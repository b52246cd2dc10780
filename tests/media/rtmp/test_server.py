"""The asyncio adapter against real clients on loopback (FFmpeg CLI, PyAV) and deadlines."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from media.rtmp import (
    AudioReceived,
    Connected,
    ConnectionClosed,
    PublishRequested,
    RtmpConnection,
    RtmpEvent,
    StreamMetadata,
    Unpublished,
    VideoPacketType,
    VideoReceived,
    parse_audio_tag,
    parse_video_tag,
    start_rtmp_server,
)
from media.rtmp.messages import CommandMessage
from tests.media.rtmp.rtmp_factory import (
    ClientWriter,
    ServerBytesDecoder,
    connect_command,
    handshake,
)

FFMPEG = "/usr/bin/ffmpeg"


@dataclass
class RecordingHandler:
    """Accepts the key ``testkey`` and records everything."""

    events: list[RtmpEvent] = field(default_factory=list)
    made: int = 0
    lost: list[BaseException | None] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def connection_made(self, conn: RtmpConnection) -> None:
        self.made += 1

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        self.events += events
        for event in events:
            if isinstance(event, PublishRequested):
                if event.stream_name == "testkey":
                    conn.session.accept_publish(event.message_stream_id)
                else:
                    conn.session.reject_publish(
                        event.message_stream_id, "NetStream.Publish.BadName", "unknown key"
                    )

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        self.lost.append(error)
        self.done.set()


@pytest.fixture
async def server() -> AsyncIterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    srv = await start_rtmp_server("127.0.0.1", 0, handler, handshake_timeout=0.5)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield handler, port
    finally:
        srv.close()
        await srv.wait_closed()


def _assert_published_h264_aac(events: list[RtmpEvent], *, audio: bool) -> None:
    assert Connected in {type(e) for e in events}
    connected = next(e for e in events if isinstance(e, Connected))
    assert connected.app == "live"
    publish = next(e for e in events if isinstance(e, PublishRequested))
    assert publish.stream_name == "testkey"
    assert any(isinstance(e, StreamMetadata) for e in events)
    videos = [parse_video_tag(e.body) for e in events if isinstance(e, VideoReceived)]
    assert videos[0].codec == "h264"
    assert videos[0].packet_type is VideoPacketType.SEQUENCE_HEADER
    assert any(v.is_keyframe for v in videos)
    assert sum(v.packet_type is VideoPacketType.NALU for v in videos) >= 10
    stamps = [e.timestamp for e in events if isinstance(e, VideoReceived)]
    assert stamps == sorted(stamps) and stamps[-1] > 500
    if audio:
        audios = [parse_audio_tag(e.body) for e in events if isinstance(e, AudioReceived)]
        assert audios[0].codec == "aac" and audios[0].aac_packet_type == 0
        assert sum(a.aac_packet_type == 1 for a in audios) >= 10
    assert isinstance(events[-1], ConnectionClosed)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FFMPEG), reason="ffmpeg CLI not installed")
async def test_ffmpeg_cli_publishes(server: tuple[RecordingHandler, int]) -> None:
    """A real FFmpeg publisher completes the OBS-style flow with H.264 + AAC."""
    handler, port = server
    proc = await asyncio.create_subprocess_exec(
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/live/testkey",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, stderr = await proc.communicate()
        await handler.done.wait()
    assert proc.returncode == 0, stderr.decode(errors="replace")
    _assert_published_h264_aac(handler.events, audio=True)
    assert any(isinstance(e, Unpublished) for e in handler.events)


@pytest.mark.skipif(not os.path.exists(FFMPEG), reason="ffmpeg CLI not installed")
async def test_ffmpeg_bad_key_is_rejected(server: tuple[RecordingHandler, int]) -> None:
    """A rejected publish makes the client fail instead of streaming."""
    handler, port = server
    proc = await asyncio.create_subprocess_exec(
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/live/wrongkey",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(30):
        await proc.wait()
        await handler.done.wait()
    assert proc.returncode != 0
    assert not any(isinstance(e, VideoReceived) for e in handler.events)


# PyAV holds the GIL while libavformat blocks on the socket, which would freeze the event
# loop serving it in the same process, so the publisher runs in a child interpreter.
_PYAV_PUBLISHER = """
import sys
import av

with av.open(sys.argv[1], mode="w", format="flv") as container:
    stream = container.add_stream("libx264", rate=25)
    stream.width = 320
    stream.height = 240
    stream.pix_fmt = "yuv420p"
    stream.options = {"g": "25", "preset": "ultrafast"}
    for i in range(50):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 5) % 256]) * plane.buffer_size)
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
"""


@pytest.mark.slow
async def test_pyav_publishes(server: tuple[RecordingHandler, int]) -> None:
    """PyAV (libavformat's RTMP client) publishes H.264 through the server."""
    pytest.importorskip("av")
    handler, port = server
    async with asyncio.timeout(30):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PYAV_PUBLISHER,
            f"rtmp://127.0.0.1:{port}/live/testkey",
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await proc.communicate()
        await handler.done.wait()
    assert proc.returncode == 0, stderr.decode(errors="replace")
    _assert_published_h264_aac(handler.events, audio=False)


async def test_handshake_deadline(server: tuple[RecordingHandler, int]) -> None:
    """docs/threat-model.md §rtmp: a client that sends nothing is dropped after the handshake
    deadline."""
    handler, port = server
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    try:
        async with asyncio.timeout(5):
            data = await loop.sock_recv(sock, 10)
        assert data == b""  # closed by the server
    except ConnectionResetError:
        pass  # abort() may reset instead of FIN
    finally:
        sock.close()
    async with asyncio.timeout(5):
        await handler.done.wait()
    assert handler.events == [ConnectionClosed()]


async def test_bad_version_closes_connection(server: tuple[RecordingHandler, int]) -> None:
    """docs/threat-model.md §rtmp: a non-3 C0 ends the connection with ProtocolFailed."""
    handler, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x06" + bytes(1536))
    async with asyncio.timeout(5):
        assert await reader.read() == b""
        await handler.done.wait()
    writer.close()
    assert type(handler.events[0]).__name__ == "ProtocolFailed"


async def test_per_ip_connection_limit() -> None:
    """Connections beyond max_connections_per_ip are refused before the handler sees them."""
    handler = RecordingHandler()
    srv = await start_rtmp_server("127.0.0.1", 0, handler, max_connections_per_ip=1)
    port = srv.sockets[0].getsockname()[1]
    try:
        _, w1 = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.1)
        # The refusal is a reset right at accept: it may even fail the client's connect.
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(5):
                try:
                    assert await r2.read() == b""
                except ConnectionResetError:
                    pass
            w2.close()
        except ConnectionResetError:
            pass
        assert handler.made == 1
        w1.close()
    finally:
        srv.close()
        await srv.wait_closed()


def _raw_publisher_bytes(key: str) -> bytes:
    client = ClientWriter()
    name, txid, obj = connect_command()
    return (
        handshake()
        + client.command(0, name, txid, obj)
        + client.command(0, "createStream", 2.0, None)
        + client.command(1, "publish", 3.0, None, key, "live")
    )


class SilentHandler(RecordingHandler):
    """Never decides on a publish."""

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        self.events += events


async def _wait_closed_by_server(port: int, data: bytes) -> float:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    start = loop.time()
    try:
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
    except ConnectionResetError:
        pass
    writer.close()
    return loop.time() - start


async def test_publish_deadline() -> None:
    """docs/threat-model.md §rtmp: a publish not accepted within publish_timeout of the handshake
    is dropped."""
    handler = SilentHandler()
    srv = await start_rtmp_server("127.0.0.1", 0, handler, publish_timeout=0.3)
    port = srv.sockets[0].getsockname()[1]
    try:
        elapsed = await _wait_closed_by_server(port, _raw_publisher_bytes("testkey"))
        assert 0.2 < elapsed < 3
        async with asyncio.timeout(5):
            await handler.done.wait()
        assert any(isinstance(e, PublishRequested) for e in handler.events)
    finally:
        srv.close()
        await srv.wait_closed()


async def test_idle_deadline_while_publishing() -> None:
    """docs/threat-model.md §rtmp: no data for idle_timeout while publishing closes the
    connection."""
    handler = RecordingHandler()
    srv = await start_rtmp_server("127.0.0.1", 0, handler, idle_timeout=0.3)
    port = srv.sockets[0].getsockname()[1]
    try:
        elapsed = await _wait_closed_by_server(port, _raw_publisher_bytes("testkey"))
        assert 0.2 < elapsed < 3
        async with asyncio.timeout(5):
            await handler.done.wait()
        assert handler.events[-1] == ConnectionClosed()
    finally:
        srv.close()
        await srv.wait_closed()


async def test_rejected_publish_is_closed_after_the_reply() -> None:
    """reject_publish: onStatus error is written, then the server closes the connection."""
    handler = RecordingHandler()
    srv = await start_rtmp_server("127.0.0.1", 0, handler)
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_raw_publisher_bytes("wrongkey"))
        async with asyncio.timeout(5):
            received = await reader.read()
        writer.close()
        replies = ServerBytesDecoder().decode(received[1 + 2 * 1536 :])
        statuses = [
            r.message.arguments[0]
            for r in replies
            if isinstance(r.message, CommandMessage) and r.message.command_name == "onStatus"
        ]
        assert statuses == [
            {"level": "error", "code": "NetStream.Publish.BadName", "description": "unknown key"}
        ]
    finally:
        srv.close()
        await srv.wait_closed()


async def test_read_coalescing_sets_a_mark_and_never_strands_a_small_message() -> None:
    """With read coalescing on, a steady publish gets a low-water mark (fewer reads), every
    media message still arrives, and a message smaller than the mark sent after the media
    (FCUnpublish, whose answer a client may wait for) is still answered: the stall check
    clears the mark (media.rtmp.server module doc)."""
    from media.rtmp.server import ReadCoalescing

    marks: list[int] = []

    class Handler(RecordingHandler):
        def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
            super().events_received(conn, events)
            marks.append(conn.low_water_mark)

    handler = Handler()
    policy = ReadCoalescing(window=0.02, rate_interval=0.2, stall=0.1)
    srv = await start_rtmp_server("127.0.0.1", 0, handler, coalescing=policy)
    port = srv.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        client = ClientWriter()
        writer.write(_raw_publisher_bytes("testkey") + client.set_chunk_size(4096))
        # ~240 KB/s of "audio" in 3 KB messages for 0.6 s: the mark becomes min(20 ms of the
        # rate, half the smallest message) = ~1.5 KB.
        body = b"\xaf\x01" + bytes(3000)
        for i in range(60):
            writer.write(client.audio(1, i * 10, body))
            await asyncio.sleep(0.01)
        assert max(marks) > 1
        writer.write(client.command(0, "FCUnpublish", 9.0, None, "testkey"))  # < the mark
        received = b""

        def answered() -> bool:
            try:
                replies = ServerBytesDecoder().decode(received[3073:])  # after S0+S1+S2
            except AssertionError:  # ends mid-chunk: read more
                return False
            return any(isinstance(r.message, CommandMessage) and r.message.transaction_id == 9.0
                       for r in replies)

        async with asyncio.timeout(5):
            while not answered():
                data = await reader.read(65536)
                assert data, "server closed"
                received += data
        assert sum(isinstance(e, AudioReceived) for e in handler.events) == 60
    finally:
        writer.close()
        srv.close()
        await srv.wait_closed()
