"""RTMP chunk stream (RTMP 1.0 §5.3): parsing chunks into messages and writing messages.

The reader parses one chunk at a time from a :class:`~media.rtmp.buffer.StreamReader`:
basic header, message header by ``fmt``, extended timestamp, then at most one chunk of
payload, either in place once the whole chunk is buffered (:meth:`ChunkReader.try_payload`,
the server's hot path) or as straight-line generator code (:meth:`ChunkReader.read_chunk`);
the two agree message for message and error for error. State per chunk stream id lives in
:class:`_ChunkStreamState`. Every limit that protects memory is enforced here; see the
named constants below.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from .buffer import StreamReader
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "INCOMPLETE",
    "MAX_CHUNK_SIZE",
    "MAX_CHUNK_STREAMS",
    "MAX_CONTROL_MESSAGE_SIZE",
    "MAX_MEDIA_MESSAGE_SIZE",
    "ChunkReader",
    "ChunkWriter",
    "RawMessage",
    "encode_basic_header",
    "encode_chunk_header",
]

DEFAULT_CHUNK_SIZE = 128
"""§5.4.1: the maximum chunk size is 128 bytes until a SetChunkSize message changes it."""

MAX_CHUNK_SIZE = 0xFFFFFF
"""Effective ceiling for a peer's chunk size. §5.4.1 allows up to 0x7FFFFFFF but notes that
no message is larger than 0xFFFFFF bytes (the 3-byte length field), so larger values behave
identically; we clamp instead of trusting them (nginx-rtmp #1042 allocated 2 GB from one).
Payload buffers are sized from the *message length*, never from the chunk size."""

MAX_MEDIA_MESSAGE_SIZE = 8 << 20
"""Default cap for audio/video/aggregate messages. A 1080p keyframe is well under 1 MiB;
8 MiB leaves headroom for 4K intra frames. Larger → RemoteProtocolError (docs/threat-model.md
§rtmp)."""

MAX_CONTROL_MESSAGE_SIZE = 1 << 20
"""Default cap for control, command (AMF) and data messages, which are tiny in practice
(nginx-rtmp's ``max_message`` is 1 MiB)."""

MAX_CHUNK_STREAMS = 64
"""Cap on distinct chunk stream ids per connection. Real publishers use fewer than ten; a
peer cycling through 65599 ids would otherwise grow per-csid state (docs/threat-model.md §rtmp)."""

BUFFERED_MESSAGES_FACTOR = 2
"""Total bytes of *partial* messages buffered across all chunk streams may not exceed this
many times the largest message limit, so interleaving many half-sent messages on different
chunk streams cannot multiply memory use (docs/threat-model.md §rtmp)."""

EXTENDED_TIMESTAMP_SENTINEL = 0xFFFFFF
"""§5.3.1.3: a 3-byte timestamp field of 0xFFFFFF means a 4-byte extended timestamp follows."""

# Message type ids (§5.4, §7.1) whose size is limited by the media cap.
_MEDIA_TYPE_IDS = frozenset({8, 9, 22})

# Message header sizes by fmt (§5.3.1.2).
_MESSAGE_HEADER_SIZE = (11, 7, 3, 0)

MessageTuple = tuple[int, int, int, bytes]
"""A message from :meth:`ChunkReader.parse_run`: (message_type_id, message_stream_id,
timestamp, payload), the fields of :class:`RawMessage`."""

_U32 = struct.Struct(">I")
_LE_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A reassembled RTMP message (§5.3.1.2): header fields plus payload bytes.

    Attributes:
        message_type_id: §5.4/§7.1 type id (1-6 control, 8 audio, 9 video, 18/20 AMF0…).
        message_stream_id: the logical stream (0 for NetConnection), decoded from the
            little-endian wire form.
        timestamp: absolute 32-bit timestamp in milliseconds after delta accumulation.
        payload: the message body.
    """

    message_type_id: int
    message_stream_id: int
    timestamp: int
    payload: bytes


class _Incomplete:
    """The type of :data:`INCOMPLETE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INCOMPLETE"


INCOMPLETE = _Incomplete()
"""Returned by :meth:`ChunkReader.try_payload` when the buffered bytes hold no complete
chunk."""


class _ChunkStreamState:
    """What §5.3.1.2 lets later chunks on the same chunk stream id omit."""

    __slots__ = (
        "extended",
        "message_length",
        "message_stream_id",
        "message_type_id",
        "payload",
        "timestamp",
        "timestamp_delta",
    )

    def __init__(self) -> None:
        self.timestamp = 0  # absolute timestamp of the current/last message
        self.timestamp_delta = 0  # delta applied when a type-3 chunk starts a new message
        self.message_length = 0
        self.message_type_id = 0
        self.message_stream_id = 0
        # §5.3.1.3: whether the last type 0/1/2 header used an extended timestamp; type-3
        # chunks then repeat the 4-byte extended timestamp too (what FFmpeg and librtmp send).
        self.extended = False
        self.payload: bytearray | None = None  # partial message being reassembled


_NEW_STREAM = _ChunkStreamState()
"""Stands for the state of a chunk stream id not seen yet while its first chunk is checked
(never changed: the chunk gets a fresh state once it is applied)."""


def _read_u24(data: bytes | bytearray, offset: int) -> int:
    return (data[offset] << 16) | (data[offset + 1] << 8) | data[offset + 2]


class ChunkReader:
    """Parses chunks from a :class:`StreamReader` into :class:`RawMessage` values.

    Args:
        max_media_message_size: cap for audio/video/aggregate messages.
        max_control_message_size: cap for every other message type.
        max_chunk_streams: cap on distinct chunk stream ids.
    """

    def __init__(
        self,
        *,
        max_media_message_size: int = MAX_MEDIA_MESSAGE_SIZE,
        max_control_message_size: int = MAX_CONTROL_MESSAGE_SIZE,
        max_chunk_streams: int = MAX_CHUNK_STREAMS,
    ) -> None:
        self.max_media_message_size = max_media_message_size
        self.max_control_message_size = max_control_message_size
        self.max_chunk_streams = max_chunk_streams
        self.max_buffered_bytes = BUFFERED_MESSAGES_FACTOR * max(
            max_media_message_size, max_control_message_size
        )
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _ChunkStreamState] = {}
        self._buffered = 0
        self.completed = _ChunkStreamState()
        """The header fields of the message the last :meth:`try_payload` completed (valid until
        the next call)."""
        self.smallest_message = 0
        """Payload size of the smallest message completed since the owner last reset this to
        0 (0: none yet). Read coalescing keeps its low-water mark under it."""

    @property
    def chunk_size(self) -> int:
        """The peer's current maximum chunk size (§5.4.1)."""
        return self._chunk_size

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in partially reassembled messages across all chunk streams."""
        return self._buffered

    @property
    def pending_payload_bytes(self) -> int:
        """Payload bytes still missing from the partially reassembled message that is closest
        to completion (0 when no message is partial). A lower bound of the bytes the peer must
        still send before a message can complete (chunk headers are not counted)."""
        missing = [s.message_length - len(s.payload) for s in self._streams.values()
                   if s.payload is not None]
        return min(missing) if missing else 0

    @property
    def chunk_stream_count(self) -> int:
        """Number of chunk stream ids seen so far."""
        return len(self._streams)

    def set_message_limits(self, max_media_message_size: int,
                           max_control_message_size: int) -> None:
        """Change the message size caps (e.g. raise them once a publisher is authenticated).

        Applies to messages whose first chunk arrives afterwards.
        """
        self.max_media_message_size = max_media_message_size
        self.max_control_message_size = max_control_message_size
        self.max_buffered_bytes = BUFFERED_MESSAGES_FACTOR * max(
            max_media_message_size, max_control_message_size
        )

    def set_chunk_size(self, size: int) -> None:
        """Apply a validated SetChunkSize value (§5.4.1); takes effect from the next chunk.

        Values above :data:`MAX_CHUNK_SIZE` are clamped (see its comment). A change in the
        middle of a message is safe: each chunk reads ``min(chunk_size, remaining)`` bytes.

        Raises:
            LocalProtocolError: if ``size`` is not in 1..0x7FFFFFFF (validate it first).
        """
        if not 1 <= size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"chunk size {size} out of range")
        self._chunk_size = min(size, MAX_CHUNK_SIZE)

    def abort(self, chunk_stream_id: int) -> None:
        """Discard the partial message on ``chunk_stream_id`` (§5.4.2 Abort Message)."""
        state = self._streams.get(chunk_stream_id)
        if state is not None and state.payload is not None:
            self._buffered -= len(state.payload)
            state.payload = None

    def _check_new_stream(self, csid: int, fmt: int) -> None:
        """Raise unless a chunk of type ``fmt`` may open chunk stream ``csid`` (not seen yet)."""
        if fmt != 0:
            raise RemoteProtocolError(
                f"first chunk on chunk stream {csid} has type {fmt}, expected type 0"
            )
        if len(self._streams) >= self.max_chunk_streams:
            raise RemoteProtocolError(f"too many chunk streams (limit {self.max_chunk_streams})")

    def _new_stream(self, csid: int, fmt: int) -> _ChunkStreamState:
        self._check_new_stream(csid, fmt)
        state = _ChunkStreamState()
        self._streams[csid] = state
        return state

    def _check_message_size(self, message_length: int, message_type_id: int) -> None:
        """Raise if a message of this length and type exceeds its limit (checked as soon as
        the header that starts it is in, before any of its payload is buffered)."""
        limit = (self.max_media_message_size if message_type_id in _MEDIA_TYPE_IDS
                 else self.max_control_message_size)
        if message_length > limit:
            raise RemoteProtocolError(
                f"message of {message_length} bytes exceeds the {limit}-byte limit "
                f"for message type {message_type_id}"
            )

    def _over_buffered(self) -> RemoteProtocolError:
        """The error for a chunk that would take partial messages over the total cap."""
        return RemoteProtocolError(
            f"partial messages exceed {self.max_buffered_bytes} buffered bytes"
        )

    @staticmethod
    def _start_message(
        state: _ChunkStreamState, fmt: int, timestamp_field: int, message_length: int,
        message_type_id: int, header: bytes | bytearray, at: int,
    ) -> None:
        """Apply the header of a chunk that begins a message (no partial payload pending)
        once its size is checked: the message header starts at ``header[at]``, and its
        length and type id, or the ones of ``state`` that it omits, are already decoded."""
        if fmt == 0:
            # §5.3.1.2.1: absolute timestamp and the little-endian message stream id.
            # §5.3.1.2.4: a type-3 chunk after a type-0 chunk uses the type-0 timestamp as
            # its delta.
            state.timestamp = timestamp_field
            state.timestamp_delta = timestamp_field
            (state.message_stream_id,) = _LE_U32.unpack_from(header, at + 7)
        else:
            if fmt <= 2:
                state.timestamp_delta = timestamp_field
            state.timestamp = (state.timestamp + state.timestamp_delta) & 0xFFFFFFFF
        state.message_length = message_length
        state.message_type_id = message_type_id

    def try_payload(self, reader: StreamReader) -> bytes | _Incomplete | None:
        """Parse one chunk if it is complete in ``reader``'s buffer, without generators or
        intermediate objects (the hot path: a read holds many complete chunks, and nearly
        every one is a media message or a piece of one).

        Returns the payload of the message the chunk completes (its header fields are then in
        :attr:`completed` until the next call), ``None`` for a chunk that leaves its message
        partial, or :data:`INCOMPLETE` (nothing consumed, no state changed) when the buffer
        ends inside the chunk: call again once more bytes are buffered. Errors are
        :meth:`read_chunk`'s, raised as soon as the headers that decide them are buffered (a
        partial chunk is at most one chunk size of unparsed input, bounded like a partial
        message by the message limits).
        """
        buf = reader._buffer
        pos = reader._pos
        end = len(buf)
        if pos >= end:
            return INCOMPLETE
        # §5.3.1.1 basic header: fmt in the top 2 bits, csid in the low 6; csid 0 and 1
        # select the 2- and 3-byte forms (64-319 and 64-65599).
        first = buf[pos]
        fmt = first >> 6
        csid = first & 0x3F
        at = pos + 1  # where the message header starts
        if csid <= 1:
            at += csid + 1
            if at > end:
                return INCOMPLETE
            csid = 64 + buf[pos + 1] + (buf[pos + 2] << 8 if csid else 0)
        state = self._streams.get(csid, _NEW_STREAM)
        payload = state.payload
        if payload is None or fmt != 3:
            return self._try_first_chunk(reader, state, fmt, csid, at)
        # Continuation of a message (§5.3.1.2.4): a type-3 chunk has no message header, but
        # repeats the extended timestamp if the message has one (§5.3.1.3).
        p = at
        if state.extended:
            p += 4
            if p > end:
                return INCOMPLETE
        size = min(self._chunk_size, state.message_length - len(payload))
        if self._buffered + size > self.max_buffered_bytes:
            raise self._over_buffered()
        chunk_end = p + size
        if chunk_end > end:
            return INCOMPLETE
        # Plain slices, not memoryview ones: for chunk-sized pieces the extra copy costs less
        # than making and releasing a view (measured: the chunk reader took 20 % longer).
        payload += buf[p:chunk_end]
        reader.consume_to(chunk_end)
        if len(payload) < state.message_length:
            self._buffered += size
            return None
        # Earlier chunks of this message were counted as buffered; this one was not.
        self._buffered -= len(payload) - size
        self._finish(state)
        return bytes(payload)

    def _try_first_chunk(self, reader: StreamReader, state: _ChunkStreamState, fmt: int,
                         csid: int, at: int) -> bytes | _Incomplete | None:
        """:meth:`try_payload` for a chunk that should begin a message: its basic header is
        read and its message header starts at ``at``. ``state`` is :data:`_NEW_STREAM` for
        a chunk stream id not seen yet."""
        if state is _NEW_STREAM:
            self._check_new_stream(csid, fmt)  # raises as read_chunk does at this point
        buf = reader._buffer
        end = len(buf)
        p = at + _MESSAGE_HEADER_SIZE[fmt]
        if p > end:
            return INCOMPLETE
        if fmt == 3:
            timestamp_field = 0
            extended = state.extended
        else:
            timestamp_field = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2]
            extended = timestamp_field == EXTENDED_TIMESTAMP_SENTINEL
        if extended:
            # §5.3.1.3; for type 3 this is the repetition of the previous header's value.
            if p + 4 > end:
                return INCOMPLETE
            (timestamp_field,) = _U32.unpack_from(buf, p)
            p += 4
        if state.payload is not None:  # and so fmt is not 3 (see try_payload)
            raise RemoteProtocolError(
                f"chunk type {fmt} on chunk stream {csid} interrupts a "
                f"{state.message_length}-byte message (expected type 3)"
            )
        if fmt <= 1:
            length = (buf[at + 3] << 16) | (buf[at + 4] << 8) | buf[at + 5]
            type_id = buf[at + 6]
        else:  # not a new stream: that starts with type 0
            length, type_id = state.message_length, state.message_type_id
        self._check_message_size(length, type_id)
        size = min(self._chunk_size, length)
        if self._buffered + size > self.max_buffered_bytes:
            raise self._over_buffered()
        if p + size > end:
            return INCOMPLETE

        # The whole chunk is buffered: apply it exactly as read_chunk would.
        if state is _NEW_STREAM:
            state = self._new_stream(csid, fmt)
        state.extended = extended  # (unchanged for type 3)
        self._start_message(state, fmt, timestamp_field, length, type_id, buf, at)
        if size < length:
            state.payload = buf[p : p + size]
            reader.consume_to(p + size)
            self._buffered += size
            return None
        data = bytes(buf[p : p + size])  # (plain slices: see try_payload)
        reader.consume_to(p + size)
        self._finish(state)
        return data

    def parse_run(self, reader: StreamReader, max_chunks: int) -> tuple[int, list[MessageTuple]]:
        """Parse every complete chunk in ``reader``'s buffer, in place, up to ``max_chunks``
        chunks (-1: no limit), stopping after the first completed message that is not audio
        or video (8, 9), so the caller can act on it (a chunk size, an abort, a publish to
        decide) before the next chunk is parsed.

        Returns the number of chunks parsed and the messages they completed, as
        ``(message_type_id, message_stream_id, timestamp, payload)``. A protocol error is
        raised when it is at the first chunk; after other chunks, those are returned and the
        next call raises it (the failing chunk changes nothing), so messages before it are
        handled first. :class:`media.rtmp._chunks.NativeChunkReader` is this method in C.

        Raises:
            RemoteProtocolError: as :meth:`try_payload`.
        """
        messages: list[MessageTuple] = []
        chunks = 0
        try_payload = self.try_payload
        while chunks != max_chunks:
            try:
                payload = try_payload(reader)
            except RemoteProtocolError:
                if chunks:
                    break
                raise
            if payload is None:  # a chunk of a message still partial
                chunks += 1
                continue
            if not isinstance(payload, bytes):  # INCOMPLETE
                break
            chunks += 1
            done = self.completed
            type_id = done.message_type_id
            messages.append((type_id, done.message_stream_id, done.timestamp, payload))
            if type_id != 8 and type_id != 9:
                break
        return chunks, messages

    def read_chunk(self, reader: StreamReader) -> Generator[None, None, RawMessage | None]:
        """Read one chunk; return the message it completes, or ``None``.

        Raises:
            RemoteProtocolError: on malformed headers or exceeded limits.
            EOFError: if the stream ends mid-chunk.
        """
        # §5.3.1.1 basic header (see try_payload).
        first = (yield from reader.read_exact(1))[0]
        fmt = first >> 6
        csid = first & 0x3F
        if csid == 0:
            csid = 64 + (yield from reader.read_exact(1))[0]
        elif csid == 1:
            extra = yield from reader.read_exact(2)
            csid = 64 + extra[0] + (extra[1] << 8)

        state = self._streams.get(csid)
        if state is None:
            state = self._new_stream(csid, fmt)

        header = yield from reader.read_exact(_MESSAGE_HEADER_SIZE[fmt])
        timestamp_field = 0
        if fmt <= 2:
            timestamp_field = _read_u24(header, 0)
            state.extended = timestamp_field == EXTENDED_TIMESTAMP_SENTINEL
        if state.extended:
            # §5.3.1.3; for type 3 this is the repetition of the previous header's value.
            (timestamp_field,) = _U32.unpack((yield from reader.read_exact(4)))

        payload = state.payload
        if payload is not None:
            # Continuation of a message: only type 3 may follow (§5.3.1.2.4).
            if fmt != 3:
                raise RemoteProtocolError(
                    f"chunk type {fmt} on chunk stream {csid} interrupts a "
                    f"{state.message_length}-byte message (expected type 3)"
                )
        else:
            length, type_id = ((_read_u24(header, 3), header[6]) if fmt <= 1
                               else (state.message_length, state.message_type_id))
            self._check_message_size(length, type_id)
            self._start_message(state, fmt, timestamp_field, length, type_id, header, 0)
            state.payload = payload = bytearray()

        size = min(self._chunk_size, state.message_length - len(payload))
        if self._buffered + size > self.max_buffered_bytes:
            raise self._over_buffered()
        if size:
            payload += yield from reader.read_exact(size)
            self._buffered += size
        if len(payload) < state.message_length:
            return None
        self._buffered -= len(payload)
        self._finish(state)
        return RawMessage(state.message_type_id, state.message_stream_id, state.timestamp,
                          bytes(payload))

    def _finish(self, state: _ChunkStreamState) -> None:
        """The message on ``state`` is whole: free its buffer, note its size (read
        coalescing's smallest message) and its state (:attr:`completed`)."""
        state.payload = None
        if state.message_length < self.smallest_message or not self.smallest_message:
            self.smallest_message = state.message_length
        self.completed = state


# --------------------------------------------------------------------------- writing


def encode_basic_header(fmt: int, chunk_stream_id: int) -> bytes:
    """Encode a §5.3.1.1 basic header, choosing the 1-, 2- or 3-byte form.

    Raises:
        LocalProtocolError: if ``fmt`` is not 0-3 or the csid is not in 2..65599.
    """
    if not 0 <= fmt <= 3:
        raise LocalProtocolError(f"chunk type {fmt} is not 0-3")
    if 2 <= chunk_stream_id <= 63:
        return bytes(((fmt << 6) | chunk_stream_id,))
    if 64 <= chunk_stream_id <= 319:
        return bytes((fmt << 6, chunk_stream_id - 64))
    if 320 <= chunk_stream_id <= 65599:
        rest = chunk_stream_id - 64
        return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))
    raise LocalProtocolError(f"chunk stream id {chunk_stream_id} is not in 2..65599")


def encode_chunk_header(
    fmt: int,
    chunk_stream_id: int,
    *,
    timestamp: int = 0,
    message_length: int = 0,
    message_type_id: int = 0,
    message_stream_id: int = 0,
    extended_timestamp: int | None = None,
) -> bytes:
    """Encode a basic header plus the message header of type ``fmt`` (§5.3.1.2).

    ``timestamp`` is the absolute timestamp (fmt 0) or the delta (fmt 1/2); values of
    0xFFFFFF or more are written as 0xFFFFFF plus an extended timestamp. For fmt 3 pass
    ``extended_timestamp`` to repeat one.
    """
    out = bytearray(encode_basic_header(fmt, chunk_stream_id))
    if fmt == 3:
        if extended_timestamp is not None:
            out += _U32.pack(extended_timestamp & 0xFFFFFFFF)
        return bytes(out)
    extended = timestamp >= EXTENDED_TIMESTAMP_SENTINEL
    field = EXTENDED_TIMESTAMP_SENTINEL if extended else timestamp
    out += field.to_bytes(3, "big")
    if fmt <= 1:
        out += message_length.to_bytes(3, "big") + bytes((message_type_id,))
    if fmt == 0:
        out += _LE_U32.pack(message_stream_id)
    if extended:
        out += _U32.pack(timestamp & 0xFFFFFFFF)
    return bytes(out)


class ChunkWriter:
    """Serializes messages into chunks of our outgoing chunk size.

    Each message starts with a type-0 chunk (always valid, and our replies are rare) and
    continues with type-3 chunks, repeating the extended timestamp when one is used.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size

    def write(
        self,
        chunk_stream_id: int,
        message_type_id: int,
        message_stream_id: int,
        timestamp: int,
        payload: bytes,
    ) -> bytes:
        """Return the chunks carrying one message.

        Raises:
            LocalProtocolError: if the payload exceeds 0xFFFFFF bytes.
        """
        if len(payload) > 0xFFFFFF:
            raise LocalProtocolError(f"message of {len(payload)} bytes is too large for RTMP")
        timestamp &= 0xFFFFFFFF
        out = bytearray(
            encode_chunk_header(
                0,
                chunk_stream_id,
                timestamp=timestamp,
                message_length=len(payload),
                message_type_id=message_type_id,
                message_stream_id=message_stream_id,
            )
        )
        extended = timestamp if timestamp >= EXTENDED_TIMESTAMP_SENTINEL else None
        step = self.chunk_size
        out += payload[:step]
        for offset in range(step, len(payload), step):
            out += encode_chunk_header(3, chunk_stream_id, extended_timestamp=extended)
            out += payload[offset : offset + step]
        return bytes(out)


# --------------------------------------------------------------------------- the native reader


class MessageRunReader(Protocol):
    """What the server session needs of a chunk reader: :class:`ChunkReader`, or the same
    in C (:class:`media.rtmp._chunks.NativeChunkReader`), which agree message for message,
    error for error (tests/media/rtmp/test_chunk_native.py)."""

    @property
    def chunk_size(self) -> int: ...
    @property
    def buffered_bytes(self) -> int: ...
    @property
    def pending_payload_bytes(self) -> int: ...
    @property
    def chunk_stream_count(self) -> int: ...
    smallest_message: int

    def set_message_limits(self, max_media_message_size: int,
                           max_control_message_size: int) -> None: ...
    def set_chunk_size(self, size: int) -> None: ...
    def abort(self, chunk_stream_id: int) -> None: ...
    def parse_run(self, reader: StreamReader, max_chunks: int
                  ) -> tuple[int, list[MessageTuple]]: ...


try:
    from ._chunks import NativeChunkReader
except ImportError:  # not built here (no C compiler at install): the Python reader serves
    NATIVE_CHUNK_READER: type[MessageRunReader] | None = None
else:
    NATIVE_CHUNK_READER = NativeChunkReader


def message_run_reader(*, native: bool = True, max_media_message_size: int,
                       max_control_message_size: int, max_chunk_streams: int
                       ) -> MessageRunReader:
    """The chunk reader for a server session: the C one when it is built and ``native``,
    else :class:`ChunkReader`."""
    cls: type[MessageRunReader] = ChunkReader
    if native and NATIVE_CHUNK_READER is not None:
        cls = NATIVE_CHUNK_READER
    return cls(max_media_message_size=max_media_message_size,  # type: ignore[call-arg]
               max_control_message_size=max_control_message_size,
               max_chunk_streams=max_chunk_streams)
