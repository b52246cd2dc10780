"""SRT in, LL-HLS out, through the real ``hearth serve`` and real SRT callers (the ffmpeg CLI,
libsrt inside Debian's FFmpeg): issue 16 §3, docs/threat-model.md §srt."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.srt import libsrt
from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.hls import Playlist, demux, download, fetch_playlist
from tests.helpers.publishers import (
    FFMPEG,
    GST_LAUNCH,
    ffmpeg_publish_srt,
    gstreamer_publish_srt,
    make_ts_file,
)


def _libsrt_missing() -> bool:
    try:
        libsrt.load()
    except libsrt.SrtUnavailable:
        return True
    return False


pytestmark = [
    pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed"),
    pytest.mark.skipif(_libsrt_missing(), reason="libsrt 1.5 not installed"),
]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_ts_file(str(tmp_path_factory.mktemp("srt") / "src.ts"), seconds=3.0)


@pytest.fixture(scope="module")
def app() -> Iterator[ApplianceProcess]:
    """One appliance with SRT on for the module (grace 4 s, SRT idle timeout 3 s)."""
    path = short_tmpdir()
    port = _free_udp_port()
    proc = ApplianceProcess(path, env_overrides={
        "HEARTH_SRT_ENABLED": "1", "HEARTH_SRT_HOST": "127.0.0.1", "HEARTH_SRT_PORT": str(port),
        "HEARTH_SRT_IDLE_TIMEOUT": "3",
        # The asyncio debug mode's slow-callback accounting is not under test here.
        "PYTHONASYNCIODEBUG": "",
    })
    proc.start()
    proc.srt_port = port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def _url(app: ApplianceProcess, key: str) -> str:
    return f"srt://127.0.0.1:{app.srt_port}?streamid={key}"  # type: ignore[attr-defined]


def _channel(app: ApplianceProcess, title: str) -> dict[str, Any]:
    created: dict[str, Any] = app.cli_json("channel", "create", "--title", title)
    return created


def _playlist(app: ApplianceProcess, channel_id: str, segments: int) -> tuple[Playlist, str]:
    url = f"{app.base}/hls/{channel_id}/index.m3u8"

    def ready() -> tuple[Playlist, str] | None:
        got = fetch_playlist(url)
        return got if got and len(got[0].segments) >= segments else None

    result: tuple[Playlist, str] = app.wait_for(ready, timeout=30)
    return result


def _live(app: ApplianceProcess, channel_id: str) -> dict[str, Any] | None:
    """The channel's live broadcast (public JSON: cheaper than a CLI process), or None."""
    r = app.get(f"/api/streams/{channel_id}")
    data: dict[str, Any] = r.json() if r.status == 200 else {}
    return data if data.get("status") == "live" else None


