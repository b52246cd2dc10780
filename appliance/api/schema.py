"""Admin API data shapes shared by the server, the CLI and the TUI.

Pure dataclasses with ``to_dict``/``from_dict``; no aiohttp or appliance imports, so the TUI
can import this module alone. Field names are the JSON keys.

``from_dict`` checks every field against its annotation and raises :class:`SchemaError` (and
nothing else) for input that does not fit; unknown keys are ignored, so an older client keeps
working against a newer appliance that added fields.

The admin event stream (``GET /v1/events/stream``, Server-Sent Events) is encoded and decoded
here too, by :func:`encode_event`, :class:`SseParser` and :func:`decode_event`, so the producer
(:mod:`appliance.api.admin_events`) and the consumer (the TUI) cannot drift apart.

Adding an event type: a frozen dataclass below with a unique ``KIND``, listed in
:data:`AdminEvent` and :data:`EVENT_TYPES`; map the bus event to it in
:func:`appliance.api.admin_events.admin_event`; handle it in the TUI
(``tui/screens/main.py``). Older TUIs skip kinds they do not know. The property tests in
``tests/appliance/test_schema_events.py`` cover every entry of :data:`EVENT_TYPES`.
"""

from __future__ import annotations

import codecs
import enum
import json
import re
import types
import typing
import unicodedata
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Self, TypeVar

OBS_ADVICE = (
    "OBS: Settings → Stream → Service \"Custom…\", paste the server URL and the stream key. "
    "Settings → Output (Advanced): encoder x264 or a hardware H.264 encoder, rate control CBR, "
    "keyframe interval 1–2 s, B-frames 0 (needed for WebRTC), audio AAC 48 kHz."
)


D = TypeVar("D", bound="Dto")


class SchemaError(ValueError):
    """Data from the other side does not fit the schema (the message names the field)."""


class Dto:
    """JSON mapping shared by every DTO: ``asdict`` out; checked, known keys only, back in."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Build from decoded JSON, checking every field's type.

        Raises:
            SchemaError: not an object, a required field missing, or a value of the wrong
                type (enum values must be known ones).
        """
        return _decode_dto(cls, data, cls.__name__)


