"""HTTPS through Caddy (Debian's package): the Caddyfile ``install.sh --domain`` writes, with
Caddy's internal CA instead of ACME, in front of a real Hearth on loopback high ports; curl
(trusting that CA) and Chromium play through it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.appliance import ApplianceProcess, free_port, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

CADDY = shutil.which("caddy")
CURL = shutil.which("curl")
REPO = Path(__file__).resolve().parents[2]
DOMAIN = "hearth.test"

pytestmark = pytest.mark.skipif(CADDY is None or FFMPEG is None or CURL is None,
                                reason="needs caddy, curl and ffmpeg")


def _caddyfile(https_port: int, http_port: int, upstream_port: int, storage: Path) -> str:
    site = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--domain", f"{DOMAIN}:{https_port}",
         "--print-caddyfile"],
        env={**os.environ, "HEARTH_HTTP_PORT": str(upstream_port),
             "HEARTH_CADDY_TLS": "tls internal"},
        capture_output=True, text=True, check=True).stdout
    assert "tls internal" in site and f"reverse_proxy 127.0.0.1:{upstream_port}" in site
    return (f"{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
            f"\tstorage file_system {storage}\n\tskip_install_trust\n"
            f"\tauto_https disable_redirects\n}}\n\n{site}")


@contextlib.contextmanager
def caddy(upstream_port: int, https_port: int) -> Iterator[tuple[int, Path]]:
    assert CADDY is not None
    workdir = short_tmpdir()
    http_port = free_port()
    conf = workdir / "Caddyfile"
    conf.write_text(_caddyfile(https_port, http_port, upstream_port, workdir / "storage"))
    env = {**os.environ, "XDG_DATA_HOME": str(workdir / "data"),
           "XDG_CONFIG_HOME": str(workdir / "config"), "HOME": str(workdir)}
    log = open(workdir / "caddy.log", "wb")
    proc = subprocess.Popen([CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    root = workdir / "storage" / "pki" / "authorities" / "local" / "root.crt"
    try:
        deadline = time.monotonic() + 20
        while not root.exists() or not _listening(https_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "caddy.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield https_port, root
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _curl(url: str, port: int, ca: Path) -> tuple[int, str]:
    assert CURL is not None
    out = subprocess.run(
        [CURL, "-sS", "--max-time", "15", "--cacert", str(ca),
         "--resolve", f"{DOMAIN}:{port}:127.0.0.1", "-w", "\n%{http_code}", url],
        capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body.decode(errors="replace")


def test_https_through_caddy_with_curl_and_chromium(data_dir: object) -> None:
    """``install.sh --domain``'s Caddyfile: TLS with a CA curl verifies, https URLs in the API,
    blocking LL-HLS reloads and parts through the proxy, the watch page plays in Chromium."""
    https_port = free_port()  # the public URL's port; Caddy binds it below
    app = ApplianceProcess(data_dir, {  # type: ignore[arg-type]
        "HEARTH_HTTP_PUBLIC_URL": f"https://{DOMAIN}:{https_port}"})
    app.start()
    created = app.create_stream("tls")
    sid = created["id"]
    pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 40, gop=25)
    try:
        app.wait_for(lambda: app.playlist(sid), timeout=20)
        with caddy(app.http_port, https_port) as (port, ca):
            base = f"https://{DOMAIN}:{port}"
            code, text = _curl(f"{base}/hls/{sid}/index.m3u8", port, ca)
            assert code == 200 and "#EXT-X-STREAM-INF:" in text, text
            code, text = _curl(f"{base}/hls/{sid}/media.m3u8", port, ca)
            assert code == 200 and "#EXT-X-PART:" in text
            hint = text.split('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="')[1].split('"')[0]
            msn, part = hint[5:-4].split("-")
            code, text = _curl(f"{base}/hls/{sid}/media.m3u8?_HLS_msn={msn}&_HLS_part={part}",
                               port, ca)
            assert code == 200 and hint in text
            code, _ = _curl(f"{base}/hls/{sid}/{hint}", port, ca)
            assert code == 200
            # Without the CA, curl refuses the certificate (TLS is real).
            assert CURL is not None
            insecure = subprocess.run(
                [CURL, "-sS", "--max-time", "10", "--resolve", f"{DOMAIN}:{port}:127.0.0.1",
                 f"{base}/healthz"], capture_output=True, text=True, check=False)
            assert insecure.returncode != 0
            api = app.get(f"/api/streams/{sid}").json()
            assert api["hls_url"].startswith(f"https://{DOMAIN}:{https_port}/hls/")
            if CHROMIUM is not None:
                with chromium_page((f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1",),
                                   ignore_https_errors=True) as page:
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(f"{base}/watch/{sid}")
                    page.wait_for_function(
                        "() => document.getElementById('player').currentTime > 2",
                        timeout=30_000)
                    assert page.evaluate("() => location.protocol") == "https:"
                    assert not errors, errors
    finally:
        pub.kill()
        pub.wait(10)
        app.stop()
