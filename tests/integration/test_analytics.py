"""Analytics through the real ``hearth serve`` (issue 14 §3): ffmpeg publishes; two ffmpeg
HLS readers (plain HLS: no blocking reloads), one hls.js-like LL-HLS player (blocking reloads,
its own loopback address) and one aiortc WHEP peer watch, plus a crawler. The figures name the
right player kinds and devices, exclude the bot, survive a restart, and the database holds
neither a viewer's address nor its User-Agent. The appliance is killed (-9) mid-broadcast:
what was flushed before survives."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.api.admin_client import UnixSocketAdminClient
from tests.helpers.appliance import ApplianceProcess
from tests.helpers.llhls_players import PlayerStats, play
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

aiortc = pytest.importorskip("aiortc")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")]

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 hearthtest1"
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1 hearthtest2")
TABLET_UA = ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
             "Gecko) Version/17.5 Mobile/15E148 Safari/604.1 hearthtest3")
TV_UA = "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 Chrome/76.0 TV hearthtest4"
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) hearthtest5"
LL_SOURCE = "127.0.0.23"
WHEP_SOURCE = "127.0.0.24"


@pytest.fixture
def app(data_dir: object) -> Any:
    a = ApplianceProcess(data_dir, {  # type: ignore[arg-type]
        "HEARTH_WEBRTC_ENABLED": "1", "HEARTH_WEBRTC_PUBLIC_IP": "127.0.0.1",
        "HEARTH_WEBRTC_UDP_PORT_MIN": "48000", "HEARTH_WEBRTC_UDP_PORT_MAX": "48999",
        "HEARTH_ANALYTICS_FLUSH_INTERVAL": "2", "PYTHONASYNCIODEBUG": "",
    })
    a.start()
    yield a
    a.stop()


def _hls_reader(url: str, user_agent: str, seconds: float) -> subprocess.Popen[bytes]:
    assert FFMPEG
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-user_agent", user_agent,
         "-i", url, "-t", str(seconds), "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _whep_watch(url: str, seconds: float) -> int:
    """An aiortc receive-only peer from its own address, for ``seconds`` of media."""
    pc = aiortc.RTCPeerConnection()
    frames = 0
    got_media = asyncio.Event()

    async def consume(track: Any) -> None:
        nonlocal frames
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                frames += 1
                got_media.set()

    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    connector = aiohttp.TCPConnector(local_addr=(WHEP_SOURCE, 0))
    async with aiohttp.ClientSession(connector=connector) as http, http.post(
            url, data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "User-Agent": TV_UA}) as resp:
        assert resp.status == 201, await resp.text()
        answer = await resp.text()
    await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=answer, type="answer"))
    async with asyncio.timeout(20):
        await got_media.wait()
    await asyncio.sleep(seconds)
    await pc.close()  # the peer closes: its session ends
    for t in tasks:
        t.cancel()
    return frames


async def _viewers(app: ApplianceProcess, sid: str) -> None:
    stop = asyncio.Event()
    ll_stats = PlayerStats()
    ll = asyncio.create_task(play(app.base, sid, stop, ll_stats, source=LL_SOURCE,
                                  user_agent=TABLET_UA, mark_playlists=True))
    readers = [_hls_reader(f"{app.base}/hls/{sid}/index.m3u8", ua, 5)
               for ua in (DESKTOP_UA, MOBILE_UA)]
    async with aiohttp.ClientSession(headers={"User-Agent": BOT_UA}) as http:
        async with http.get(f"{app.base}/hls/{sid}/media.m3u8") as r:
            text = await r.text()
        name = next(line for line in text.splitlines() if line.startswith("seg-"))
        async with http.get(f"{app.base}/hls/{sid}/{name}") as r:
            assert r.status == 200
    frames = await _whep_watch(f"{app.base}/whep/{sid}", 4)
    assert frames > 0
    for proc in readers:
        await asyncio.to_thread(proc.wait, 30)
    stop.set()
    await asyncio.wait_for(ll, 20)
    assert ll_stats.parts > 5


def _split(a: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(s["kind"], s["device"]): s["sessions"] for s in a["split"]}


def _admin(app: ApplianceProcess, method: str, path: str,
           params: dict[str, str] | None = None) -> Any:
    """One admin API call in-process (the CLI's own paths are run where they are the point:
    a CLI process costs seconds on a loaded machine)."""
    async def call() -> Any:
        async with UnixSocketAdminClient(app.data_dir / "admin.sock") as client:
            return await client.request(method, path, params=params)

    return asyncio.run(call())


def test_player_kinds_devices_persist_and_no_address_or_ua_is_stored(
        app: ApplianceProcess) -> None:
    created = app.create_stream("Analytics <i>test</i>")
    sid = created["id"]
    pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 60)
    try:
        app.wait_for(lambda: app.get(f"/hls/{sid}/media.m3u8").status == 200, 20)
        bid = _admin(app, "GET", "/v1/broadcasts", {"status": "live"})[0]["id"]
        asyncio.run(_viewers(app, sid))

        def flushed() -> dict[str, Any] | None:  # every 2 s here (analytics.flush_interval)
            a: dict[str, Any] = _admin(app, "GET", f"/v1/analytics/broadcasts/{bid}")
            return a if a["sessions"] >= 4 and a["peak"] >= 2 else None

        live = app.wait_for(flushed, 20)
        assert live["status"] == "live"
        app.kill9()  # mid-broadcast: what was flushed must survive
    finally:
        pub.kill()
        pub.wait()
    app.start()
    _admin(app, "POST", f"/v1/broadcasts/{bid}/end")  # it was waiting for its publisher
    a = app.cli_json("analytics", "broadcast", bid)
    assert a["status"] == "ended"
    split = _split(a)
    assert split == _split(live)
    assert split[("hls", "desktop")] == 1 and split[("hls", "mobile")] == 1, split
    assert split[("llhls", "tablet")] == 1, split
    assert split[("webrtc", "tv")] == 1, split
    assert split[("hls", "bot")] == 1, split  # shown, but in no viewer figure
    assert a["sessions"] == 4 and a["unique_viewers"] == 4
    assert 2 <= a["peak"] <= 4 and a["peak_at"] is not None
    assert a["watch_seconds"] >= live["watch_seconds"] > 5
    assert max(m["viewers"] for m in a["timeline"]) == a["peak"]
    assert "4 unique viewers" in app.cli("analytics", "broadcast", bid).stdout
    channel = _admin(app, "GET", f"/v1/analytics/channels/{sid}", {"days": "1"})
    assert channel["broadcasts"] == 1 and channel["sessions"] == 4
    link = app.cli_json("analytics", "link", sid, "--expires", "1h")
    owner = app.get("/" + link["url"].split("://", 1)[1].split("/", 1)[1])
    assert owner.status == 200 and "Audience of Analytics &lt;i&gt;test&lt;/i&gt;" in owner.text
    assert app.get(f"/c/{sid}/analytics").status == 403
    app.stop()

    # Privacy: neither the viewers' addresses nor their User-Agents are anywhere in the
    # database files (the WAL included).
    blobs = b"".join(p.read_bytes() for p in Path(app.data_dir).glob("hearth.db*"))
    assert blobs
    for needle in (LL_SOURCE, WHEP_SOURCE, "hearthtest", "Googlebot", "iPhone", "Firefox",
                   "Tizen"):
        assert needle.encode() not in blobs, needle
