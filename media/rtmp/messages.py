"""Typed RTMP messages (RTMP 1.0 §5.4 protocol control, §6.2 user control, §7.1 others).

Each message is a frozen dataclass with ``parse(payload)`` and ``serialize()``; headers
(timestamp, message stream id, chunk stream id) belong to the chunk layer's
:class:`~media.rtmp.chunk.RawMessage`. :func:`parse_message` dispatches on the type id.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from . import amf0
from .amf0 import AmfValue
from .errors import RemoteProtocolError

__all__ = [
    "Abort",
    "Acknowledgement",
    "AudioMessage",
    "CommandMessage",
    "DataMessage",
    "MessageType",
    "RtmpMessage",
    "SetChunkSize",
    "SetPeerBandwidth",
    "UnknownMessage",
    "UserControl",
    "UserControlEventType",
    "VideoMessage",
    "WindowAcknowledgementSize",
    "parse_message",
]

_U32 = struct.Struct(">I")


class MessageType(enum.IntEnum):
    """Message type ids (§5.4, §7.1)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACKNOWLEDGEMENT_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEventType(enum.IntEnum):
    """§7.1.7 user control event types."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


def _u32(payload: bytes, name: str) -> int:
    if len(payload) < 4:
        raise RemoteProtocolError(f"{name} message needs 4 bytes, got {len(payload)}")
    (value,) = _U32.unpack_from(payload)
    return int(value)


@dataclass(frozen=True, slots=True)
class SetChunkSize:
    """§5.4.1 Set Chunk Size: the sender's new maximum chunk size (1..0x7FFFFFFF)."""

    type_id: ClassVar[int] = MessageType.SET_CHUNK_SIZE
    chunk_size: int

    @classmethod
    def parse(cls, payload: bytes) -> SetChunkSize:
        """Raises RemoteProtocolError for 0 or a value with the high bit set."""
        value = _u32(payload, "SetChunkSize")
        if value & 0x80000000:
            raise RemoteProtocolError(f"SetChunkSize 0x{value:08x} has the high bit set")
        if value == 0:
            raise RemoteProtocolError("SetChunkSize of 0 is invalid")
        return cls(value)

    def serialize(self) -> bytes:
        return _U32.pack(self.chunk_size & 0x7FFFFFFF)


