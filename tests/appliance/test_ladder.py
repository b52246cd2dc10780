"""The quality ladder inside one process: a real B-frame H.264 + AAC source (libx264 via PyAV)
through LiveBroadcast, the real decoder and encoders in their threads, and the HLS muxers;
the CPU guard with a slow encoder injected through ``appliance.ladder.encoder_factory``; the
channel setting through the admin API and the database migration."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import appliance.ladder as ladder_module
from appliance.config import HlsConfig
from appliance.db import Store
from appliance.db import queries as q
from appliance.db.migrations import MIGRATIONS
from appliance.ladder import EncoderChoice, LadderSetup
from appliance.live import LiveBroadcast
from appliance.state import AppState
from media.hls.segmenter import HlsMuxer
from media.ladder import Rendition
from media.transcode import EncodedFrame, RenditionEncoder
from media.units import CLOCK_RATE, CodecConfig, TrackKind
from tests.appliance.test_channels_hostile import apps  # noqa: F401  (fixture)
from tests.helpers.hls import demux
from tests.media.hls.media_factory import SyntheticStream, make_stream

HLS = HlsConfig(segment_target=1.0, part_target=0.2, window=20)
DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def bframe_source() -> SyntheticStream:
    """6 s of 320x240 25 fps with B-frames and a 25-frame GOP, plus AAC."""
    return make_stream(6.0, gop=25, bframes=2)


def _setup(presets: tuple[str, ...], events: list[tuple[str, str, str]], *,
           max_lag: float = 30.0) -> LadderSetup:
    return LadderSetup(presets, EncoderChoice(), max_lag,
                       lambda level, kind, msg: events.append((level, kind, msg)))


async def _feed(lb: LiveBroadcast, source: SyntheticStream, *, realtime: bool) -> float:
    """Publish the source into the broadcast as ingest would; returns the wall time taken."""
    started = time.monotonic()
    lb._publish([CodecConfig(source.video, source.audio)])
    for unit in source.units:
        if realtime:
            delay = started + unit.dts / CLOCK_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0.002 if unit.kind is TrackKind.VIDEO else 0)
        lb._publish([dataclasses.replace(unit, arrival=time.time())])
    return time.monotonic() - started


async def _ended(muxers: list[HlsMuxer], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not all(m.ended for m in muxers):
            await asyncio.sleep(0.05)


def _segments(muxer: HlsMuxer) -> tuple[bytes, list[tuple[str, float, bytes]]]:
    """The init segment and (name, first video pts in seconds, bytes) of every segment."""
    text = muxer.playlist()
    assert text is not None
    init_name = next(line.split('"')[1] for line in text.splitlines()
                     if line.startswith("#EXT-X-MAP"))
    init = muxer.get(init_name)
    assert init is not None
    out = []
    for name in [line for line in text.splitlines() if line.startswith("seg-")]:
        data = muxer.get(name)
        assert data is not None
        out.append((name, _first_pts(init + data), data))
    return init, out


def _first_pts(data: bytes) -> float:
    import io

    import av

    with av.open(io.BytesIO(data), format="mp4") as c:
        pts = [float(p.pts * p.time_base) for p in c.demux(c.streams.video[0])
               if p.pts is not None]
    return min(pts)


async def test_renditions_line_up_with_the_source(bframe_source: SyntheticStream) -> None:
    """Same segments (names = numbers, count) and first pts within a frame in every rendition,
    also across a publisher reconnect; every rendition decodes in PyAV at its own size; the
    multivariant inputs are measured."""
    events: list[tuple[str, str, str]] = []
    lb = LiveBroadcast("b1", "c1", HLS, first_msn=1000, ladder=_setup(("180p", "144p"), events))
    lb.start()
    await _feed(lb, bframe_source, realtime=False)
    async with asyncio.timeout(30):
        while len(lb.hls_renditions()) < 3:
            await asyncio.sleep(0.05)
    # The publisher reconnects (the hub's Discontinuity): the renditions follow, aligned.
    lb._publisher.discontinuity()
    shift = 7 * CLOCK_RATE
    again = dataclasses.replace(bframe_source, units=tuple(
        dataclasses.replace(u, dts=u.dts + shift, pts=u.pts + shift)
        for u in bframe_source.units if u.dts < 2 * CLOCK_RATE))
    await _feed(lb, again, realtime=False)
    muxers = [m for _, m in lb.hls_renditions()]
    lb._end(time.time())
    await _ended(muxers)
    for m in muxers:
        text = m.playlist()
        assert text is not None and text.count("#EXT-X-DISCONTINUITY\n") == 1
        assert m.stats.units_dropped == 0
    (_, source), (init180, r180), (init144, r144) = (_segments(m) for m in muxers)
    assert len(source) >= 7
    assert [s[0] for s in source] == [s[0] for s in r180] == [s[0] for s in r144]
    frame = 1 / 25
    for (_, p0, _), (_, p1, _), (_, p2, _) in zip(source, r180, r144, strict=True):
        assert abs(p0 - p1) <= frame + 1e-6 and abs(p0 - p2) <= frame + 1e-6
    for init, segs, width in ((init180, r180, 240), (init144, r144, 192)):
        d = demux(init + b"".join(s[2] for s in segs))
        assert d.width == width and d.decoded_video_frames >= 190 and d.audio_codec == "aac"
    variants = {name: m.variant("x") for name, m in lb.hls_renditions()}
    assert variants["180p"] is not None and variants["180p"].resolution == (240, 180)
    assert variants["180p"].codecs[0].startswith("avc1.42")  # Constrained Baseline, own SPS
    assert [k for _, k, _ in events] == ["ladder.start"]
    snap = lb.snapshot()
    assert [(r.name, r.state, r.frames_dropped) for r in snap.ladder] == [
        ("180p", "live", 0), ("144p", "live", 0)]
    assert all(r.speed is not None and r.speed > 0 for r in snap.ladder)


class SlowEncoder:
    """A real encoder that takes ``delay`` seconds more per frame (a box too slow for it)."""

    def __init__(self, rendition: Rendition, rate: float, codec: str, delay: float) -> None:
        self._inner = RenditionEncoder(rendition, rate, codec)
        self.config = self._inner.config
        self._delay = delay

    @property
    def cpu_seconds(self) -> float:
        return self._inner.cpu_seconds

    def encode(self, frame: Any, *, keyframe: bool) -> list[EncodedFrame]:
        time.sleep(self._delay)
        return self._inner.encode(frame, keyframe=keyframe)

    def close(self) -> None:
        self._inner.close()


async def test_overloaded_ladder_sheds_the_lowest_and_the_source_keeps_its_cadence(
        bframe_source: SyntheticStream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each frame takes 60 ms more to encode at 25 fps: the lag grows; the guard drops the lowest
    rendition first, tells the operator, removes it from what is served; the source
    rendition loses nothing and the loop is never held (the feed keeps real time)."""
    monkeypatch.setattr(ladder_module, "encoder_factory",
                        lambda r, rate, codec: SlowEncoder(r, rate, codec, 0.06))
    events: list[tuple[str, str, str]] = []
    lb = LiveBroadcast("b2", "c2", HLS, ladder=_setup(("180p", "144p"), events, max_lag=0.4))
    lb.start()
    part_times: list[float] = []
    lb.muxer.on_update = lambda: part_times.append(time.monotonic())
    short = dataclasses.replace(bframe_source, units=tuple(
        u for u in bframe_source.units if u.dts < 3.5 * CLOCK_RATE))
    wall = await _feed(lb, short, realtime=True)
    sheds = [m for _, k, m in events if k == "ladder.shed"]
    assert sheds, events
    assert "dropped the lowest rendition, 144p" in sheds[0]
    snap = lb.snapshot()
    states = {r.name: r.state for r in snap.ladder}
    assert states["144p"] == "dropped"
    assert "dropped the lowest rendition" in snap.ladder_notice  # the newest shed's reason
    assert lb.rendition_muxer("144p") is None
    assert "144p" not in [name for name, _ in lb.hls_renditions()]
    # The source: nothing dropped anywhere on its path, and the feed kept real time.
    assert snap.frames_discarded == 0 and lb.muxer.stats.units_dropped == 0
    assert wall < 3.5 + 2.0, wall
    gaps = [b - a for a, b in itertools.pairwise(part_times)]
    print(f"source part updates: {len(part_times)}, largest gap {max(gaps):.3f} s, "
          f"feed wall time {wall:.2f} s for 3.5 s of media; events: {sheds}")
    lb._abort()


