"""Run Debian's nginx with the shipped ``deploy/nginx-edge.conf`` in front of a Hearth origin:
foreground, a throwaway prefix, loopback ports (tests/integration/test_edge.py, bench)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
EDGE_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx-edge.conf"

_MAIN = """
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format edge '$remote_addr "$request" $status $upstream_cache_status $request_time';
    access_log {prefix}/access.log edge;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/edge.conf;
}}
"""


@dataclass
class NginxEdge:
    base: str
    prefix: Path
    proc: subprocess.Popen[bytes]

    def access_log(self) -> list[str]:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def edge_config(origin: str, listen: str, cache_dir: Path) -> str:
    """The shipped config with its three site-specific values replaced."""
    text = EDGE_CONF.read_text()
    for old, new in (("server 127.0.0.1:8080;", f"server {origin};"),
                     ("listen 80;", f"listen {listen};"),
                     ("/var/cache/nginx/hearth", str(cache_dir))):
        assert old in text, f"deploy/nginx-edge.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def nginx_edge(origin: str) -> Iterator[NginxEdge]:
    """Start nginx in front of ``origin`` (``host:port``); yields its base URL."""
    assert NGINX, "nginx is required (scripts/install-test-deps.sh installs it)"
    prefix = Path(tempfile.mkdtemp(prefix="edge-", dir="/tmp"))
    for sub in ("tmp", "cache"):
        (prefix / sub).mkdir()
    os.chmod(prefix, 0o777)  # workers drop to "nobody" when the master runs as root
    for sub in ("tmp", "cache"):
        os.chmod(prefix / sub, 0o777)
    port = _free_port()
    (prefix / "edge.conf").write_text(edge_config(origin, f"127.0.0.1:{port}", prefix / "cache"))
    (prefix / "nginx.conf").write_text(_MAIN.format(prefix=prefix))
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                             "-e", str(prefix / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"nginx exited {proc.returncode}: {err}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("nginx did not listen")
            time.sleep(0.05)
        yield NginxEdge(f"http://127.0.0.1:{port}", prefix, proc)
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: finish in-flight requests
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(prefix, ignore_errors=True)
