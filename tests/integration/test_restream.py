"""Simulcast from the real process (issue 16 §1): ffmpeg publishes to Hearth, Hearth restreams
to Debian's nginx-rtmp over RTMP and over RTMPS (nginx ``stream {}`` TLS with a private CA
given by ``[restream] ca_file``); the targets' HLS decodes in PyAV with the right codecs and
duration. A second nginx is killed mid-broadcast and restarted: the copy resumes. A target
that accepts TCP and never reads never disturbs ingest. Keys never appear in the CLI output or
the log."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from tests.helpers.appliance import ApplianceProcess, free_port
from tests.helpers.nginx_rtmp import NginxRtmp, unavailable
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.helpers.tls import make_pki

pytestmark = [
    pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed"),
    pytest.mark.skipif(unavailable(tls=True) is not None, reason=str(unavailable(tls=True))),
]

KEYS = {"plain": "plainKEY_1a2b3c", "tls": "tlsKEY_4d5e6f", "flaky": "flakyKEY_7a8b9c",
        "silent": "silentKEY_0d1e2f"}
SECONDS = 10


def wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.socket_path)
        self.sock = sock


def admin_call(data_dir: Path, method: str, path: str, body: object = None) -> str:
    """One admin API request on the socket (what the CLI does, without a Python start-up)."""
    conn = _UnixHTTP(str(data_dir / "admin.sock"))
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status in (200, 201), (response.status, text)
        return text
    finally:
        conn.close()


def admin_get(data_dir: Path, path: str) -> str:
    return admin_call(data_dir, "GET", path)


def decode_hls(target: NginxRtmp, name: str) -> tuple[set[str], int, float]:
    """(codec names, decoded video frames, video seconds) of a target's HLS for ``name``."""
    listed = [line for line in target.playlist(name).read_text().splitlines()
              if line.endswith(".ts")]
    joined = target.prefix / f"{name}-all.ts"
    with open(joined, "wb") as out:
        for fragment in listed:
            out.write((target.prefix / "hls" / fragment).read_bytes())
    with av.open(str(joined)) as container:
        codecs = {s.codec_context.name for s in container.streams}
        video = container.streams.video[0]
        pts = [f.pts for f in container.decode(video) if f.pts is not None]
    assert video.time_base is not None
    seconds = float((max(pts) - min(pts)) * video.time_base) if pts else 0.0
    return codecs, len(pts), seconds


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[tuple[NginxRtmp, NginxRtmp, socket.socket, Path]]:
    pki = make_pki(tmp_path / "pki")
    steady = NginxRtmp(tls_port=free_port(), cert=pki.cert, key=pki.key).start()
    flaky = NginxRtmp().start()
    silent = socket.socket()  # accepts TCP (the kernel does) and never reads a byte
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        yield steady, flaky, silent, pki.ca
    finally:
        silent.close()
        steady.close()
        flaky.close()


