"""Unlisted and private broadcasts end to end (issue 14 §1): a real ``hearth serve``, an
ffmpeg publisher, a real nostr-relay process, Chromium, Debian's nginx running
deploy/nginx-edge.conf, and nostr-tools (node) verifying the NIP-09 deletion.

One module-scoped appliance, relay and publisher; the tests run in file order on the same
broadcast (unlisted → private → public → private), each setting the visibility it needs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.appliance import ApplianceProcess, http_get, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.nginx_edge import NGINX, nginx_edge
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.nostr_fixtures import node_run, nostr_tools_dir, relay_query, run_sync  # noqa: F401
from tests.relay_client.conftest import RelayProcess, nostr_relay_venv

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(FFMPEG is None or CHROMIUM is None or NGINX is None,
                                 reason="needs ffmpeg, chromium and nginx")]

OPERATOR = "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"  # key 0x03
TITLE = "Members-only rehearsal"

_VERIFY = r"""
const { verifyEvent } = require('nostr-tools/pure');
const events = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(events.map(e => verifyEvent(e))));
"""


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    r = RelayProcess(nostr_relay_venv(), tmp_path_factory.mktemp("relay"))
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def app(relay: RelayProcess) -> Iterator[ApplianceProcess]:
    a = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": relay.url, "HEARTH_NOSTR_OPERATOR_PUBKEY": OPERATOR,
        "HEARTH_NOSTR_REPUBLISH_INTERVAL": "1", "HEARTH_RTMP_GRACE_SECONDS": "30",
        "HEARTH_RECORDING_THUMBNAIL_INTERVAL": "1",
        "HEARTH_WEBRTC_ENABLED": "1", "HEARTH_WEBRTC_PUBLIC_IP": "127.0.0.1",
        "HEARTH_WEBRTC_UDP_PORT_MIN": "48100", "HEARTH_WEBRTC_UDP_PORT_MAX": "48199"})
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope="module")
def show(app: ApplianceProcess) -> Iterator[dict[str, str]]:
    """An unlisted channel, live from the start (never public before the first test)."""
    created = app.cli_json("channel", "create", "--title", TITLE, "--visibility", "unlisted")
    pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 90, gop=25)
    try:
        live = app.wait_for(lambda: app.cli_json("channel", "show", created["id"])["live"], 20)
        bid = live["id"]
        app.wait_for(lambda: app.get(f"/hls/{bid}/index.m3u8").status == 200, 20)
        yield {"cid": created["id"], "bid": bid}
    finally:
        pub.kill()
        pub.wait(10)


def _pubkey(app: ApplianceProcess) -> str:
    from appliance.api.admin_client import UnixSocketAdminClient

    async def go() -> str:
        async with UnixSocketAdminClient(app.data_dir / "admin.sock") as client:
            return str((await client.request("GET", "/v1/nostr"))["activity_pubkey"])

    result: str = run_sync(go())
    return result


def _listings(app: ApplianceProcess, base: str | None = None) -> str:
    base = base or app.base
    return "\n".join(http_get(base + p).text for p in (
        "/", "/api/broadcasts", "/api/streams", "/api/channels", "/api/broadcasts?status=live"))


def _plays(page: Any) -> float:
    page.wait_for_function("() => { const v = document.getElementById('player');"
                           " return v && v.currentTime > 1; }", timeout=30_000)
    t: float = page.evaluate("document.getElementById('player').currentTime")
    return t


def test_unlisted_plays_by_link_and_appears_nowhere_else(
        app: ApplianceProcess, show: dict[str, str], relay: RelayProcess) -> None:
    cid, bid = show["cid"], show["bid"]
    with chromium_page() as page:
        page.goto(f"{app.base}/watch/{bid}?mode=hls")
        assert _plays(page) > 1
        assert TITLE in page.content()
    listings = _listings(app)
    for secret in (bid, cid, TITLE):
        assert secret not in listings
    app.cli("chat", "send", bid, "only for link holders")
    assert [m["content"] for m in app.get(f"/api/broadcasts/{bid}/chat").json()] == [
        "only for link holders"]
    pk = _pubkey(app)
    assert relay_query(relay.url, {"kinds": [30311], "authors": [pk], "#d": [bid]}) == []
    assert relay_query(relay.url, {"kinds": [1311]}) == []
    page_cfg = app.get(f"/watch/{bid}").text
    assert relay.url not in page_cfg  # the page names no relay for an unlisted chat


def _sdp() -> bytes:
    return (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n")


def test_private_refuses_everything_without_a_grant_and_plays_with_one_through_the_edge(
        app: ApplianceProcess, show: dict[str, str]) -> None:
    cid, bid = show["cid"], show["bid"]
    app.cli("channel", "edit", cid, "--visibility", "private")
    grant = app.cli_json("grant", "create", bid, "--expires", "10m")
    token = grant["token"]
    assert grant["watch_url"] == f"{app.base}/watch/{bid}#grant={token}"
    cookie = {"Cookie": f"hearth_grant_{bid}={token}"}
    media = app.get(f"/hls/{bid}/media.m3u8", headers=cookie)
    assert media.status == 200 and token not in media.text
    part = next(line.split('URI="')[1].split('"')[0] for line in media.text.splitlines()
                if line.startswith("#EXT-X-PART:"))
    app.wait_for(lambda: app.get(f"/thumb/{bid}.jpg", headers=cookie).status == 200, 20)
    msn = media.text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0]
    paths = [f"/hls/{bid}/index.m3u8", f"/hls/{bid}/media.m3u8",
             f"/hls/{bid}/media.m3u8?_HLS_msn={msn}&_HLS_part=0", f"/hls/{bid}/{part}",
             f"/hls/{cid}/index.m3u8", f"/vod/{bid}/index.m3u8", f"/vod/{bid}/download.mp4",
             f"/thumb/{bid}.jpg", f"/watch/{bid}", f"/c/{cid}", f"/api/broadcasts/{bid}",
             f"/api/broadcasts/{bid}/chat"]
    for path in paths:
        r = app.get(path)
        assert r.status == 403, (path, r.status)
        assert TITLE not in r.text and r.headers["Cache-Control"] == "private, no-store", path
    whep = http_get(f"{app.base}/whep/{bid}", method="POST", data=_sdp(),
                    headers={"Content-Type": "application/sdp"})
    assert whep.status == 403
    # With the grant: everything answers (download.mp4 is made once the recording ends: 404),
    # but the channel page: a grant for one broadcast is not one for the channel.
    expected = {f"/vod/{bid}/download.mp4": 404, f"/c/{cid}": 403}
    for path in paths:
        r = app.get(path, headers=cookie)
        assert r.status == expected.get(path, 200), (path, r.status)
        assert r.headers["Cache-Control"] == "private, no-store", path
    channel_grant = app.cli_json("grant", "create", cid, "--expires", "1h")
    assert channel_grant["watch_url"].startswith(f"{app.base}/c/{cid}#grant=")
    r = app.get(f"/c/{cid}", headers={"Cookie": f"hearth_grant_{cid}={channel_grant['token']}"})
    assert r.status == 200 and TITLE in r.text
    whep = http_get(f"{app.base}/whep/{bid}", method="POST", data=_sdp(),
                    headers={"Content-Type": "application/sdp", **cookie})
    assert whep.status not in (403, 404), whep.status  # past the gate (the offer is junk)
    assert bid not in _listings(app) and TITLE not in _listings(app)

    with nginx_edge(f"127.0.0.1:{app.http_port}") as edge:
        url = f"{edge.base}/hls/{bid}/index.m3u8"
        assert http_get(url).status == 403
        for _ in range(2):
            r = http_get(url, headers=cookie)
            assert r.status == 200 and r.headers.get("X-Cache-Status") == "BYPASS"
        assert http_get(url).status == 403  # nothing a grant holder got was cached
        part_url = f"{edge.base}/hls/{bid}/{part}"
        assert http_get(part_url, headers={"Authorization": f"Bearer {token}"}).status == 200
        assert http_get(part_url).status == 403
        # Chromium opens the watch link through the edge: access.js trades the fragment for
        # the cookie, the page reloads and hls.js plays through the edge with it.
        with chromium_page() as page:
            page.goto(f"{edge.base}/watch/{bid}?mode=hls#grant={token}")
            assert _plays(page) > 1
            assert token not in page.url and "grant" not in page.url
            assert page.evaluate("document.cookie") == ""  # HttpOnly
            cookies = page.context.cookies()
            assert [c["name"] for c in cookies] == [f"hearth_grant_{bid}"]
            assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Lax"
        log = "\n".join(edge.access_log())
        assert token not in log  # the fragment never reached a server
    # The chat socket: refused without the grant; with it, closed at once on revocation.
    async def chat_socket() -> tuple[int | None, str]:
        import websockets

        url = f"ws://127.0.0.1:{app.http_port}/api/broadcasts/{bid}/chat/ws"
        refused: int | None = None
        try:
            async with websockets.connect(url):
                pass
        except websockets.InvalidStatus as exc:
            refused = exc.response.status_code
        async with websockets.connect(url, additional_headers=cookie) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["relays"] == []
            app.cli("grant", "revoke-all", cid)
            try:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            except websockets.ConnectionClosed as closed:
                return refused, f"{closed.rcvd.code if closed.rcvd else None}"
        return refused, "open"

    refused, closed = run_sync(chat_socket())
    assert (refused, closed) == (403, "4403")
    assert app.get(f"/hls/{bid}/index.m3u8", headers=cookie).status == 403


def test_public_announces_and_private_again_sends_a_verified_nip09_deletion(
        app: ApplianceProcess, show: dict[str, str], relay: RelayProcess,
        nostr_tools_dir: Path) -> None:  # noqa: F811
    cid, bid = show["cid"], show["bid"]
    pk = _pubkey(app)
    flt: dict[str, Any] = {"kinds": [30311], "authors": [pk], "#d": [bid]}
    assert relay_query(relay.url, flt) == []  # still nothing, minutes after going live
    app.cli("channel", "edit", cid, "--visibility", "public")
    live = app.wait_for(lambda: relay_query(relay.url, flt), 20)[0]
    assert app.get(f"/hls/{bid}/index.m3u8").status == 200
    assert bid in app.get("/api/broadcasts").text
    app.cli("channel", "edit", cid, "--visibility", "private")
    assert app.get(f"/hls/{bid}/index.m3u8").status == 403  # at once
    address = f"30311:{pk}:{bid}"
    deletions = app.wait_for(lambda: relay_query(
        relay.url, {"kinds": [5], "authors": [pk], "#a": [address]}), 20)
    deletion = deletions[0]
    assert ["a", address] in [t[:2] for t in deletion["tags"]]
    e_tags = [t[1] for t in deletion["tags"] if t[0] == "e"]
    # The last 30311 Hearth published (a viewer-count republish may have followed ``live``).
    assert len(e_tags) == 1 and re.fullmatch(r"[0-9a-f]{64}", e_tags[0])
    assert deletion["created_at"] >= live["created_at"]
    assert node_run(nostr_tools_dir, _VERIFY, [deletion, live]) == [True, True]
    assert bid not in app.get("/api/broadcasts").text
    assert json.loads(app.cli("broadcast", "show", bid, "--json").stdout)[
        "visibility"] == "private"


async def _webrtc_peers(app: ApplianceProcess) -> int:
    metrics = (await asyncio.to_thread(app.get, "/metrics")).text
    gauge = re.search(r"^hearth_webrtc_peers (\S+)$", metrics, re.M)
    assert gauge, metrics
    return int(float(gauge[1]))


async def _until_peers(app: ApplianceProcess, n: int, timeout: float = 8) -> None:
    async with asyncio.timeout(timeout):
        while await _webrtc_peers(app) != n:
            await asyncio.sleep(0.1)


async def _closed(client: Any, timeout: float = 8) -> None:
    """Wait until the server has closed ``client``'s peer connection: aiortc sees the DTLS
    close_notify and goes "closed" (or "failed" once ICE consent fails), and its tracks end."""
    async with asyncio.timeout(timeout):
        while client.pc.connectionState not in ("closed", "failed"):
            await asyncio.sleep(0.05)
    frames = len(client.video_frames)
    await asyncio.sleep(0.5)
    assert len(client.video_frames) == frames  # no media after the close


async def test_connected_whep_peers_are_cut_off_when_private_and_on_revoke_all(
        app: ApplianceProcess, show: dict[str, str]) -> None:
    """Changing visibility takes effect at once for WebRTC too (issue 14 §1): two real aiortc
    WHEP peers receive a public broadcast; the channel turns private → the one admitted
    without a grant is closed by the server, the one holding a Bearer grant keeps receiving;
    ``hearth grant revoke-all`` → that one is closed too."""
    from tests.integration.test_whep import WhepClient

    cid, bid = show["cid"], show["bid"]
    await asyncio.to_thread(app.cli, "channel", "edit", cid, "--visibility", "public")
    grant = await asyncio.to_thread(app.cli_json, "grant", "create", bid, "--expires", "10m")
    url = f"{app.base}/whep/{bid}"
    anonymous, holder = WhepClient(), WhepClient()
    try:
        assert await anonymous.connect(url) == 201, anonymous.answer
        assert await holder.connect(
            url, {"Authorization": f"Bearer {grant['token']}"}) == 201, holder.answer
        await anonymous.wait_frames(video=10, audio=0)
        await holder.wait_frames(video=10, audio=0)
        assert await _webrtc_peers(app) == 2

        await asyncio.to_thread(app.cli, "channel", "edit", cid, "--visibility", "private")
        await _until_peers(app, 1)
        await _closed(anonymous)
        seen = len(holder.video_frames)
        await holder.wait_frames(video=seen + 25, audio=0, timeout=8)
        assert holder.pc.connectionState == "connected"

        await asyncio.to_thread(app.cli, "grant", "revoke-all", cid)
        await _until_peers(app, 0)
        await _closed(holder)
        # And a new offer with the revoked grant is refused before any negotiation.
        again = WhepClient()
        try:
            assert await again.connect(
                url, {"Authorization": f"Bearer {grant['token']}"}) == 403
        finally:
            await again.close()
    finally:
        await anonymous.close()
        await holder.close()
