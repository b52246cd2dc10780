"""Hostile clients at every edge, each beside an honest ffmpeg publisher (issue 10).

One appliance and one honest publisher serve the whole module; every test runs an attack
over loopback (from 127.0.0.x source addresses) and asserts the property the attack must not
break: the honest stream keeps producing LL-HLS parts, memory stays bounded, a legitimate
publisher still connects, the victim can still chat, the log stays bounded. Bounds are
generous (the machine is shared); bench/hostile.py prints the actual figures.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from relay_client import PrivateKeySigner, UnsignedEvent
from tests.helpers import attacks
from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.publishers import ffmpeg_publish
from tests.nostr_fixtures import run_sync

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
MAX_PART_GAP = 4.0
"""Seconds without a new part that count as a stall (normal: 0.2 s; the issue saw 3-12 s)."""


class Site:
    def __init__(self, app: ApplianceProcess, honest_id: str, publisher: subprocess.Popen[bytes],
                 ) -> None:
        self.app = app
        self.honest_id = honest_id
        self.publisher = publisher
        self.last_attack: dict[str, int] = {}

    @property
    def pid(self) -> int:
        assert self.app.proc is not None
        return self.app.proc.pid

    def attack_process(self, name: str, seconds: float, *, sources: int, first: int,
                       per_address: int, during: Any = None) -> attacks.ProbeResult:
        """Run a named attack in its own process (its CPU must not starve the probes) for
        ``seconds``; ``during`` (blocking) runs halfway through, in a thread."""
        cmd = [sys.executable, "-m", "tests.helpers.attacks", name,
               "--rtmp-port", str(self.app.rtmp_port), "--http-port", str(self.app.http_port),
               "--sources", str(sources), "--first", str(first),
               "--per-address", str(per_address), "--seconds", str(seconds)]
        attacker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=self.app.env())

        async def halfway(stop: asyncio.Event) -> None:
            await asyncio.sleep(seconds / 2)
            if during is not None:
                await asyncio.get_running_loop().run_in_executor(None, during)
            await stop.wait()

        try:
            _, probed = self.attack(seconds, halfway)
            out, err = attacker.communicate(timeout=60)
        finally:
            attacker.kill()
        assert attacker.returncode == 0, err.decode()[-2000:]
        self.last_attack = json.loads(out.decode().splitlines()[-1])
        return probed

    def attack(self, seconds: float, attack: Any) -> tuple[Any, attacks.ProbeResult]:
        async def go() -> tuple[Any, attacks.ProbeResult]:
            return await attacks.run_for(
                seconds, attack,
                lambda stop: attacks.probe(self.app.base, self.honest_id, self.pid, stop))

        result: tuple[Any, attacks.ProbeResult] = run_sync(go())
        return result

    def assert_healthy(self, probed: attacks.ProbeResult, *, rss_mib: float) -> None:
        assert self.publisher.poll() is None, "the honest publisher was disconnected"
        assert probed.healthz_failures == 0
        assert len(probed.part_times) >= 5, "no parts while attacked"
        assert probed.part_gap() < MAX_PART_GAP, f"parts stalled {probed.part_gap():.1f} s"
        assert probed.rss_growth_mib() < rss_mib

    def log_lines(self) -> int:
        return len(self.app.log().splitlines())


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_LOG_LEVEL": "INFO",  # what an operator runs; DEBUG is per-event by design
        "HEARTH_HTTP_HEADER_TIMEOUT": "4",
        "HEARTH_RTMP_AUTH_FAILURE_DELAY": "0.5",
        "HEARTH_RTMP_CONNECTS_PER_IP_PER_SECOND": "2",  # the product default
    }).start()
    created = app.create_stream("honest")
    pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 300)
    try:
        app.wait_for(lambda: (pl := app.playlist(created["id"])) and "#EXT-X-PART:" in pl,
                     timeout=30)
        yield Site(app, created["id"], pub)
    finally:
        pub.kill()
        pub.wait()
        app.stop()


def _second_publisher_connects(site: Site, title: str) -> None:
    created = site.app.create_stream(title)
    pub = ffmpeg_publish(f"{site.app.rtmp_base}/{created['stream_key']}", 4, size="160x120")
    try:
        site.app.wait_for(lambda: site.app.playlist(created["id"]), timeout=30)
    finally:
        pub.kill()
        pub.wait()


def test_keyless_tiny_message_flood_keeps_the_honest_stream_going(site: Site) -> None:
    """Issue 10 #1: keyless connections flooding 18-byte pings and 1-byte chunks get a bounded
    parsing budget: parts keep coming, /healthz answers, and the flood is summarised in the log
    (not one line per event)."""
    lines_before = site.log_lines()
    probed = site.attack_process("tiny", 8, sources=2, first=2, per_address=4)
    assert site.last_attack["bytes_sent"] > 0
    site.assert_healthy(probed, rss_mib=96)
    assert site.log_lines() - lines_before < 40


def test_keyless_huge_message_starts_stay_small(site: Site) -> None:
    """Issue 10 #2: 64 keyless connections from 8 addresses each declaring an 8 MiB message are
    refused at the header (64 KiB cap until publish): RSS stays flat, a publisher connects."""
    probed = site.attack_process(
        "big", 8, sources=8, first=20, per_address=8,
        during=lambda: _second_publisher_connects(site, "legit during big messages"))
    assert site.last_attack["connects"] >= 8
    site.assert_healthy(probed, rss_mib=64)


def test_half_open_handshakes_do_not_lock_out_a_publisher(site: Site) -> None:
    """Issue 10 #3: hundreds of half-open handshakes from 8 addresses fill the pre-auth table;
    a newcomer evicts the least advanced connection of the busiest address, so a legitimate
    publisher still connects, and the refusals cost the log a few summary lines."""
    lines_before = site.log_lines()
    probed = site.attack_process(
        "halfopen", 10, sources=8, first=40, per_address=40,
        during=lambda: _second_publisher_connects(site, "legit vs half-open"))
    assert site.last_attack["connects"] >= 64
    site.assert_healthy(probed, rss_mib=64)
    assert site.log_lines() - lines_before < 60
    assert "rtmp refused" in site.app.log()  # the summary line is there


def test_wrong_key_then_delete_stream_gets_a_definitive_refusal(site: Site) -> None:
    """Issue 10 #4: deleteStream right behind a wrong-key publish cannot overtake the delayed
    refusal: the client receives NetStream.Publish.BadName and is closed; nothing raises."""
    replies = run_sync(attacks.wrong_key_then_delete(HOST, site.app.rtmp_port, "127.0.0.60"))
    assert b"NetStream.Publish.BadName" in replies
    log = site.app.log()
    assert "LocalProtocolError" not in log and "Traceback" not in log


def test_peer_text_reaches_log_and_cli_inert(site: Site) -> None:
    """Issue 10 #8: ESC[2J and CR/LF in a stream name, an RTMP app name and a chat message
    reach neither the log nor ``hearth status``/``hearth chat list`` as control characters."""
    hostile = f"{attacks.ESC_CLEAR}name\r\n2026-01-01 00:00:00 ERROR forged line\u202e"

    async def go() -> None:
        await attacks.publish_named(HOST, site.app.rtmp_port, "127.0.0.61", hostile)
        reader, writer = await asyncio.open_connection(HOST, site.app.rtmp_port)
        try:
            await attacks.rtmp_handshake(reader, writer)
            writer.write(attacks.connect_bytes(attacks.ClientWriter(), app=hostile))
            writer.write(attacks.ClientWriter().command(0, hostile, 2.0, None))
            await writer.drain()
            await asyncio.sleep(1)
        finally:
            writer.transport.abort()

    run_sync(go())
    info = _nostr_info(site)
    address = f"30311:{info['activity_pubkey']}:{site.honest_id}"
    signer = PrivateKeySigner.generate()
    answers = run_sync(_exchange(_ws_url(site), [_event(signer, address, hostile)]))
    assert answers[0]["type"] == "ok"
    time.sleep(1)
    events = json.dumps(_admin_get(site, "/v1/events?limit=200"), ensure_ascii=False)
    outputs = [site.app.log(), site.app.cli("status").stdout,
               site.app.cli("chat", "list", site.honest_id).stdout, events]
    for text in outputs:
        assert "\x1b" not in text and "\u202e" not in text
        assert "\nforged line" not in text and "\n2026-01-01 00:00:00 ERROR forged" not in text


def _ws_url(site: Site) -> str:
    return site.app.base.replace("http", "ws") + f"/api/streams/{site.honest_id}/chat/ws"


def _admin_get(site: Site, path: str) -> Any:
    from appliance.api.admin_client import UnixSocketAdminClient as AdminClient

    async def go() -> Any:
        async with AdminClient(site.app.data_dir / "admin.sock") as client:
            return await client.request("GET", path)

    return run_sync(go())


def _nostr_info(site: Site) -> dict[str, Any]:
    result: dict[str, Any] = _admin_get(site, "/v1/nostr")
    return result


def _event(signer: PrivateKeySigner, address: str, content: str) -> dict[str, Any]:
    unsigned = UnsignedEvent(kind=1311, content=content, tags=(("a", address, ""),),
                             created_at=int(time.time()))
    return {"type": "event", "event": signer.sign_event(unsigned).to_dict()}


async def _exchange(url: str, frames: list[Any]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    async with connect(url, max_size=2**20) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        for frame in frames:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] in ("ok", "error"):
                    answers.append(msg)
                    break
    return answers


def test_forged_events_cannot_silence_the_victim_and_deep_json_is_refused(site: Site) -> None:
    """Issue 10 #5: forged events carrying a victim's pubkey are refused before any per-pubkey
    accounting, so the victim still chats; 3,000 nested arrays in < 8 KiB get a clear error
    (no RecursionError, the socket stays open); rate-limit texts state the real limits."""
    info = _nostr_info(site)
    address = f"30311:{info['activity_pubkey']}:{site.honest_id}"
    victim = PrivateKeySigner.generate()
    forged = [{"type": "event", "event": attacks.forged_chat_event(victim.public_key, address,
                                                                   f"spam {i}")}
              for i in range(4)]
    deep = attacks.deep_json()
    assert len(deep.encode()) < 8192
    answers = run_sync(_exchange(_ws_url(site), [*forged, deep,
                                                 _event(victim, address, "still here")]))
    assert [a.get("reason") for a in answers[:4]] == ["bad-id"] * 4
    assert answers[4]["type"] == "error" and "nested too deeply" in answers[4]["error"]
    assert answers[5]["type"] == "ok", answers[5]
    # Eleven quick messages from one address: the refusal states the per-address limit.
    flood = [_event(PrivateKeySigner.generate(), address, f"flood {i}") for i in range(12)]
    flooded = run_sync(_exchange(_ws_url(site), flood))
    refused = [a for a in flooded if a["type"] == "error"]
    assert refused and "at most 10 messages every 3 s" in refused[0]["error"]
    assert "Traceback" not in site.app.log()


def test_slowloris_is_cut_and_connections_per_address_are_capped(site: Site) -> None:
    """Issue 10 #6: request heads trickled a byte every 2 s are cut after the head deadline
    (4 s here); beyond http.max_connections_per_ip (32) an address's connections, WebSockets
    included, are refused while others are served."""

    async def attack(stop: asyncio.Event) -> tuple[attacks.AttackStats, tuple[int, int]]:
        slow = asyncio.ensure_future(attacks.slowloris(
            HOST, site.app.http_port, ["127.0.0.70"], stop, per_address=40))
        sockets = await attacks.open_websockets(
            site.app.base.replace("127.0.0.1", "127.0.0.1"),
            f"/api/streams/{site.honest_id}/chat/ws", "127.0.0.71", 40, hold=2)
        await asyncio.sleep(6)
        stop.set()
        return await slow, sockets

    (slow, (opened, refused)), probed = site.attack(10, attack)
    site.assert_healthy(probed, rss_mib=64)
    held = [float(r) for r in slow.replies]
    assert held, "no slowloris connection was cut"
    assert max(held) < 10.0, f"a slowloris connection stayed {max(held):.1f} s"
    assert slow.refused + slow.dropped >= 40
    assert opened <= 32 and refused >= 8, (opened, refused)


def test_codec_policy_refuses_444_and_explains_warnings(site: Site) -> None:
    """Issue 10 #11: x264 High 4:4:4 is refused with the reason (in ``hearth status``); B-frames
    and a 5 s keyframe interval give "warn" with reasons naming the OBS settings, in
    ``stream show``, ``status`` and the event log."""
    app = site.app
    refused = app.create_stream("444")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "3",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p",
           "-f", "flv", f"{app.rtmp_base}/{refused['stream_key']}"]
    assert subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0
    assert "High 4:4:4" in app.cli("status").stdout

    warned = app.create_stream("warn")
    pub = ffmpeg_publish(f"{app.rtmp_base}/{warned['stream_key']}", 14, size="160x120",
                         gop=125, bframes=2)
    try:
        def reasons() -> list[str] | None:
            show = app.cli_json("stream", "show", warned["id"])
            ingest = show.get("ingest") or {}
            got: list[str] = ingest.get("verdict_reasons") or []
            return got if len(got) >= 2 else None

        got = app.wait_for(reasons, timeout=20, interval=0.5)
        assert any("Keyframe Interval: 2 s" in r for r in got)
        assert any("B-frames: 0" in r for r in got)
        assert app.cli_json("stream", "show", warned["id"])["ingest"]["verdict"] == "warn"
        status = app.cli("status").stdout
        assert "Keyframe Interval" in status
        app.wait_for(lambda: "publisher settings to fix" in app.log(), timeout=15)
    finally:
        pub.kill()
        pub.wait()
