"""Recordings end to end: ffmpeg → RTMP → live HLS → recording on disk → VOD/MP4/thumbnail.

Real parts: the real ``hearth serve`` (kill -9 included), ffmpeg as the publisher, FFmpeg's
own HLS demuxer (through PyAV) playing the VOD over HTTP, PyAV decoding the MP4 download.
"""

from __future__ import annotations

import io
import time

import av
import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.hls import Playlist
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")


def play_url(url: str) -> tuple[float, int]:
    """Play an HLS URL to the end with FFmpeg's demuxer: (seconds of video, frames)."""
    frames = 0
    first: float | None = None
    last = 0.0
    with av.open(url, options={"protocol_whitelist": "http,tcp", "allowed_extensions": "ALL",
                               "rw_timeout": "10000000"}) as c:
        for frame in c.decode(video=0):
            frames += 1
            t = float(frame.time or 0.0)
            first = t if first is None else first
            last = t
    return (last - (first or 0.0)) + 1 / 25, frames


def publish_for(app: ApplianceProcess, key: str, seconds: float) -> None:
    pub = ffmpeg_publish(f"{app.rtmp_base}/{key}", seconds)
    assert pub.wait(seconds + 30) == 0, pub.stderr.read() if pub.stderr else ""


def wait_ended(app: ApplianceProcess, sid: str) -> None:
    app.wait_for(lambda: app.get(f"/api/streams/{sid}").json()["status"] == "ended",
                 timeout=30)


def test_broadcast_with_a_reconnect_is_recorded_and_plays(appliance: ApplianceProcess) -> None:
    """6 s, reconnect within grace, 4 s more: a VOD with one discontinuity plays ~10 s to the
    end over HTTP; the MP4 download holds all of it; a JPEG thumbnail exists."""
    created = appliance.create_stream("recorded")
    sid, key = created["id"], created["stream_key"]
    publish_for(appliance, key, 6)
    publish_for(appliance, key, 4)  # within the 4 s grace window: same stream
    wait_ended(appliance, sid)
    r = appliance.wait_for(lambda: (x := appliance.get(f"/vod/{sid}/index.m3u8")).status == 200
                           and "#EXT-X-ENDLIST" in x.text and x)
    assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    pl = Playlist.parse(r.text)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in r.text and pl.ended
    assert sum(1 for s in pl.segments if s[2]) == 1, r.text  # one reconnect
    assert all(round(d) <= pl.target_duration for _, d, _, _ in pl.segments)
    seconds, frames = play_url(f"{appliance.base}/vod/{sid}/index.m3u8")
    assert abs(seconds - 10.0) < 1.0, seconds
    assert abs(frames - 250) <= 25, frames
    seg = appliance.get(f"/vod/{sid}/{pl.segments[0][0]}")
    assert seg.status == 200 and "immutable" in seg.headers["Cache-Control"]

    mp4 = appliance.get(f"/vod/{sid}/download.mp4", timeout=60)
    assert mp4.status == 200 and mp4.headers["Content-Type"] == "video/mp4"
    assert mp4.body.index(b"moov") < mp4.body.index(b"mdat")  # faststart
    with av.open(io.BytesIO(mp4.body)) as c:
        assert abs(float(c.duration or 0) / av.time_base - 10.0) < 1.0
        assert sum(1 for _ in c.decode(video=0)) == frames

    thumb = appliance.get(f"/thumb/{sid}.jpg")
    assert thumb.status == 200 and thumb.body[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(thumb.body), "r", format="mjpeg") as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)


def test_kill_9_mid_broadcast_keeps_the_closed_segments(data_dir: object) -> None:
    """kill -9 while live → on restart the recording is finalised and plays up to its last
    closed segment."""
    app = ApplianceProcess(data_dir).start()  # type: ignore[arg-type]
    try:
        created = app.create_stream("crash")
        sid = created["id"]
        pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 30)
        try:
            # Wait until at least three segments are on disk, then crash hard.
            app.wait_for(lambda: sum(1 for _ in (app.data_dir / "recordings" / sid).glob(
                "seg-*.m4s")) >= 3, timeout=30)
            app.kill9()
        finally:
            pub.kill()
            pub.wait()
        app.start()
        r = app.wait_for(lambda: (x := app.get(f"/vod/{sid}/index.m3u8")).status == 200 and x)
        pl = Playlist.parse(r.text)
        assert pl.ended and len(pl.segments) >= 3
        seconds, frames = play_url(f"{app.base}/vod/{sid}/index.m3u8")
        listed = sum(d for _, d, _, _ in pl.segments)
        assert abs(seconds - listed) < 0.5 and frames > 0
        assert "recording.recovered" in app.log()
    finally:
        app.stop()


