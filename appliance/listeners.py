"""Bind the appliance's listening sockets before anything else starts.

``hearth serve`` first asks whether a Hearth already runs on this data dir (its admin socket
answers), then binds the public HTTP and RTMP ports. Only then is the configuration final
(port 0 resolved), so every service is built once with the real ports (issue 8 finding 6),
and a second ``hearth serve`` says "Hearth is already running at …" instead of
"address already in use" (issue 12).

Everything here is synchronous start-up work that runs before the appliance serves anyone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config import Config

PROBE_TIMEOUT = 2.0
"""Seconds to wait for a running Hearth to answer a probe."""
_MAX_PROBE_BYTES = 1 << 20


class StartupError(OSError):
    """The appliance cannot start; the message tells the operator what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class AlreadyRunning(StartupError):
    """Another Hearth already serves this data dir or this port."""


class PortInUse(StartupError):
    """Another program holds a port Hearth needs."""


@dataclass
class Listeners:
    """The bound, listening public HTTP and RTMP sockets."""

    http: socket.socket
    rtmp: socket.socket

    @property
    def http_port(self) -> int:
        return int(self.http.getsockname()[1])

    @property
    def rtmp_port(self) -> int:
        return int(self.rtmp.getsockname()[1])

    def close(self) -> None:
        for sock in (self.http, self.rtmp):
            with contextlib.suppress(OSError):
                sock.close()


def probe_admin_socket(path: Path, timeout: float = PROBE_TIMEOUT) -> dict[str, Any] | None:
    """Ask the admin socket at ``path`` for ``/v1/status``.

    Returns:
        The status object when something listens there (``{}`` if it does not answer with
        JSON in time), ``None`` when nothing listens (no socket, a stale one from
        ``kill -9``, or one we may not connect to).
    """
    if not path.is_socket():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            return None  # nothing listens: a stale socket (kill -9), or not ours to reach
        data = b""
        try:  # something listens: a Hearth, even if it is too busy to answer in time
            s.sendall(b"GET /v1/status HTTP/1.0\r\nHost: hearth\r\n\r\n")
            while len(data) < _MAX_PROBE_BYTES:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return {}
    _, _, body = data.partition(b"\r\n\r\n")
    try:
        status = json.loads(body)
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def _looks_like_hearth(host: str, port: int) -> bool:
    """Whether the HTTP server on ``host:port`` is a Hearth (its metrics name it)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics",
                                    timeout=PROBE_TIMEOUT) as resp:
            return b"hearth_up" in resp.read(_MAX_PROBE_BYTES)
    except (OSError, ValueError):
        return False


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As aiohttp and asyncio do: a restart may bind while old connections sit in
        # TIME_WAIT. (It does not let two live servers share the port on Linux.)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)  # as the RTMP server and CappedTCPSite ask for
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _in_use(what: str, host: str, port: int, flag: str, env: str) -> StartupError:
    shown = f"[{host}]" if ":" in host else host
    other = str(port + 1) if host in ("0.0.0.0", "") else f"{shown}:{port + 1}"
    if _looks_like_hearth(host, port):
        return AlreadyRunning(
            f"Hearth is already running on port {port} ({what}) with another data dir. "
            f"Stop it first, or give this one other ports: {flag} {other} "
            f"(or {env}={port + 1}).")
    return PortInUse(
        f"{what} port {shown}:{port} is already in use by another program. Stop that "
        f"program, or choose another port: hearth serve {flag} {other} "
        f"(or {env}={port + 1}).")


def ensure_not_running(config: Config) -> None:
    """Refuse to start when a Hearth already answers on this data dir's admin socket.

    This runs before anything is bound, so a second ``hearth serve`` never takes the admin
    socket (or the database) away from the first.

    Raises:
        AlreadyRunning: with the running appliance's URLs, and what to do.
    """
    status = probe_admin_socket(config.admin_socket)
    if status is None:
        return
    where = f"at {status['public_url']}" if status.get("public_url") else "on this data dir"
    rtmp = f", RTMP {status['rtmp_url']}" if status.get("rtmp_url") else ""
    raise AlreadyRunning(
        f"Hearth is already running {where}{rtmp} (admin socket {config.admin_socket}). "
        "Use it (hearth status, hearth tui), or stop it first: `systemctl --user stop "
        "hearth` or `sudo systemctl stop hearth` for a service, Ctrl-C in its terminal, or "
        "install.sh --stop for a background one.")


def bind_listeners(config: Config) -> Listeners:
    """Bind the public HTTP and RTMP ports (port 0: the OS chooses).

    Raises:
        AlreadyRunning: another Hearth holds one of the ports.
        PortInUse: another program holds one of the ports.
        OSError: any other bind failure (e.g. a privileged port without the capability).
    """
    listeners: list[socket.socket] = []
    specs = ((config.http.host, config.http.port, "HTTP", "--http", "HEARTH_HTTP_PORT"),
             (config.rtmp.host, config.rtmp.port, "RTMP", "--rtmp", "HEARTH_RTMP_PORT"))
    try:
        for host, port, what, flag, env in specs:
            try:
                listeners.append(_bind(host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise _in_use(what, host, port, flag, env) from None
                if exc.errno == errno.EACCES and port < 1024:
                    raise StartupError(
                        f"{what} port {port} is privileged: run as root, grant "
                        f"CAP_NET_BIND_SERVICE, or use a port above 1023 ({flag}).") from None
                raise
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return Listeners(http=listeners[0], rtmp=listeners[1])
