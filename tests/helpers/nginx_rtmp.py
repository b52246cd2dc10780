"""Debian's nginx + libnginx-mod-rtmp as a simulcast *target* (tests/integration/test_restream.py):
``live`` application with ``hls on`` written to disk, optionally an RTMPS front door
(``stream {}`` TLS termination, libnginx-mod-stream) and ``push`` to other servers (the
benchmark's peer). Foreground, a throwaway prefix, loopback ports; restartable on the same
ports (a target that goes away and comes back)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
MODULES = Path("/usr/lib/nginx/modules")
RTMP_MODULE = MODULES / "ngx_rtmp_module.so"
STREAM_MODULE = MODULES / "ngx_stream_module.so"


def unavailable(tls: bool = False) -> str | None:
    """Why the target cannot run here, or None."""
    if NGINX is None:
        return "nginx not installed"
    if not RTMP_MODULE.exists():
        return "libnginx-mod-rtmp not installed"
    if tls and not STREAM_MODULE.exists():
        return "libnginx-mod-stream not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NginxRtmp:
    """One nginx-rtmp; :meth:`start`/:meth:`kill` as often as needed (same ports, same dir)."""

    prefix: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ngx-rtmp-")))
    rtmp_port: int = field(default_factory=_free_port)
    tls_port: int | None = None
    cert: Path | None = None
    key: Path | None = None
    push: list[str] = field(default_factory=list)
    hls: bool = True
    proc: subprocess.Popen[bytes] | None = None

    def conf(self) -> str:
        loads = f"load_module {RTMP_MODULE};\n"
        stream = ""
        if self.tls_port is not None:
            loads += f"load_module {STREAM_MODULE};\n"
            stream = f"""
stream {{
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        proxy_pass 127.0.0.1:{self.rtmp_port};
    }}
}}
"""
        pushes = "".join(f"            push {url};\n" for url in self.push)
        hls = (f"            hls on;\n            hls_path {self.prefix}/hls;\n"
               "            hls_fragment 1s;\n            hls_playlist_length 60s;\n"
               "            hls_cleanup off;\n") if self.hls else ""
        user = "user root root;\n" if os.geteuid() == 0 else ""
        return f"""{loads}{user}daemon off;
master_process on;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
{hls}{pushes}        }}
    }}
}}
{stream}"""

    def start(self, timeout: float = 10.0) -> NginxRtmp:
        assert NGINX is not None
        (self.prefix / "hls").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.conf())
        log = open(self.prefix / "stderr.log", "ab")  # owned by the process
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)  # its own process group: kill() takes the worker too
        log.close()
        ports = [self.rtmp_port] + ([self.tls_port] if self.tls_port else [])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}:\n{self.error_log()}")
            if all(_listening(p) for p in ports):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen:\n{self.error_log()}")

    def kill(self) -> None:
        """SIGKILL the master and its worker (a crashed target: connections reset)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def playlist(self, name: str) -> Path:
        return self.prefix / "hls" / f"{name}.m3u8"

    def fragments(self, name: str) -> list[Path]:
        return sorted((self.prefix / "hls").glob(f"{name}-*.ts"),
                      key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
