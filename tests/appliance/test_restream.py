"""RestreamService in-process, over real loopback sockets, against scripted targets: stream copy
with sequence headers on every (re)connect, hostile targets (garbage, oversized chunks,
refusals, untrusted TLS) ending as target errors never exceptions, a target that stops
reading losing frames without ever slowing the publisher, and targets persisted across a
restart (docs/threat-model.md §restream)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from appliance.api.schema import RestreamState, RestreamTarget
from appliance.bus import Bus, RestreamFailed
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ChannelFields
from appliance.live import LiveBroadcast
from appliance.restream import RestreamError, RestreamService, TargetNotFound
from media.rtmp.chunk import ChunkWriter
from media.rtmp.handshake import HANDSHAKE_SIZE
from media.rtmp.session import (
    AudioReceived,
    PublishRequested,
    RtmpServerSession,
    Unpublished,
    VideoReceived,
)
from media.units import AudioConfig, CodecConfig, MediaUnit, TrackKind, VideoConfig
from tests.appliance.test_channels import FakeLink
from tests.helpers.tls import make_pki

AVCC = b"\x01\x64\x00\x1f\xff\xe1\x00\x04SPS!\x01\x00\x03PPS"
ASC = b"\x11\x90"
CONFIG = CodecConfig(
    VideoConfig(avcc=AVCC, sps=(b"SPS!",), pps=(b"PPS",), nal_length_size=4, width=320,
                height=240, profile_idc=100, level_idc=31, constraint_flags=0),
    AudioConfig(asc=ASC, object_type=2, sample_rate=48000, channels=2))
KEY = "live_sekrit_target_KEY"
RELEASE_DB = Path(__file__).resolve().parents[1] / "data" / "release-streams.sqlite"
"""The newest database made by a previous release (tests/data)."""

FAST = {"HEARTH_RESTREAM_RETRY_BASE": "0.05", "HEARTH_RESTREAM_RETRY_CAP": "0.2",
        "HEARTH_RESTREAM_CONNECT_TIMEOUT": "2", "HEARTH_RESTREAM_STALL_TIMEOUT": "1"}


class Target:
    """A scripted RTMP target on loopback: ``good`` (records media), ``refuse`` (BadName with
    the key quoted), ``stall`` (accepts, then never reads), ``garbage``, ``oversized``."""

    def __init__(self, mode: str, *, tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.tls = tls
        self.connections = 0
        self.media: list[list[tuple[str, int, bytes]]] = []
        self.unpublished = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a stall fills up fast
        sock.bind(("127.0.0.1", 0))
        self.server = await asyncio.start_server(self._handle, sock=sock, ssl=self.tls)
        port: int = sock.getsockname()[1]
        return port

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()

    def drop(self) -> None:
        """Cut every connection (a target restart)."""
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(OSError, ssl.SSLError):
            if self.mode == "garbage":
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(range(256)) * 20)
                await reader.read(1 << 20)
                return
            if self.mode == "oversized":
                await reader.readexactly(1 + HANDSHAKE_SIZE)
                writer.write(bytes((3,)) + bytes(2 * HANDSHAKE_SIZE))
                w = ChunkWriter(chunk_size=1 << 20)
                writer.write(w.write(3, 20, 0, 0, bytes(200_000)))
                await reader.read(1 << 20)
                return
            await self._session(reader, writer)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = RtmpServerSession()
        media: list[tuple[str, int, bytes]] = []
        self.media.append(media)
        while data := await reader.read(65536):
            session.receive_data(data)
            for ev in session.events():
                if isinstance(ev, PublishRequested):
                    if self.mode == "refuse":
                        session.reject_publish(ev.message_stream_id, "NetStream.Publish.BadName",
                                               f"stream {ev.stream_name} is not allowed")
                    else:
                        assert ev.stream_name == KEY
                        session.accept_publish(ev.message_stream_id)
                elif isinstance(ev, VideoReceived | AudioReceived):
                    kind = "video" if isinstance(ev, VideoReceived) else "audio"
                    media.append((kind, ev.timestamp, ev.body))
                elif isinstance(ev, Unpublished):
                    self.unpublished += 1
            writer.write(session.data_to_send())
            if self.mode == "stall" and session.publishing_stream_id is not None:
                await asyncio.Event().wait()  # accepted: now never read again


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[ChannelService, RestreamService, str]]:
    pki = make_pki(tmp_path / "pki")
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RESTREAM_CA_FILE": str(pki.ca), **FAST})
    store = await Store.open(tmp_path / "h.db")
    bus = Bus()
    channels = ChannelService(config, store, bus)
    await channels.start()
    restream = RestreamService(store, bus, channels, config.restream, queue_units=40)
    await restream.start()
    channel, _ = await channels.create_channel(ChannelFields("Simulcast"))
    yield channels, restream, channel.id
    await restream.close()
    await channels.close()
    await store.close()


async def wait_for(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def target(restream: RestreamService, channel_id: str, index: int = 0) -> RestreamTarget:
    return restream.targets(channel_id)[index]


class Feed:
    """Publishes synthetic units through the ingest-agnostic seam (``publish_units``, what
    WHIP and SRT use; RTMP's FLV path ends in the same hub), never awaiting."""

    def __init__(self, lb: LiveBroadcast, payload: int = 2000) -> None:
        self.lb = lb
        self.n = 0
        self.payload = bytes(payload)
        lb.publish_units([CONFIG])

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            dts = self.n * 3600  # 25 fps at 90 kHz
            self.lb.publish_units([
                MediaUnit(TrackKind.VIDEO, dts, dts + 3600, self.n % 25 == 0, self.payload,
                          time.time()),
                MediaUnit(TrackKind.AUDIO, dts + 1, dts + 1, True, b"aac", time.time())])
            self.n += 1

    async def run_until(self, predicate: Callable[[], object], what: str,
                        timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.step(2)
            await asyncio.sleep(0.01)


async def test_stream_copy_with_sequence_headers_on_every_connection(env: tuple[
        ChannelService, RestreamService, str]) -> None:
    channels, restream, cid = env
    good = Target("good")
    port = await good.start()
    try:
        added = await restream.add(cid, f"rtmp://127.0.0.1:{port}/live/{KEY}")
        assert added.state is RestreamState.IDLE and KEY not in repr(added.to_dict())
        lb = channels.attach(cid, FakeLink(1))
        feed = Feed(lb)
        await feed.run_until(lambda: sum(k == "video" for m in good.media for k, _, _ in m) > 30,
                             "video at the target")
        first = good.media[0]
        assert first[0] == ("video", 0, b"\x17\x00\x00\x00\x00" + AVCC)  # AVC sequence header
        assert ("audio", 0, b"\xaf\x00" + ASC) in first[:3]
        frames = [(ts, body) for kind, ts, body in first if kind == "video"][1:]
        assert frames[0][1][:2] == b"\x17\x01"  # starts at a keyframe
        assert all(b[:2] in (b"\x17\x01", b"\x27\x01") for _, b in frames)
        assert [ts for ts, _ in frames[:3]] == [0, 40, 80] and frames[0][1][2:5] == b"\x00\x00\x28"
        status = target(restream, cid)
        assert status.state is RestreamState.LIVE and status.connects == 1
        assert status.bytes_sent > 30 * 2000
        # The target restarts: the runner reconnects and starts over with sequence headers.
        good.drop()
        await feed.run_until(lambda: len(good.media) >= 2 and len(good.media[1]) > 10,
                             "media after the reconnect")
        assert good.media[1][0] == ("video", 0, b"\x17\x00\x00\x00\x00" + AVCC)
        assert target(restream, cid).connects == 2
        # A publisher reconnect within the grace keeps the target's connection.
        channels.detach(cid, lb.link, "network blip")  # type: ignore[arg-type]
        channels.attach(cid, FakeLink(2))
        await feed.run_until(lambda: len(good.media[1]) > 40, "media after the publisher came back")
        assert target(restream, cid).connects == 2 and good.connections == 2
        # The broadcast ends: the target is unpublished and the runner goes idle.
        await channels.end_broadcast(lb.broadcast_id)
        await wait_for(lambda: good.unpublished == 1, "unpublish at the target")
        await wait_for(lambda: target(restream, cid).state is RestreamState.IDLE, "idle")
    finally:
        await good.close()


@pytest.mark.parametrize("mode", ["garbage", "oversized", "refuse", "untrusted-tls"])
async def test_hostile_targets_are_errors_not_crashes(
        env: tuple[ChannelService, RestreamService, str], mode: str, tmp_path: Path) -> None:
    channels, restream, cid = env
    tls = None
    if mode == "untrusted-tls":  # a certificate from a CA nobody configured
        other = make_pki(tmp_path / "other")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(other.cert, other.key)
    hostile = Target("good" if tls else mode, tls=tls)
    port = await hostile.start()
    good = Target("good")
    good_port = await good.start()
    try:
        scheme = "rtmps" if tls else "rtmp"
        await restream.add(cid, f"{scheme}://127.0.0.1:{port}/live", key=KEY)
        await restream.add(cid, f"rtmp://127.0.0.1:{good_port}/live/{KEY}")
        feed = Feed(channels.attach(cid, FakeLink(1)))
        await feed.run_until(lambda: target(restream, cid).failures >= 2, "failed attempts")
        bad = target(restream, cid)
        assert bad.state in (RestreamState.BACKOFF, RestreamState.CONNECTING)
        assert bad.last_error and KEY not in bad.last_error
        expected = {"garbage": "version", "oversized": "exceeds", "refuse": "BadName",
                    "untrusted-tls": "certificate"}[mode]
        assert expected in bad.last_error
        # The other target is unaffected.
        await feed.run_until(lambda: good.media and len(good.media[0]) > 20, "good target")
        assert target(restream, cid, 1).state is RestreamState.LIVE
        if mode == "refuse":  # a failure streak is reported once, for webhooks
            async with restream.bus.subscribe(RestreamFailed) as events:
                await feed.run_until(lambda: target(restream, cid).failures >= 5, "a streak")
                failed = await asyncio.wait_for(events.get(), 5)
            assert isinstance(failed, RestreamFailed) and failed.failures == 5
            assert KEY not in failed.error and failed.server_url.endswith("/live")
            assert target(restream, cid).state is RestreamState.FAILED
    finally:
        await hostile.close()
        await good.close()


async def test_a_target_that_stops_reading_loses_frames_never_the_publisher(
        env: tuple[ChannelService, RestreamService, str]) -> None:
    channels, restream, cid = env
    stall = Target("stall")
    port = await stall.start()
    try:
        await restream.add(cid, f"rtmp://127.0.0.1:{port}/live/{KEY}")
        lb = channels.attach(cid, FakeLink(1))
        hls_reader = lb.open_reader("witness", 1_000_000)
        feed = Feed(lb, payload=20_000)
        await feed.run_until(lambda: target(restream, cid).frames_dropped > 0, "drops")
        # Publishing never waited: every unit reached the other consumer.
        assert hls_reader.backlog >= 2 * feed.n  # (+ the config items)
        # After the stall timeout the target is dropped and retried.
        await feed.run_until(lambda: stall.connections >= 2, "a reconnect after the stall")
        assert "stopped reading" in (target(restream, cid).last_error or "")
    finally:
        await stall.close()


async def test_targets_validate_persist_and_never_store_more_than_needed(
        env: tuple[ChannelService, RestreamService, str], tmp_path: Path) -> None:
    channels, restream, cid = env
    for url, key in [("http://h/live/k", None), ("rtmp://h/live", None),
                     ("rtmp://u:p@h/live/k", None), ("rtmp://h/live", "bad key")]:
        with pytest.raises(RestreamError) as info:
            await restream.add(cid, url, key)
        assert "k" != str(info.value)
    t = await restream.add(cid, "rtmps://live.example.com/app", key=KEY)
    assert t.server_url == "rtmps://live.example.com:443/app" and KEY not in t.key
    for i in range(9):
        await restream.add(cid, f"rtmp://h{i}.example/live/k{i}")
    with pytest.raises(RestreamError):
        await restream.add(cid, "rtmp://h/live/one-too-many")
    with pytest.raises(TargetNotFound):
        await restream.remove(cid, 999)
    await restream.remove(cid, t.id)
    assert len(restream.targets(cid)) == 9
    # A restarted service loads them again.
    again = RestreamService(restream.store, restream.bus, channels, restream.config)
    await again.start()
    assert [x.id for x in again.targets(cid)] == [x.id for x in restream.targets(cid)]
    await again.close()
    # Deleting the channel forgets its targets (and their keys).
    await channels.delete_channel(cid)
    await wait_for(lambda: not restream.targets(cid), "targets forgotten")
    await asyncio.sleep(0.1)
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("SELECT COUNT(*) FROM restream_targets").fetchone()[0] == 0


async def test_migration_from_the_previous_release(tmp_path: Path) -> None:
    db_path = tmp_path / "hearth.db"
    shutil.copy(RELEASE_DB, db_path)
    store = await Store.open(db_path)
    try:
        config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
        bus = Bus()
        channels = ChannelService(config, store, bus)
        await channels.start()
        restream = RestreamService(store, bus, channels, config.restream)
        await restream.start()
        (channel, *_) = await channels.list_channels()
        added = await restream.add(channel.id, f"rtmp://127.0.0.1:9/live/{KEY}")
        assert [t.id for t in restream.targets(channel.id)] == [added.id]
        await restream.close()
        await channels.close()
    finally:
        await store.close()
    with sqlite3.connect(db_path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _hearth_migrations")]
        assert "m_restream_targets" in names
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM channels").fetchone()[0] >= 1


async def test_admin_routes_refuse_hostile_input_and_never_echo_keys(
        env: tuple[ChannelService, RestreamService, str]) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from appliance.api.admin_app import build_admin_app
    from appliance.state import AppState

    channels, restream, cid = env
    state = AppState(config=channels.config, store=channels.store, service=channels,
                     ingest=None, bus=channels.bus, restream=restream)  # type: ignore[arg-type]
    base = f"/v1/channels/{cid}/restream"
    async with TestClient(TestServer(build_admin_app(state))) as admin:
        bad_bodies: list[bytes] = [
            b"", b"{", b"[]", b"null", b'{"url": 5}', b'{"key": "k"}',
            b'{"url": "rtmp://h/live/k", "key": 7}',
            f'{{"url": "http://h/live/{KEY}"}}'.encode(),
            f'{{"url": "file:///etc/{KEY}"}}'.encode(),
            f'{{"url": "rtmp://h/live/{KEY}\\u0000"}}'.encode(),
            b'{"url": "rtmp://h/live"}',  # no key
            b'{"url": "rtmp://h/' + b"a" * 5000 + b'/k"}',
            b'{"url": ' * 10000 + b"1" + b"}" * 10000, b"\xff\xfe",
        ]
        for body in bad_bodies:
            r = await admin.post(base, data=body, headers={"Content-Type": "application/json"})
            assert r.status == 400, (body[:60], r.status)
            assert KEY not in await r.text()
        assert (await admin.post(base, data=b"{" + b" " * (300 * 1024) + b"}")).status == 413
        for channel in ("nope", "0" * 5000, "%2e%2e"):
            assert (await admin.get(f"/v1/channels/{channel}/restream")).status == 404
        assert (await admin.get("/v1/channels/000000000000/restream")).status == 404
        r = await admin.post(base, json={"url": "rtmp://127.0.0.1:9/live", "key": KEY})
        assert r.status == 201
        created = await r.json()
        assert KEY not in json.dumps(created)
        listed = await (await admin.get(base)).text()
        shown = await (await admin.get(f"/v1/channels/{cid}")).json()
        assert KEY not in listed and KEY not in json.dumps(shown)
        assert shown["restream"][0]["id"] == created["id"]
        for tid in ("x", "-1", "1" * 13, "%2e", str(created["id"] + 1)):
            assert (await admin.delete(f"{base}/{tid}")).status == 404
        assert (await admin.delete(f"{base}/{created['id']}")).status == 200
        assert await (await admin.get(base)).json() == []


def test_config_refuses_a_missing_ca_file_and_bad_ranges(tmp_path: Path) -> None:
    from appliance.config import ConfigError

    base = {"HEARTH_DATA_DIR": str(tmp_path)}
    for key, value in [("HEARTH_RESTREAM_CA_FILE", str(tmp_path / "missing.pem")),
                       ("HEARTH_RESTREAM_RETRY_CAP", "0.001"),
                       ("HEARTH_RESTREAM_QUEUE_UNITS", "1")]:
        with pytest.raises(ConfigError):
            load_config(environ={**base, key: value})


def test_cli_takes_the_key_from_the_url_a_flag_or_stdin_and_never_prints_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from appliance.cli_restream import _body, target_lines

    assert _body(f"rtmp://h/live/{KEY}", None) == {"url": f"rtmp://h/live/{KEY}"}
    assert _body("rtmp://h/app/inst", KEY) == {"url": "rtmp://h/app/inst", "key": KEY}
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert _body("rtmps://h/live2", None) == {"url": "rtmps://h/live2", "key": KEY}
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert _body("rtmp://h/app/inst", "-") == {"url": "rtmp://h/app/inst", "key": KEY}
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(ValueError):
        _body("rtmp://h/live", None)  # an empty key
    lines = target_lines(RestreamTarget(
        id=2, channel_id="c", server_url="rtmp://h:1935/live", key="<key sha256:1 len=3>",
        created_at=0.0, state=RestreamState.BACKOFF, bytes_sent=5_000_000, failures=2,
        last_error="refused \x1b[31m"))
    assert lines[0] == "#2 backoff    rtmp://h:1935/live/<key sha256:1 len=3>"
    assert "5.0 MB sent" in lines[1] and "\x1b" not in lines[2] and "2 failed" in lines[2]
    assert KEY not in capsys.readouterr().out
