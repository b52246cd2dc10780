"""Typed factories for RTMP test input (h2's FrameFactory / h11's ConnectionPair idea)."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from hypothesis import strategies as st

from media.rtmp import amf0
from media.rtmp.amf0 import AmfValue
from media.rtmp.buffer import StreamReader
from media.rtmp.chunk import (
    INCOMPLETE,
    ChunkReader,
    ChunkWriter,
    RawMessage,
    encode_chunk_header,
)
from media.rtmp.handshake import HANDSHAKE_SIZE
from media.rtmp.messages import (
    CommandMessage,
    DataMessage,
    RtmpMessage,
    SetChunkSize,
    parse_message,
)
from media.rtmp.session import RtmpEvent, RtmpServerSession

C1 = bytes(8) + bytes(range(256)) * 6  # 8 + 1536 - 8 bytes
C1 = C1[:HANDSHAKE_SIZE]
C2 = bytes(HANDSHAKE_SIZE)


def handshake() -> bytes:
    """C0 + C1 + C2 as a simple-handshake client sends them."""
    return b"\x03" + C1 + C2


def chunk(
    fmt: int,
    csid: int,
    payload: bytes = b"",
    *,
    timestamp: int = 0,
    length: int | None = None,
    type_id: int = 0,
    msid: int = 0,
    extended_timestamp: int | None = None,
) -> bytes:
    """One chunk built from typed arguments (length defaults to ``len(payload)``)."""
    header = encode_chunk_header(
        fmt,
        csid,
        timestamp=timestamp,
        message_length=len(payload) if length is None else length,
        message_type_id=type_id,
        message_stream_id=msid,
        extended_timestamp=extended_timestamp,
    )
    return header + payload


CSIDS = (2, 3, 4, 6, 63, 64, 319, 320, 65599)
"""Chunk stream ids of every basic-header form (§5.3.1.1) and at their edges."""
TIMESTAMPS = (0, 5, 40, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0xFFFFFFFF)
"""Timestamps around the extended-timestamp sentinel (§5.3.1.3) and the 32-bit edge."""


def any_chunk(type_ids: Sequence[int] = (8, 9, 20, 18), csids: Sequence[int] = CSIDS,
              max_payload: int = 300, max_length: int = 700) -> st.SearchStrategy[bytes]:
    """Chunks with every header type, csid form and (extended) timestamp, valid or not."""
    return st.builds(
        chunk,
        st.integers(0, 3),
        st.sampled_from(csids),
        st.binary(max_size=max_payload),
        timestamp=st.sampled_from(TIMESTAMPS),
        length=st.none() | st.integers(0, max_length),
        type_id=st.sampled_from(type_ids),
        msid=st.integers(0, 2),
        extended_timestamp=st.none() | st.sampled_from(TIMESTAMPS),
    )


def mixed_chunk_stream() -> bytes:
    """Chunks using every header type, both long csid forms, extended timestamps (repeated
    on type-3 chunks), a chunk size change in the middle of a message and interleaved
    messages: eight messages in all."""
    video = bytes(range(256)) * 2
    return (
        chunk(0, 6, video[:128], length=512, type_id=9, msid=1, timestamp=0xFFFFFF + 9)
        + chunk(0, 320, b"audio", type_id=8, msid=1, timestamp=7)
        + chunk(3, 6, video[128:256], extended_timestamp=0xFFFFFF + 9)
        + chunk(0, 2, SetChunkSize(300).serialize(), type_id=1)
        + chunk(3, 6, video[256:], extended_timestamp=0xFFFFFF + 9)
        + chunk(0, 64, b"", type_id=20, msid=0)
        + chunk(1, 320, b"aa", type_id=8, timestamp=21)
        + chunk(2, 320, b"bb", timestamp=0xFFFFFF)
        + chunk(3, 320, b"cc", extended_timestamp=0xFFFFFF)
        + chunk(1, 6, video[:300], length=400, type_id=9, timestamp=33)
        + chunk(3, 6, video[300:400], extended_timestamp=None)
    )


class ClientWriter:
    """Serializes client → server messages the way a publisher would."""

    def __init__(self, chunk_size: int = 128) -> None:
        self._writer = ChunkWriter(chunk_size)

    def set_chunk_size(self, size: int) -> bytes:
        data = self._writer.write(2, 1, 0, 0, SetChunkSize(size).serialize())
        self._writer.chunk_size = size
        return data

    def message(self, csid: int, type_id: int, msid: int, payload: bytes, ts: int = 0) -> bytes:
        return self._writer.write(csid, type_id, msid, ts, payload)

    def command(self, msid: int, name: str, txid: float, obj: AmfValue, *args: AmfValue) -> bytes:
        payload = CommandMessage(name, txid, obj, tuple(args)).serialize()
        return self._writer.write(3 if msid == 0 else 4, 20, msid, 0, payload)

    def data(self, msid: int, *values: AmfValue) -> bytes:
        return self._writer.write(4, 18, msid, 0, DataMessage(tuple(values)).serialize())

    def video(self, msid: int, ts: int, body: bytes) -> bytes:
        return self._writer.write(6, 9, msid, ts, body)

    def audio(self, msid: int, ts: int, body: bytes) -> bytes:
        return self._writer.write(7, 8, msid, ts, body)


def connect_command(app: str = "live") -> tuple[str, float, AmfValue]:
    obj: dict[str, AmfValue] = {
        "app": app,
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "tcUrl": f"rtmp://127.0.0.1/{app}",
    }
    return "connect", 1.0, obj


@dataclass
class Reply:
    raw: RawMessage
    message: RtmpMessage


class ServerBytesDecoder:
    """Client-side view of server → client chunks (honouring the server's SetChunkSize)."""

    def __init__(self) -> None:
        self.reader = StreamReader()
        self.chunks = ChunkReader()

    def decode(self, data: bytes) -> list[Reply]:
        self.reader.feed_data(data)
        replies: list[Reply] = []
        while self.reader.buffered:
            gen = self.chunks.read_chunk(self.reader)
            try:
                while True:
                    next(gen)
                    raise AssertionError("server bytes end mid-chunk")
            except StopIteration as stop:
                raw = stop.value
            if raw is not None:
                msg = parse_message(raw.message_type_id, raw.payload)
                if isinstance(msg, SetChunkSize):
                    self.chunks.set_chunk_size(msg.chunk_size)
                replies.append(Reply(raw, msg))
        return replies


def decode_server_bytes(data: bytes) -> list[Reply]:
    """Decode one batch of server → client chunks."""
    return ServerBytesDecoder().decode(data)


def commands(replies: Sequence[Reply]) -> list[CommandMessage]:
    return [r.message for r in replies if isinstance(r.message, CommandMessage)]


class SessionDriver:
    """A session plus a client writer; ``send`` returns the new events."""

    def __init__(self, **kwargs: int) -> None:
        self.session = RtmpServerSession(**kwargs)
        self.client = ClientWriter()
        self.decoder = ServerBytesDecoder()

    def send(self, data: bytes) -> list[RtmpEvent]:
        self.session.receive_data(data)
        return self.session.events()

    def replies(self) -> list[Reply]:
        return self.decoder.decode(self.session.data_to_send())

    def connect(self, app: str = "live") -> list[RtmpEvent]:
        events = self.send(handshake())
        assert len(self.session.data_to_send()) == 1 + 2 * HANDSHAKE_SIZE
        name, txid, obj = connect_command(app)
        return events + self.send(self.client.command(0, name, txid, obj))

    def create_stream(self) -> int:
        self.send(self.client.command(0, "createStream", 4.0, None))
        result = commands(self.replies())[-1]
        assert result.command_name == "_result"
        stream_id = result.arguments[0]
        assert isinstance(stream_id, float)
        return int(stream_id)

    def publish(self, key: str = "testkey") -> list[RtmpEvent]:
        self.connect()
        self.session.data_to_send()
        msid = self.create_stream()
        return self.send(self.client.command(msid, "publish", 5.0, None, key, "live"))


class Feedable(Protocol):
    def feed(self, data: bytes) -> list[object]: ...


def feed_all_ways(
    factory: Callable[[], Feedable],
    data: bytes,
    expected: Sequence[object],
    *,
    trailing: bytes = b"\x03",
    seed: int = 0,
) -> None:
    """h11's ``tr``: whole buffer, byte by byte, random splits and with trailing bytes."""
    assert factory().feed(data) == list(expected), "whole buffer"

    parser = factory()
    got: list[object] = []
    for i in range(len(data)):
        new = parser.feed(data[i : i + 1])
        if new and len(expected) == 1:
            assert i == len(data) - 1, "event before the last byte"
        got += new
    assert got == list(expected), "byte by byte"

    rng = random.Random(seed)
    for _ in range(10):
        parser = factory()
        got = []
        pos = 0
        while pos < len(data):
            step = rng.randint(1, max(1, len(data) // 3))
            got += parser.feed(data[pos : pos + step])
            pos += step
        assert got == list(expected), "random splits"

    assert factory().feed(data + trailing) == list(expected), "trailing data"


class ChunkParser:
    """Feedable wrapper around StreamReader + ChunkReader (yields RawMessages)."""

    def __init__(self, **kwargs: int) -> None:
        self.reader = StreamReader()
        self.chunks = ChunkReader(**kwargs)
        self._gen = self._run()
        next(self._gen)
        self._out: list[object] = []

    def _run(self) -> Generator[None, None, None]:
        yield
        while True:
            # As the session does: a chunk is parsed once it is complete in the buffer.
            while (payload := self.chunks.try_payload(self.reader)) is INCOMPLETE:
                yield
            if isinstance(payload, bytes):
                done = self.chunks.completed
                self._handle(RawMessage(done.message_type_id, done.message_stream_id,
                                        done.timestamp, payload))

    def _handle(self, raw: RawMessage) -> None:
        self._out.append(raw)
        if raw.message_type_id == 1:
            msg = parse_message(1, raw.payload)
            assert isinstance(msg, SetChunkSize)
            self.chunks.set_chunk_size(msg.chunk_size)
        if raw.message_type_id == 2:
            self.chunks.abort(int.from_bytes(raw.payload, "big"))

    def feed(self, data: bytes) -> list[object]:
        self.reader.feed_data(data)
        next(self._gen)
        out, self._out = self._out, []
        return out


class GeneratorChunkParser(ChunkParser):
    """:class:`ChunkParser` over :meth:`ChunkReader.read_chunk` (the generator path the client
    uses) instead of the in-place :meth:`ChunkReader.try_payload`: the two must agree."""

    def _run(self) -> Generator[None, None, None]:
        yield
        while True:
            raw = yield from self.chunks.read_chunk(self.reader)
            if raw is not None:
                self._handle(raw)


def amf(*values: AmfValue) -> bytes:
    return amf0.encode_values(*values)