_HINTS: dict[type, dict[str, Any]] = {}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _decode_dto(cls: type[D], data: object, path: str) -> D:
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected an object, got {_json_type(data)}")
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _decode_value(hints[f.name], data[f.name], f"{path}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise SchemaError(f"{path}: missing field {f.name!r}")
    return cls(**kwargs)


def _decode_value(typ: Any, value: object, path: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is types.UnionType or origin is typing.Union:
        # Only ``X | None`` is used in this module.
        if value is None:
            return None
        (inner,) = (a for a in typing.get_args(typ) if a is not type(None))
        return _decode_value(inner, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected an array, got {_json_type(value)}")
        (item,) = typing.get_args(typ)
        return [_decode_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(typ, type) and is_dataclass(typ) and issubclass(typ, Dto):
        return _decode_dto(typ, value, path)
    return _decode_scalar(typ, value, path)


def _decode_scalar(typ: Any, value: object, path: str) -> Any:
    # JSON booleans are not numbers here, and integral numbers are fine where floats go.
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise SchemaError(f"{path}: number out of range") from None
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ in (str, bool) and type(value) is typ:
        return value
    if isinstance(typ, type) and issubclass(typ, enum.Enum) and isinstance(value, str):
        try:
            return typ(value)
        except ValueError:
            shown = value if len(value) <= 32 else value[:29] + "..."
            raise SchemaError(f"{path}: unknown value {shown!r}") from None
    name = getattr(typ, "__name__", str(typ))
    raise SchemaError(f"{path}: expected {name}, got {_json_type(value)}")


@dataclass(frozen=True, slots=True)
class LadderRenditionInfo(Dto):
    """One transcoded rendition of a live broadcast's quality ladder."""

    name: str
    width: int
    height: int
    state: str
    """``starting``, ``live`` or ``dropped`` (the machine could not encode it in real time)."""
    speed: float | None
    """Media seconds encoded per CPU second of its encoder thread (above 1 keeps up)."""
    lag: float | None
    """Seconds from a source frame's arrival to its encoded frame (added latency)."""
    frames_dropped: int
    encoder: str


@dataclass(frozen=True, slots=True)
class IngestInfo(Dto):
    """The publisher connection of a live stream, with its health figures."""

    connection_id: int
    remote: str
    connected_at: float
    bitrate_kbps: float | None
    fps: float | None
    width: int | None
    height: int | None
    keyframe_interval: float | None
    bframes: bool
    video_codec: str | None
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    verdict: str
    bytes_in: int
    frames_discarded: int
    """Frames dropped for readers that fell behind (WebRTC viewers, restream targets): not
    an ingest fault. A restream target's own are also in
    :attr:`RestreamTarget.frames_dropped`."""
    reconnects: int
    verdict_reasons: list[str] = field(default_factory=list)
    """Why the verdict is not ``ok``, each with the OBS setting that fixes it."""
    ladder: list[LadderRenditionInfo] = field(default_factory=list)
    """The quality ladder's transcoded renditions (empty when the channel's ladder is off)."""
    ladder_notice: str = ""
    """Why the ladder is smaller than asked (a preset not below the source, the CPU guard)."""
    protocol: str = ""
    """How the publisher sends: ``rtmp``, ``whip`` or ``srt`` (empty from older servers)."""



@dataclass(frozen=True, slots=True)
class AdminBroadcast(Dto):
    """A broadcast (one live session of a channel, or a planned one) as the operator sees it.

    ``recording_url`` and ``thumbnail_url`` stay None until there is one.
    """

    id: str
    channel_id: str
    title: str
    status: str  # planned | live | ended
    starts: float | None
    started_at: float | None
    ended_at: float | None
    watch_url: str
    hls_url: str
    recording_url: str | None
    thumbnail_url: str | None
    viewers: int
    peak_viewers: int
    total_viewers: int = 0
    end_reason: str | None = None
    reconnects: int = 0
    publishing: bool = False
    """True while a publisher is connected (a live broadcast may be in its reconnect grace)."""
    grace_until: float | None = None
    ingest: IngestInfo | None = None
    visibility: str = "public"
    """public | unlisted | private (its own, else its channel's)."""
    own_visibility: str | None = None
    """Set for this broadcast (None: it follows its channel while planned or live)."""


class RestreamState(enum.StrEnum):
    """A simulcast target's state (``hearth channel restream list``)."""

    IDLE = "idle"
    """The channel is not live."""
    CONNECTING = "connecting"
    """Connecting, handshaking or waiting for the target to accept the publish."""
    LIVE = "live"
    """Publishing: media flows to the target."""
    BACKOFF = "backoff"
    """The last attempt failed or the connection dropped; retrying after a pause."""
    FAILED = "failed"
    """Several attempts in a row failed (still retrying, at the longest pause)."""


@dataclass(frozen=True, slots=True)
class RestreamTarget(Dto):
    """A channel's simulcast target with its live figures; the key is only ever shown
    redacted (``<key sha256:xxxxxxxx len=N>``, docs/threat-model.md §restream)."""

    id: int
    channel_id: str
    server_url: str
    """``rtmp[s]://host:port/app`` (the key is not part of it)."""
    key: str
    """The redacted key."""
    created_at: float
    state: RestreamState = RestreamState.IDLE
    bitrate_kbps: float = 0.0
    """Sent in the last few seconds (headers included)."""
    bytes_sent: int = 0
    """Sent during the current broadcast, over every connection."""
    frames_dropped: int = 0
    """Frames dropped because the target fell behind (it resumes at the next keyframe)."""
    connects: int = 0
    """Connections that reached ``live`` during the current broadcast."""
    failures: int = 0
    """Failed attempts in a row."""
    last_error: str | None = None
    live_since: float | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class RestreamCreate(Dto):
    """``POST /v1/channels/{id}/restream`` body: the URL (with the key as its last path
    segment, or without it and ``key`` given)."""

    url: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class AdminChannel(Dto):
    """A channel with its live broadcast (if any) and its upcoming planned ones."""

    id: str
    title: str
    summary: str
    tags: list[str]
    image: str
    record: bool
    retention_days: int | None
    created_at: float
    rtmp_url: str
    channel_url: str
    hls_url: str
    whep_url: str | None = None
    live: AdminBroadcast | None = None
    planned: list[AdminBroadcast] = field(default_factory=list)
    broadcasts_total: int = 0
    restream: list[RestreamTarget] = field(default_factory=list)
    """Simulcast targets with their state (keys redacted)."""
    visibility: str = "public"
    """public | unlisted | private (docs/configuration.md "Visibility and grants")."""
    has_password: bool = False
    """A password page lets viewers in (private channels)."""
    ladder: list[str] = field(default_factory=list)
    """Quality-ladder presets, tallest first; empty: off (remux only)."""
    whip_url: str | None = None
    """WHIP ingest endpoint (the key is its bearer token) when WebRTC and WHIP are on."""


@dataclass(frozen=True, slots=True)
class ChannelCredentials(Dto):
    """Returned once by channel create and rotate-key: the only time a key is ever shown."""

    id: str
    title: str
    rtmp_url: str
    stream_key: str
    channel_url: str
    hls_url: str
    watch_url: str
    whep_url: str | None = None
    obs_advice: str = OBS_ADVICE
    srt_url: str | None = None
    """``srt://HOST:PORT?streamid=KEY`` (the key included: OBS takes it as the server URL,
    key field empty) when SRT ingest is on."""
    whip_url: str | None = None
    """WHIP ingest endpoint (RFC 9725; the key is its bearer token) when WebRTC and WHIP are
    on; the go-live page is ``channel_url + "/golive"``."""


@dataclass(frozen=True, slots=True)
class AdminStream(Dto):
    """``/v1/streams`` (the pre-channels API, kept as an alias): a channel seen as a stream.

    ``status`` is its live broadcast's (``live``), else ``ended`` once it has broadcast, else
    ``created``; times and figures are those of its live or latest broadcast.
    """

    id: str
    title: str
    summary: str
    tags: list[str]
    image: str
    status: str  # created | live | ended
    created_at: float
    started_at: float | None
    ended_at: float | None
    viewers: int
    peak_viewers: int
    total_viewers: int
    watch_url: str
    hls_url: str
    publishing: bool = False
    """True while a publisher is connected (a live stream may be in its reconnect grace)."""
    grace_until: float | None = None
    ingest: IngestInfo | None = None
    broadcast_id: str | None = None
    """Its live or latest broadcast."""
    next_planned_title: str | None = None
    """Its next planned broadcast (title and start), if any."""
    next_planned_at: float | None = None
    record: bool = True
    """Whether the channel's broadcasts are recorded (defaults: an older appliance)."""
    retention_days: int | None = None
    """Its recordings are deleted after this many days (None: the appliance's default)."""
    restream: list[RestreamTarget] = field(default_factory=list)
    """Simulcast targets with their state (keys redacted; empty from an older appliance)."""
    visibility: str = "public"
    """public | unlisted | private (defaults: an older appliance)."""
    ladder: list[str] = field(default_factory=list)
    """Quality-ladder presets, tallest first; empty: off (remux only)."""


@dataclass(frozen=True, slots=True)
class StreamGoal(Dto):
    """A broadcast's NIP-75 zap goal (``/v1/streams/{id}/goal``): its kind 9041 event id,
    what it is for, the target and the zaps received so far (millisats)."""

    event_id: str
    title: str
    amount_msats: int
    progress_msats: int


@dataclass(frozen=True, slots=True)
class StreamCredentials(Dto):
    """Returned once by create and rotate-key: the only time a key is ever shown."""

    id: str
    title: str
    rtmp_url: str
    stream_key: str
    watch_url: str
    hls_url: str
    obs_advice: str = OBS_ADVICE



@dataclass(frozen=True, slots=True)
class GrantCreated(Dto):
    """``POST /v1/grants``: a viewer link for a private channel or broadcast.

    ``watch_url`` carries the token in its fragment (``#grant=…``), which browsers never send
    to a server or cache; the page exchanges it for an HttpOnly cookie. ``token`` alone works
    as ``Authorization: Bearer`` for players outside a browser.
    """

    channel_id: str
    broadcast_id: str | None
    token: str
    watch_url: str
    hls_url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class GrantsRevoked(Dto):
    """``POST /v1/channels/{id}/grants/revoke``: every earlier grant of the channel ended."""

    channel_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class LogEvent(Dto):
    """One entry of the appliance's event/error log (also sent as a ``log`` event)."""

    KIND: ClassVar[str] = "log"

    id: int
    at: float
    level: str
    kind: str
    stream_id: str | None
    message: str



@dataclass(frozen=True, slots=True)
class Status(Dto):
    """One-screen health summary (``hearth status``)."""

    version: str
    started_at: float
    uptime: float
    public_url: str
    rtmp_url: str
    data_dir: str
    streams_total: int
    """Channels (not deleted). Named for the pre-channels API."""
    streams_live: int
    """Live broadcasts."""
    publishers: int
    viewers: int
    rtmp_connections: int
    auth_failures: int
    frames_discarded: int
    recent_errors: list[LogEvent] = field(default_factory=list)
    blocked_addresses: int = 0
    """Addresses blocked for wrong stream keys (``hearth block list``)."""
    rtmp_refused: int = 0
    """RTMP connections refused or dropped before publishing (limits, budgets, deadlines)."""
    ingest_warnings: list[str] = field(default_factory=list)
    """``"<channel id>: <reason>"`` for every live publisher whose health is not ``ok``."""
    broadcasts_planned: int = 0
    ladder_encoder: str = ""
    """The quality ladder's encoder and the hardware encoders found at start."""
    srt_url: str = ""
    """``srt://HOST:PORT?streamid=`` (the stream key goes after it); empty when SRT is off."""
    srt_connections: int = 0
    srt_rejected: int = 0
    """SRT callers refused in the handshake (key, cap, stream id), since start."""


@dataclass(frozen=True, slots=True)
class ChatMessage(Dto):
    """A verified chat event of a stream (NIP-53 kind 1311, or a 9735 zap receipt).

    ``id``/``pubkey`` are lowercase hex; ``created_at`` is the event's own timestamp.
    ``hidden`` is set by operator moderation (hidden messages are never shown publicly);
    ``muted`` means the author is on the host's mute list (kind 10000).
    """

    id: str
    stream_id: str
    pubkey: str
    created_at: int
    content: str
    kind: int = 1311
    display_name: str | None = None
    from_operator: bool = False
    hidden: bool = False
    muted: bool = False
    pinned: bool = False
    zap_msats: int | None = None
    reply_to: str | None = None



@dataclass(frozen=True, slots=True)
class RelayInfo(Dto):
    """One Nostr relay as the dashboard shows it."""

    url: str
    state: str  # connecting | connected | disconnected | failed
    last_error: str | None = None
    last_ok_at: float | None = None
    failures: int = 0
    published: int = 0
    rejected: int = 0
    outbox_depth: int = 0



@dataclass(frozen=True, slots=True)
class AddressBlock(Dto):
    """An address blocked for sending wrong stream keys.

    A block stops wrong guesses only: the correct key is accepted from a blocked address.
    Attempts while blocked are counted and never extend the block. Times are Unix seconds.
    """

    address: str
    since: float
    until: float
    failures: int
    attempts_while_blocked: int = 0


# ---- terminal-safe text ----------------------------------------------------------------------

TEXT_LIMIT = 500
"""Characters of one peer-chosen string shown in a log line, the TUI or the CLI."""

# C0 and C1 controls (ESC, CR, LF, BEL, DEL...), bidi embeddings/overrides/isolates and marks,
# zero-width and other invisible format characters, line/paragraph separators: anything that
# can move the cursor, clear a terminal, forge a log line or reorder text (Trojan Source).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    "\ufff9-\ufffb\ud800-\udfff]"
)


def safe_text(value: object, limit: int = TEXT_LIMIT, *, multiline: bool = False) -> str:
    """``value`` as one inert line for a log, a terminal or a TUI widget.

    Control characters (including ESC, CR and LF), bidi controls, invisible format characters
    and lone surrogates become ``\\xNN``/``\\uNNNN`` escapes, so nothing a peer chose can
    move the cursor, clear the screen, start a new log line or reorder the text; the result
    is cut to ``limit`` characters (with ``…``). Used for every peer-chosen string (stream
    names, AMF strings, chat, relay messages) on its way to a log, the TUI or the CLI.
    ``multiline`` keeps ``\\n`` and ``\\t`` (for widgets that wrap text, never for log lines).
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 2:
        text = text[: limit * 2]  # bound the work before escaping

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    if multiline:
        text = "\n".join(_UNSAFE.sub(escape, line) for line in text.replace("\t", "    ")
                         .split("\n"))
    else:
        text = _UNSAFE.sub(escape, text)
    # Other format (Cf) characters not in the table above are dropped silently.
    if any(unicodedata.category(c) == "Cf" for c in text):
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclass(frozen=True, slots=True)
class AdminRecording(Dto):
    """A broadcast's recording as the operator sees it (``hearth recording list``).

    ``state`` is ``recording`` (the broadcast is live), ``complete`` or ``failed`` (``error``
    says why: disk full, write error, disk too slow; what was written still plays).
    """

    broadcast_id: str
    title: str
    state: str
    started_at: float
    ended_at: float | None
    duration: float
    bytes: int
    segments: int
    kept: bool
    error: str
    recording_url: str
    download_url: str
    thumbnail_url: str | None
    thumbnail_age: float | None = None
    """Seconds since the newest thumbnail was taken; None without one."""
    channel_id: str | None = None


# -- the admin event stream (GET /v1/events/stream) ------------------------------------------


class StreamChange(enum.StrEnum):
    """Why a :class:`StreamEvent` was sent."""

    CREATED = "created"
    UPDATED = "updated"
    LIVE = "live"
    PUBLISHER_LOST = "publisher_lost"
    """The publisher left; the stream waits out its reconnect grace."""
    PUBLISHER_BACK = "publisher_back"
    KEY_ROTATED = "key_rotated"
    ENDED = "ended"
    DELETED = "deleted"


class ChannelChange(enum.StrEnum):
    """Why a :class:`ChannelEvent` was sent."""

    CREATED = "created"
    UPDATED = "updated"
    KEY_ROTATED = "key_rotated"
    DELETED = "deleted"


class BroadcastChange(enum.StrEnum):
    """Why a :class:`BroadcastEvent` was sent."""

    PLANNED = "planned"
    """An operator planned it (status planned, with a start time)."""
    STARTED = "started"
    """A publish started it (status live); its id is final from here on."""
    PUBLISHER_LOST = "publisher_lost"
    """Its publisher went away; it waits out the reconnect grace, still live."""
    RECONNECTED = "reconnected"
    """A publisher came back within the grace (or took over): same broadcast, a discontinuity."""
    UPDATED = "updated"
    """Its description changed (the channel was edited while it is live or planned)."""
    ENDED = "ended"
    """Grace expired, the operator ended it, or a planned one was cancelled (status ended)."""
    DELETED = "deleted"
    """Its channel was deleted: it is gone from every listing (Nostr asks relays to delete)."""


class ChatChange(enum.StrEnum):
    """Why a :class:`ChatEvent` was sent."""

    NEW = "new"
    HIDDEN = "hidden"
    UNHIDDEN = "unhidden"
    PINNED = "pinned"


@dataclass(frozen=True, slots=True)
class StreamEvent(Dto):
    """A stream changed; ``stream`` is its new state (``None`` once it is deleted)."""

    KIND: ClassVar[str] = "stream"

    stream_id: str
    reason: StreamChange
    at: float
    stream: AdminStream | None = None


@dataclass(frozen=True, slots=True)
class ChannelEvent(Dto):
    """A channel changed; ``channel`` is its new state (``None`` once it is deleted)."""

    KIND: ClassVar[str] = "channel"

    channel_id: str
    reason: ChannelChange
    at: float
    channel: AdminChannel | None = None


@dataclass(frozen=True, slots=True)
class BroadcastEvent(Dto):
    """A broadcast changed; ``broadcast`` is its new state (``None`` once it is deleted)."""

    KIND: ClassVar[str] = "broadcast"

    broadcast_id: str
    channel_id: str
    reason: BroadcastChange
    at: float
    broadcast: AdminBroadcast | None = None


@dataclass(frozen=True, slots=True)
class ViewersEvent(Dto):
    """New viewer figures of a live stream (sent only when they change)."""

    KIND: ClassVar[str] = "viewers"

    stream_id: str
    """The channel's id (the pre-channels name: the TUI keys its rows by it)."""
    current: int
    peak: int
    total: int
    at: float
    broadcast_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatEvent(Dto):
    """A chat message arrived, or was hidden, unhidden or pinned (``message`` is its state)."""

    KIND: ClassVar[str] = "chat"

    stream_id: str
    reason: ChatChange
    message: ChatMessage
    at: float


@dataclass(frozen=True, slots=True)
class MuteEvent(Dto):
    """The host mute list changed for one author (it applies to every stream's chat)."""

    KIND: ClassVar[str] = "mute"

    pubkey: str
    muted: bool
    at: float


@dataclass(frozen=True, slots=True)
class RelayEvent(Dto):
    """A relay's state or counters changed."""

    KIND: ClassVar[str] = "relay"

    relay: RelayInfo
    at: float


AdminEvent = (StreamEvent | ChannelEvent | BroadcastEvent | ViewersEvent | LogEvent | ChatEvent
              | MuteEvent | RelayEvent)
"""Everything ``GET /v1/events/stream`` sends."""

EVENT_TYPES: dict[str, type[AdminEvent]] = {
    cls.KIND: cls
    for cls in (StreamEvent, ChannelEvent, BroadcastEvent, ViewersEvent, LogEvent, ChatEvent,
                MuteEvent, RelayEvent)
}

MAX_EVENT_CHARS = 1 << 20
"""Longest SSE frame accepted (a chat message is at most a few KiB)."""


@dataclass(frozen=True, slots=True)
class SseFrame:
    """One Server-Sent Events frame: its ``event:`` name and its joined ``data:`` lines."""

    kind: str
    data: str


def encode_event(event: AdminEvent) -> bytes:
    """One SSE frame (JSON has no raw newlines, so one ``data:`` line suffices)."""
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"event: {event.KIND}\ndata: {data}\n\n".encode()


def decode_event(frame: SseFrame) -> AdminEvent | None:
    """The typed event of a frame; ``None`` for a kind this version does not know.

    Raises:
        SchemaError: a known kind whose data is not JSON or does not fit the event.
    """
    cls = EVENT_TYPES.get(frame.kind)
    if cls is None:
        return None
    try:
        data = json.loads(frame.data)
    except RecursionError:
        raise SchemaError(f"{frame.kind} event: JSON nested too deeply") from None
    except ValueError as exc:
        raise SchemaError(f"{frame.kind} event: not JSON ({exc})") from None
    return cls.from_dict(data)


class SseParser:
    """Incremental Server-Sent Events parser (the subset the admin API sends).

    Feed it bytes as they arrive; it returns the complete frames. Comments (``: heartbeat``)
    and frames without data are skipped; invalid UTF-8 becomes U+FFFD.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, chunk: bytes) -> list[SseFrame]:
        """Frames completed by ``chunk``.

        Raises:
            SchemaError: an unfinished frame grew beyond :data:`MAX_EVENT_CHARS`.
        """
        self._buffer = (self._buffer + self._decoder.decode(chunk)).replace("\r\n", "\n")
        frames: list[SseFrame] = []
        while "\n\n" in self._buffer:
            text, self._buffer = self._buffer.split("\n\n", 1)
            frame = _parse_frame(text)
            if frame is not None:
                frames.append(frame)
        if len(self._buffer) > MAX_EVENT_CHARS:
            self._buffer = ""
            raise SchemaError(f"event stream frame longer than {MAX_EVENT_CHARS} characters")
        return frames


def _parse_frame(text: str) -> SseFrame | None:
    kind, data_lines = "message", []
    for line in text.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data_lines.append(value)
    return SseFrame(kind, "\n".join(data_lines)) if data_lines else None


def pairing_qr(uri: str) -> str:
    """A ``nostrconnect://`` pairing URI as a QR code in Unicode half blocks (two modules per
    character, light on dark, quiet zone included), for the CLI and the TUI alike."""
    import segno  # only pairing needs it

    rows = [list(r) for r in segno.make(uri, error="l").matrix]
    width = len(rows[0]) + 8
    quiet = [[0] * width for _ in range(4)]
    rows = quiet + [[0] * 4 + r + [0] * 4 for r in rows] + quiet + [[0] * width]
    chars = {(0, 0): "█", (1, 0): "▄", (0, 1): "▀", (1, 1): " "}
    return "\n".join("".join(chars[(a, b)] for a, b in zip(top, bottom, strict=True))
                     for top, bottom in zip(rows[0::2], rows[1::2], strict=False))


# ---- webhooks (docs/webhooks.md) -------------------------------------------------------------


class RecordingChange(enum.StrEnum):
    """Why a recording changed (bus ``RecordingChanged``)."""

    READY = "ready"
    """The recording is complete on disk and can be played or downloaded."""
    DELETED = "deleted"


class WebhookEventType(enum.StrEnum):
    """What a webhook delivery reports (its ``type``)."""

    BROADCAST_PLANNED = "broadcast.planned"
    BROADCAST_LIVE = "broadcast.live"
    BROADCAST_ENDED = "broadcast.ended"
    RECORDING_READY = "recording.ready"
    RECORDING_DELETED = "recording.deleted"
    PUBLISHER_REFUSED = "publisher.refused"
    """Refused publish attempts, aggregated like the event log (one per interval)."""
    CHAT_FLAGGED = "chat.flagged"
    """The host hid a chat message (Hearth's moderation has hide, no separate flag)."""
    RESTREAM_FAILED = "restream.failed"
    """A simulcast target failed several times in a row (``hearth channel restream``)."""
    TEST = "webhook.test"
    """Sent by ``hearth webhook test`` to that endpoint only."""


WEBHOOK_EVENTS: tuple[str, ...] = tuple(e.value for e in WebhookEventType
                                        if e is not WebhookEventType.TEST)
"""The event names an endpoint can subscribe to (``--event``)."""


class WebhookState(enum.StrEnum):
    """An endpoint's delivery state as the operator sees it."""

    NEW = "new"
    """Nothing attempted yet."""
    OK = "ok"
    """The last attempt was answered 2xx."""
    FAILING = "failing"
    """The last attempt failed; retries continue with backoff."""
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class AdminWebhook(Dto):
    """A webhook endpoint (never its secret)."""

    id: str
    url: str
    events: list[str]
    """Subscribed event names; empty means every event."""
    state: WebhookState
    enabled: bool
    created_at: float
    last_status: int | None
    """HTTP status of the last attempt (None: none yet, or no answer)."""
    last_error: str | None
    last_success_at: float | None
    consecutive_failures: int
    pending: int
    """Deliveries waiting in the outbox."""
    dropped: int
    """Deliveries dropped because the outbox for this endpoint was full."""


@dataclass(frozen=True, slots=True)
class WebhookCreate(Dto):
    """``POST /v1/webhooks`` body."""

    url: str
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WebhookCreated(Dto):
    """``POST /v1/webhooks`` answer: the secret is shown this once."""

    webhook: AdminWebhook
    secret: str


@dataclass(frozen=True, slots=True)
class WebhookTestQueued(Dto):
    """``POST /v1/webhooks/{id}/test`` answer."""

    webhook_id: str
    delivery_id: str


# -- analytics (issue 14 §3, docs/analytics.md) -------------------------------------------------


class PlayerKind(enum.StrEnum):
    """How a viewer watched: LL-HLS (blocking playlist reloads, rfc8216bis §6.2.5.2), plain
    HLS, WebRTC (WHEP) or a recording (VOD, counted apart from the live figures)."""

    LLHLS = "llhls"
    HLS = "hls"
    WEBRTC = "webrtc"
    VOD = "vod"


class DeviceClass(enum.StrEnum):
    """A viewer's device, classified from the User-Agent in memory (the UA is not kept)."""

    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"
    TV = "tv"
    BOT = "bot"
    """Crawlers and scripts: shown in the split, excluded from every viewer figure."""
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class AnalyticsSplit(Dto):
    """Sessions, distinct viewers and watch time of one (player kind, device class) pair."""

    kind: PlayerKind
    device: DeviceClass
    sessions: int
    viewers: int
    watch_seconds: float


@dataclass(frozen=True, slots=True)
class AnalyticsMinute(Dto):
    """Concurrent live viewers in one minute (the most at any instant of it)."""

    minute: int
    """Unix time of the minute's start."""
    viewers: int


@dataclass(frozen=True, slots=True)
class BroadcastAnalytics(Dto):
    """``GET /v1/analytics/broadcasts/{id}``: one broadcast's audience.

    Live figures (``peak``, ``unique_viewers``, ``sessions``, ``watch_seconds``) exclude
    recording playback (``vod_*``) and bots. ``timeline`` is one point per minute from the
    broadcast's start to its end (or now), zeros included; empty once its per-minute detail
    passed ``analytics.retention_days``. ``average_watch_seconds`` is per session.
    """

    broadcast_id: str
    channel_id: str
    title: str
    status: str
    started_at: float | None
    ended_at: float | None
    current_viewers: int
    peak: int
    peak_at: float | None
    unique_viewers: int
    sessions: int
    watch_seconds: float
    average_watch_seconds: float
    vod_sessions: int
    vod_viewers: int
    vod_watch_seconds: float
    chat_messages: int
    chatters: int
    split: list[AnalyticsSplit]
    timeline: list[AnalyticsMinute]
    updated_at: float | None = None
    """When the figures were last written (about once a minute while live)."""


@dataclass(frozen=True, slots=True)
class AnalyticsDay(Dto):
    """A channel's audience on one UTC day (broadcasts that started that day)."""

    day: str
    """``YYYY-MM-DD`` (UTC)."""
    broadcasts: int
    peak: int
    unique_viewers: int
    watch_seconds: float


@dataclass(frozen=True, slots=True)
class BroadcastAnalyticsLine(Dto):
    """One broadcast in a channel roll-up."""

    broadcast_id: str
    title: str
    started_at: float | None
    ended_at: float | None
    peak: int
    unique_viewers: int
    watch_seconds: float
    chat_messages: int


@dataclass(frozen=True, slots=True)
class ChannelAnalytics(Dto):
    """``GET /v1/analytics/channels/{id}?days=N``: the broadcasts that started in the last
    ``days`` days, rolled up. ``unique_viewers`` is the sum over broadcasts (viewer keys are
    not kept, so one person watching two broadcasts counts twice)."""

    channel_id: str
    title: str
    days: int
    broadcasts: int
    peak: int
    peak_at: float | None
    unique_viewers: int
    sessions: int
    watch_seconds: float
    average_watch_seconds: float
    vod_sessions: int
    vod_watch_seconds: float
    chat_messages: int
    chatters: int
    split: list[AnalyticsSplit]
    per_day: list[AnalyticsDay]
    per_broadcast: list[BroadcastAnalyticsLine]


@dataclass(frozen=True, slots=True)
class AnalyticsLink(Dto):
    """``POST /v1/analytics/channels/{id}/link``: an owner link to the channel's analytics
    page."""

    channel_id: str
    url: str
    expires_at: float