async def test_ladder_setting_through_the_admin_api(
        apps: tuple[TestClient, TestClient, AppState]) -> None:  # type: ignore[type-arg]  # noqa: F811
    admin, _, state = apps
    r = await admin.post("/v1/channels", json={"title": "x", "ladder": ["480p", "720p"]})
    assert r.status == 201, await r.text()
    cid = (await r.json())["id"]
    got = await (await admin.get(f"/v1/channels/{cid}")).json()
    assert got["ladder"] == ["720p", "480p"]
    assert state.service._ladder_setup(cid) is not None
    for bad in (["999p"], "720p;480p", 5, [5], ["off", "720p"], ["720p"] * 2 + ["480p", "360p",
                                                                              "240p", "144p"],
                {"a": 1}, ["x" * 10_000]):
        r = await admin.patch(f"/v1/channels/{cid}", json={"ladder": bad})
        assert r.status == 400, (bad, await r.text())
        assert "ladder" in await r.text()
    r = await admin.patch(f"/v1/channels/{cid}", json={"ladder": "off"})
    assert r.status == 200 and (await r.json())["ladder"] == []
    assert state.service._ladder_setup(cid) is None
    r = await admin.patch(f"/v1/streams/{cid}", json={"title": "x", "ladder": "360p,240p"})
    assert r.status == 200 and (await r.json())["ladder"] == ["360p", "240p"]


