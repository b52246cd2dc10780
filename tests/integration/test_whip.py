"""WHIP ingest (RFC 9725) through the real ``hearth serve``, with real publishers:

* Chromium (fake camera and microphone) publishes from the "go live" page; hls.js in a second
  Chromium page plays the resulting LL-HLS (H.264 as sent, AAC made from the Opus), and an
  aiortc WHEP viewer receives the H.264 and the publisher's own Opus.
* Wrong, missing and other channels' keys get 401 with WWW-Authenticate and are counted with
  RTMP's wrong keys; hostile offers get clear 4xx; per-address session caps; PATCH is 405.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page

aiortc = pytest.importorskip("aiortc")
aiohttp = pytest.importorskip("aiohttp")

pytestmark = [pytest.mark.slow]

FAKE_MEDIA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


@pytest.fixture(scope="module")
def app() -> Iterator[ApplianceProcess]:
    path = short_tmpdir()
    proc = ApplianceProcess(path, {
        "HEARTH_WEBRTC_ENABLED": "1", "HEARTH_WEBRTC_UDP_PORT_MIN": "46000",
        "HEARTH_WEBRTC_UDP_PORT_MAX": "46999", "HEARTH_WEBRTC_CONNECT_TIMEOUT": "60",
        "HEARTH_RTMP_AUTH_FAILURES_PER_IP": "1000"})
    proc.start()
    yield proc
    proc.stop()
    shutil.rmtree(path, ignore_errors=True)


def _metric(app: ApplianceProcess, name: str) -> float:
    for line in app.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def _aiortc_offer(video: bool = True, audio: bool = True) -> tuple[Any, str]:
    pc = aiortc.RTCPeerConnection()
    if video:
        pc.addTransceiver("video", direction="sendonly")
    if audio:
        pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def _post(app: ApplianceProcess, channel: str, body: bytes | str, *,
                key: str | None = None, ctype: str = "application/sdp",
                method: str = "POST", path: str = "") -> tuple[int, Any, str]:
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{app.base}/whip/{channel}{path}", data=body, headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.text()


async def test_keys_are_checked_like_rtmp_and_counted(app: ApplianceProcess) -> None:
    """Missing, wrong and other channels' keys → 401 + WWW-Authenticate, counted with RTMP's."""
    a = app.create_stream("whip a")
    b = app.create_stream("whip b")
    _, offer = await _aiortc_offer()
    before = _metric(app, "hearth_rtmp_auth_failures_total")
    for key in (None, "hk_nonsense", a["stream_key"][:-3] + "zzz", b["stream_key"]):
        status, headers, text = await _post(app, a["id"], offer, key=key)
        assert status == 401, (key, status, text)
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "invalid stream key" in text and a["stream_key"] not in text
    assert _metric(app, "hearth_rtmp_auth_failures_total") == before + 4
    assert a["stream_key"] not in app.log() and b["stream_key"] not in app.log()


async def test_hostile_offers_get_clear_refusals(app: ApplianceProcess) -> None:
    """Oversized, mistyped, garbage, VP8-only, many-section offers; PATCH; unknown resources."""
    ch = app.create_stream("whip hostile")
    key, cid = ch["stream_key"], ch["id"]
    pc, offer = await _aiortc_offer()
    await pc.close()
    vp8 = offer.replace("H264/90000", "VP8/90000")
    many = offer + "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x{i}\r\n" for i in range(6))
    cases = [
        (b"v=0\r\n" + b"a=x\r\n" * 10_000, "application/sdp", 413),
        (offer, "text/plain", 415),
        (b"\xff\xfe", "application/sdp", 400),
        ("v=0\r\nm=\r\n", "application/sdp", 400),
        ("hello", "application/sdp", 400),
        (vp8, "application/sdp", 422),
        (many, "application/sdp", 400),
        (offer.replace("a=sendonly", "a=recvonly"), "application/sdp", 422),
    ]
    for body, ctype, want in cases:
        status, _, text = await _post(app, cid, body, key=key, ctype=ctype)
        assert status == want, (want, status, text, str(body)[:80])
        assert text.strip()
    status, headers, _ = await _post(app, cid, "", method="PATCH", path="/" + "A" * 24)
    assert status == 405 and "DELETE" in headers["Allow"]
    status, _, _ = await _post(app, cid, "", method="DELETE", path="/" + "A" * 24)
    assert status == 404
    status, headers, _ = await _post(app, cid, "", method="OPTIONS")
    assert status == 204 and headers["Accept-Post"] == "application/sdp"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    # Per-address cap (default 2): two negotiations that never connect hold their slots.
    held: list[tuple[Any, str]] = []
    for _ in range(2):
        pc, offer = await _aiortc_offer()
        status, headers, _ = await _post(app, cid, offer, key=key)
        assert status == 201 and headers["ETag"].startswith('"')
        held.append((pc, headers["Location"]))
    pc3, offer = await _aiortc_offer()
    status, headers, text = await _post(app, cid, offer, key=key)
    assert status == 429 and headers["Retry-After"], text
    assert _metric(app, "hearth_whip_sessions") == 2
    for pc, location in held:
        status, _, _ = await _post(app, cid, "", method="DELETE",
                                   path=location.removeprefix(f"/whip/{cid}"))
        assert status == 200
        await pc.close()
    await pc3.close()
    assert _metric(app, "hearth_whip_sessions") == 0


def _whep_viewer(url: str, result: dict[str, Any]) -> None:
    """An aiortc WHEP viewer on its own loop: how many frames it decoded, and their codecs."""
    from tests.integration.test_whep import WhepClient

    async def run() -> None:
        client = WhepClient()
        result["status"] = await client.connect(url)
        try:
            if result["status"] == 201:
                await client.wait_frames(video=30, audio=50, timeout=30)
                result["video"] = len(client.video_frames)
                result["audio"] = len(client.audio_frames)
                result["width"] = client.video_frames[-1].width
                result["answer"] = client.answer
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except Exception as exc:  # reported by the test thread
        result["error"] = repr(exc)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_chromium_goes_live_from_the_page_and_hls_and_whep_play(app: ApplianceProcess) -> None:
    """The go-live page publishes the fake camera; hls.js plays the HLS; aiortc gets WHEP."""
    ch = app.create_stream("whip browser")
    cid = ch["id"]
    with chromium_page(FAKE_MEDIA) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{app.base}/c/{cid}/golive")
        page.fill("#key", ch["stream_key"])
        page.click("#start")
        page.wait_for_function(
            "() => document.getElementById('golive-status').textContent.startsWith('Live')",
            timeout=30_000)
        assert ch["stream_key"] not in page.url
        app.wait_for(lambda: app.playlist(cid) is not None, 30)
        assert "mp4a.40.2" in app.get(f"/hls/{cid}/index.m3u8").text  # AAC made from Opus
        viewer: dict[str, Any] = {}
        thread = threading.Thread(target=_whep_viewer, args=(f"{app.base}/whep/{cid}", viewer))
        thread.start()
        watch = page.context.browser.new_page()
        watch.on("pageerror", lambda e: errors.append(str(e)))
        watch.goto(f"{app.base}/c/{cid}")
        watch.wait_for_function(
            "() => document.getElementById('player').currentTime > 2", timeout=40_000)
        t1 = watch.evaluate("document.getElementById('player').currentTime")
        watch.wait_for_timeout(1500)
        t2 = watch.evaluate("document.getElementById('player').currentTime")
        assert t2 > t1 + 0.8, (t1, t2)
        frames = watch.evaluate(
            "document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames")
        assert frames > 20
        thread.join(45)
        assert viewer.get("status") == 201 and "error" not in viewer, viewer
        assert viewer["video"] >= 30 and viewer["audio"] >= 50
        assert "opus/48000" in viewer["answer"].lower()
        live = app.get(f"/api/streams/{cid}").json()
        assert live["status"] == "live" and live["viewers"] >= 1, live
        page.click("#stop")
        page.wait_for_function(
            "() => document.getElementById('golive-status').textContent === 'Stopped.'")
        app.wait_for(lambda: _metric(app, "hearth_whip_sessions") == 0, 10)
        assert not errors, errors
    assert "WHIP session from 127.0.0.1 closed (publisher stopped (WHIP DELETE))" in app.log()
