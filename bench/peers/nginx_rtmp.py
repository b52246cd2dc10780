"""nginx + libnginx-mod-rtmp (Debian) as a benchmark peer (performance.md §7).

Runs Debian's nginx as a non-daemon child on loopback ports, with its whole prefix (config,
logs, temp dirs, HLS output) in a temp dir; nothing under /etc/nginx or /var is touched.

Manual use::

    python bench/peers/nginx_rtmp.py          # start, print URLs, Ctrl-C to stop
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",  # Debian/Ubuntu libnginx-mod-rtmp
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
    "/usr/share/nginx/modules/ngx_rtmp_module.so",
)

CONF = """\
load_module {module};
{user}
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}

rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {tmp}/hls;
            hls_fragment {fragment};
            hls_playlist_length {playlist_length};
        }}
    }}
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        # Same URL shape as Hearth: /hls/<key>.m3u8 (nginx-rtmp names files by stream key).
        location /hls/ {{
            alias {tmp}/hls/;
            add_header Cache-Control no-cache;
        }}
        location = /healthz {{ return 200 "ok\\n"; }}
    }}
}}
"""


def find_module() -> str | None:
    for p in MODULE_CANDIDATES:
        if os.path.exists(p):
            return p
    return None


def available() -> str | None:
    """None if usable, else the reason it is not."""
    if shutil.which("nginx") is None:
        return "nginx not installed"
    if find_module() is None:
        return "libnginx-mod-rtmp not installed (no ngx_rtmp_module.so)"
    return None


@dataclass
class NginxRtmp:
    tmp: Path
    rtmp_port: int
    http_port: int
    proc: subprocess.Popen[bytes]

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def playlist_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/{key}.m3u8"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def clear_hls(self) -> None:
        """Remove leftovers of earlier runs so the next run measures a cold start."""
        hls = self.tmp / "hls"
        for p in hls.glob("*"):
            with contextlib.suppress(OSError):
                p.unlink() if p.is_file() else shutil.rmtree(p)


@contextlib.contextmanager
def nginx_rtmp(
    fragment: str = "2s", playlist_length: str = "6s", startup_timeout: float = 10.0
) -> Iterator[NginxRtmp]:
    reason = available()
    if reason:
        raise RuntimeError(reason)
    # Local import keeps this file runnable as a script as well as a module.
    from bench.common import free_ports, terminate, wait_http_ok, wait_tcp

    tmp = Path(tempfile.mkdtemp(prefix="nginx-rtmp-"))
    (tmp / "hls").mkdir()
    rtmp_port, http_port = free_ports(2)
    conf = tmp / "nginx.conf"
    conf.write_text(
        CONF.format(
            # As root the workers would drop to www-data and could not write into our
            # 0700 temp dir: keep them as the invoking user instead.
            user="user root root;" if os.geteuid() == 0 else "",
            module=find_module(),
            tmp=tmp,
            rtmp_port=rtmp_port,
            http_port=http_port,
            fragment=fragment,
            playlist_length=playlist_length,
        )
    )
    log = open(tmp / "stderr.log", "wb")
    # -e: error log before the config is read (otherwise /var/log/nginx/error.log).
    cmd = ["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        try:
            wait_http_ok(f"http://127.0.0.1:{http_port}/healthz", startup_timeout, proc)
            wait_tcp("127.0.0.1", rtmp_port, startup_timeout)
        except (TimeoutError, RuntimeError) as e:
            err = (
                (tmp / "error.log").read_text(errors="replace")
                if (tmp / "error.log").exists()
                else ""
            )
            raise RuntimeError(f"nginx-rtmp did not start: {e}\n{err[-2000:]}") from e
        yield NginxRtmp(tmp, rtmp_port, http_port, proc)
    finally:
        # SIGQUIT = graceful shutdown for nginx; then TERM/KILL via terminate().
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                terminate(proc)
        log.close()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    with nginx_rtmp() as n:
        print(f"RTMP: {n.rtmp_url('KEY')}\nHLS:  {n.playlist_url('KEY')}\nprefix: {n.tmp}")
        with contextlib.suppress(KeyboardInterrupt):
            while n.proc.poll() is None:
                time.sleep(1)