def test_simulcast_to_nginx_rtmp_and_rtmps(
        data_dir: Path, targets: tuple[NginxRtmp, NginxRtmp, socket.socket, Path]) -> None:
    steady, flaky, silent, ca = targets
    app = ApplianceProcess(data_dir, env_overrides={
        "HEARTH_RESTREAM_CA_FILE": str(ca), "HEARTH_RESTREAM_RETRY_BASE": "0.2",
        "HEARTH_RESTREAM_RETRY_CAP": "1", "HEARTH_RESTREAM_CONNECT_TIMEOUT": "2",
        "PYTHONASYNCIODEBUG": ""}).start()
    try:
        channel = app.cli_json("channel", "create", "--title", "Simulcast night")
        cid = channel["id"]
        app.cli("channel", "restream", "add", cid,
                f"rtmp://127.0.0.1:{steady.rtmp_port}/live/{KEYS['plain']}")
        # The key from stdin (as a prompt would take it): not in argv, not in shell history.
        piped = subprocess.run(
            [sys.executable, "-m", "appliance", "channel", "restream", "add", cid,
             f"rtmps://127.0.0.1:{steady.tls_port}/live", "--key", "-", "--json",
             "--data-dir", str(data_dir)],
            input=KEYS["tls"] + "\n", capture_output=True, text=True, env=app.env(), timeout=30)
        assert piped.returncode == 0, piped.stderr
        for url in (f"rtmp://127.0.0.1:{flaky.rtmp_port}/live/{KEYS['flaky']}",
                    f"rtmp://127.0.0.1:{silent.getsockname()[1]}/live/{KEYS['silent']}"):
            added = admin_call(data_dir, "POST", f"/v1/channels/{cid}/restream", {"url": url})
            assert not any(k in added for k in KEYS.values())

        def listed() -> dict[int, dict[str, Any]]:  # the CLI contract
            out = app.cli("channel", "restream", "list", cid, "--json").stdout
            assert not any(k in out for k in KEYS.values())
            return {t["id"]: t for t in json.loads(out)}

        def states() -> dict[int, dict[str, Any]]:  # polled: the admin API, no CLI start-up
            out = admin_get(data_dir, f"/v1/channels/{cid}/restream")
            assert not any(k in out for k in KEYS.values())
            return {t["id"]: t for t in json.loads(out)}

        ids = sorted(listed())
        plain, tls, flaky_id, silent_id = ids
        assert {t["state"] for t in listed().values()} == {"idle"}

        started = time.monotonic()
        pub = ffmpeg_publish(f"{app.rtmp_base}/{channel['stream_key']}", SECONDS)
        wait(lambda: all(states()[i]["state"] == "live" for i in (plain, tls, flaky_id)),
             "three targets live")
        # The flaky target dies mid-broadcast and comes back: the copy resumes.
        wait(lambda: len(flaky.fragments(KEYS["flaky"])) >= 2, "HLS at the flaky target")
        flaky.kill()
        wait(lambda: states()[flaky_id]["state"] in ("backoff", "connecting", "failed"),
             "target lost")
        before = {p.name for p in flaky.fragments(KEYS["flaky"])}
        flaky.start()
        wait(lambda: states()[flaky_id]["connects"] == 2
             and states()[flaky_id]["state"] == "live", "target back")
        wait(lambda: {p.name for p in flaky.fragments(KEYS["flaky"])} - before,
             "new fragments after the restart")
        shown = app.cli("channel", "show", cid).stdout  # the text form
        assert all(f"#{i} " in shown for i in ids) and "<key sha256:" in shown
        assert not any(k in shown for k in KEYS.values())
        silent_state = states()[silent_id]
        assert silent_state["state"] in ("connecting", "backoff", "failed")

        # Ingest never waited for any target: ffmpeg (-re) ran in real time, Hearth packaged
        # all of it, and the silent target only ever timed out.
        assert pub.wait(SECONDS + 30) == 0
        assert time.monotonic() - started < SECONDS + 20
        media = app.playlist(cid) or ""
        packaged = sum(float(line.split(":")[1].rstrip(",")) for line in media.splitlines()
                       if line.startswith("#EXTINF:"))
        assert packaged >= SECONDS - 3, media
        assert "timed out" in (states()[silent_id]["last_error"] or "")

        # The broadcast ends (the operator ends it, unless its reconnect grace ran out under
        # a slow run): every target is unpublished and goes idle.
        live = json.loads(admin_get(data_dir, f"/v1/channels/{cid}"))["live"]
        if live is not None:
            app.cli("broadcast", "end", live["id"], check=False)
        wait(lambda: all(t["state"] == "idle" for t in states().values()), "targets idle")
        for name in ("plain", "tls"):
            codecs, frames, seconds = decode_hls(steady, KEYS[name])
            assert codecs == {"h264", "aac"}, (name, codecs)
            assert frames >= 20 * (SECONDS - 4) and seconds >= SECONDS - 4, (name, seconds)
        status = listed()[plain]
        assert status["bytes_sent"] > 100_000 and status["connects"] == 1
        log = app.log()
        assert not any(k in log for k in KEYS.values())
        assert "restream target" in log
    finally:
        app.stop()