def _check_decodes(pl: Playlist, url: str) -> None:
    """The LL-HLS output demuxes and decodes in PyAV as H.264 + AAC, time going forward."""
    assert pl.map_uri is not None
    last = -1.0
    for uri, _duration, _disc, map_uri in pl.segments:
        d = demux(download(url, map_uri or pl.map_uri) + download(url, uri))
        assert d.video_codec == "h264" and d.width == 320
        assert d.audio_codec == "aac" and d.sample_rate == 48000
        assert d.video_dts == sorted(d.video_dts) and d.video_dts[0] > last
        assert d.decoded_video_frames >= len(d.video_dts) - 2
        last = d.video_dts[-1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_publishers_on_one_port_and_garbage_udp(app: ApplianceProcess, ts_file: str) -> None:
    """Two SRT callers (ffmpeg and GStreamer) to two channels share the port; each channel's
    LL-HLS decodes in PyAV; a flood of garbage datagrams to the port leaves both publishing."""
    a, b = _channel(app, "SRT one"), _channel(app, "SRT two")
    assert a["srt_url"] == _url(app, a["stream_key"])  # shown with the key, once
    # Two different SRT callers: ffmpeg (libavformat + libsrt) and GStreamer's srtsink.
    pubs = [ffmpeg_publish_srt(a["srt_url"], ts_file),
            gstreamer_publish_srt(b["srt_url"]) if GST_LAUNCH
            else ffmpeg_publish_srt(b["srt_url"], ts_file)]
    try:
        for ch in (a, b):
            pl, url = _playlist(app, ch["id"], 1)
            _check_decodes(pl, url)
        live = {ch["id"]: _live(app, ch["id"]) for ch in (a, b)}
        assert all(live.values())
        before = {cid: len(_playlist(app, cid, 1)[0].segments) for cid in live}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(3000):
                # Random bytes, and datagrams shaped like SRT control packets (handshakes).
                payload = os.urandom(64 + i % 1400) if i % 2 else (
                    b"\x80\x00\x00\x00" + os.urandom(60))
                s.sendto(payload, ("127.0.0.1", app.srt_port))  # type: ignore[attr-defined]
        for cid, count in before.items():
            _playlist(app, cid, count + 1)  # still growing after the flood
            now = _live(app, cid)
            assert now is not None and now["id"] == live[cid]["id"]  # type: ignore[index]
        assert all(p.poll() is None for p in pubs), "a publisher was dropped"
        assert "hearth_srt_connections 2" in app.get("/metrics").text
        status = app.cli("status").stdout
        srt = _url(app, "KEY")
        assert f"SRT         {srt}: 2 connections" in status
    finally:
        for p in pubs:
            _stop(p)


def test_wrong_streamid_is_refused_and_counted_like_rtmp(app: ApplianceProcess,
                                                         ts_file: str) -> None:
    ch = _channel(app, "SRT refused")
    wrong = ch["stream_key"][:-4] + ("AAAA" if not ch["stream_key"].endswith("AAAA") else "BBBB")
    attempts = [ffmpeg_publish_srt(_url(app, key), ts_file, loops=0) for key in (
        wrong, "not-a-key", "#!::r=" + wrong + ",m=publish", "read:" + ch["stream_key"],
        wrong, "publish:" + wrong)]  # at once: each is refused in its handshake
    for p in attempts:
        _, err = p.communicate(timeout=30)
        assert p.returncode != 0
        assert b"failed" in err or b"rejected" in err.lower(), err
    assert _live(app, ch["id"]) is None
    # Five wrong keys from one address block it for wrong guesses, as on RTMP (a request to
    # read is refused but not counted as a guess).
    blocks = app.wait_for(lambda: app.cli_json("block", "list"))
    assert any(bl["address"] == "127.0.0.1" for bl in blocks)
    assert "publish refused from 127.0.0.1" in app.log()
    assert wrong not in app.log()  # keys are never logged
    # The owner's key still works from the blocked address.
    p = ffmpeg_publish_srt(_url(app, ch["stream_key"]), ts_file)
    try:
        assert app.wait_for(lambda: _live(app, ch["id"]))
    finally:
        _stop(p)
        app.cli("block", "lift", "127.0.0.1")


def test_disconnect_grace_reconnect_continues(app: ApplianceProcess, ts_file: str) -> None:
    """The SRT publisher goes away and comes back within the grace window: the same broadcast
    continues (one reconnect), and the playlist carries a discontinuity; a key rotation then
    drops it."""
    ch = _channel(app, "SRT reconnect")
    key = ch["stream_key"]
    first = ffmpeg_publish_srt(_url(app, "#!::r=" + key + ",m=publish"), ts_file)
    try:
        _playlist(app, ch["id"], 1)
        broadcast = _live(app, ch["id"])
        assert broadcast is not None
    finally:
        _stop(first)
    gone = f"[{ch['id']}] ingest.disconnected: publisher gone (SRT connection lost"
    app.wait_for(lambda: gone in app.log(), timeout=15)
    second = ffmpeg_publish_srt(_url(app, "publish:" + key), ts_file)
    try:
        url = f"{app.base}/hls/{ch['id']}/index.m3u8"

        def resumed() -> tuple[Playlist, str] | None:
            # A complete segment from the second session: the one after the discontinuity.
            got = fetch_playlist(url)
            return got if got and any(d for _u, _d, d, _m in got[0].segments) else None

        pl, url = app.wait_for(resumed, timeout=30)
        assert pl.text.count("#EXT-X-DISCONTINUITY\n") + pl.discontinuity_sequence == 1
        again = _live(app, ch["id"])
        assert again is not None and again["id"] == broadcast["id"]
        assert f"(broadcast {broadcast['id']} continues)" in app.log()
        _check_decodes(pl, url)
        # Rotating the key drops the SRT publisher at once, as it does an RTMP one.
        app.cli_json("channel", "rotate-key", ch["id"])
        app.wait_for(lambda: second.poll() is not None, timeout=15)
    finally:
        _stop(second)


def test_srt_flag_in_config_show(tmp_path: Path) -> None:
    """``--srt`` shows up in ``config show`` with its origin."""
    app = ApplianceProcess(tmp_path)
    out = app.cli("config", "show", "--srt", "127.0.0.1:9999", "--json").stdout
    assert '"srt.port"' in out and "9999" in out and "--srt" in out


def test_a_publisher_that_does_not_send_mpegts_is_dropped(app: ApplianceProcess,
                                                          ts_file: str) -> None:
    """The right key but FLV instead of MPEG-TS: refused with a reason the operator reads."""
    ch = _channel(app, "SRT not TS")
    p = subprocess.Popen(
        [str(FFMPEG), "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop",
         "-1", "-i", ts_file, "-c", "copy", "-f", "flv", ch["srt_url"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        app.wait_for(lambda: f"[{ch['id']}] ingest.malformed_media: the SRT publisher does not "
                             "send MPEG-TS" in app.log(), timeout=20)
        app.wait_for(lambda: p.poll() is not None, timeout=15)  # the caller saw it end
    finally:
        _stop(p)
