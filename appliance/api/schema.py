"""Admin API data shapes shared by the server, the CLI and the TUI.

Pure dataclasses with ``to_dict``/``from_dict``; no aiohttp or appliance imports, so the TUI
can import this module alone. Field names are the JSON keys.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self, TypeVar

OBS_ADVICE = (
    "OBS: Settings → Stream → Service \"Custom…\", paste the server URL and the stream key. "
    "Settings → Output (Advanced): encoder x264 or a hardware H.264 encoder, rate control CBR, "
    "keyframe interval 1–2 s, B-frames 0 (needed for WebRTC), audio AAC 48 kHz."
)


D = TypeVar("D", bound="_Dto")


class _Dto:
    """JSON mapping shared by every DTO: ``asdict`` out; known keys only, back in.

    Unknown keys are ignored on the way in, so an older TUI keeps working against a newer
    appliance that added fields.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return _known_fields(cls, data)


def _known_fields(cls: type[D], data: dict[str, Any]) -> D:
    # Not super(): zero-argument super() breaks in slots dataclasses (the class is rebuilt).
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class IngestInfo(_Dto):
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
    reconnects: int
    verdict_reasons: list[str] = field(default_factory=list)
    """Why the verdict is not ``ok``, each with the OBS setting that fixes it."""



@dataclass(frozen=True, slots=True)
class AdminStream(_Dto):
    """A stream as the operator sees it."""

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


    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdminStream:
        data = dict(data)
        if data.get("ingest"):
            data["ingest"] = IngestInfo.from_dict(data["ingest"])
        return _known_fields(cls, data)


@dataclass(frozen=True, slots=True)
class StreamCredentials(_Dto):
    """Returned once by create and rotate-key: the only time a key is ever shown."""

    id: str
    title: str
    rtmp_url: str
    stream_key: str
    watch_url: str
    hls_url: str
    obs_advice: str = OBS_ADVICE



@dataclass(frozen=True, slots=True)
class LogEvent(_Dto):
    """One entry of the appliance's event/error log."""

    id: int
    at: float
    level: str
    kind: str
    stream_id: str | None
    message: str



@dataclass(frozen=True, slots=True)
class Status(_Dto):
    """One-screen health summary (``hearth status``)."""

    version: str
    started_at: float
    uptime: float
    public_url: str
    rtmp_url: str
    data_dir: str
    streams_total: int
    streams_live: int
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
    """``"<stream id>: <reason>"`` for every live publisher whose health is not ``ok``."""


    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        data = dict(data)
        data["recent_errors"] = [LogEvent.from_dict(e) for e in data.get("recent_errors", [])]
        return _known_fields(cls, data)


@dataclass(frozen=True, slots=True)
class ChatMessage(_Dto):
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
class RelayInfo(_Dto):
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
class AddressBlock(_Dto):
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


def safe_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """``value`` as one inert line for a log, a terminal or a TUI widget.

    Control characters (including ESC, CR and LF), bidi controls, invisible format characters
    and lone surrogates become ``\\xNN``/``\\uNNNN`` escapes, so nothing a peer chose can
    move the cursor, clear the screen, start a new log line or reorder the text; the result
    is cut to ``limit`` characters (with ``…``). Used for every peer-chosen string (stream
    names, AMF strings, chat, relay messages) on its way to a log, the TUI or the CLI.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 2:
        text = text[: limit * 2]  # bound the work before escaping

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    text = _UNSAFE.sub(escape, text)
    # Other format (Cf) characters not in the table above are dropped silently.
    if any(unicodedata.category(c) == "Cf" for c in text):
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclass(frozen=True, slots=True)
class AdminRecording(_Dto):
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
