"""``rtmp://`` and ``rtmps://`` publish URLs: parse, build the connect ``tcUrl``, redact.

A publish URL is ``rtmp[s]://HOST[:PORT]/APP[/MORE…]/STREAM`` (what OBS splits into "server"
and "stream key"): the last path segment is the stream name, everything before it the
application. The stream name is a secret (platforms call it the stream key): only
:meth:`RtmpUrl.redacted` may be logged or shown (docs/threat-model.md §restream).

Only the two RTMP schemes are accepted, with a host and no user info, so a target can never
be turned into a request to another protocol (docs/threat-model.md §restream).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import RtmpError
from .session import redact_stream_name

__all__ = ["DEFAULT_PORTS", "MAX_URL_LENGTH", "RtmpUrl", "RtmpUrlError", "parse_rtmp_url"]

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
"""The scheme's port when the URL names none (RTMPS is TLS on 443 at YouTube, Twitch, Meta)."""

MAX_URL_LENGTH = 2048
"""Longest URL accepted (a platform's server URL plus key is under 200 characters)."""

_HOST_RE = re.compile(r"[A-Za-z0-9.-]{1,253}")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


class RtmpUrlError(RtmpError, ValueError):
    """The URL is not a usable ``rtmp://``/``rtmps://`` publish URL (the message never
    contains the stream name)."""


@dataclass(frozen=True, slots=True)
class RtmpUrl:
    """A parsed publish URL.

    Attributes:
        scheme: ``rtmp`` or ``rtmps``.
        host: host name or IP address (IPv6 without brackets).
        port: TCP port (the scheme's default when the URL names none).
        app: the application path (``live2``, ``app/instance``), without slashes around it.
        stream_name: the secret stream key ("" in a server URL without one).
    """

    scheme: str
    host: str
    port: int
    app: str
    stream_name: str = ""

    @property
    def tls(self) -> bool:
        return self.scheme == "rtmps"

    @property
    def server_url(self) -> str:
        """The URL without the stream name, e.g. ``rtmps://host:443/app`` (not secret)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.app}"

    @property
    def tc_url(self) -> str:
        """The ``tcUrl`` of the ``connect`` command (RTMP 1.0 §7.2.1.1): the server URL."""
        return self.server_url

    def redacted(self) -> str:
        """The URL with the stream name replaced by a short digest: safe to log and show."""
        return f"{self.server_url}/{redact_stream_name(self.stream_name)}"

    def with_stream_name(self, stream_name: str) -> RtmpUrl:
        """The same server with another stream name (validated like one in a URL).

        Raises:
            RtmpUrlError: if ``stream_name`` is empty, too long or has control characters.
        """
        _check_stream_name(stream_name)
        return RtmpUrl(self.scheme, self.host, self.port, self.app, stream_name)

    def __repr__(self) -> str:
        return f"RtmpUrl({self.redacted()!r})"

    __str__ = redacted


def _check_stream_name(name: str) -> None:
    if not name:
        raise RtmpUrlError("the stream key is empty")
    if len(name) > 1024 or _CONTROL_RE.search(name):
        raise RtmpUrlError("the stream key is too long or contains spaces or control characters")


def _check_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(host) or host.startswith(("-", ".")) or ".." in host:
        raise RtmpUrlError("the URL's host is not a valid host name or IP address")
    return host.lower()


def _authority_problem(scheme: str, netloc: str, host: str | None, port: int | None,
                       fragment: str) -> str | None:
    if scheme not in DEFAULT_PORTS:
        return "only rtmp:// and rtmps:// URLs can be restream targets"
    if "@" in netloc:
        return "user:password@ in the URL is not supported; put secrets in the key"
    if not host:
        return "the URL has no host"
    if port == 0:
        return "the URL's port must be 1-65535"
    if fragment:
        return "the URL must not have a #fragment"
    return None


def parse_rtmp_url(url: str, *, stream_name: str | None = None) -> RtmpUrl:
    """Parse a publish URL.

    Args:
        url: ``rtmp[s]://HOST[:PORT]/APP/STREAM``; with ``stream_name`` given, the whole path
            is the application (``rtmp[s]://HOST[:PORT]/APP``).
        stream_name: the stream key given separately (OBS's "Stream Key" field); it must not
            be empty.

    Returns:
        The parsed URL; its ``stream_name`` is "" when the URL has only an application and no
        ``stream_name`` was given (the caller asks for the key).

    Raises:
        RtmpUrlError: for another scheme, a missing host or application, user info, a bad
            port, or control characters; the message never quotes the stream key.
    """
    if len(url) > MAX_URL_LENGTH:
        raise RtmpUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_RE.search(url):
        raise RtmpUrlError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise RtmpUrlError("the URL is malformed (bad host or port)") from None
    scheme = parts.scheme.lower()
    problem = _authority_problem(scheme, parts.netloc, host, port, parts.fragment)
    if problem:
        raise RtmpUrlError(problem)
    assert host is not None
    path = parts.path.strip("/")
    if parts.query:
        path = f"{path}?{parts.query}"  # some platforms put tokens in a query on the key
    if stream_name is None:
        app, _, name = path.rpartition("/")
        if not app:  # one segment: the application alone
            app, name = name, ""
    else:
        app, name = path, stream_name
    if not app or "?" in app:
        raise RtmpUrlError("the URL has no application path (rtmp://host/APP/KEY)")
    if name or stream_name is not None:  # a key given separately must not be empty either
        _check_stream_name(name)
    return RtmpUrl(scheme, _check_host(host), port or DEFAULT_PORTS[scheme], app, name)
