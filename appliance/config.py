"""Configuration: one frozen dataclass tree from defaults, TOML, ``HEARTH_*`` env, then flags.

Order of precedence (lowest first): built-in defaults → TOML file (``--config`` or
``HEARTH_CONFIG``; a missing ``HEARTH_CONFIG`` file means "no file") → environment variables
``HEARTH_<SECTION>_<KEY>`` (e.g. ``HEARTH_HLS_SEGMENT_TARGET=1``; top-level keys are
``HEARTH_<KEY>``, e.g. ``HEARTH_DATA_DIR``) → command-line flags. Each section is validated
by its own function; a :class:`ConfigError` names the key path and, when the value came from
the environment or a flag, where it came from. Defaults work with no file at all.

The loaded configuration may ask for port 0 (tests); :mod:`appliance.lifecycle` binds the
listeners first and then builds the one configuration every service sees with
:func:`with_bound_ports`, so nothing is patched after start-up (issue 8 finding 6).

Every field has an attribute docstring; ``docs/configuration.md`` is the reference and
``tests/appliance/test_config.py`` checks that it lists every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import itertools
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs

Origin = Literal["default", "file", "env", "flag"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where one effective value came from (``hearth config show``)."""

    origin: Origin
    detail: str = ""
    """The file path, the environment variable or the flag; empty for defaults."""

    def __str__(self) -> str:
        return f"{self.origin} {self.detail}".strip()


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range; ``key`` names it.

    ``source`` (when known) says where the bad value came from, e.g. the environment
    variable ``HEARTH_HTTP_PORT``; it is part of the message.
    """

    def __init__(self, key: str, message: str, source: Source | None = None) -> None:
        where = ""
        if source is not None and source.origin == "env":
            where = f" (from environment variable {source.detail})"
        elif source is not None and source.origin == "flag":
            where = f" (from the command line {source.detail})"
        elif source is not None and source.origin == "file":
            where = f" (in {source.detail})"
        super().__init__(f"{key}: {message}{where}")
        self.key = key
        self.message = message
        self.source = source


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """``[http]``: the public web site (pages, HLS, WHEP, public JSON API)."""

    host: str = "0.0.0.0"
    """Address the public HTTP site binds to (``::`` for IPv6, ``127.0.0.1`` for local only)."""
    port: int = 8080
    """Port of the public HTTP site; 0 lets the OS choose (tests)."""
    public_url: str = ""
    """Base URL viewers use (``https://live.example.org``); derived from host/port when empty.
    Set it behind a reverse proxy so that links, HLS URLs and Nostr events are right."""
    max_connections_per_ip: int = 32
    """Concurrent HTTP connections (WebSockets included) from one address; more are refused
    at accept (a browser opens at most 6 per site)."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a complete request head, counted from connecting
    or from the previous response (it is also the idle keep-alive time): slowloris clients
    trickling header bytes are cut after it."""
    body_timeout: float = 10.0
    """Seconds to receive a request body (WHEP offers, ...) once its head arrived."""


@dataclass(frozen=True, slots=True)
class RtmpConfig:
    """``[rtmp]``: the ingest server OBS publishes to."""

    host: str = "0.0.0.0"
    """Address the RTMP ingest server binds to."""
    port: int = 1935
    """RTMP port; OBS's default is 1935. 0 lets the OS choose (tests)."""
    app: str = "live"
    """RTMP application name: the server URL is ``rtmp://HOST:PORT/<app>``."""
    grace_seconds: float = 60.0
    """How long a dropped publisher may reconnect and continue the same stream."""
    handshake_timeout: float = 5.0
    """Seconds a new connection has to complete the RTMP handshake."""
    publish_timeout: float = 10.0
    """Seconds from TCP accept to an accepted ``publish``."""
    idle_timeout: float = 10.0
    """Seconds without data from a publishing client before it is dropped."""
    max_connections: int = 64
    """Concurrent RTMP connections (publishing or not)."""
    max_connections_per_ip: int = 8
    """Concurrent RTMP connections from one address; more are refused at accept."""
    max_preauth_connections: int = 48
    """Connections that have not yet been accepted as publishers, at once. A new one evicts
    the oldest of the address holding the most, so a flood cannot lock the owner out."""
    preauth_bytes_per_second: int = 65536
    """Bytes per second a connection may send before its publish is accepted (reading
    pauses above it; an honest client needs about 4 KiB)."""
    connects_per_ip_per_second: float = 2.0
    """New RTMP connections per second from one address (burst 8); more are refused at
    accept, so a connection flood cannot churn the pre-auth table faster than publishers
    finish their handshake."""
    preauth_chunks_per_second: float = 200.0
    """RTMP chunks per second parsed for a connection before its publish is accepted (bounds
    the CPU a keyless flood of tiny messages can take)."""
    auth_failure_delay: float = 1.0
    """Upper bound of the random delay (seconds) before a wrong key is refused (MediaMTX)."""
    auth_failures_per_ip: int = 5
    """Wrong-key attempts per address within ``auth_window`` before the address is blocked."""
    auth_window: float = 300.0
    """Seconds over which wrong-key attempts from one address are counted."""
    auth_block_seconds: float = 900.0
    """Seconds an address stays blocked after too many wrong keys."""
    read_coalescing: float = 0.0
    """Read RTMP only when a message can complete (SO_RCVLOWAT), holding at most this many
    seconds of the publisher's bit rate (0.02 is a good value): fewer reads, less CPU per
    stream. Only for publishers that disable Nagle's algorithm (OBS does; ffmpeg needs
    ``-tcp_nodelay 1``): with others parts arrive 20-50 ms later. 0 (off) reads every
    arrival at once."""
    native_chunk_reader: bool = True
    """Parse RTMP chunks in C where that parser was built at install (it needs a C compiler
    and the Python headers; without them the Python parser is used). Both give the same
    messages and refuse the same input; the C one costs an ingest stream about 13 % less
    CPU. false always uses the Python parser."""


@dataclass(frozen=True, slots=True)
class SrtConfig:
    """``[srt]``: SRT ingest (``srt://HOST:PORT?streamid=KEY``, MPEG-TS inside), off by default."""

    enabled: bool = False
    """Listen for SRT publishers (needs libsrt 1.5: Debian ``libsrt1.5-gnutls``; ``install.sh``
    installs it). ``hearth serve --srt [HOST:]PORT`` turns it on."""
    host: str = "0.0.0.0"
    """Address the SRT listener binds to (UDP)."""
    port: int = 8890
    """SRT UDP port (MediaMTX's default, so OBS profiles carry over). 0 lets the OS choose."""
    latency_ms: int = 120
    """SRT receive latency in milliseconds (SRTO_LATENCY; the larger of this and the
    publisher's applies). Raise it to 3–4 × the round-trip time on lossy links."""
    passphrase: str = ""
    """Encrypt SRT (AES, 10–79 characters); publishers must then send the same passphrase.
    Empty: no encryption (the stream key still authenticates)."""
    idle_timeout: float = 10.0
    """Seconds without anything from a connected SRT publisher before it is dropped."""
    max_connections: int = 32
    """Concurrent SRT publishers; more are refused in the handshake."""


@dataclass(frozen=True, slots=True)
class HlsConfig:
    """``[hls]``: segmenting and the (LL-)HLS playlists."""

    segment_target: float = 2.0
    """Target segment duration in seconds; cuts happen at the first keyframe at or after it."""
    part_target: float = 0.2
    """LL-HLS partial segment target in seconds (RFC 8216bis suggests 0.2–0.333). 0.2 s puts
    hls.js about 1.05 s behind and the first part 0.17 s after the first frame (bench/); 0.333
    halves the request rate at about 1.3 s of latency."""
    window: int = 10
    """Segments listed in the live playlist (retention keeps twice as many). LL-HLS delta
    updates (``_HLS_skip``) only save anything when the playlist is longer than the Skip
    Boundary of six target durations (rfc8216bis §4.4.3.8), so keep ``window × segment_target``
    above ``6 × ceil(segment_target)`` (10 × 2 s = 20 s > 12 s)."""
    low_latency: bool = True
    """Serve LL-HLS (partial segments, blocking reload, preload hints); plain clients still work."""
    max_blocking: int = 2000
    """Blocking playlist requests (``_HLS_msn``) parked at once, across all streams."""
    max_blocking_per_ip: int = 16
    """Blocking playlist requests parked at once from one address."""
    block_timeout: float = 0.0
    """Seconds a blocking request may wait; 0 means three target durations (RFC 8216bis)."""


@dataclass(frozen=True, slots=True)
class WebRtcConfig:
    """``[webrtc]``: sub-second playback over WHEP."""

    enabled: bool = False
    """Offer sub-second WebRTC playback over WHEP (draft-ietf-wish-whep) at ``/whep/{id}``."""
    public_ip: str = ""
    """Address advertised in ICE host candidates (the LAN/public IP viewers reach); all
    local addresses when empty."""
    udp_port_min: int = 0
    """Lowest UDP port for WebRTC media; 0 with ``udp_port_max`` 0 lets the OS choose."""
    udp_port_max: int = 0
    """Highest UDP port for WebRTC media (open this range in the firewall)."""
    max_peers: int = 200
    """Concurrent WebRTC viewers across all streams."""
    max_pending: int = 32
    """WHEP negotiations in progress (offer received, ICE not yet connected) at once."""
    max_pending_per_ip: int = 4
    """WHEP negotiations in progress from one address."""
    max_sdp_bytes: int = 32768
    """Largest SDP offer accepted (HTTP 413 above)."""
    connect_timeout: float = 15.0
    """Seconds for a new peer to reach ICE connected before it is dropped."""
    opus_bitrate: int = 96000
    """Bits per second of the Opus audio transcoded (once per stream) from AAC."""
    whip: bool = True
    """Accept publishing over WHIP (RFC 9725) at ``/whip/{channel}`` with the channel's key as
    bearer token, and serve the "go live from this browser" page (needs ``enabled``)."""
    whip_max_sessions: int = 16
    """WHIP publishing sessions (negotiating or live) at once."""
    whip_max_sessions_per_ip: int = 2
    """WHIP publishing sessions at once from one address."""
    whip_media_timeout: float = 10.0
    """Seconds a WHIP session may go without video (from its start, or since the last frame)
    before it is ended."""
    whip_aac_bitrate: int = 128000
    """Bits per second of the AAC audio transcoded (once per broadcast) from a WHIP
    publisher's Opus for HLS and recordings."""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """``[admin]``: the private admin API used by the CLI and the TUI."""

    socket_path: str = ""
    """Admin API Unix socket.

    Default: ``$RUNTIME_DIRECTORY/admin.sock`` under systemd, else ``<data_dir>/admin.sock``.
    """
    socket_mode: int = 0o600
    """File mode of the socket (0o660 lets a group of operators in)."""


@dataclass(frozen=True, slots=True)
class NostrConfig:
    """``[nostr]``: live events (NIP-53) and chat over Nostr relays."""

    relays: tuple[str, ...] = ()
    """Relays to publish to and read chat from; none by default (local chat only).
    In the environment: URLs separated by commas or spaces."""
    operator_pubkey: str = ""
    """The operator's pubkey (npub or hex), named as the host of every stream."""
    operator_key_file: str = ""
    """Optional file holding the operator's secret key (hex or nsec, relative to the data dir);
    when set, live events, operator chat and the mute list are signed as the operator."""
    profile_name: str = ""
    """Name in Hearth's own kind 0 profile (default "Hearth")."""
    profile_about: str = ""
    """About text of Hearth's profile (default: "Live streams at <public URL>")."""
    profile_picture: str = ""
    """Picture URL of Hearth's profile (none by default)."""
    nip05_verify: bool = False
    """Verify chatters' NIP-05 identifiers (HTTPS requests from this box to the domains they
    name) and show verified ones beside their names. Off by default."""
    signer_fallback: bool = False
    """When a NIP-46 remote signer is paired but unreachable, sign with the service key instead
    of waiting (a separate activity under the service pubkey; off by default)."""
    signer_timeout: float = 15.0
    """Seconds to wait for a NIP-46 remote signer's answer."""
    republish_interval: float = 60.0
    """Seconds between 30311 republishes for viewer-count changes while live (they coalesce)."""
    refresh_interval: float = 600.0
    """Seconds between keep-alive 30311 republishes of a live stream with no changes."""


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """``[recording]``: recordings of broadcasts, their retention and thumbnails."""

    enabled: bool = True
    """Record broadcasts (a channel can still opt out); off disables recording entirely."""
    disk_cap_gb: float = 0.0
    """Total size of all recordings in GB (10^9 bytes) above which the oldest unkept ones are
    deleted; 0 means no cap."""
    max_age_days: float = 0.0
    """Default age in days after which a finished, unkept recording is deleted (a channel's
    own retention wins); 0 keeps recordings until the disk cap applies."""
    retention_interval: float = 300.0
    """Seconds between retention passes."""
    thumbnail_interval: float = 10.0
    """Seconds between thumbnails of a live broadcast."""


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """``[webhooks]``: delivery of webhook endpoints' outboxes (docs/webhooks.md)."""

    timeout: float = 10.0
    """Seconds one delivery attempt may take (connect, send, answer) before it counts failed."""
    retry_base: float = 5.0
    """Seconds before the first retry; each further retry waits about twice as long."""
    retry_cap: float = 3600.0
    """Longest wait between two attempts, in seconds."""
    max_attempts: int = 25
    """Attempts after which a delivery is marked failed."""
    max_age: float = 86400.0
    """Seconds after which an undelivered delivery is marked failed."""
    max_pending: int = 1000
    """Pending deliveries kept per endpoint; beyond that the oldest are dropped and counted."""
    concurrency: int = 8
    """Endpoints delivered to at the same time (each endpoint one delivery at a time)."""


@dataclass(frozen=True, slots=True)
class RestreamConfig:
    """``[restream]``: simulcast of live broadcasts to RTMP/RTMPS targets
    (``hearth channel restream``; docs/threat-model.md §restream)."""

    ca_file: str = ""
    """PEM file of extra CA certificates trusted for ``rtmps://`` targets, besides the system
    store (a private CA, tests); empty: the system store only."""
    connect_timeout: float = 10.0
    """Seconds a target may take to accept the connection, the TLS and RTMP handshakes and the
    publish."""
    stall_timeout: float = 20.0
    """Seconds a target may stop reading before it is dropped and reconnected (meanwhile its
    queue drops frames to the next keyframe, counted)."""
    retry_base: float = 1.0
    """Seconds before the first reconnect to a failed target; each further attempt waits about
    twice as long."""
    retry_cap: float = 30.0
    """Longest wait between two reconnect attempts, in seconds."""
    queue_units: int = 600
    """Frames (video and audio) a target may lag behind before its backlog is dropped and it
    resumes at the next keyframe (600: about 8 s of 30 fps video with AAC)."""


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """``[analytics]``: audience figures per broadcast and channel (docs/analytics.md)."""

    enabled: bool = True
    """Count viewers, watch time, player kinds, devices and chat per broadcast (aggregates
    only: no address or User-Agent is stored)."""
    retention_days: float = 90.0
    """Days per-minute viewer detail is kept; the per-broadcast summary stays with its
    broadcast. 0 keeps the detail forever."""
    flush_interval: float = 60.0
    """Seconds between writes of the in-memory figures to the database (and at each
    broadcast's end and at shutdown)."""


@dataclass(frozen=True, slots=True)
class LadderConfig:
    """``[ladder]``: the optional quality ladder (per channel: ``channel edit ID --ladder``)."""

    encoder: str = "auto"
    """H.264 encoder for ladder renditions: auto (a hardware encoder found at start, else
    software), software (libx264), vaapi, nvenc or v4l2m2m."""
    max_lag: float = 1.5
    """Seconds a rendition may fall behind its source before the lowest rendition is dropped
    (the box cannot encode the ladder in real time); the source rendition never waits."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration (top-level keys, then one table per section)."""

    data_dir: str = ""
    """Directory holding the database, keys and socket; platformdirs default when empty
    (``~/.local/share/hearth``; ``/var/lib/hearth`` under the system service)."""
    log_level: str = "INFO"
    """Log verbosity: DEBUG, INFO, WARNING or ERROR."""
    shutdown_timeout: float = 10.0
    """Seconds to let publishers and viewers finish before connections are cut."""
    event_loop: str = "auto"
    """The event loop ``hearth serve`` runs on: ``uvloop`` (libuv; measured 7-13 % less CPU
    per ingest stream and a fifth less per WebRTC packet, docs/architecture.md),
    ``asyncio`` (the standard library's), or ``auto``: uvloop when it is installed, else
    asyncio."""
    http: HttpConfig = field(default_factory=HttpConfig)
    rtmp: RtmpConfig = field(default_factory=RtmpConfig)
    srt: SrtConfig = field(default_factory=SrtConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    webrtc: WebRtcConfig = field(default_factory=WebRtcConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    nostr: NostrConfig = field(default_factory=NostrConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    restream: RestreamConfig = field(default_factory=RestreamConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    ladder: LadderConfig = field(default_factory=LadderConfig)

    # ---- derived values -------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def admin_socket(self) -> Path:
        return Path(self.admin.socket_path) if self.admin.socket_path else default_socket(
            self.data_path
        )

    @property
    def public_base_url(self) -> str:
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        host = self.http.host
        if host in ("0.0.0.0", "::", ""):
            host = guess_host_address()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http.port}"

    @property
    def rtmp_url(self) -> str:
        host = urlsplit(self.public_base_url).hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = "" if self.rtmp.port == 1935 else f":{self.rtmp.port}"
        return f"rtmp://{host}{port}/{self.rtmp.app}"

    @property
    def srt_url(self) -> str | None:
        """``srt://HOST:PORT?streamid=`` (the stream key goes after it), None when SRT is off."""
        if not self.srt.enabled:
            return None
        host = urlsplit(self.public_base_url).hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"srt://{host}:{self.srt.port}?streamid="


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``HEARTH_DATA_DIR``, else the platform's per-user data directory."""
    env = (os.environ if environ is None else environ).get("HEARTH_DATA_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("hearth", appauthor=False))


def default_socket(data_dir: Path) -> Path:
    runtime = os.environ.get("RUNTIME_DIRECTORY")  # set by systemd's RuntimeDirectory=
    if runtime:
        return Path(runtime.split(":")[0]) / "admin.sock"
    return data_dir / "admin.sock"


def guess_host_address() -> str:
    """The address other machines most likely reach us on, for printed URLs.

    A UDP ``connect`` only asks the kernel for a route; no packet is sent. 192.0.2.1 is
    TEST-NET-1 (RFC 5737), never routed anywhere.
    """
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            addr: str = s.getsockname()[0]
            return addr if addr != "0.0.0.0" else "127.0.0.1"
    except OSError:
        return "127.0.0.1"


# ---- the catalogue of options -------------------------------------------------------------

OTHER_VARIABLES: Mapping[str, str] = {
    "HEARTH_CONFIG": "the TOML file to read (a missing file means none)",
    "HEARTH_ADMIN_SOCKET": "the admin socket client commands connect to",
    "HEARTH_PYTHON": "install.sh: the interpreter to build the venv from",
    "HEARTH_INSTALL_MODE": "install.sh: auto, user or system",
    "HEARTH_PIP_ARGS": "install.sh: extra pip arguments",
    "HEARTH_DOMAIN": "install.sh: the domain name for HTTPS",
    "HEARTH_VENV": "scripts/test.sh: the test virtualenv",
    "HEARTH_BIN": "tests: the hearth executable under test",
    "HEARTH_NOSTR_RELAY_VENV": "tests: the nostr-relay virtualenv",
    "HEARTH_COMPILED_MEDIA": "0 runs the compiled ingest path from its Python source "
                             "(media/accel.py)",
}
"""``HEARTH_*`` variables that are not options but are not misspellings either."""


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration option: its key path, variable, type, default and meaning."""

    key: str
    """Dotted key path: ``http.port`` (``[http] port = …`` in TOML)."""
    env: str
    """Its environment variable: ``HEARTH_HTTP_PORT``."""
    type_name: str
    default: Any
    doc: str


def _attribute_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field), read from the source."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) is tuple:
        return "list of strings"
    return {bool: "bool", int: "integer", float: "number", str: "string"}.get(typ, str(typ))


@functools.cache
def options() -> tuple[Option, ...]:
    """Every option, in declaration order (the reference and ``config show`` use it)."""
    out: list[Option] = []
    root = Config()
    hints = typing.get_type_hints(Config)
    docs = _attribute_docs(Config)
    for f in fields(Config):
        value = getattr(root, f.name)
        if dataclasses.is_dataclass(value):
            sub_hints = typing.get_type_hints(type(value))
            sub_docs = _attribute_docs(type(value))
            for sub in fields(value):
                out.append(Option(f"{f.name}.{sub.name}", f"HEARTH_{f.name}_{sub.name}".upper(),
                                  _type_name(sub_hints[sub.name]), getattr(value, sub.name),
                                  sub_docs.get(sub.name, "")))
        else:
            out.append(Option(f.name, f"HEARTH_{f.name}".upper(), _type_name(hints[f.name]),
                              value, docs.get(f.name, "")))
    return tuple(out)


def format_value(value: Any, key: str = "") -> str:
    """A value as TOML would spell it (modes in octal)."""
    if key.endswith("socket_mode") and isinstance(value, int):
        return oct(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


SECRET_OPTIONS = frozenset({"srt.passphrase"})
"""Options whose value ``hearth config show`` never prints (only whether one is set)."""


def describe(config: Config, sources: Mapping[str, Source]) -> list[tuple[str, str, Source]]:
    """``(key, value, source)`` for every option: what ``hearth config show`` prints."""
    rows = []
    for opt in options():
        section, _, name = opt.key.rpartition(".")
        holder = getattr(config, section) if section else config
        value = getattr(holder, name)
        shown = ("(set, not shown)" if value else '""') if opt.key in SECRET_OPTIONS \
            else format_value(value, opt.key)
        rows.append((opt.key, shown, sources.get(opt.key, Source("default"))))
    return rows


# ---- loading ------------------------------------------------------------------------------


def parse_address(value: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or a bare ``PORT`` → ``(host, port)``.

    Raises:
        ValueError: not one of those forms, or the port is not 0..65535.
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        host, port = default_host, text
    else:
        host, sep, port = text.rpartition(":")
        if (not sep or not (port.isascii() and port.isdigit())
                or (host.count(":") and not host.startswith("["))):
            raise ValueError(f"expected PORT or HOST:PORT (e.g. 8081 or 0.0.0.0:8081), "
                             f"got {value!r}")
        host = host.strip("[]") or default_host
    number = int(port)
    if number > 65535:
        raise ValueError(f"port out of range: {number}")
    return host, number


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool | float):  # 1.5 is no port; True is no count
        raise ValueError(raw)
    return int(raw, 0) if isinstance(raw, str) else int(raw)


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(raw)
    return float(raw)


def _to_str(raw: Any) -> str:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise ValueError(raw)
    return str(raw)


def _to_strings(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):  # the environment: commas or spaces
        return tuple(s.strip() for s in raw.replace(",", " ").split() if s.strip())
    if isinstance(raw, list):
        return tuple(str(x) for x in raw)
    raise ValueError(raw)


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_float, str: _to_str,
}


def _convert(key: str, raw: Any, typ: Any) -> Any:
    """Coerce a TOML or environment value to the field's declared type."""
    convert = _to_strings if typing.get_origin(typ) is tuple else _CONVERTERS.get(typ)
    if convert is None:
        raise ConfigError(key, f"unsupported type {typ!r}")
    try:
        return convert(raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, f"expected {_type_name(typ)}, got {raw!r}") from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(obj: Any, values: Mapping[str, Any], prefix: str, source: Callable[[str], Source],
           sources: dict[str, Source]) -> Any:
    """A copy of ``obj`` with ``values`` applied; records each key's source in ``sources``."""
    cls: type = type(obj)
    hints = _hints(cls)
    changes: dict[str, Any] = {}
    known = {f.name for f in fields(obj)}
    for name, raw in values.items():
        key = f"{prefix}{name}"
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(key, f"unknown option{hint}", source(key))
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(raw, Mapping):
                raise ConfigError(key, "expected a table", source(key))
            changes[name] = _apply(current, raw, f"{key}.", source, sources)
            continue
        try:
            changes[name] = _convert(key, raw, hints[name])
        except ConfigError as exc:
            raise ConfigError(exc.key, exc.message, source(key)) from None
        sources[key] = source(key)
    return replace(obj, **changes) if changes else obj


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt in options():
        if opt.env in environ:
            section, _, name = opt.key.rpartition(".")
            (out.setdefault(section, {}) if section else out)[name] = environ[opt.env]
    return out


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Warnings for ``HEARTH_*`` variables that are no option (a typo is silently ignored
    otherwise), each with the closest option's variable when one is near."""
    known = {o.env for o in options()} | set(OTHER_VARIABLES)
    out = []
    for name in sorted(environ):
        if not name.startswith("HEARTH_") or name in known or name.startswith("HEARTH_TEST_"):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"ignoring unknown environment variable {name}{hint}")
    return out


def load_config_with_sources(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> tuple[Config, dict[str, Source]]:
    """:func:`load_config`, also returning where each non-default value came from.

    ``flag_names`` maps key paths to the flag that set them (``{"http.port": "--http"}``),
    for messages and ``hearth config show``.
    """
    env = os.environ if environ is None else environ
    sources: dict[str, Source] = {}
    config = Config()
    if path is None and env.get("HEARTH_CONFIG"):
        candidate = Path(env["HEARTH_CONFIG"])
        path = candidate if candidate.exists() else None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("config", f"file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
        config = _apply(config, data, "", lambda _k: Source("file", str(path)), sources)
    env_of = {o.key: o.env for o in options()}
    config = _apply(config, _env_values(env), "",
                    lambda k: Source("env", env_of.get(k, "")), sources)
    if overrides:
        flags = flag_names or {}
        config = _apply(config, overrides, "", lambda k: Source("flag", flags.get(k, "")),
                        sources)
    assert isinstance(config, Config)
    if not config.data_dir:
        config = replace(config, data_dir=str(default_data_dir(env)))
        if "HEARTH_DATA_DIR" in env:
            sources["data_dir"] = Source("env", "HEARTH_DATA_DIR")
    try:
        validate(config)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.message, exc.source or sources.get(exc.key)) from None
    return config, sources


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Build the effective configuration.

    Args:
        path: TOML file given on the command line; it must exist. When None, ``HEARTH_CONFIG``
            is used if set and the file exists.
        environ: environment to read ``HEARTH_*`` from (``os.environ`` by default).
        overrides: nested mapping of command-line values, applied last.
        flag_names: key path → the flag that set it, for error messages.
        warn: called with each warning (an unknown ``HEARTH_*`` variable).

    Raises:
        ConfigError: a value is malformed, unknown or out of range (the key path is named,
            and the environment variable or flag it came from).
    """
    env = os.environ if environ is None else environ
    if warn is not None:
        for message in unknown_variables(env):
            warn(message)
    config, _ = load_config_with_sources(path, environ=env, overrides=overrides,
                                         flag_names=flag_names)
    return config


def with_bound_ports(config: Config, *, http_port: int, rtmp_port: int,
                     srt_port: int | None = None) -> Config:
    """The configuration the appliance runs with, once its listeners are bound.

    Port 0 (let the OS choose) becomes the real port, so every URL a service hands out is
    right from the start; called once by :mod:`appliance.lifecycle` before any service is
    built.
    """
    return replace(config, http=replace(config.http, port=http_port),
                   rtmp=replace(config.rtmp, port=rtmp_port),
                   srt=config.srt if srt_port is None else replace(config.srt, port=srt_port))


# ---- validation, one function per section -------------------------------------------------


def _port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(key, f"port out of range: {value} (0..65535)")


def _at_least(key: str, value: float, low: float, unit: str = "") -> None:
    if value < low:
        raise ConfigError(key, f"must be at least {low:g}{unit}, got {value:g}")


def _between(key: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low:g} and {high:g}{unit}, got {value:g}")


EVENT_LOOPS = ("auto", "uvloop", "asyncio")
"""The values of ``event_loop`` (appliance/event_loop.py)."""


def _validate_top(c: Config) -> None:
    if c.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    if c.event_loop not in EVENT_LOOPS:
        raise ConfigError("event_loop", "must be " + ", ".join(EVENT_LOOPS))
    _at_least("shutdown_timeout", c.shutdown_timeout, 0, " seconds")


def _validate_http(h: HttpConfig) -> None:
    _port("http.port", h.port)
    if h.public_url:
        parts = urlsplit(h.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("http.public_url", "must be an http(s) URL such as https://host")
    _at_least("http.max_connections_per_ip", h.max_connections_per_ip, 1)
    _between("http.header_timeout", h.header_timeout, 1, 300, " seconds")
    _between("http.body_timeout", h.body_timeout, 1, 300, " seconds")


def _validate_srt(s: SrtConfig) -> None:
    _port("srt.port", s.port)
    _between("srt.latency_ms", s.latency_ms, 20, 8000, " ms")
    if s.passphrase and not 10 <= len(s.passphrase) <= 79:
        raise ConfigError("srt.passphrase", "must be 10 to 79 characters (or empty)")
    _between("srt.idle_timeout", s.idle_timeout, 1, 300, " seconds")
    _between("srt.max_connections", s.max_connections, 1, 1000)


def _validate_rtmp(r: RtmpConfig) -> None:
    _port("rtmp.port", r.port)
    if not r.app or not r.app.isalnum():
        raise ConfigError("rtmp.app", "must be a non-empty alphanumeric name")
    for name in ("grace_seconds", "auth_failure_delay", "auth_window", "auth_block_seconds"):
        _at_least(f"rtmp.{name}", getattr(r, name), 0, " seconds")
    for name in ("handshake_timeout", "publish_timeout", "idle_timeout"):
        if getattr(r, name) <= 0:
            raise ConfigError(f"rtmp.{name}", "must be positive")
    for name in ("max_connections", "max_connections_per_ip", "auth_failures_per_ip",
                 "max_preauth_connections"):
        _at_least(f"rtmp.{name}", getattr(r, name), 1)
    # Below these a publisher could not even connect (about 4 KiB and 20 chunks).
    _at_least("rtmp.preauth_bytes_per_second", r.preauth_bytes_per_second, 4096)
    _at_least("rtmp.preauth_chunks_per_second", r.preauth_chunks_per_second, 10)
    if r.connects_per_ip_per_second <= 0:
        raise ConfigError("rtmp.connects_per_ip_per_second", "must be positive")
    # Over ~0.1 s the mark would hold more than three frames: latency no CPU saving justifies.
    _between("rtmp.read_coalescing", r.read_coalescing, 0, 0.1, " seconds")


def _validate_hls(h: HlsConfig) -> None:
    _between("hls.segment_target", h.segment_target, 0.5, 30, " seconds")
    if not 0.1 <= h.part_target <= h.segment_target:
        raise ConfigError("hls.part_target", "must be between 0.1 s and the segment target")
    _between("hls.window", h.window, 3, 100, " segments")
    _at_least("hls.max_blocking", h.max_blocking, 1)
    _at_least("hls.max_blocking_per_ip", h.max_blocking_per_ip, 1)
    _at_least("hls.block_timeout", h.block_timeout, 0, " seconds")


def _validate_webrtc(w: WebRtcConfig) -> None:
    _port("webrtc.udp_port_min", w.udp_port_min)
    _port("webrtc.udp_port_max", w.udp_port_max)
    if (w.udp_port_min == 0) != (w.udp_port_max == 0) or w.udp_port_min > w.udp_port_max:
        raise ConfigError("webrtc.udp_port_min", "udp_port_min..udp_port_max must be a range "
                          "(both 0 for OS-chosen ports)")
    if w.udp_port_min and w.udp_port_max - w.udp_port_min + 1 < 2:
        raise ConfigError("webrtc.udp_port_max", "port range must hold at least 2 ports")
    if w.public_ip:
        try:
            ipaddress.ip_address(w.public_ip)
        except ValueError:
            raise ConfigError("webrtc.public_ip", "must be an IP address") from None
    for name in ("max_peers", "max_pending", "max_pending_per_ip"):
        _at_least(f"webrtc.{name}", getattr(w, name), 1)
    _between("webrtc.max_sdp_bytes", w.max_sdp_bytes, 1024, 1_048_576, " bytes")
    if w.connect_timeout <= 0:
        raise ConfigError("webrtc.connect_timeout", "must be positive")
    _between("webrtc.opus_bitrate", w.opus_bitrate, 6000, 510000, " bit/s")
    _between("webrtc.whip_aac_bitrate", w.whip_aac_bitrate, 32000, 512000, " bit/s")
    for name in ("whip_max_sessions", "whip_max_sessions_per_ip"):
        _at_least(f"webrtc.{name}", getattr(w, name), 1)
    if not w.whip_media_timeout > 0:
        raise ConfigError("webrtc.whip_media_timeout", "must be positive")


def _validate_admin(a: AdminConfig) -> None:
    if a.socket_mode & ~0o777 or a.socket_mode & 0o007:
        raise ConfigError("admin.socket_mode", "must not grant access to other users")


def _validate_nostr(n: NostrConfig) -> None:
    if n.operator_pubkey:
        from appliance.nostr.keys import parse_pubkey

        try:
            parse_pubkey(n.operator_pubkey)
        except ValueError as exc:
            raise ConfigError("nostr.operator_pubkey", str(exc)) from None
    _at_least("nostr.republish_interval", n.republish_interval, 1, " second")
    _at_least("nostr.refresh_interval", n.refresh_interval, 1, " second")
    for relay in n.relays:
        if urlsplit(relay).scheme not in ("ws", "wss"):
            raise ConfigError("nostr.relays", f"not a ws:// or wss:// URL: {relay!r}")


def _validate_recording(r: RecordingConfig) -> None:
    _at_least("recording.disk_cap_gb", r.disk_cap_gb, 0, " GB (0 = no cap)")
    _at_least("recording.max_age_days", r.max_age_days, 0, " days (0 = no limit)")
    _at_least("recording.retention_interval", r.retention_interval, 1, " second")
    _between("recording.thumbnail_interval", r.thumbnail_interval, 1, 3600, " seconds")


def _validate_webhooks(w: WebhooksConfig) -> None:
    _between("webhooks.timeout", w.timeout, 0.1, 300, " seconds")
    _between("webhooks.retry_base", w.retry_base, 0.01, 3600, " seconds")
    _between("webhooks.retry_cap", w.retry_cap, w.retry_base, 86400, " seconds")
    _between("webhooks.max_attempts", w.max_attempts, 1, 1000)
    _between("webhooks.max_age", w.max_age, 1, 30 * 86400, " seconds")
    _between("webhooks.max_pending", w.max_pending, 1, 1_000_000)
    _between("webhooks.concurrency", w.concurrency, 1, 256)

def _validate_restream(r: RestreamConfig) -> None:
    if r.ca_file and not Path(r.ca_file).is_file():
        raise ConfigError("restream.ca_file", f"no such file: {r.ca_file}")
    _between("restream.connect_timeout", r.connect_timeout, 0.1, 300, " seconds")
    _between("restream.stall_timeout", r.stall_timeout, 0.5, 3600, " seconds")
    _between("restream.retry_base", r.retry_base, 0.01, 3600, " seconds")
    _between("restream.retry_cap", r.retry_cap, r.retry_base, 86400, " seconds")
    _between("restream.queue_units", r.queue_units, 10, 100_000)


def _validate_analytics(a: AnalyticsConfig) -> None:
    _between("analytics.retention_days", a.retention_days, 0, 36500, " days")
    _between("analytics.flush_interval", a.flush_interval, 1, 3600, " seconds")


LADDER_ENCODERS = ("auto", "software", "vaapi", "nvenc", "v4l2m2m")


def _validate_ladder(ladder: LadderConfig) -> None:
    if ladder.encoder not in LADDER_ENCODERS:
        choices = ", ".join(LADDER_ENCODERS)
        raise ConfigError("ladder.encoder", f"must be one of {choices}, got {ladder.encoder!r}")
    _between("ladder.max_lag", ladder.max_lag, 0.2, 30, " seconds")


def validate(config: Config) -> None:
    """Check ranges and cross-field rules, section by section.

    Raises:
        ConfigError: naming the key path of the first bad value.
    """
    _validate_top(config)
    _validate_http(config.http)
    _validate_rtmp(config.rtmp)
    _validate_srt(config.srt)
    _validate_hls(config.hls)
    _validate_webrtc(config.webrtc)
    _validate_admin(config.admin)
    _validate_nostr(config.nostr)
    _validate_recording(config.recording)
    _validate_webhooks(config.webhooks)
    _validate_restream(config.restream)
    _validate_analytics(config.analytics)
    _validate_ladder(config.ladder)

