"""WHIP ingest (RFC 9725) through the real ``hearth serve``, with real publishers:

* Chromium (fake camera and microphone) publishes from the "go live" page; hls.js in a second
  Chromium page plays the resulting LL-HLS (H.264 as sent, AAC made from the Opus), and an
  aiortc WHEP viewer receives the H.264 and the publisher's own Opus.
* werift (an independent WebRTC stack) forwards ffmpeg's H.264/Opus RTP: the HLS decodes.
* A session that connects but sends no video is closed after the media timeout.
* Wrong, missing and other channels' keys get 401 with WWW-Authenticate and are counted with
  RTMP's wrong keys; hostile offers get clear 4xx; per-address session caps; PATCH is 405.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.hls import demux, download, fetch_playlist
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

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
        "HEARTH_WEBRTC_WHIP_MEDIA_TIMEOUT": "4",
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
    assert a["whip_url"] == f"{app.base}/whip/{a['id']}"  # shown with the key, once
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


async def test_a_connected_session_without_media_is_closed(app: ApplianceProcess) -> None:
    """ICE and DTLS connect (the publisher takes the channel) but no video comes: after
    whip_media_timeout the session is closed and the broadcast waits out its grace."""
    ch = app.create_stream("whip silent")
    pc, offer = await _aiortc_offer()  # transceivers without tracks: aiortc sends nothing
    try:
        status, _, answer = await _post(app, ch["id"], offer, key=ch["stream_key"])
        assert status == 201, answer
        await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(30):
            while "WHIP publisher 127.0.0.1 connected" not in app.log():
                await asyncio.sleep(0.1)
            while "closed (no video for 4 s)" not in app.log():
                await asyncio.sleep(0.1)
        assert _metric(app, "hearth_whip_sessions") == 0
        assert f"[{ch['id']}] ingest.disconnected: publisher gone (no video for 4 s)" in app.log()
    finally:
        await pc.close()


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
        watch.wait_for_function(  # it keeps playing (bounded generously: the box is busy)
            f"() => document.getElementById('player').currentTime > {t1} + 1", timeout=20_000)
        frames = watch.evaluate(
            "document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames")
        assert frames > 5  # decoded pictures (a starved box's fake camera sends few)
        thread.join(45)
        assert viewer.get("status") == 201 and "error" not in viewer, viewer
        assert viewer["video"] >= 30 and viewer["audio"] >= 50
        assert "opus/48000" in viewer["answer"].lower()
        live = app.get(f"/api/streams/{cid}").json()
        assert live["status"] == "live" and live["viewers"] >= 1, live
        shown = app.cli("broadcast", "show", live["id"]).stdout
        assert "ingest (WHIP) from 127.0.0.1:" in shown, shown  # the operator sees how
        page.click("#stop")
        page.wait_for_function(
            "() => document.getElementById('golive-status').textContent === 'Stopped.'")
        app.wait_for(lambda: _metric(app, "hearth_whip_sessions") == 0, 10)
        assert not errors, errors
    assert "WHIP session from 127.0.0.1 closed (publisher stopped (WHIP DELETE))" in app.log()


JS_DIR = Path(__file__).resolve().parent.parent / "js"
NODE = shutil.which("node")
WERIFT = (JS_DIR / "node_modules" / "werift").is_dir()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(NODE is None or not WERIFT or FFMPEG is None,
                    reason="needs node + werift (scripts/install-test-deps.sh) and ffmpeg")
def test_werift_publishes_ffmpeg_rtp_and_hls_decodes(app: ApplianceProcess) -> None:
    """A second, independent WHIP client: werift forwards ffmpeg's H.264/Opus RTP (with its own
    sender reports). It takes over from an RTMP publisher of the same channel (same broadcast,
    the RTMP connection dropped); the HLS has both tracks, decodable, in sync; DELETE ends
    the publish."""
    ch = app.create_stream("whip werift")
    cid = ch["id"]
    rtmp = ffmpeg_publish(f"{app.rtmp_base}/{ch['stream_key']}", 30)
    app.wait_for(lambda: app.playlist(cid) is not None, 30)
    broadcast = app.get(f"/api/streams/{cid}").json()["id"]
    vport, aport = _free_udp_port(), _free_udp_port()
    node = subprocess.Popen(
        [NODE, str(JS_DIR / "whip_publisher.mjs"), f"{app.base}/whip/{cid}", ch["stream_key"],
         str(vport), str(aport), "20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    ffmpeg: subprocess.Popen[bytes] | None = None
    try:
        assert node.stdout is not None
        events = [json.loads(node.stdout.readline()) for _ in range(2)]
        assert events[0]["event"] == "answer" and events[0]["status"] == 201, events
        assert events[0]["etag"] and events[0]["location"].startswith(f"/whip/{cid}/")
        assert events[1]["event"] == "listening"
        assert FFMPEG is not None
        ffmpeg = subprocess.Popen(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
             "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "12", "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast",
             "-tune", "zerolatency", "-profile:v", "baseline", "-g", "25", "-bf", "0",
             "-pix_fmt", "yuv420p", "-f", "rtp", "-payload_type", "96",
             f"rtp://127.0.0.1:{vport}?pkt_size=1200",
             "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "64k", "-f", "rtp",
             "-payload_type", "111", f"rtp://127.0.0.1:{aport}?pkt_size=1200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert rtmp.wait(20) is not None  # taken over: Hearth dropped the RTMP publisher
        live = app.get(f"/api/streams/{cid}").json()
        assert live["id"] == broadcast and live["status"] == "live", live  # one broadcast

        def msn(uri: str) -> int:
            return int(uri.removeprefix("seg-").removesuffix(".m4s"))

        fetched = fetch_playlist(f"{app.base}/hls/{cid}/index.m3u8")
        assert fetched is not None
        # Segments after the one open at the takeover hold WHIP media only.
        after = max((msn(u) for u, *_ in fetched[0].segments), default=0) + 1
        whip_segments: list[tuple[str, float, bool, str | None]] = []
        media_url = fetched[1]

        def a_whip_segment() -> bool:
            nonlocal whip_segments, media_url
            again = fetch_playlist(f"{app.base}/hls/{cid}/index.m3u8")
            if again is not None:
                whip_segments = [s for s in again[0].segments if msn(s[0]) > after]
                media_url = again[1]
            return len(whip_segments) >= 1

        app.wait_for(a_whip_segment, 30)
        uri, _, _, map_uri = max(whip_segments, key=lambda s: s[1])  # the longest
        assert map_uri is not None
        init = download(media_url, map_uri)
        seg = demux(init + download(media_url, uri))
        assert (seg.video_codec, seg.audio_codec) == ("h264", "aac")
        assert seg.width == 320 and seg.sample_rate == 48_000
        assert seg.decoded_video_frames >= 10 and len(seg.audio_dts) >= 20
        # Lip sync: audio and video of one segment cover the same media time.
        assert abs(seg.video_dts[0] - seg.audio_dts[0]) < 0.25, (seg.video_dts[0],
                                                                 seg.audio_dts[0])
        assert node.stdin is not None
        node.stdin.write("stop\n")
        node.stdin.flush()
        later = [json.loads(line) for line in node.stdout]
        assert [e["event"] for e in later] == ["connected", "done"], later
        done = later[-1]
        assert done["deleteStatus"] == 200, done
        assert done["video"] > 50 and done["audio"] > 100
        node.wait(10)
    finally:
        for proc in (node, ffmpeg, rtmp):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    app.wait_for(lambda: _metric(app, "hearth_whip_sessions") == 0, 10)
