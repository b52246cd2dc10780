"""Sans-I/O RTMP server session (one TCP connection), shaped like h11's ``Connection``.

Bytes go in through :meth:`RtmpServerSession.receive_data`, events come out of
:meth:`~RtmpServerSession.events`, reply bytes out of :meth:`~RtmpServerSession.data_to_send`,
and application decisions go back in as method calls (:meth:`accept_publish`,
:meth:`reject_publish`, :meth:`close`). No sockets, no asyncio, no clocks.

State rules: *everything that changes session state lives in this module*, and every state
change goes through :meth:`RtmpServerSession._transition` and the ``_TRANSITIONS`` table.
Peer misbehaviour never raises out of :meth:`receive_data`: the session records the error,
queues a goodbye ``onStatus`` when the error carries a hint, moves to ``ERROR``, surfaces a
:class:`ProtocolFailed` event and stops parsing (the python-websockets approach).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

from . import amf0
from .amf0 import AmfValue
from .buffer import StreamReader
from .chunk import (
    MAX_CHUNK_STREAMS,
    MAX_CONTROL_MESSAGE_SIZE,
    MAX_MEDIA_MESSAGE_SIZE,
    ChunkWriter,
    RawMessage,
    message_run_reader,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .handshake import HANDSHAKE_SIZE, check_c0, make_s0_s1_s2
from .messages import (
    Abort,
    Acknowledgement,
    CommandMessage,
    DataMessage,
    LimitType,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UnknownMessage,
    UserControl,
    UserControlEventType,
    WindowAcknowledgementSize,
    parse_message,
)

__all__ = [
    "AudioReceived",
    "Connected",
    "ConnectionClosed",
    "MediaSink",
    "ProtocolFailed",
    "PublishRequested",
    "RtmpEvent",
    "RtmpServerSession",
    "SessionState",
    "StreamMetadata",
    "Unpublished",
    "VideoReceived",
    "redact_stream_name",
]

logger = logging.getLogger(__name__)

MAX_MESSAGE_STREAMS = 8
"""Default cap on ``createStream`` per connection (docs/threat-model.md §rtmp: "1000
createStream")."""

PRE_PUBLISH_MAX_MESSAGE_SIZE = 64 * 1024
"""Largest message of any type accepted until a publish is accepted. Everything an honest
client sends before then (connect, createStream, publish, metadata) is a few hundred bytes;
without this cap a keyless peer could make us buffer an 8 MiB "video" message
(docs/threat-model.md §rtmp-pre-auth)."""

DEFAULT_WINDOW_ACK_SIZE = 2_500_000
"""Our Window Acknowledgement Size / Set Peer Bandwidth (the value OBS and nginx use)."""

# Chunk stream ids for our replies (the conventional choice of FMS, nginx-rtmp, FFmpeg).
_AUDIO = int(MessageType.AUDIO)
_VIDEO = int(MessageType.VIDEO)
_CSID_PROTOCOL_CONTROL = 2  # §5.4: protocol control messages use chunk stream id 2
_CSID_COMMAND = 3
_CSID_STATUS = 5

_FMS_VERSION = "FMS/3,0,1,123"
_CAPABILITIES = 31.0


def redact_stream_name(stream_name: str) -> str:
    """A loggable stand-in for a stream name (stream names are secret stream keys)."""
    digest = hashlib.sha256(stream_name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"<key sha256:{digest[:8]} len={len(stream_name)}>"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Connected:
    """The client sent ``connect`` and we replied NetConnection.Connect.Success."""

    app: str
    tc_url: str | None
    flash_ver: str | None


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """The client asked to publish; answer with ``accept_publish``/``reject_publish``.

    ``stream_name`` is the secret stream key: never log it (see :func:`redact_stream_name`).
    """

    message_stream_id: int
    stream_name: str
    publish_type: str

    def __repr__(self) -> str:
        return (
            f"PublishRequested(message_stream_id={self.message_stream_id}, "
            f"stream_name={redact_stream_name(self.stream_name)}, "
            f"publish_type={self.publish_type!r})"
        )


@dataclass(frozen=True, slots=True)
class StreamMetadata:
    """``@setDataFrame``/``onMetaData`` values (width, height, videocodecid, encoder…)."""

    message_stream_id: int
    values: dict[str, object]


@dataclass(frozen=True, slots=True)
class AudioReceived:
    """An audio message on the publishing stream.

    ``timestamp`` is the absolute 32-bit RTMP timestamp in ms (uninterpreted); ``body`` is the
    raw FLV audio tag body (see :func:`media.rtmp.flv.parse_audio_tag`).
    """

    message_stream_id: int
    timestamp: int
    body: bytes


@dataclass(frozen=True, slots=True)
class VideoReceived:
    """A video message on the publishing stream (see :class:`AudioReceived`)."""

    message_stream_id: int
    timestamp: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Unpublished:
    """The publisher ended its stream (``FCUnpublish``, ``closeStream`` or ``deleteStream``)."""

    message_stream_id: int


@dataclass(frozen=True, slots=True)
class ProtocolFailed:
    """The peer violated the protocol; the session is in ``ERROR`` and parses no more."""

    error: RemoteProtocolError


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``)."""


RtmpEvent = (
    Connected
    | PublishRequested
    | StreamMetadata
    | AudioReceived
    | VideoReceived
    | Unpublished
    | ProtocolFailed
    | ConnectionClosed
)

MediaSink = Callable[[int, bytes, bool], None]
"""``sink(timestamp, body, video)``: an accepted publish's media, as
:meth:`RtmpServerSession.set_media_sink` delivers it (the fields of :class:`VideoReceived` or
:class:`AudioReceived`, ``video`` telling which)."""


# --------------------------------------------------------------------------- state machine


class SessionState(enum.Enum):
    """Connection-level states."""

    HANDSHAKE = "handshake"  # waiting for C0/C1/C2
    CONNECTING = "connecting"  # handshake done, waiting for the connect command
    CONNECTED = "connected"  # NetConnection up (streams may be created, publish pending)
    PUBLISHING = "publishing"  # a publish was accepted
    CLOSING = "closing"  # we said goodbye; the adapter closes after writing
    CLOSED = "closed"  # the peer closed the connection
    ERROR = "error"  # protocol violation; nothing more is parsed


class _Input(enum.Enum):
    HANDSHAKE_DONE = "handshake done"
    CONNECT = "connect"
    ACCEPT_PUBLISH = "accept_publish"
    UNPUBLISH = "unpublish"
    REJECT = "reject_publish"
    CLOSE = "close"
    EOF = "EOF"
    PROTOCOL_ERROR = "protocol error"


_S = SessionState
_I = _Input
_TRANSITIONS: dict[tuple[SessionState, _Input], SessionState] = {
    (_S.HANDSHAKE, _I.HANDSHAKE_DONE): _S.CONNECTING,
    (_S.CONNECTING, _I.CONNECT): _S.CONNECTED,
    (_S.CONNECTED, _I.ACCEPT_PUBLISH): _S.PUBLISHING,
    (_S.PUBLISHING, _I.UNPUBLISH): _S.CONNECTED,
    (_S.CONNECTED, _I.REJECT): _S.CLOSING,
    (_S.CONNECTED, _I.CLOSE): _S.CLOSING,
    (_S.PUBLISHING, _I.CLOSE): _S.CLOSING,
    (_S.CONNECTING, _I.CLOSE): _S.CLOSING,
    (_S.HANDSHAKE, _I.CLOSE): _S.CLOSING,
    (_S.CLOSING, _I.CLOSE): _S.CLOSING,
}
for _state in (_S.HANDSHAKE, _S.CONNECTING, _S.CONNECTED, _S.PUBLISHING, _S.CLOSING):
    _TRANSITIONS[(_state, _I.EOF)] = _S.CLOSED
    _TRANSITIONS[(_state, _I.PROTOCOL_ERROR)] = _S.ERROR
_TRANSITIONS[(_S.ERROR, _I.EOF)] = _S.ERROR  # keep ERROR visible to the adapter


# Tuples, not sets: membership is checked per message, and a tuple compares by identity
# first while a set hashes the member (Enum.__hash__ is Python code).
_ENDED_STATES = (_S.CLOSING, _S.CLOSED, _S.ERROR)
_PARSING_STATES = (_S.CONNECTING, _S.CONNECTED, _S.PUBLISHING)


def _as_str(value: AmfValue) -> str | None:
    return value if isinstance(value, str) else None


def _plain(value: AmfValue) -> object:
    # Metadata is handed to the application as plain dicts/lists (ECMA arrays included).
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class RtmpServerSession:
    """Sans-I/O RTMP server session for one publisher connection.

    Args:
        max_media_message_size: cap for audio/video messages (docs/threat-model.md §rtmp).
        max_control_message_size: cap for control/command/data messages.
        max_chunk_streams: cap on distinct chunk stream ids (docs/threat-model.md §rtmp).
        max_message_streams: cap on ``createStream`` (docs/threat-model.md §rtmp).
        out_chunk_size: the chunk size we announce and use for replies.
        window_ack_size: our Window Acknowledgement Size / Set Peer Bandwidth.
        pre_publish_max_message_size: cap for every message type until a publish is
            accepted (the full caps apply afterwards).
        native_chunk_reader: parse chunks in C where that reader is built (the same
            messages and errors as the Python one, faster; ``rtmp.native_chunk_reader``).

    Parsing pauses in two situations, leaving unread bytes buffered (see :attr:`buffered_bytes`)
    until the owner lets it continue: while a :class:`PublishRequested` awaits the application's
    decision (so nothing the peer sends afterwards, such as ``deleteStream``, can overtake the
    decision), and when the chunk allowance set with :meth:`set_chunk_allowance` is used up
    (the adapter's CPU budget for unauthenticated peers).
    """

    def __init__(
        self,
        *,
        max_media_message_size: int = MAX_MEDIA_MESSAGE_SIZE,
        max_control_message_size: int = MAX_CONTROL_MESSAGE_SIZE,
        max_chunk_streams: int = MAX_CHUNK_STREAMS,
        max_message_streams: int = MAX_MESSAGE_STREAMS,
        out_chunk_size: int = 4096,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
        pre_publish_max_message_size: int = PRE_PUBLISH_MAX_MESSAGE_SIZE,
        native_chunk_reader: bool = True,
    ) -> None:
        if not 1 <= out_chunk_size <= 0xFFFFFF:
            raise LocalProtocolError(f"out_chunk_size {out_chunk_size} not in 1..0xFFFFFF")
        self._state = SessionState.HANDSHAKE
        self._reader = StreamReader()
        self._full_limits = (max_media_message_size, max_control_message_size)
        small = min(pre_publish_max_message_size, max_media_message_size,
                    max_control_message_size)
        self._chunks = message_run_reader(
            native=native_chunk_reader,
            max_media_message_size=small,
            max_control_message_size=small,
            max_chunk_streams=max_chunk_streams,
        )
        self._writer = ChunkWriter()
        self._out_chunk_size = out_chunk_size
        self._window_ack_size = window_ack_size
        self._max_message_streams = max_message_streams
        self._events: list[RtmpEvent] = []
        self._outgoing = bytearray()
        self._bytes_received = 0
        # §5.4.3/§5.4.4: acknowledge every time the peer's window elapses (0 = never).
        self._peer_window_ack_size = 0
        self._last_ack_at = 0
        self._next_stream_id = 1
        self._streams: set[int] = set()
        self._pending_publish: int | None = None
        # The message stream of this connection's one publish request, kept after the request
        # stops being pending, so a late decision is recognised (not a caller bug).
        self._requested_publish: int | None = None
        self._publishing: int | None = None
        self._media_sink: MediaSink | None = None
        self._published_once = False
        self._accepted = False
        self._chunk_allowance: int | None = None
        self.chunks_received = 0
        """Chunks parsed so far (the adapter meters unauthenticated peers by it)."""
        self.messages_received = 0
        """Complete messages parsed so far."""
        self._error: RemoteProtocolError | None = None
        self._eof_reported = False
        self._command_stream_id = 0
        self.ignored_media_messages = 0
        """Audio/video messages dropped because they were not on the publishing stream."""
        self._parser = self._parse()
        next(self._parser)

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return self._state

    @property
    def bytes_received(self) -> int:
        """Total bytes passed to :meth:`receive_data` (handshake included)."""
        return self._bytes_received

    @property
    def error(self) -> RemoteProtocolError | None:
        """The protocol error that moved the session to ``ERROR``, if any."""
        return self._error

    @property
    def publishing_stream_id(self) -> int | None:
        """The message stream id being published, once accepted."""
        return self._publishing

    @property
    def authenticated(self) -> bool:
        """True once the application accepted this connection's publish."""
        return self._accepted

    @property
    def awaiting_decision(self) -> bool:
        """True while a :class:`PublishRequested` waits for accept/reject (parsing is held)."""
        return self._pending_publish is not None and self._state not in _ENDED_STATES

    @property
    def buffered_bytes(self) -> int:
        """Peer bytes held in memory: unparsed input plus partially reassembled messages."""
        return self._reader.buffered + self._chunks.buffered_bytes

    @property
    def bytes_to_next_message(self) -> int:
        """A lower bound of the bytes the peer must still send before the message now being
        received can complete (0 when parsing stopped at a message boundary, or when the
        unparsed input already holds what that message needs). The adapter uses it to wake up
        exactly when a partial message can complete (SO_RCVLOWAT, see media.rtmp.server)."""
        return max(0, self._chunks.pending_payload_bytes - self._reader.buffered)

    def take_smallest_message(self) -> int:
        """The payload size of the smallest message completed since the last call (0: none)."""
        smallest, self._chunks.smallest_message = self._chunks.smallest_message, 0
        return smallest

    @property
    def chunk_allowance(self) -> int | None:
        """Chunks the parser may still read before it holds (None: unlimited)."""
        return self._chunk_allowance

    @property
    def held_by_allowance(self) -> bool:
        """True if parsing stopped because the chunk allowance is used up."""
        return self._chunk_allowance == 0 and self._state in _PARSING_STATES

    def set_chunk_allowance(self, allowance: int | None) -> None:
        """Limit how many more chunks are parsed (None lifts the limit).

        Takes effect from the next chunk; call :meth:`resume_parsing` to parse input already
        buffered once the allowance is raised.
        """
        if allowance is not None and allowance < 0:
            raise LocalProtocolError(f"negative chunk allowance {allowance}")
        self._chunk_allowance = allowance

    def resume_parsing(self) -> None:
        """Parse input buffered while parsing was held (by the allowance). No-op when ended."""
        if self._state in _PARSING_STATES:
            self._run_parser()
            if self._state in _PARSING_STATES:
                self._maybe_acknowledge()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; ``b""`` means the peer closed (EOF). The bytes
        are copied: a caller may reuse its buffer afterwards.

        Never raises for peer input: violations become a :class:`ProtocolFailed` event.
        """
        if self._state in (SessionState.ERROR, SessionState.CLOSED):
            if not data:
                self._on_eof()
            return
        if data:
            self._bytes_received += len(data)
            if self._state is SessionState.CLOSING:
                return  # we said goodbye; ignore whatever else arrives
            self._reader.feed_data(data)
        else:
            self._reader.feed_eof()
        if self._state is not SessionState.CLOSING:
            self._run_parser()
        if not data:
            self._on_eof()
        elif self._state in _PARSING_STATES:
            self._maybe_acknowledge()

    def set_media_sink(self, sink: MediaSink | None) -> None:
        """Hand the accepted publish's media to ``sink`` instead of queuing events.

        From now until that publish ends (``FCUnpublish``, ``deleteStream``, ``closeStream``,
        or :meth:`close`), every audio and video message on the publishing stream is passed to
        ``sink(timestamp, body, video)`` as it is parsed, in order, instead of becoming an
        :class:`AudioReceived` or :class:`VideoReceived` event: nearly every message of a
        publish is media, and an event object per message, queued, dispatched and matched again
        by the application, cost more than the media path after it (docs/architecture.md, *The
        media sink*). Other events are still queued; since a publish's media and its control
        messages are independent, a metadata event may reach the application after media parsed
        behind it in the same read. Media parsed before this call stays queued as events (the
        caller dispatches those first, as every ``receive_data`` ends with its events drained).

        ``sink`` must not raise: an exception from it is a bug, logged, and fails the session
        like any internal parsing error (:class:`ProtocolFailed`). ``None`` goes back to events.

        Raises:
            LocalProtocolError: if no publish is accepted (a bug in the caller).
        """
        if sink is not None and self._publishing is None:
            raise LocalProtocolError("no accepted publish to take media from")
        self._media_sink = sink

    def events(self) -> list[RtmpEvent]:
        """Return and clear the queued events."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Return and clear the bytes queued for the peer."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def accept_publish(self, message_stream_id: int) -> bool:
        """Accept the pending publish: StreamBegin + onStatus NetStream.Publish.Start.

        A decision that arrives after the session moved on is a no-op returning False: the
        session ended (CLOSING, CLOSED or ERROR; e.g. the events of one ``receive_data`` call
        held a :class:`PublishRequested` followed by EOF), or the peer withdrew this request.
        Parsing, held while the decision was pending, resumes; its events are queued.

        Returns:
            True if the publish is now accepted.

        Raises:
            LocalProtocolError: if this connection never requested a publish on
                ``message_stream_id`` (a bug in the caller).
        """
        if not self._take_pending_publish(message_stream_id):
            return False
        self._transition(_Input.ACCEPT_PUBLISH)
        self._publishing = message_stream_id
        self._accepted = True
        self._chunk_allowance = None  # allowances meter unauthenticated peers only
        # The key holder gets the full message caps (a 1080p keyframe exceeds the small one).
        media, control = self._full_limits
        self._chunks.set_message_limits(media, control)
        self._send_message(_CSID_PROTOCOL_CONTROL, 0, UserControl.stream_begin(message_stream_id))
        self._send_on_status(
            message_stream_id, "status", "NetStream.Publish.Start", "Start publishing"
        )
        self.resume_parsing()
        return True

    def _take_pending_publish(self, message_stream_id: int) -> bool:
        """Clear the pending publish for an application decision; False if it is moot.

        Raises:
            LocalProtocolError: if no publish was ever requested on ``message_stream_id``.
        """
        if self._requested_publish != message_stream_id:
            raise LocalProtocolError(f"no publish pending on message stream {message_stream_id}")
        if self._state in _ENDED_STATES or self._pending_publish != message_stream_id:
            return False
        self._pending_publish = None
        return True

    def reject_publish(self, message_stream_id: int, code: str, description: str) -> None:
        """Refuse the publish with ``onStatus`` level=error and move to ``CLOSING``.

        The refusal is definitive even when it arrives late: if the peer withdrew the request
        meanwhile (``deleteStream``/``FCUnpublish`` overtaking a delayed refusal), the error is
        still sent and the session still closes, so a client like OBS stops retrying. Once the
        session has ended (CLOSING, CLOSED or ERROR) it is a no-op.

        Args:
            code: e.g. ``"NetStream.Publish.BadName"`` (bad key) or
                ``"NetStream.Publish.BadConnection"``.

        Raises:
            LocalProtocolError: if this connection never requested a publish on
                ``message_stream_id``.
        """
        pending = self._take_pending_publish(message_stream_id)
        if not pending and self._state in _ENDED_STATES:
            return
        if self._accepted:
            raise LocalProtocolError(f"publish on message stream {message_stream_id} was "
                                     "already accepted; use close()")
        self._pending_publish = None
        self._transition(_Input.REJECT)
        self._send_on_status(message_stream_id, "error", code, description)

    def close(self, code: str = "NetStream.Unpublish.Success", description: str = "") -> None:
        """End the session from our side (e.g. a takeover): onStatus, then ``CLOSING``.

        Ignored once the session has ended (CLOSING, CLOSED or ERROR).
        """
        if self._state in _ENDED_STATES:
            return
        stream_id = self._publishing or self._pending_publish
        self._transition(_Input.CLOSE)
        if stream_id is not None:
            level = "error" if code.endswith(("Failed", "BadName", "BadConnection")) else "status"
            self._send_on_status(stream_id, level, code, description)
        self._publishing = None
        self._media_sink = None
        self._pending_publish = None

    # ------------------------------------------------------------------ internals

    def _transition(self, inp: _Input) -> None:
        try:
            new_state = _TRANSITIONS[(self._state, inp)]
        except KeyError:
            raise LocalProtocolError(f"cannot {inp.value} in state {self._state.name}") from None
        if new_state is not self._state:
            logger.debug("RTMP session %s -> %s (%s)", self._state.name, new_state.name, inp.value)
        self._state = new_state

    def _run_parser(self) -> None:
        try:
            next(self._parser)
        except StopIteration:
            pass
        except EOFError:
            pass  # the peer hung up mid-message; _on_eof reports it
        except RemoteProtocolError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must not take the server down
            logger.exception("internal error while parsing RTMP input")
            self._fail(RemoteProtocolError(f"internal error while parsing: {exc!r}"))

    def _fail(self, error: RemoteProtocolError) -> None:
        self._error = error
        if error.on_status_hint is not None:
            # Answer on the stream whose command failed (where the client listens).
            stream_id = self._command_stream_id
            self._send_on_status(stream_id, "error", error.on_status_hint, str(error))
        self._transition(_Input.PROTOCOL_ERROR)
        self._reader.discard()
        self._events.append(ProtocolFailed(error))
        # Debug only: the adapter logs one line per closed connection, and refusals of
        # unauthenticated peers are aggregated there (a flood must not flood the log).
        logger.debug("RTMP protocol error: %s", error)

    def _on_eof(self) -> None:
        if self._eof_reported:
            return
        self._eof_reported = True
        self._transition(_Input.EOF)
        self._events.append(ConnectionClosed())

    def _maybe_acknowledge(self) -> None:
        window = self._peer_window_ack_size
        if window and self._bytes_received - self._last_ack_at >= window:
            self._last_ack_at = self._bytes_received
            self._send_message(
                _CSID_PROTOCOL_CONTROL, 0, Acknowledgement(self._bytes_received & 0xFFFFFFFF)
            )

    def _parse(self) -> Generator[None, None, None]:
        yield  # primed by __init__
        reader = self._reader
        # §5.2.5: C0+C1 → S0+S1+S2, then C2 (whose content we do not check).
        check_c0((yield from reader.read_exact(1)))
        c1 = yield from reader.read_exact(HANDSHAKE_SIZE)
        self._outgoing += make_s0_s1_s2(c1)
        yield from reader.read_exact(HANDSHAKE_SIZE)
        self._transition(_Input.HANDSHAKE_DONE)
        parse_run = self._chunks.parse_run
        handle_media = self._handle_media
        while True:
            while self._pending_publish is not None or self._chunk_allowance == 0:
                yield  # held: see the class docstring
            # Every complete chunk in the buffer is parsed in place in one call, up to the
            # first message that is not media (ChunkReader.parse_run; in C where built);
            # a partial chunk waits for more input.
            allowance = self._chunk_allowance
            chunks, messages = parse_run(reader, -1 if allowance is None else allowance)
            if not chunks:
                if reader.eof:
                    raise EOFError(f"stream ended inside a chunk ({reader.buffered} bytes)")
                yield
                continue
            self.chunks_received += chunks
            if allowance is not None:
                self._chunk_allowance = allowance - chunks
            self.messages_received += len(messages)
            for type_id, message_stream_id, timestamp, payload in messages:
                if type_id == _AUDIO or type_id == _VIDEO:
                    # Nearly every message: without a RawMessage (AudioMessage/VideoMessage
                    # .parse only wrap the body), to the attached publish's sink if it has one
                    # (set_media_sink; read per message, a sink may end the publish), else to
                    # an event.
                    sink = self._media_sink
                    if sink is not None and message_stream_id == self._publishing:
                        sink(timestamp, payload, type_id == _VIDEO)
                    else:
                        handle_media(message_stream_id, timestamp, payload, type_id == _VIDEO)
                    continue
                # (the last of the run: parse_run stops after it)
                self._handle_message(RawMessage(type_id, message_stream_id, timestamp,
                                                payload))
                if self._state not in _PARSING_STATES:
                    return  # CLOSING after play/reject: stop reading

    # ------------------------------------------------------------------ messages

    def _send_message(
        self,
        chunk_stream_id: int,
        message_stream_id: int,
        message: SetChunkSize
        | Acknowledgement
        | UserControl
        | WindowAcknowledgementSize
        | SetPeerBandwidth
        | CommandMessage
        | DataMessage,
        timestamp: int = 0,
    ) -> None:
        self._outgoing += self._writer.write(
            chunk_stream_id, message.type_id, message_stream_id, timestamp, message.serialize()
        )

    def _send_command(self, message_stream_id: int, *values: AmfValue) -> None:
        name, transaction_id, command_object, *arguments = values
        assert isinstance(name, str) and isinstance(transaction_id, float)
        csid = _CSID_COMMAND if message_stream_id == 0 else _CSID_STATUS
        self._send_message(
            csid,
            message_stream_id,
            CommandMessage(name, transaction_id, command_object, tuple(arguments)),
        )

    def _send_on_status(
        self, message_stream_id: int, level: str, code: str, description: str
    ) -> None:
        # §7.2.2: onStatus(0, null, {level, code, description}) on the stream.
        info: dict[str, AmfValue] = {"level": level, "code": code, "description": description}
        self._send_command(message_stream_id, "onStatus", 0.0, None, info)

    def _handle_message(self, raw: RawMessage) -> None:
        """Act on a message other than audio and video (those go to :meth:`_handle_media`)."""
        message = parse_message(raw.message_type_id, raw.payload)
        if isinstance(message, SetChunkSize):
            self._chunks.set_chunk_size(message.chunk_size)
        elif isinstance(message, Abort):
            self._chunks.abort(message.chunk_stream_id)
        elif isinstance(message, WindowAcknowledgementSize):
            self._peer_window_ack_size = message.acknowledgement_window_size
        elif isinstance(message, UserControl):
            if message.event_type == UserControlEventType.PING_REQUEST:
                self._send_message(
                    _CSID_PROTOCOL_CONTROL, 0, UserControl.ping_response(message.event_data)
                )
        elif isinstance(message, DataMessage):
            self._handle_data(raw.message_stream_id, message)
        elif isinstance(message, CommandMessage):
            self._handle_command(raw.message_stream_id, message)
        elif isinstance(message, UnknownMessage):
            logger.debug("ignoring RTMP message type %d", message.message_type_id)
        # Acknowledgement and SetPeerBandwidth from a publisher need no action.

    def _handle_media(self, message_stream_id: int, timestamp: int, body: bytes, video: bool
                      ) -> None:
        # Media on a stream whose publish awaits the application's decision is passed on too:
        # a client that does not wait for NetStream.Publish.Start (or whose sequence headers
        # share a TCP read with ``publish``) would otherwise lose its codec configuration. The
        # events follow PublishRequested in order, so the application sees its own decision
        # first and drops them if it refused.
        if message_stream_id not in (self._publishing, self._pending_publish) or (
                self._publishing is None and self._pending_publish is None):
            self.ignored_media_messages += 1
            return
        if video:
            self._events.append(VideoReceived(message_stream_id, timestamp, body))
        else:
            self._events.append(AudioReceived(message_stream_id, timestamp, body))

    def _handle_data(self, message_stream_id: int, message: DataMessage) -> None:
        values = list(message.values)
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
            return
        if message_stream_id not in (self._publishing, self._pending_publish):
            return
        metadata = {str(k): _plain(v) for k, v in values[1].items()}
        self._events.append(StreamMetadata(message_stream_id, metadata))

    def _handle_command(self, message_stream_id: int, command: CommandMessage) -> None:
        name = command.command_name
        if message_stream_id != 0 and message_stream_id not in self._streams:
            self._command_stream_id = 0
            raise RemoteProtocolError(
                f"command {name[:64]!r} on unknown message stream id {message_stream_id}"
            )
        self._command_stream_id = message_stream_id
        if self._state is SessionState.CONNECTING:
            if name != "connect":
                raise RemoteProtocolError(f"command {name[:64]!r} before connect")
            self._on_connect(command)
            return
        if name == "connect":
            raise RemoteProtocolError("connect sent twice")
        handler = _COMMAND_HANDLERS.get(name)
        if handler is None:
            logger.debug("ignoring RTMP command %r", name[:64])
            return
        handler(self, message_stream_id, command)

    # -- command handlers after connect (dispatched through _COMMAND_HANDLERS) --------------

    def _on_release_stream(self, _message_stream_id: int, command: CommandMessage) -> None:
        # Adobe FMS extension used by OBS/FFmpeg before createStream.
        self._send_command(0, "_result", command.transaction_id, None, amf0.UNDEFINED)

    def _on_fc_publish(self, message_stream_id: int, command: CommandMessage) -> None:
        # Adobe FMS extension used by OBS/FFmpeg before createStream.
        self._on_release_stream(message_stream_id, command)
        stream = command.arguments[0] if command.arguments else ""
        info: dict[str, AmfValue] = {
            "code": "NetStream.Publish.Start",
            "description": stream if isinstance(stream, str) else "",
        }
        self._send_command(0, "onFCPublish", 0.0, None, info)

    def _on_fc_unpublish(self, _message_stream_id: int, command: CommandMessage) -> None:
        if command.transaction_id:
            self._send_command(0, "_result", command.transaction_id, None, amf0.UNDEFINED)
        self._end_publish()

    def _on_close_stream(self, message_stream_id: int, _command: CommandMessage) -> None:
        if message_stream_id == self._publishing:
            self._end_publish()

    def _on_play(self, message_stream_id: int, _command: CommandMessage) -> None:
        self._send_on_status(
            message_stream_id, "error", "NetStream.Play.Failed", "this is an ingest server"
        )
        self._transition(_Input.CLOSE)

    def _on_bandwidth_probe(self, message_stream_id: int, command: CommandMessage) -> None:
        # _checkbw / getStreamLength: answer with 0 so clients that wait for a reply go on.
        if command.transaction_id:
            self._send_command(message_stream_id, "_result", command.transaction_id, None, 0.0)

    def _on_connect(self, command: CommandMessage) -> None:
        obj = command.command_object
        if not isinstance(obj, dict) or not isinstance(obj.get("app"), str):
            raise RemoteProtocolError(
                "connect has no app name", on_status_hint="NetConnection.Connect.Rejected"
            )
        app = obj["app"]
        assert isinstance(app, str)
        tc_url = _as_str(obj.get("tcUrl"))
        flash_ver = _as_str(obj.get("flashVer"))
        # §7.2.1.1: Window Acknowledgement Size, Set Peer Bandwidth, (StreamBegin), _result.
        self._send_message(
            _CSID_PROTOCOL_CONTROL, 0, WindowAcknowledgementSize(self._window_ack_size)
        )
        self._send_message(
            _CSID_PROTOCOL_CONTROL, 0, SetPeerBandwidth(self._window_ack_size, LimitType.DYNAMIC)
        )
        self._send_message(_CSID_PROTOCOL_CONTROL, 0, SetChunkSize(self._out_chunk_size))
        self._writer.chunk_size = self._out_chunk_size  # applies to everything after it
        properties: dict[str, AmfValue] = {"fmsVer": _FMS_VERSION, "capabilities": _CAPABILITIES}
        information: dict[str, AmfValue] = {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": 0.0,
        }
        self._send_command(0, "_result", command.transaction_id, properties, information)
        self._transition(_Input.CONNECT)
        self._events.append(Connected(app=app, tc_url=tc_url, flash_ver=flash_ver))

    def _on_create_stream(self, txid: float) -> None:
        if len(self._streams) >= self._max_message_streams:
            raise RemoteProtocolError(
                f"too many message streams (limit {self._max_message_streams})"
            )
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._streams.add(stream_id)
        self._send_command(0, "_result", txid, None, float(stream_id))

    def _on_publish(self, message_stream_id: int, command: CommandMessage) -> None:
        if message_stream_id == 0:
            raise RemoteProtocolError(
                "publish on message stream 0 (createStream first)",
                on_status_hint="NetStream.Publish.BadConnection",
            )
        if self._published_once or self._pending_publish is not None:
            raise RemoteProtocolError(
                "only one publish per connection",
                on_status_hint="NetStream.Publish.BadConnection",
            )
        args = command.arguments
        name = args[0] if args else None
        if not isinstance(name, str):
            raise RemoteProtocolError(
                "publish stream name must be a string", on_status_hint="NetStream.Publish.BadName"
            )
        publish_type = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
        self._published_once = True
        self._pending_publish = message_stream_id
        self._requested_publish = message_stream_id
        logger.debug(
            "RTMP publish requested on stream %d: %s",
            message_stream_id,
            redact_stream_name(name),
        )
        self._events.append(PublishRequested(message_stream_id, name, publish_type))

    def _on_delete_stream(self, command: CommandMessage) -> None:
        arg = command.arguments[0] if command.arguments else None
        if isinstance(arg, str):
            # GStreamer's rtmp2sink sends deleteStream with the *stream name* (the secret key)
            # instead of the id when it stops. Treat it as ending this connection's stream, and
            # never echo the value: it is a stream key.
            if self._publishing is not None:
                self._end_publish()
            return
        if not isinstance(arg, float) or not arg.is_integer() or int(arg) not in self._streams:
            shown = repr(arg) if isinstance(arg, float) else type(arg).__name__
            raise RemoteProtocolError(f"deleteStream of unknown message stream id {shown}")
        stream_id = int(arg)
        if stream_id == self._publishing:
            self._end_publish()
        if stream_id == self._pending_publish:
            self._pending_publish = None
        self._streams.discard(stream_id)

    def _end_publish(self) -> None:
        if self._publishing is None:
            return
        stream_id = self._publishing
        self._publishing = None
        self._media_sink = None
        self._transition(_Input.UNPUBLISH)
        self._events.append(Unpublished(stream_id))


_CommandHandler = Callable[[RtmpServerSession, int, CommandMessage], None]

# RTMP commands accepted after connect (§7.2.1, §7.2.2 and the FMS extensions OBS/FFmpeg send);
# anything else is logged and ignored.
_COMMAND_HANDLERS: dict[str, _CommandHandler] = {
    "releaseStream": RtmpServerSession._on_release_stream,
    "FCPublish": RtmpServerSession._on_fc_publish,
    "createStream": lambda s, _msid, command: s._on_create_stream(command.transaction_id),
    "publish": RtmpServerSession._on_publish,
    "FCUnpublish": RtmpServerSession._on_fc_unpublish,
    "closeStream": RtmpServerSession._on_close_stream,
    "deleteStream": lambda s, _msid, command: s._on_delete_stream(command),
    "play": RtmpServerSession._on_play,
    "_checkbw": RtmpServerSession._on_bandwidth_probe,
    "getStreamLength": RtmpServerSession._on_bandwidth_probe,
}
