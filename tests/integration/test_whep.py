"""WebRTC over WHEP (draft-ietf-wish-whep) through the real ``hearth serve``: an aiortc client peer,
Chromium, stray UDP datagrams, B-frame refusal and the negotiation limits."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.helpers.appliance import ApplianceProcess, http_get
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

aiortc = pytest.importorskip("aiortc")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")


@pytest.fixture
def rtc_app(data_dir: object) -> Iterator[ApplianceProcess]:
    app = ApplianceProcess(data_dir, {  # type: ignore[arg-type]
        "HEARTH_WEBRTC_ENABLED": "1", "HEARTH_WEBRTC_PUBLIC_IP": "127.0.0.1",
        "HEARTH_WEBRTC_UDP_PORT_MIN": "47000", "HEARTH_WEBRTC_UDP_PORT_MAX": "47999",
        "HEARTH_WEBRTC_MAX_PENDING_PER_IP": "2",
    })
    app.start()
    yield app
    app.stop()


@pytest.fixture
def rtc_app_host(data_dir: object) -> Iterator[ApplianceProcess]:
    """WebRTC with plain host candidates on the machine's own addresses (no 1:1 NAT)."""
    app = ApplianceProcess(data_dir, {  # type: ignore[arg-type]
        "HEARTH_WEBRTC_ENABLED": "1",
        "HEARTH_WEBRTC_UDP_PORT_MIN": "47000", "HEARTH_WEBRTC_UDP_PORT_MAX": "47999",
    })
    app.start()
    yield app
    app.stop()


def _live(app: ApplianceProcess, seconds: float = 40, **kw: Any) -> tuple[str, Any]:
    created = app.create_stream("rtc")
    pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", seconds, **kw)
    app.wait_for(lambda: app.get(f"/hls/{created['id']}/index.m3u8").status == 200, 20)
    return created["id"], pub


