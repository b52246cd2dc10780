"""Sans-I/O RTMP *publisher* client session (one TCP connection), the mirror of
:class:`~media.rtmp.session.RtmpServerSession`.

Bytes from the server go in through :meth:`RtmpClientSession.receive_data`, events come out of
:meth:`~RtmpClientSession.events`, bytes for the server out of
:meth:`~RtmpClientSession.data_to_send`; media goes in as FLV tag bodies with
:meth:`~RtmpClientSession.send_video` / :meth:`~RtmpClientSession.send_audio`. No sockets, no
asyncio, no clocks.

The conversation (RTMP 1.0 §5.2 and §7.2, plus the FMS extensions every publisher sends):
C0+C1 → S0+S1 → C2 (echo of S1) → S2 → SetChunkSize, ``connect`` → ``_result`` →
``releaseStream``, ``FCPublish``, ``createStream`` → ``_result`` (the stream id) →
``publish`` → ``onStatus NetStream.Publish.Start`` → media. The session answers pings
(§7.1.7), acknowledges the server's window (§5.4.3) and follows its chunk size (§5.4.1).

Server misbehaviour never raises out of :meth:`receive_data`: the session records a
:class:`~media.rtmp.errors.RemoteProtocolError` (an ``_error``/error ``onStatus`` too), moves
to ``ERROR`` and surfaces :class:`PublishFailed`. Every limit that protects memory is the
chunk layer's, with small caps: a server has no reason to send us more than a few hundred
bytes per message (docs/threat-model.md §restream).
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Generator
from dataclasses import dataclass

from . import amf0
from .amf0 import AmfValue
from .buffer import StreamReader
from .chunk import ChunkReader, ChunkWriter, RawMessage
from .errors import LocalProtocolError, RemoteProtocolError
from .handshake import HANDSHAKE_SIZE, RTMP_VERSION
from .messages import (
    Abort,
    Acknowledgement,
    CommandMessage,
    DataMessage,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEventType,
    WindowAcknowledgementSize,
    parse_message,
)
from .session import redact_stream_name

__all__ = [
    "ClientState",
    "PublishFailed",
    "PublishStarted",
    "RtmpClientEvent",
    "RtmpClientSession",
    "ServerClosed",
]

MAX_SERVER_MESSAGE_SIZE = 64 * 1024
"""Largest message accepted from the server: its replies are a few hundred bytes (an
``onStatus`` with a description); a server sending more is broken or hostile."""

MAX_SERVER_CHUNK_STREAMS = 16
"""Distinct chunk stream ids a server may use (FMS, nginx-rtmp and YouTube use 2-5)."""

DEFAULT_OUT_CHUNK_SIZE = 4096
"""Our outgoing chunk size (what OBS and nginx-rtmp use): 128-byte chunks would cost a header
per 128 bytes of video."""

FLASH_VERSION = "FMLE/3.0 (compatible; Hearth)"
"""``flashVer`` of ``connect``: encoders announce themselves as FMLE, which platforms expect."""

# Chunk stream ids as FFmpeg and OBS use them (any 3..65599 is valid, §5.3.1.1).
_CSID_CONTROL = 2  # §5.4: protocol control messages
_CSID_COMMAND = 3
_CSID_AUDIO = 4
_CSID_VIDEO = 6
_CSID_STREAM = 8  # publish, metadata, FCUnpublish/deleteStream

# Transaction ids of the commands whose answers we wait for (§7.2.1.1).
_TX_CONNECT = 1.0
_TX_RELEASE = 2.0
_TX_FCPUBLISH = 3.0
_TX_CREATE_STREAM = 4.0

_U32 = struct.Struct(">I")


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class PublishStarted:
    """The server answered ``onStatus NetStream.Publish.Start``: media may be sent."""

    message_stream_id: int


@dataclass(frozen=True, slots=True)
class PublishFailed:
    """The server refused (``_error``, error ``onStatus``) or violated the protocol; the
    session is in ``ERROR``. ``error.on_status_hint`` carries the server's code, if any."""

    error: RemoteProtocolError


@dataclass(frozen=True, slots=True)
class ServerClosed:
    """The server closed the connection (``receive_data(b"")``)."""


RtmpClientEvent = PublishStarted | PublishFailed | ServerClosed


class ClientState(enum.Enum):
    """Connection-level states of a publisher client."""

    HANDSHAKE = "handshake"  # C0+C1 sent, waiting for S0/S1/S2
    CONNECTING = "connecting"  # connect sent, waiting for its _result
    CREATING_STREAM = "creating stream"  # createStream sent
    PUBLISH_REQUESTED = "publish requested"  # publish sent, waiting for Publish.Start
    PUBLISHING = "publishing"  # media may be sent
    CLOSED = "closed"  # we unpublished, or the server closed
    ERROR = "error"  # refusal or protocol violation; nothing more is parsed


