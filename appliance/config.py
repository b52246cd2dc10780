"""Configuration: a frozen dataclass tree loaded from TOML, ``HEARTH_*`` env, then CLI flags.

Order of precedence (lowest first): built-in defaults → TOML file (``--config`` or
``HEARTH_CONFIG``; a missing ``HEARTH_CONFIG`` file means "no file") → environment variables
``HEARTH_<SECTION>_<KEY>`` (e.g. ``HEARTH_HLS_SEGMENT_TARGET=1``; top-level keys are
``HEARTH_<KEY>``, e.g. ``HEARTH_DATA_DIR``) → command-line flags. :func:`validate` raises
:class:`ConfigError` naming the key path. Defaults work with no file at all.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "0.0.0.0"
    """Address the public HTTP site binds to."""
    port: int = 8080
    """Port of the public HTTP site (pages, HLS, public API)."""
    public_url: str = ""
    """Base URL viewers use (``https://live.example.org``); derived from host/port when empty."""
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
    host: str = "0.0.0.0"
    """Address the RTMP ingest server binds to."""
    port: int = 1935
    """RTMP port; OBS's default is 1935."""
    app: str = "live"
    """RTMP application name: the server URL is ``rtmp://HOST:PORT/<app>``."""
    grace_seconds: float = 60.0
    """How long a dropped publisher may reconnect and continue the same stream."""
    handshake_timeout: float = 5.0
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
    preauth_chunks_per_second: float = 200.0
    """RTMP chunks per second parsed for a connection before its publish is accepted (bounds
    the CPU a keyless flood of tiny messages can take)."""
    auth_failure_delay: float = 1.0
    """Upper bound of the random delay (seconds) before a wrong key is refused (MediaMTX)."""
    auth_failures_per_ip: int = 5
    """Wrong-key attempts per address within ``auth_window`` before the address is blocked."""
    auth_window: float = 300.0
    auth_block_seconds: float = 900.0


@dataclass(frozen=True, slots=True)
class HlsConfig:
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
    enabled: bool = False
    """Offer sub-second WebRTC playback over WHEP (RFC 9725) at ``/whep/{id}``."""
    public_ip: str = ""
    """Address advertised in ICE host candidates (the LAN/public IP viewers reach); all
    local addresses when empty."""
    udp_port_min: int = 0
    """Lowest UDP port for WebRTC media; 0 with ``udp_port_max`` 0 lets the OS choose."""
    udp_port_max: int = 0
    max_peers: int = 200
    """Concurrent WebRTC viewers across all streams."""
    max_pending: int = 32
    """WHEP negotiations in progress (offer received, ICE not yet connected) at once."""
    max_pending_per_ip: int = 4
    max_sdp_bytes: int = 32768
    """Largest SDP offer accepted (HTTP 413 above)."""
    connect_timeout: float = 15.0
    """Seconds for a new peer to reach ICE connected before it is dropped."""
    opus_bitrate: int = 96000
    """Bits per second of the Opus audio transcoded (once per stream) from AAC."""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    socket_path: str = ""
    """Admin API Unix socket.

    Default: ``$RUNTIME_DIRECTORY/admin.sock`` under systemd, else ``<data_dir>/admin.sock``.
    """
    socket_mode: int = 0o600
    """File mode of the socket (0o660 lets a group of operators in)."""


@dataclass(frozen=True, slots=True)
class NostrConfig:
    relays: tuple[str, ...] = ()
    """Relays to publish to and read chat from; none by default (local chat only)."""
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
class Config:
    data_dir: str = ""
    """Directory holding the database, keys and socket; platformdirs default when empty."""
    log_level: str = "INFO"
    shutdown_timeout: float = 10.0
    """Seconds to let publishers and viewers finish before connections are cut."""
    http: HttpConfig = field(default_factory=HttpConfig)
    rtmp: RtmpConfig = field(default_factory=RtmpConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    webrtc: WebRtcConfig = field(default_factory=WebRtcConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    nostr: NostrConfig = field(default_factory=NostrConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)

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


def default_data_dir() -> Path:
    env = os.environ.get("HEARTH_DATA_DIR")
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


# ---- loading ------------------------------------------------------------------------------


def _convert(key: str, raw: Any, typ: Any) -> Any:
    """Coerce a TOML or environment value to the field's declared type."""
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw, 0) if isinstance(raw, str) else int(raw)
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if typ is str:
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise ValueError(raw)
            return str(raw)
        if origin is tuple:
            if isinstance(raw, str):
                items = [s.strip() for s in raw.replace(",", " ").split() if s.strip()]
            elif isinstance(raw, list):
                items = [str(x) for x in raw]
            else:
                raise ValueError(raw)
            return tuple(items)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected {getattr(typ, '__name__', typ)}, got {raw!r}") from None
    raise ConfigError(key, f"unsupported type {typ!r}")


def _apply(obj: Any, values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    changes: dict[str, Any] = {}
    known = {f.name for f in fields(obj)}
    for name, raw in values.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise ConfigError(key, "unknown option")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(raw, Mapping):
                raise ConfigError(key, "expected a table")
            changes[name] = _apply(current, raw, f"{key}.")
        else:
            changes[name] = _convert(key, raw, hints[name])
    return replace(obj, **changes) if changes else obj


def _env_values(config: Config, environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            section: dict[str, Any] = {}
            for sub in fields(value):
                env = f"HEARTH_{f.name}_{sub.name}".upper()
                if env in environ:
                    section[sub.name] = environ[env]
            if section:
                out[f.name] = section
        else:
            env = f"HEARTH_{f.name}".upper()
            if env in environ:
                out[f.name] = environ[env]
    return out


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration.

    Args:
        path: TOML file given on the command line; it must exist. When None, ``HEARTH_CONFIG``
            is used if set and the file exists.
        environ: environment to read ``HEARTH_*`` from (``os.environ`` by default).
        overrides: nested mapping of command-line values, applied last.

    Raises:
        ConfigError: a value is malformed, unknown or out of range (the key path is named).
    """
    env = os.environ if environ is None else environ
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
        config = _apply(config, data, "")
    config = _apply(config, _env_values(config, env), "")
    if overrides:
        config = _apply(config, overrides, "")
    assert isinstance(config, Config)
    if not config.data_dir:
        config = replace(config, data_dir=str(default_data_dir()))
    validate(config)
    return config


def _port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(key, f"port out of range: {value}")


def validate(config: Config) -> None:
    """Check ranges and cross-field rules; raises :class:`ConfigError` with the key path."""
    _port("http.port", config.http.port)
    if config.http.max_connections_per_ip < 1:
        raise ConfigError("http.max_connections_per_ip", "must be at least 1")
    if not 1 <= config.http.header_timeout <= 300 or not 1 <= config.http.body_timeout <= 300:
        raise ConfigError("http.header_timeout",
                          "header_timeout and body_timeout must be 1..300 seconds")
    _port("rtmp.port", config.rtmp.port)
    if config.http.public_url:
        parts = urlsplit(config.http.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("http.public_url", "must be an http(s) URL such as https://host")
    if not config.rtmp.app or not config.rtmp.app.isalnum():
        raise ConfigError("rtmp.app", "must be a non-empty alphanumeric name")
    if not 0.5 <= config.hls.segment_target <= 30:
        raise ConfigError("hls.segment_target", "must be between 0.5 and 30 seconds")
    if not 0.1 <= config.hls.part_target <= config.hls.segment_target:
        raise ConfigError("hls.part_target", "must be between 0.1 s and the segment target")
    if not 3 <= config.hls.window <= 100:
        raise ConfigError("hls.window", "must be between 3 and 100 segments")
    if config.hls.max_blocking < 1 or config.hls.max_blocking_per_ip < 1:
        raise ConfigError("hls.max_blocking", "must be at least 1")
    if config.hls.block_timeout < 0:
        raise ConfigError("hls.block_timeout", "must not be negative")
    w = config.webrtc
    _port("webrtc.udp_port_min", w.udp_port_min)
    _port("webrtc.udp_port_max", w.udp_port_max)
    if (w.udp_port_min == 0) != (w.udp_port_max == 0) or w.udp_port_min > w.udp_port_max:
        raise ConfigError("webrtc.udp_port_min", "udp_port_min..udp_port_max must be a range "
                          "(both 0 for OS-chosen ports)")
    if w.udp_port_min and w.udp_port_max - w.udp_port_min + 1 < 2:
        raise ConfigError("webrtc.udp_port_max", "port range must hold at least 2 ports")
    if w.public_ip:
        import ipaddress

        try:
            ipaddress.ip_address(w.public_ip)
        except ValueError:
            raise ConfigError("webrtc.public_ip", "must be an IP address") from None
    for key, val in (("max_peers", w.max_peers), ("max_pending", w.max_pending),
                     ("max_pending_per_ip", w.max_pending_per_ip)):
        if val < 1:
            raise ConfigError(f"webrtc.{key}", "must be at least 1")
    if not 1024 <= w.max_sdp_bytes <= 1_048_576:
        raise ConfigError("webrtc.max_sdp_bytes", "must be between 1024 and 1048576")
    if w.connect_timeout <= 0:
        raise ConfigError("webrtc.connect_timeout", "must be positive")
    if not 6000 <= w.opus_bitrate <= 510000:
        raise ConfigError("webrtc.opus_bitrate", "must be between 6000 and 510000")
    if config.rtmp.grace_seconds < 0:
        raise ConfigError("rtmp.grace_seconds", "must not be negative")
    if (config.rtmp.max_preauth_connections < 1 or config.rtmp.preauth_bytes_per_second < 4096
            or config.rtmp.preauth_chunks_per_second < 10):
        raise ConfigError("rtmp.max_preauth_connections",
                          "pre-auth limits too small for a publisher to connect "
                          "(max_preauth_connections >= 1, preauth_bytes_per_second >= 4096, "
                          "preauth_chunks_per_second >= 10)")
    if config.rtmp.auth_failure_delay < 0:
        raise ConfigError("rtmp.auth_failure_delay", "must not be negative")
    if config.admin.socket_mode & ~0o777 or config.admin.socket_mode & 0o007:
        raise ConfigError("admin.socket_mode", "must not grant access to other users")
    if config.nostr.operator_pubkey:
        from appliance.nostr.keys import parse_pubkey

        try:
            parse_pubkey(config.nostr.operator_pubkey)
        except ValueError as exc:
            raise ConfigError("nostr.operator_pubkey", str(exc)) from None
    if config.nostr.republish_interval < 1 or config.nostr.refresh_interval < 1:
        raise ConfigError("nostr.republish_interval", "intervals must be at least 1 second")
    for relay in config.nostr.relays:
        if urlsplit(relay).scheme not in ("ws", "wss"):
            raise ConfigError("nostr.relays", f"not a ws:// or wss:// URL: {relay!r}")
    r = config.recording
    if r.disk_cap_gb < 0 or r.max_age_days < 0:
        raise ConfigError("recording.disk_cap_gb", "caps must not be negative (0 = none)")
    if r.retention_interval < 1 or not 1 <= r.thumbnail_interval <= 3600:
        raise ConfigError("recording.thumbnail_interval",
                          "intervals must be at least 1 second (thumbnails at most an hour)")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