def test_hostile_vod_paths_are_404(appliance: ApplianceProcess) -> None:
    """No URL text reaches the filesystem: traversal, encoded separators, NUL, odd names."""
    for path in ["/vod/..%2f..%2fetc/passwd", "/vod/%2e%2e/index.m3u8", "/vod/x/..%2Fmeta.json",
                 "/vod/x/meta.json", "/vod/x/index.jsonl", "/vod/x%00/index.m3u8",
                 "/vod/x/seg-1.m4s%00.jpg", "/thumb/..%2f..%2fhearth.db", "/thumb/x.jpg%00",
                 "/thumb/%2e%2e.jpg", "/vod/" + "a" * 100 + "/index.m3u8",
                 "/vod/x/seg-01.m4s", "/vod/x/download.mp4", "/vod/x/index.m3u8",
                 "/thumb/nothing.jpg", "/vod/x/%2e%2e%2f%2e%2e%2fhearth.db",
                 "/c/..%2f..%2fhearth.db", "/c/%2e%2e", "/c/x%00", "/c/" + "a" * 100]:
        r = appliance.get(path)
        assert r.status in (404, 400), (path, r.status)
        assert b"SQLite" not in r.body and b"root:" not in r.body


def test_recording_keeps_pace_while_live(appliance: ApplianceProcess) -> None:
    """While live, the recording is an EVENT playlist that grows; thumbnails exist early."""
    created = appliance.create_stream("growing")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 8)
    try:
        r = appliance.wait_for(
            lambda: (x := appliance.get(f"/vod/{sid}/index.m3u8")).status == 200 and x,
            timeout=20)
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in r.text and "#EXT-X-ENDLIST" not in r.text
        assert r.headers["Cache-Control"] == "no-cache"
        appliance.wait_for(lambda: appliance.get(f"/thumb/{sid}.jpg").status == 200,
                           timeout=20)
        t0 = time.monotonic()
        first = len(Playlist.parse(r.text).segments)
        appliance.wait_for(lambda: len(Playlist.parse(
            appliance.get(f"/vod/{sid}/index.m3u8").text).segments) > first, timeout=20)
        assert time.monotonic() - t0 < 20
    finally:
        pub.kill()
        pub.wait()


def test_live_thumbnails_are_made_when_asked_and_once_at_the_end() -> None:
    """Issue 17 (ingest cost): past the first two, a live thumbnail is decoded only when
    ``/thumb/{id}.jpg`` is asked for and the newest is older than the interval (here 1 s),
    so nothing is rewritten while nobody asks; the broadcast's end keeps a last one."""
    from tests.helpers.appliance import short_tmpdir

    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_RECORDING_THUMBNAIL_INTERVAL": "1"}).start()
    try:
        created = app.create_stream("thumbs")
        sid = created["id"]
        kept = app.data_dir / "thumbnails" / f"{sid}.jpg"
        pub = ffmpeg_publish(f"{app.rtmp_base}/{created['stream_key']}", 16)
        try:
            app.wait_for(lambda: app.get(f"/thumb/{sid}.jpg").status == 200, timeout=20)
            time.sleep(4)  # past the second (eager) thumbnail; then nobody asks
            unasked = kept.stat().st_mtime_ns
            time.sleep(3)  # 1 s interval, a 2 s segment or more: the old way rewrote it
            assert kept.stat().st_mtime_ns == unasked
            first = app.get(f"/thumb/{sid}.jpg").body  # stale: made afresh for this request
            assert kept.stat().st_mtime_ns > unasked and kept.read_bytes() == first
            assert app.get(f"/thumb/{sid}.jpg").body == first  # fresh: served as it is
            time.sleep(2.5)  # a newer segment, and the interval passed
            later = app.get(f"/thumb/{sid}.jpg").body
            assert later[:2] == b"\xff\xd8" and later != first  # the test pattern moves
            assert pub.wait(30) == 0
        finally:
            pub.kill()
            pub.wait()
        wait_ended(app, sid)
        app.wait_for(lambda: kept.read_bytes() != later, timeout=20)  # the end's own
        assert app.get(f"/thumb/{sid}.jpg").body == kept.read_bytes()
    finally:
        app.stop()