_PARSING = frozenset({ClientState.HANDSHAKE, ClientState.CONNECTING,
                      ClientState.CREATING_STREAM, ClientState.PUBLISH_REQUESTED,
                      ClientState.PUBLISHING})


def _status_info(command: CommandMessage) -> dict[str, AmfValue]:
    # §7.2.2: onStatus(0, null, {level, code, description}); some servers put the info object
    # where the command object goes.
    for value in (*command.arguments, command.command_object):
        if isinstance(value, dict):
            return value
    return {}


def _text(value: AmfValue, limit: int = 200) -> str:
    """A server-provided string, shortened and stripped of control characters."""
    if not isinstance(value, str):
        return ""
    return "".join(ch if ch.isprintable() else "?" for ch in value[:limit])


class RtmpClientSession:
    """Sans-I/O RTMP publisher for one connection; see the module docstring.

    Args:
        app: the application (``live2``); the ``app`` of ``connect``.
        tc_url: the server URL (``rtmp://host:1935/live2``) for ``connect``.
        stream_name: the stream key to publish under. Secret: never logged (only
            :func:`~media.rtmp.session.redact_stream_name` of it).
        out_chunk_size: the chunk size we announce and write with.
        random_bytes: 1528 bytes for C1 (``os.urandom`` by default; injectable for tests).
    """

    def __init__(self, *, app: str, tc_url: str, stream_name: str,
                 out_chunk_size: int = DEFAULT_OUT_CHUNK_SIZE,
                 random_bytes: bytes | None = None) -> None:
        if not 1 <= out_chunk_size <= 0xFFFFFF:
            raise LocalProtocolError(f"out_chunk_size {out_chunk_size} not in 1..0xFFFFFF")
        self._app = app
        self._tc_url = tc_url
        self._stream_name = stream_name
        self._out_chunk_size = out_chunk_size
        self._state = ClientState.HANDSHAKE
        self._reader = StreamReader()
        self._chunks = ChunkReader(max_media_message_size=MAX_SERVER_MESSAGE_SIZE,
                                   max_control_message_size=MAX_SERVER_MESSAGE_SIZE,
                                   max_chunk_streams=MAX_SERVER_CHUNK_STREAMS)
        self._writer = ChunkWriter()
        self._events: list[RtmpClientEvent] = []
        self._outgoing = bytearray()
        self._error: RemoteProtocolError | None = None
        self._eof_reported = False
        self._bytes_received = 0
        self.bytes_sent = 0
        """Bytes handed out by :meth:`data_to_send` so far."""
        self._peer_window = 0  # §5.4.4: acknowledge every this many bytes (0 = never)
        self._last_ack_at = 0
        self._our_window = 0
        self._stream_id: int | None = None
        self.server_status = ""
        """The code of the last ``onStatus`` from the server (for the operator)."""
        if random_bytes is None:
            random_bytes = os.urandom(HANDSHAKE_SIZE - 8)
        if len(random_bytes) != HANDSHAKE_SIZE - 8:
            raise ValueError("random_bytes must be 1528 bytes")
        # §5.2.2/§5.2.3: C0 (version 3), C1 = time (0) + zero + random.
        self._c1 = bytes(8) + random_bytes
        self._outgoing += bytes((RTMP_VERSION,)) + self._c1
        self._parser = self._parse()
        next(self._parser)

    def __repr__(self) -> str:
        return (f"RtmpClientSession(app={self._app!r}, "
                f"stream_name={redact_stream_name(self._stream_name)}, state={self._state.name})")

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def error(self) -> RemoteProtocolError | None:
        """The refusal or violation that moved the session to ``ERROR``, if any."""
        return self._error

    @property
    def message_stream_id(self) -> int | None:
        """The stream the server created for us (after ``createStream``)."""
        return self._stream_id

    @property
    def bytes_received(self) -> int:
        return self._bytes_received

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; ``b""`` means it closed the connection.

        Never raises for server input: violations and refusals become :class:`PublishFailed`.
        """
        if self._state not in _PARSING:
            if not data:
                self._on_eof()
            return
        if data:
            self._bytes_received += len(data)
            self._reader.feed_data(data)
        else:
            self._reader.feed_eof()
        self._run_parser()
        if not data:
            self._on_eof()
        elif self._state in _PARSING:
            self._maybe_acknowledge()

    def events(self) -> list[RtmpClientEvent]:
        """Return and clear the queued events."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Return and clear the bytes queued for the server."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        self.bytes_sent += len(data)
        return data

    def send_video(self, timestamp: int, body: bytes) -> None:
        """Queue one FLV VIDEODATA tag body (§7.1.5) at ``timestamp`` ms.

        Raises:
            LocalProtocolError: if the publish has not started (or has ended).
        """
        self._send_media(_CSID_VIDEO, MessageType.VIDEO, timestamp, body)

    def send_audio(self, timestamp: int, body: bytes) -> None:
        """Queue one FLV AUDIODATA tag body (§7.1.4); see :meth:`send_video`."""
        self._send_media(_CSID_AUDIO, MessageType.AUDIO, timestamp, body)

    def send_metadata(self, values: dict[str, AmfValue]) -> None:
        """Queue ``@setDataFrame onMetaData`` (§7.1.2) with ``values``.

        Raises:
            LocalProtocolError: if the publish has not started.
        """
        stream_id = self._require_publishing()
        message = DataMessage(("@setDataFrame", "onMetaData", amf0.EcmaArray(values)))
        self._queue(_CSID_STREAM, message.type_id, stream_id, 0, message.serialize())

    def close(self) -> None:
        """Unpublish politely (``FCUnpublish``, ``deleteStream``) and move to ``CLOSED``.

        A no-op once closed or failed; before the publish started it only changes state.
        """
        if self._state not in _PARSING:
            return
        if self._stream_id is not None and self._state is not ClientState.HANDSHAKE:
            self._command(_CSID_COMMAND, 0, "FCUnpublish", 0.0, None, self._stream_name)
            self._command(_CSID_COMMAND, 0, "deleteStream", 0.0, None, float(self._stream_id))
        self._state = ClientState.CLOSED
        self._reader.discard()

    # ------------------------------------------------------------------ internals

    def _require_publishing(self) -> int:
        if self._state is not ClientState.PUBLISHING or self._stream_id is None:
            raise LocalProtocolError(f"cannot send media in state {self._state.name}")
        return self._stream_id

    def _send_media(self, csid: int, type_id: int, timestamp: int, body: bytes) -> None:
        stream_id = self._require_publishing()
        self._queue(csid, type_id, stream_id, timestamp, body)

    def _queue(self, csid: int, type_id: int, stream_id: int, timestamp: int,
               payload: bytes) -> None:
        self._outgoing += self._writer.write(csid, type_id, stream_id, timestamp, payload)

    def _control(self, message: SetChunkSize | Acknowledgement | UserControl
                 | WindowAcknowledgementSize) -> None:
        self._queue(_CSID_CONTROL, message.type_id, 0, 0, message.serialize())

    def _command(self, csid: int, stream_id: int, name: str, transaction_id: float,
                 command_object: AmfValue, *arguments: AmfValue) -> None:
        message = CommandMessage(name, transaction_id, command_object, arguments)
        self._queue(csid, message.type_id, stream_id, 0, message.serialize())

    def _run_parser(self) -> None:
        try:
            next(self._parser)
        except StopIteration:
            pass
        except EOFError:
            pass  # the server hung up mid-message; _on_eof reports it
        except RemoteProtocolError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must not escape as another type
            self._fail(RemoteProtocolError(f"internal error while parsing: {exc!r}"))

    def _fail(self, error: RemoteProtocolError) -> None:
        if self._state not in _PARSING:
            return
        self._error = error
        self._state = ClientState.ERROR
        self._reader.discard()
        self._events.append(PublishFailed(error))

    def _on_eof(self) -> None:
        if self._eof_reported:
            return
        self._eof_reported = True
        if self._state in _PARSING:
            self._state = ClientState.CLOSED
        self._events.append(ServerClosed())

    def _maybe_acknowledge(self) -> None:
        window = self._peer_window
        if window and self._bytes_received - self._last_ack_at >= window:
            self._last_ack_at = self._bytes_received
            self._control(Acknowledgement(self._bytes_received & 0xFFFFFFFF))

    def _parse(self) -> Generator[None, None, None]:
        yield  # primed by __init__
        reader = self._reader
        # §5.2.5: S0 (version), S1 (time, zero, random), then C2 = echo of S1, then S2 (an
        # echo of C1, which we do not check: servers differ, and it proves nothing here).
        s0 = yield from reader.read_exact(1)
        if s0[0] != RTMP_VERSION:
            raise RemoteProtocolError(f"server answered RTMP version {s0[0]} (expected 3)")
        s1 = yield from reader.read_exact(HANDSHAKE_SIZE)
        self._outgoing += s1
        yield from reader.read_exact(HANDSHAKE_SIZE)
        self._start_connect()
        while True:
            message = yield from self._chunks.read_chunk(reader)
            if message is not None:
                self._handle(message)
                if self._state not in _PARSING:
                    return

    def _start_connect(self) -> None:
        # §5.4.1: announce our chunk size before anything big; it applies from the next chunk.
        self._control(SetChunkSize(self._out_chunk_size))
        self._writer.chunk_size = self._out_chunk_size
        # §7.2.1.1 connect command object (the fields OBS and FFmpeg send when publishing).
        command_object: dict[str, AmfValue] = {
            "app": self._app, "type": "nonprivate", "flashVer": FLASH_VERSION,
            "swfUrl": self._tc_url, "tcUrl": self._tc_url,
        }
        self._command(_CSID_COMMAND, 0, "connect", _TX_CONNECT, command_object)
        self._state = ClientState.CONNECTING

    def _handle(self, raw: RawMessage) -> None:
        message = parse_message(raw.message_type_id, raw.payload)
        if isinstance(message, SetChunkSize):
            self._chunks.set_chunk_size(message.chunk_size)
        elif isinstance(message, Abort):
            self._chunks.abort(message.chunk_stream_id)
        elif isinstance(message, WindowAcknowledgementSize):
            self._peer_window = message.acknowledgement_window_size
        elif isinstance(message, SetPeerBandwidth):
            # §5.4.5: answer with our Window Acknowledgement Size if it differs from the last.
            if message.acknowledgement_window_size != self._our_window:
                self._our_window = message.acknowledgement_window_size
                self._control(WindowAcknowledgementSize(self._our_window))
        elif isinstance(message, UserControl):
            if message.event_type == UserControlEventType.PING_REQUEST:
                self._control(UserControl.ping_response(message.event_data))
        elif isinstance(message, CommandMessage):
            self._handle_command(message)
        # Acknowledgements, StreamBegin, data and media messages from a server need no action.

    def _handle_command(self, command: CommandMessage) -> None:
        name = command.command_name
        if name == "onStatus":
            self._on_status(command)
        elif name in ("_result", "_error"):
            self._on_answer(command, error=name == "_error")
        # onBWDone, onFCPublish, close... carry nothing a publisher must act on.

    def _on_answer(self, command: CommandMessage, *, error: bool) -> None:
        txid = command.transaction_id
        if txid == _TX_CONNECT and self._state is ClientState.CONNECTING:
            if error:
                self._refused("connect", command)
            self._command(_CSID_COMMAND, 0, "releaseStream", _TX_RELEASE, None,
                          self._stream_name)
            self._command(_CSID_COMMAND, 0, "FCPublish", _TX_FCPUBLISH, None, self._stream_name)
            self._command(_CSID_COMMAND, 0, "createStream", _TX_CREATE_STREAM, None)
            self._state = ClientState.CREATING_STREAM
        elif txid == _TX_CREATE_STREAM and self._state is ClientState.CREATING_STREAM:
            if error:
                self._refused("createStream", command)
            stream = next((a for a in command.arguments if isinstance(a, float)), None)
            if stream is None or not stream.is_integer() or not 1 <= stream <= 0xFFFFFFFF:
                raise RemoteProtocolError("createStream answered without a valid stream id")
            self._stream_id = int(stream)
            # §7.2.2.6: publish(0, null, name, "live") on the new stream.
            self._command(_CSID_STREAM, self._stream_id, "publish", 0.0, None,
                          self._stream_name, "live")
            self._state = ClientState.PUBLISH_REQUESTED
        # Answers to releaseStream/FCPublish (some servers send _error) are not needed.

    def _refused(self, what: str, command: CommandMessage) -> None:
        info = _status_info(command)
        code = self._scrub(_text(info.get("code"))) or None
        description = self._scrub(_text(info.get("description")))
        raise RemoteProtocolError(
            f"server refused {what}: {code or 'no code'} {description}".rstrip(),
            on_status_hint=code)

    def _scrub(self, text: str) -> str:
        # A server may quote the stream key back ("stream KEY is not allowed").
        if self._stream_name and self._stream_name in text:
            return text.replace(self._stream_name, redact_stream_name(self._stream_name))
        return text

    def _on_status(self, command: CommandMessage) -> None:
        info = _status_info(command)
        code = _text(info.get("code"))
        level = _text(info.get("level"))
        self.server_status = code
        if level == "error" or code.endswith(("Failed", "BadName", "Rejected",
                                              "BadConnection")):
            self._refused("publish" if self._state is not ClientState.PUBLISHING
                          else "the stream", command)
        if code == "NetStream.Publish.Start" and self._state is ClientState.PUBLISH_REQUESTED:
            assert self._stream_id is not None
            self._state = ClientState.PUBLISHING
            self._events.append(PublishStarted(self._stream_id))