@dataclass(frozen=True, slots=True)
class Abort:
    """§5.4.2 Abort Message: discard the partial message on ``chunk_stream_id``."""

    type_id: ClassVar[int] = MessageType.ABORT
    chunk_stream_id: int

    @classmethod
    def parse(cls, payload: bytes) -> Abort:
        return cls(_u32(payload, "Abort"))

    def serialize(self) -> bytes:
        return _U32.pack(self.chunk_stream_id)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """§5.4.3 Acknowledgement: bytes received so far (``sequence_number``, mod 2^32)."""

    type_id: ClassVar[int] = MessageType.ACKNOWLEDGEMENT
    sequence_number: int

    @classmethod
    def parse(cls, payload: bytes) -> Acknowledgement:
        return cls(_u32(payload, "Acknowledgement"))

    def serialize(self) -> bytes:
        return _U32.pack(self.sequence_number & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class UserControl:
    """§6.2 / §7.1.7 User Control Message: a 2-byte event type plus event data."""

    type_id: ClassVar[int] = MessageType.USER_CONTROL
    event_type: int
    event_data: bytes = b""

    @classmethod
    def parse(cls, payload: bytes) -> UserControl:
        if len(payload) < 2:
            raise RemoteProtocolError(f"UserControl message needs 2 bytes, got {len(payload)}")
        return cls(int.from_bytes(payload[:2], "big"), bytes(payload[2:]))

    def serialize(self) -> bytes:
        return self.event_type.to_bytes(2, "big") + self.event_data

    @classmethod
    def stream_begin(cls, message_stream_id: int) -> UserControl:
        """StreamBegin: the stream became functional (§7.1.7)."""
        return cls(UserControlEventType.STREAM_BEGIN, _U32.pack(message_stream_id))

    @classmethod
    def stream_eof(cls, message_stream_id: int) -> UserControl:
        """StreamEOF: playback of the stream ended (§7.1.7)."""
        return cls(UserControlEventType.STREAM_EOF, _U32.pack(message_stream_id))

    @classmethod
    def ping_response(cls, timestamp: bytes) -> UserControl:
        """PingResponse echoing the 4-byte timestamp of a PingRequest (§7.1.7)."""
        return cls(UserControlEventType.PING_RESPONSE, timestamp[:4])


@dataclass(frozen=True, slots=True)
class WindowAcknowledgementSize:
    """§5.4.4 Window Acknowledgement Size: acknowledge after this many bytes."""

    type_id: ClassVar[int] = MessageType.WINDOW_ACKNOWLEDGEMENT_SIZE
    acknowledgement_window_size: int

    @classmethod
    def parse(cls, payload: bytes) -> WindowAcknowledgementSize:
        return cls(_u32(payload, "WindowAcknowledgementSize"))

    def serialize(self) -> bytes:
        return _U32.pack(self.acknowledgement_window_size & 0xFFFFFFFF)


class LimitType(enum.IntEnum):
    """§5.4.5 Set Peer Bandwidth limit types."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


@dataclass(frozen=True, slots=True)
class SetPeerBandwidth:
    """§5.4.5 Set Peer Bandwidth: limit the peer's output bandwidth."""

    type_id: ClassVar[int] = MessageType.SET_PEER_BANDWIDTH
    acknowledgement_window_size: int
    limit_type: int

    @classmethod
    def parse(cls, payload: bytes) -> SetPeerBandwidth:
        if len(payload) < 5:
            raise RemoteProtocolError(f"SetPeerBandwidth message needs 5 bytes, got {len(payload)}")
        return cls(_u32(payload, "SetPeerBandwidth"), payload[4])

    def serialize(self) -> bytes:
        return _U32.pack(self.acknowledgement_window_size & 0xFFFFFFFF) + bytes((self.limit_type,))


@dataclass(frozen=True, slots=True)
class AudioMessage:
    """§7.1.4 Audio Message: the body is an FLV AUDIODATA tag body (see :mod:`.flv`)."""

    type_id: ClassVar[int] = MessageType.AUDIO
    body: bytes

    @classmethod
    def parse(cls, payload: bytes) -> AudioMessage:
        return cls(bytes(payload))

    def serialize(self) -> bytes:
        return self.body


@dataclass(frozen=True, slots=True)
class VideoMessage:
    """§7.1.5 Video Message: the body is an FLV VIDEODATA tag body (see :mod:`.flv`)."""

    type_id: ClassVar[int] = MessageType.VIDEO
    body: bytes

    @classmethod
    def parse(cls, payload: bytes) -> VideoMessage:
        return cls(bytes(payload))

    def serialize(self) -> bytes:
        return self.body


def _strip_amf3_format(payload: bytes, type_id: int) -> bytes:
    # §7.1.1/§7.1.2: AMF3-typed command/data messages start with a format byte; clients
    # put 0 there and encode the values in AMF0. Anything else is real AMF3.
    if type_id in (MessageType.DATA_AMF3, MessageType.COMMAND_AMF3):
        if not payload or payload[0] != 0:
            raise RemoteProtocolError("AMF3-encoded messages are not supported")
        return payload[1:]
    return payload


@dataclass(frozen=True, slots=True)
class DataMessage:
    """§7.1.2 Data Message (AMF0): metadata such as ``@setDataFrame``/``onMetaData``."""

    type_id: ClassVar[int] = MessageType.DATA_AMF0
    values: tuple[AmfValue, ...]

    @classmethod
    def parse(cls, payload: bytes, type_id: int = MessageType.DATA_AMF0) -> DataMessage:
        return cls(tuple(amf0.decode(_strip_amf3_format(payload, type_id))))

    def serialize(self) -> bytes:
        return amf0.encode_values(*self.values)


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """§7.1.1 Command Message (AMF0): name, transaction id, command object, arguments."""

    type_id: ClassVar[int] = MessageType.COMMAND_AMF0
    command_name: str
    transaction_id: float
    command_object: AmfValue = None
    arguments: tuple[AmfValue, ...] = field(default=())

    @classmethod
    def parse(cls, payload: bytes, type_id: int = MessageType.COMMAND_AMF0) -> CommandMessage:
        """Raises RemoteProtocolError for malformed AMF0 or a missing name/transaction id."""
        values = amf0.decode(_strip_amf3_format(payload, type_id))
        if not values or not isinstance(values[0], str):
            raise RemoteProtocolError("command message does not start with a command name")
        name = values[0]
        if len(values) < 2 or not isinstance(values[1], float) or isinstance(values[1], bool):
            raise RemoteProtocolError(f"command {name[:64]!r} has no numeric transaction id")
        command_object = values[2] if len(values) > 2 else None
        return cls(name, values[1], command_object, tuple(values[3:]))

    def serialize(self) -> bytes:
        return amf0.encode_values(
            self.command_name, self.transaction_id, self.command_object, *self.arguments
        )


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """Any other message type (shared objects, aggregate, reserved ids): kept as bytes."""

    message_type_id: int
    payload: bytes

    @property
    def type_id(self) -> int:
        return self.message_type_id

    def serialize(self) -> bytes:
        return self.payload


RtmpMessage: TypeAlias = (
    SetChunkSize
    | Abort
    | Acknowledgement
    | UserControl
    | WindowAcknowledgementSize
    | SetPeerBandwidth
    | AudioMessage
    | VideoMessage
    | DataMessage
    | CommandMessage
    | UnknownMessage
)


def parse_message(message_type_id: int, payload: bytes) -> RtmpMessage:
    """Parse a message body by its type id.

    Raises:
        RemoteProtocolError: if the body is malformed for its type.
    """
    if message_type_id == MessageType.SET_CHUNK_SIZE:
        return SetChunkSize.parse(payload)
    if message_type_id == MessageType.ABORT:
        return Abort.parse(payload)
    if message_type_id == MessageType.ACKNOWLEDGEMENT:
        return Acknowledgement.parse(payload)
    if message_type_id == MessageType.USER_CONTROL:
        return UserControl.parse(payload)
    if message_type_id == MessageType.WINDOW_ACKNOWLEDGEMENT_SIZE:
        return WindowAcknowledgementSize.parse(payload)
    if message_type_id == MessageType.SET_PEER_BANDWIDTH:
        return SetPeerBandwidth.parse(payload)
    if message_type_id == MessageType.AUDIO:
        return AudioMessage.parse(payload)
    if message_type_id == MessageType.VIDEO:
        return VideoMessage.parse(payload)
    if message_type_id in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
        return DataMessage.parse(payload, message_type_id)
    if message_type_id in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
        return CommandMessage.parse(payload, message_type_id)
    return UnknownMessage(message_type_id, bytes(payload))