async def test_migration_from_the_previous_release(tmp_path: Path) -> None:
    """A database made by the release before the ladder (every migration up to it, with a
    channel in it), and the older pre-channels fixture, both gain ``ladder`` = off."""
    path = tmp_path / "previous.db"
    index = [name for name, _ in MIGRATIONS].index("m_channel_ladder")
    from sqlite_utils import Database

    db = Database(path)
    db.execute("CREATE TABLE _hearth_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, fn in MIGRATIONS[:index]:
        fn(db)
        db.execute("INSERT INTO _hearth_migrations VALUES (?, 0)", (name,))
    db.execute("INSERT INTO channels (id, title, summary, tags, image, key_hash, created_at, "
               "updated_at) VALUES ('aaaaaaaaaaaa', 'old', '', '[]', '', 'h', 1, 1)")
    db.conn.commit()
    db.close()
    import shutil

    shutil.copy(DATA / "release-streams.sqlite", tmp_path / "release.db")
    for p in (path, tmp_path / "release.db"):
        store = await Store.open(p)
        try:
            channels = await store.read(q.list_channels)
            assert channels and all(c.ladder == () for c in channels)
            assert await store.read(q.channel_ladders) == {}
        finally:
            await store.close()
        with sqlite3.connect(p) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            names = {r[0] for r in raw.execute("SELECT name FROM _hearth_migrations")}
            assert "m_channel_ladder" in names


async def test_b_frame_source_gets_a_webrtc_publisher_from_the_ladder(
        bframe_source: SyntheticStream) -> None:
    """Without a ladder a B-frame source has nothing WebRTC can carry; with one, the tallest
    rendition's hub (no B-frames) is offered once it encodes."""
    plain = LiveBroadcast("b3", "c3", HLS)
    plain.start()
    events: list[tuple[str, str, str]] = []
    laddered = LiveBroadcast("b4", "c4", HLS, ladder=_setup(("180p", "144p"), events))
    laddered.start()
    short = dataclasses.replace(bframe_source, units=bframe_source.units[:120])
    await asyncio.gather(_feed(plain, short, realtime=False),
                         _feed(laddered, short, realtime=False))
    assert plain.has_bframes() and plain.webrtc_publisher() is None and not plain.ladder_on
    async with asyncio.timeout(30):
        while laddered.webrtc_publisher() is None:
            await asyncio.sleep(0.05)
    pub = laddered.webrtc_publisher()
    assert pub is not None and pub.config.video is not None
    assert (pub.config.video.width, pub.config.video.height) == (240, 180)
    for lb in (plain, laddered):
        lb._abort()