async def test_disk_full_stops_the_recording_and_live_hls_goes_on(tmp_path_factory: object
                                                                   ) -> None:
    """ENOSPC injected at the storage seam of a real in-process appliance, ffmpeg publishing:
    the recording stops with the reason in the event log; the live playlist keeps growing."""
    import asyncio

    import aiohttp

    from appliance.config import load_config
    from appliance.db import queries as q
    from appliance.domain import ChannelFields
    from appliance.lifecycle import Appliance
    from tests.appliance.delivery.recording_factory import FailingStorage
    from tests.helpers.appliance import short_tmpdir

    data = short_tmpdir()
    config = load_config(environ={
        "HEARTH_DATA_DIR": str(data), "HEARTH_HTTP_HOST": "127.0.0.1", "HEARTH_HTTP_PORT": "0",
        "HEARTH_RTMP_HOST": "127.0.0.1", "HEARTH_RTMP_PORT": "0",
        "HEARTH_NOSTR_RELAYS": "", "HEARTH_RTMP_GRACE_SECONDS": "2"})
    storage = FailingStorage(ok_writes=3)
    async with Appliance(config, recording_storage=storage) as app:
        state = app.state
        assert state is not None and state.delivery is not None
        # first_broadcast: the channel's first broadcast has the channel's id
        stream, key = await state.service.create_channel(ChannelFields("disk full"),
                                                         first_broadcast=True)
        pub = ffmpeg_publish(f"rtmp://127.0.0.1:{app.rtmp_port}/live/{key}", 12)
        base = f"http://127.0.0.1:{app.http_port}"
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(40):
                while state.delivery.recorder_status(stream.id) is None or (
                        state.delivery.recorder_status(stream.id).state  # type: ignore[union-attr]
                        != "failed"):
                    await asyncio.sleep(0.2)
                failed_at = state.service.runtime(stream.id).muxer.stats  # type: ignore[union-attr]
                while True:  # live delivery continues after the recording stopped
                    async with http.get(f"{base}/hls/{stream.id}/media.m3u8") as r:
                        assert r.status == 200
                        text = await r.text()
                    now = state.service.runtime(stream.id).muxer.stats  # type: ignore[union-attr]
                    if now.segments_emitted >= failed_at.segments_emitted + 2:
                        break
                    await asyncio.sleep(0.3)
                assert "#EXTINF" in text
                async with http.get(f"{base}/vod/{stream.id}/index.m3u8") as r:
                    assert r.status == 200  # what was written before the error still plays
        finally:
            pub.kill()
            pub.wait()
        events = await state.store.read(lambda db: q.list_events(db, 200, stream.id))
        failed = [e for e in events if e["kind"] == "recording.failed"]
        assert failed and "No space left on device" in failed[0]["message"]
        assert failed[0]["level"] == "error"


def test_recording_cli(appliance: ApplianceProcess) -> None:
    """``hearth recording list|show|keep|delete`` against the running appliance."""
    created = appliance.create_stream("cli recording")
    sid = created["id"]
    publish_for(appliance, created["stream_key"], 3)
    wait_ended(appliance, sid)
    listed = appliance.wait_for(lambda: [r for r in appliance.cli_json("recording", "list")
                                         if r["broadcast_id"] == sid and r["state"] == "complete"])
    assert listed[0]["title"] == "cli recording" and listed[0]["duration"] > 2
    assert "recording" in appliance.cli("recording", "list").stdout.lower()
    kept = appliance.cli_json("recording", "keep", sid)
    assert kept["kept"] is True
    assert appliance.cli_json("recording", "keep", sid, "--undo")["kept"] is False
    assert sid in appliance.cli("recording", "show", sid).stdout
    assert appliance.cli_json("recording", "delete", sid)["deleted"] is True
    assert not (appliance.data_dir / "recordings" / sid).exists()
    assert appliance.get(f"/vod/{sid}/index.m3u8").status == 404
    missing = appliance.cli("recording", "show", sid, check=False)
    assert missing.returncode != 0 and "no such recording" in missing.stderr
