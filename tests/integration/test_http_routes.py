"""Every public route, hit with hostile paths and parameters: only 404/400, never a file."""

from __future__ import annotations

import http.client
import os
import stat

import pytest

from tests.helpers.appliance import ApplianceProcess, http_get

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cwindows",
    "//etc/passwd",
    "\\\\etc\\passwd",
    "%00",
    "index.m3u8%00.mp4",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "seg-0.m4s/../../../etc/passwd",
    "index.m3u8.gz",
    "A" * 8000,
    "..",
    ".",
    "hearth.db",
]


def _raw_get(app: ApplianceProcess, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", app.http_port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_traversal_patterns_never_reach_the_filesystem(appliance: ApplianceProcess) -> None:
    """docs/threat-model.md §paths: only well-formed object names resolve; everything else is
    404/400."""
    sid = appliance.create_stream("target")["id"]
    prefixes = ["/hls/", f"/hls/{sid}/", "/watch/", "/api/streams/", "/static/",
                "/static/vendor/", "/"]
    for prefix in prefixes:
        for attack in TRAVERSALS:
            status, body = _raw_get(appliance, prefix + attack)
            assert status in (400, 404, 414, 431), (prefix + attack, status)
            assert b"root:" not in body and b"SQLite format" not in body


def test_security_headers_and_escaping(appliance: ApplianceProcess) -> None:
    """Pages carry a strict CSP, and user text is escaped."""
    appliance.create_stream('<script>alert(1)</script>"><img src=x onerror=alert(2)>')
    r = appliance.get("/")
    assert r.status == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert "<script>alert" not in r.text
    sid = appliance.cli_json("stream", "list")[0]["id"]
    w = appliance.get(f"/watch/{sid}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in w.text
    assert "<img src=x" not in w.text


def test_public_api_and_health(appliance: ApplianceProcess) -> None:
    created = appliance.create_stream("api", "--summary", "s", "--tag", "t")
    streams = appliance.get("/api/streams").json()
    assert streams[0]["id"] == created["id"] and streams[0]["viewers"] == 0
    assert "stream_key" not in streams[0] and "key_hash" not in str(streams)
    assert appliance.get("/api/streams?status=bogus").status == 400
    assert appliance.get("/api/streams/doesnotexist").status == 404
    assert appliance.get("/healthz").json()["status"] == "ok"
    metrics = appliance.get("/metrics")
    assert metrics.status == 200 and "# TYPE hearth_up gauge" in metrics.text
    assert appliance.get(f"/hls/{created['id']}/index.m3u8").status == 404  # no media yet
    assert appliance.get("/static/watch.js").status == 200
    assert appliance.get("/static/vendor/hls.min.js").status == 200


def test_viewers_counted_on_media_without_url_rewriting(appliance: ApplianceProcess) -> None:
    """Issue 11 item 6 / issue 10 item 9: playlists are served as asked (no redirect), only
    media fetches count, and one address cannot inflate the count past its cap."""
    from tests.helpers.publishers import ffmpeg_publish

    created = appliance.create_stream("count me")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 8)
    try:
        appliance.wait_for(lambda: appliance.playlist(sid))
        first = appliance.get(f"/hls/{sid}/index.m3u8", follow=False)
        assert first.status == 200 and "#EXT-X-STREAM-INF:" in first.text
        for _ in range(50):  # playlist floods count nothing
            assert appliance.get(f"/hls/{sid}/media.m3u8").status == 200
        assert appliance.get(f"/api/streams/{sid}").json()["viewers"] == 0
        text = appliance.playlist(sid) or ""
        seg = next(x for x in text.splitlines() if x.startswith("seg-"))
        for i in range(40):  # 40 "players" from one address: distinct UAs and player ids
            hdrs = {"User-Agent": f"player {i}", "X-Hearth-Player": f"fake-player-{i:08d}"}
            assert appliance.get(f"/hls/{sid}/{seg}", headers=hdrs).status == 200
        assert appliance.get(f"/api/streams/{sid}").json()["viewers"] == 8
        beacon = http_get(f"{appliance.base}/api/streams/{sid}/viewing?player=x", method="POST")
        assert beacon.status == 400
        ok = http_get(f"{appliance.base}/api/streams/{sid}/viewing?player=" + "b" * 20,
                      method="POST")
        assert ok.status == 204
        metrics = appliance.get("/metrics").text
        assert 'hearth_viewers{stream="' + sid + '"} 8' in metrics
        assert 'hearth_hls_requests_total{kind="seg"} 40' in metrics
    finally:
        pub.wait(20)


def test_admin_socket_is_private(appliance: ApplianceProcess) -> None:
    """The admin API is only on a Unix socket with mode 0600; nothing admin on TCP."""
    sock = appliance.data_dir / "admin.sock"
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    assert stat.S_ISSOCK(os.stat(sock).st_mode) and mode == 0o600
    assert appliance.get("/v1/streams").status == 404
    assert appliance.get("/v1/status").status == 404


@pytest.mark.parametrize("body", ['{"title": ""}', '{"title": 5}', "[]", "not json",
                                  '{"title": "x", "image": "javascript:alert(1)"}',
                                  '{"title": "x", "tags": "notalist"}'])
def test_admin_api_rejects_bad_bodies(appliance: ApplianceProcess, body: str) -> None:
    """Malformed or invalid create bodies get a 400 with a message, nothing is created."""
    import socket as s

    with s.socket(s.AF_UNIX) as c:
        c.connect(str(appliance.data_dir / "admin.sock"))
        req = (f"POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}")
        c.sendall(req.encode())
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert b'"error"' in data
    assert appliance.cli_json("stream", "list") == []