class WhepClient:
    """A receive-only aiortc peer that decodes what it gets (aiortc decodes with PyAV)."""

    def __init__(self) -> None:
        self.pc = aiortc.RTCPeerConnection()
        self.video_frames: list[Any] = []
        self.audio_frames: list[Any] = []
        self.answer = ""
        self.location = ""
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        sink = self.video_frames if track.kind == "video" else self.audio_frames
        try:
            while True:
                sink.append(await track.recv())
        except Exception:
            return

    async def connect(self, url: str, headers: dict[str, str] | None = None) -> int:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with aiohttp.ClientSession() as http, http.post(
                url, data=self.pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", **(headers or {})}) as resp:
            body = await resp.text()
            if resp.status != 201:
                self.answer = body
                return resp.status
            self.location = resp.headers["Location"]
            self.answer = body
        await self.pc.setRemoteDescription(
            aiortc.RTCSessionDescription(sdp=self.answer, type="answer"))
        return 201

    async def wait_frames(self, video: int, audio: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while len(self.video_frames) < video or len(self.audio_frames) < audio:
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.pc.close()
        for t in self._tasks:
            t.cancel()


def _server_candidates(answer: str) -> set[tuple[str, int]]:
    return {(m[1], int(m[2])) for m in re.finditer(
        r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", answer, re.I)}


def _server_ports(answer: str) -> set[int]:
    return {int(m[1]) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host",
                                          answer, re.I)}


async def test_aiortc_peer_receives_h264_and_opus(rtc_app: ApplianceProcess) -> None:
    """WHEP answer negotiates H.264 + Opus; frames decode; WHEP viewers count; DELETE ends."""
    sid, pub = _live(rtc_app)
    client = WhepClient()
    try:
        meta = http_get(f"{rtc_app.base}/api/streams/{sid}").json()
        assert meta["whep_url"].endswith(f"/whep/{sid}")
        assert await client.connect(f"{rtc_app.base}/whep/{sid}") == 201, client.answer
        assert re.search(r"a=rtpmap:\d+ H264/90000", client.answer)
        assert re.search(r"a=rtpmap:\d+ opus/48000/2", client.answer)
        assert "VP8" not in client.answer
        assert _server_ports(client.answer) <= set(range(47000, 48000))
        assert " 127.0.0.1 " in client.answer  # the configured public address
        await client.wait_frames(video=30, audio=50)
        frame = client.video_frames[-1]
        assert (frame.width, frame.height) == (320, 240)
        assert client.audio_frames[-1].sample_rate == 48000
        # The WHEP viewer counts like an HLS session (nobody fetched HLS with a token).
        async with asyncio.timeout(10):
            while http_get(f"{rtc_app.base}/api/streams/{sid}").json()["viewers"] < 1:
                await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http:
            async with http.delete(f"{rtc_app.base}{client.location}") as resp:
                assert resp.status == 200
            async with http.delete(f"{rtc_app.base}{client.location}") as resp:
                assert resp.status == 404
            async with http.patch(f"{rtc_app.base}{client.location}") as resp:
                assert resp.status in (404, 405)
        async with asyncio.timeout(10):
            while client.pc.connectionState not in ("closed", "failed", "disconnected"):
                n = len(client.video_frames)
                await asyncio.sleep(1)
                if len(client.video_frames) == n:
                    break
    finally:
        await client.close()
        pub.kill()
        pub.wait(10)


WARM_PACKETS = 50
"""Video packets the client's receiver takes before :class:`RtpTap` drops any."""


class RtpTap:
    """Wraps the client's aiortc DTLS transport (after SRTP unprotect, before its RTP
    routing): drops every ``drop_every``-th video packet on first arrival, records the
    retransmissions (RTX, RFC 4588) and every RTP arrival and RTCP sender report."""

    def __init__(self, answer: str, drop_every: int) -> None:
        def pt(pattern: str) -> int:
            m = re.search(pattern, answer)
            assert m, (pattern, answer)
            return int(m[1])
        self.video_pt = pt(r"a=rtpmap:(\d+) H264/90000")
        self.rtx_pt = pt(rf"a=fmtp:(\d+) apt={self.video_pt}\b")
        self.audio_pt = pt(r"a=rtpmap:(\d+) opus/48000")
        self.drop_every = drop_every
        self.dropping = True
        self.passed_video = 0  # video packets handed to the receiver
        self.dropped: dict[int, tuple[bytes, float]] = {}
        self.repaired: dict[int, bytes] = {}
        self.arrivals: dict[int, list[tuple[int, float]]] = {}  # pt → (timestamp, wall)
        self.ssrc: dict[int, int] = {}  # pt → ssrc
        self.reports: dict[int, list[tuple[Any, float]]] = {}  # ssrc → (sender info, wall)

    def rtp(self, data: bytes) -> bool:
        """Record one RTP packet; False: drop it."""
        from aiortc.rtp import RtpPacket
        now = time.time()
        packet = RtpPacket.parse(data)
        if packet.payload_type == self.rtx_pt:
            self.repaired.setdefault(int.from_bytes(packet.payload[:2], "big"),
                                     packet.payload[2:])
            return True
        self.ssrc[packet.payload_type] = packet.ssrc
        self.arrivals.setdefault(packet.payload_type, []).append((packet.timestamp, now))
        seq = packet.sequence_number
        if packet.payload_type != self.video_pt:
            return True
        # Not before the receiver has taken video packets: its NACK generator starts at the
        # first one it sees, so a packet dropped ahead of that is no gap to it and is never
        # asked for (a 1-in-20 failure when the first packet's number was a multiple of 20).
        if self.dropping and self.passed_video >= WARM_PACKETS and \
                seq % self.drop_every == 0 and seq not in self.dropped:
            self.dropped[seq] = (packet.payload, now)
            return False
        self.passed_video += 1
        return True

    def rtcp(self, data: bytes) -> None:
        from aiortc.rtp import RtcpPacket, RtcpSrPacket
        for packet in RtcpPacket.parse(data):
            if isinstance(packet, RtcpSrPacket):
                self.reports.setdefault(packet.ssrc, []).append((packet.sender_info,
                                                                 time.time()))


def _ntp_seconds(ntp: int) -> float:
    return (ntp >> 32) - 2_208_988_800 + (ntp & 0xFFFFFFFF) / 2**32


async def test_lost_packets_come_back_and_sender_reports_keep_time(
        rtc_app: ApplianceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """NACKed video packets are retransmitted from the server's history (as RTX, same
    payload), and the RTCP sender reports map RTP time to the wall clock consistently:
    per stream (NTP and RTP advance together), against arrivals, and audio with video
    (RFC 3550 §6.4.1). Loss is injected in the client, after SRTP, so its NACK generator
    sees real gaps."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    sid, pub = _live(rtc_app)
    client = WhepClient()
    tap: list[RtpTap] = []
    rtp_in, rtcp_in = RTCDtlsTransport._handle_rtp_data, RTCDtlsTransport._handle_rtcp_data

    async def handle_rtp(self: Any, data: bytes, arrival_time_ms: int) -> None:
        if not tap or tap[0].rtp(data):
            await rtp_in(self, data, arrival_time_ms)

    async def handle_rtcp(self: Any, data: bytes) -> None:
        if tap:
            tap[0].rtcp(data)
        await rtcp_in(self, data)

    monkeypatch.setattr(RTCDtlsTransport, "_handle_rtp_data", handle_rtp)
    monkeypatch.setattr(RTCDtlsTransport, "_handle_rtcp_data", handle_rtcp)
    try:
        assert await client.connect(f"{rtc_app.base}/whep/{sid}") == 201, client.answer
        tap.append(RtpTap(client.answer, drop_every=20))
        t = tap[0]
        async with asyncio.timeout(40):
            while len(t.dropped) < 8 or any(len(t.reports.get(t.ssrc.get(p, -1), [])) < 4
                                            for p in (t.video_pt, t.audio_pt)):
                await asyncio.sleep(0.1)
        # Every drop so far must come back, while dropping goes on: aiortc NACKs only when it
        # sees a new gap (listing every sequence number still missing among its last 128), so
        # a repair lost on a loaded box (the client's socket buffer) is asked for again by the
        # next NACK. After the last drop nothing would ask again: that drop is not owed.
        owed = dict(t.dropped)
        deadline = time.monotonic() + 15  # NACK → RTX: a round trip and the NACK delay
        while not owed.keys() <= t.repaired.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        t.dropping = False
        assert owed.keys() <= t.repaired.keys(), (
            f"never repaired: {sorted(owed.keys() - t.repaired.keys())} of {sorted(owed)}")
        for seq, (payload, _) in owed.items():
            assert t.repaired[seq] == payload, seq
        metrics = {line.split()[0]: float(line.split()[1])
                   for line in rtc_app.get("/metrics").text.splitlines()
                   if line.startswith("hearth_webrtc_")}
        assert metrics["hearth_webrtc_peers"] == 1, metrics
        assert metrics["hearth_webrtc_rtp_packets_total"] > 100, metrics
        assert metrics["hearth_webrtc_rtp_retransmitted_total"] >= len(owed), metrics
        assert metrics["hearth_webrtc_nacks_total"] >= 1, metrics
        assert len(client.video_frames) > 10  # and the repaired stream decodes
        # aiortc's receiver reports (every 0.5-1.5 s) echo our sender reports (every 1 s):
        # the round trip on loopback is milliseconds.
        deadline = time.monotonic() + 10
        while metrics.get("hearth_webrtc_round_trip_viewers") != 1 and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            metrics = {line.split()[0]: float(line.split()[1])
                       for line in rtc_app.get("/metrics").text.splitlines()
                       if line.startswith("hearth_webrtc_")}
        rtt = metrics['hearth_webrtc_round_trip_seconds{quantile="0.5"}']
        assert 0 <= rtt < 0.5 and rtt == metrics['hearth_webrtc_round_trip_seconds{quantile="1"}']
        assert metrics["hearth_webrtc_reported_lost_packets"] >= 0

        mapped: dict[int, list[float]] = {}
        for pt, clock in ((t.video_pt, 90000), (t.audio_pt, 48000)):
            reports = t.reports[t.ssrc[pt]]
            for (a, _), (b, _) in itertools.pairwise(reports):
                wall = _ntp_seconds(b.ntp_timestamp) - _ntp_seconds(a.ntp_timestamp)
                media = ((b.rtp_timestamp - a.rtp_timestamp) % 2**32) / clock
                assert abs(wall - media) < 0.05, (pt, wall, media)
                assert b.packet_count > a.packet_count and b.octet_count > a.octet_count
            for info, got in reports:
                assert abs(_ntp_seconds(info.ntp_timestamp) - got) < 0.5  # same host clock
            # Capture time of every packet by the last report, versus its arrival.
            last = reports[-1][0]
            mapped[pt] = [
                arrival - (_ntp_seconds(last.ntp_timestamp) + ((ts - last.rtp_timestamp + 2**31)
                                                               % 2**32 - 2**31) / clock)
                for ts, arrival in t.arrivals[pt][-100:]]
            delays = sorted(mapped[pt])
            assert -0.1 < delays[len(delays) // 2] < 1.0, (pt, delays)
        # Audio and video captured at the same moment map to the same wall time: their
        # typical delivery delays differ by the Opus batching, not by seconds.
        video_delay = sorted(mapped[t.video_pt])[len(mapped[t.video_pt]) // 2]
        audio_delay = sorted(mapped[t.audio_pt])[len(mapped[t.audio_pt]) // 2]
        assert abs(video_delay - audio_delay) < 0.3, (video_delay, audio_delay)
    finally:
        await client.close()
        pub.kill()
        pub.wait(10)


async def test_stray_udp_datagrams_do_not_kill_the_session(
        rtc_app_host: ApplianceProcess) -> None:
    """docs/threat-model.md §whep: empty and junk datagrams to the ICE port leave the peer
    connected."""
    sid, pub = _live(rtc_app_host)
    client = WhepClient()
    try:
        assert await client.connect(f"{rtc_app_host.base}/whep/{sid}") == 201
        await client.wait_frames(video=10, audio=0)
        targets = _server_candidates(client.answer)
        assert targets
        for host, port in targets:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                for payload in (b"", b"", b"\x00", b"\x16\xfe\xfd" + b"\x00" * 50,
                                b"\x80" + b"\x00" * 30, bytes(range(256))):
                    s.sendto(payload, (host, port))
        await asyncio.sleep(2)
        n = len(client.video_frames)
        await asyncio.sleep(2)
        assert client.pc.connectionState == "connected"
        assert len(client.video_frames) > n + 20, "media keeps flowing"
    finally:
        await client.close()
        pub.kill()
        pub.wait(10)


async def test_one_to_one_nat_mode_never_fails_the_viewers_ice(rtc_app: ApplianceProcess) -> None:
    """webrtc.public_ip = 127.0.0.1 while the client's candidates are the host's addresses.

    The server used to answer checks from a wildcard socket, so replies came from the host
    address, not the advertised 127.0.0.1: the client's signalled pair failed with "source
    address mismatch" (RFC 8445 §7.2.5.2.1) and, in ~2 runs of 3, before the server's check
    taught it a peer-reflexive pair, aiortc's ICE state went "failed" while media flowed.
    (Not caused by junk datagrams, which only happened to be sent in the test that saw it.)
    """
    sid, pub = _live(rtc_app)
    try:
        for _ in range(3):
            client = WhepClient()
            states: list[str] = []
            client.pc.on("iceconnectionstatechange",
                         lambda c=client, s=states: s.append(c.pc.iceConnectionState))
            try:
                assert await client.connect(f"{rtc_app.base}/whep/{sid}") == 201, client.answer
                await client.wait_frames(video=10, audio=0)
                assert "failed" not in states and client.pc.iceConnectionState == "completed"
            finally:
                await client.close()
    finally:
        pub.kill()
        pub.wait(10)


async def test_bframes_are_refused_for_webrtc_only(rtc_app: ApplianceProcess) -> None:
    """A source with B-frames gets a clear WHEP refusal and an event-log entry; HLS plays."""
    sid, pub = _live(rtc_app, 20, bframes=2)
    client = WhepClient()
    try:
        await asyncio.sleep(1)
        status = await client.connect(f"{rtc_app.base}/whep/{sid}")
        assert status == 409
        assert "B-frames" in client.answer
        assert f"hearth channel edit {sid} --ladder 720p" in client.answer
        assert "webrtc.bframes" in rtc_app.log()
        assert http_get(f"{rtc_app.base}/hls/{sid}/index.m3u8").status == 200
    finally:
        await client.close()
        pub.kill()
        pub.wait(10)


async def test_negotiation_limits(rtc_app: ApplianceProcess) -> None:
    """docs/threat-model.md §whep: oversized SDP → 413, wrong type → 415, garbage → 400, pending
    cap per IP → 429."""
    sid, pub = _live(rtc_app)
    url = f"{rtc_app.base}/whep/{sid}"
    try:
        async with aiohttp.ClientSession() as http:
            async def post(body: bytes, ctype: str = "application/sdp") -> int:
                async with http.post(url, data=body, headers={"Content-Type": ctype}) as r:
                    await r.read()
                    return r.status

            assert await post(b"v=0\r\n" + b"a=x\r\n" * 20000) == 413
            assert await post(b"v=0", "text/plain") == 415
            assert await post(b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n") == 400
            assert await post(b"v=0\r\n" + b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 50) == 400
            async with http.post(f"{rtc_app.base}/whep/nosuchstream1",
                                 data=b"v=0", headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 404
            # Two valid offers that never complete ICE stay pending; the third is refused.
            clients = [WhepClient() for _ in range(3)]
            statuses = []
            for c in clients:
                c.pc.addTransceiver("video", direction="recvonly")
                await c.pc.setLocalDescription(await c.pc.createOffer())
                statuses.append(await post(c.pc.localDescription.sdp.encode()))
            assert statuses == [201, 201, 429], statuses
            for c in clients:
                await c.close()
    finally:
        pub.kill()
        pub.wait(10)


def test_whep_disabled_by_default(appliance: ApplianceProcess) -> None:
    """Without webrtc.enabled there is no WHEP endpoint and no whep_url."""
    created = appliance.create_stream("no rtc")
    assert "whep_url" not in http_get(f"{appliance.base}/api/streams/{created['id']}").json()
    assert appliance.get(f"/whep/{created['id']}").status in (404, 405)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_chromium_plays_over_whep(rtc_app: ApplianceProcess) -> None:
    """The watch page in WebRTC mode renders frames from the WHEP session."""
    sid, pub = _live(rtc_app)
    try:
        with chromium_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{rtc_app.base}/watch/{sid}?mode=webrtc")
            page.wait_for_function(
                "() => { const v = document.getElementById('player');"
                " return v.srcObject && v.getVideoPlaybackQuality().totalVideoFrames > 30; }",
                timeout=30_000)
            info = page.evaluate("""() => ({mode: window.hearthPlayer.mode,
                state: window.hearthPlayer.pc && window.hearthPlayer.pc.connectionState,
                w: document.getElementById('player').videoWidth,
                toggle: !!document.getElementById('low-latency')})""")
            assert info == {"mode": "webrtc", "state": "connected", "w": 320, "toggle": True}
            assert not errors, errors
    finally:
        pub.kill()
        pub.wait(10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_chromium_gets_the_high_profile_the_stream_has(rtc_app: ApplianceProcess) -> None:
    """RFC 6184 §8.2.2: a High source is answered with the stream's own profile-level-id (the
    one in the HLS CODECS attribute) when Chromium offers High, and under High 4:4:4
    Predictive (whose decoders decode High) when it does not (Debian's Chromium without a
    platform decoder offers 42001f, 42e01f, 4d001f, f4001f); either way it plays."""
    sid, pub = _live(rtc_app, profile="high")
    try:
        master = http_get(f"{rtc_app.base}/hls/{sid}/index.m3u8").text
        m = re.search(r"avc1\.([0-9a-fA-F]{6})", master)
        assert m, master
        with chromium_page() as page:
            page.goto(f"{rtc_app.base}/watch/{sid}?mode=webrtc")
            page.wait_for_function(
                "() => { const v = document.getElementById('player');"
                " return v.srcObject && v.getVideoPlaybackQuality().totalVideoFrames > 30; }",
                timeout=30_000)
            offer, answer = page.evaluate("() => [window.hearthPlayer.pc.localDescription.sdp,"
                                          " window.hearthPlayer.pc.remoteDescription.sdp]")
        source = m[1].lower()
        assert source.startswith("64"), source
        plids = re.findall(r"a=fmtp:\d+ .*profile-level-id=([0-9a-fA-F]{6})", answer)
        offers_high = re.search(r"packetization-mode=1;profile-level-id=64", offer)
        assert plids == [source if offers_high else "f400" + source[4:]], (plids, source)
    finally:
        pub.kill()
        pub.wait(10)
