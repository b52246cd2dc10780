"""Players that are not ours against the real ``hearth serve``: the ffmpeg CLI joining in the
first GOP, a publisher that stops sending keyframes, hls.js recovering from a bad join."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import m3u8
import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.helpers.strict_hls import assert_strictly_valid

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
GST_LAUNCH = shutil.which("gst-launch-1.0")


def _first_part(app: ApplianceProcess, sid: str) -> float:
    """Block (as an LL client) until the first part exists; returns when it did."""
    def ready() -> bool:
        r = app.get(f"/hls/{sid}/media.m3u8?_HLS_msn=0&_HLS_part=0", timeout=10)
        return r.status == 200 and "#EXT-X-PART:" in r.text

    app.wait_for(ready, timeout=20, interval=0.02)
    return time.monotonic()


def test_plain_players_join_early_and_play_the_readme_url(appliance: ApplianceProcess) -> None:
    """Issue 11 items 3 and 5: the ffmpeg CLI opening the README URL (multivariant → media
    playlist) while only parts exist is held until the first segment instead of failing with
    "Empty segment", and decodes; GStreamer's playbin (hlsdemux, joining at once) and playbin3
    (hlsdemux2, joining once three segments exist: it starts three target durations back and
    stalls on a shorter live playlist, docs/deployment.md) play to EXT-X-ENDLIST."""
    created = appliance.create_stream("first gop")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 14, gop=50)
    url = f"{appliance.base}/hls/{sid}/index.m3u8"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    gst: dict[str, subprocess.Popen[str]] = {}
    client: subprocess.Popen[bytes] | None = None
    try:
        _first_part(appliance, sid)
        r = appliance.get(f"/hls/{sid}/media.m3u8?_HLS_msn=0&_HLS_part=0")
        assert "#EXTINF" not in r.text, "the join must happen inside the first GOP"
        assert FFMPEG is not None
        client = subprocess.Popen(
            [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "info", "-i", url, "-t", "3",
             "-f", "null", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if GST_LAUNCH is not None:
            gst["playbin"] = _gst(GST_LAUNCH, "playbin", url, env)
            appliance.wait_for(
                lambda: (appliance.playlist(sid) or "").count("#EXTINF") >= 3, timeout=20)
            gst["playbin3"] = _gst(GST_LAUNCH, "playbin3", url, env)
        _, err = client.communicate(timeout=60)
        log = err.decode(errors="replace")
        assert client.returncode == 0, log[-3000:]
        assert "Empty segment" not in log and "Empty playlist" not in log, log[-3000:]
        frames = [int(x) for x in re.findall(r"frame=\s*(\d+)", log)]
        assert frames and frames[-1] >= 25, log[-3000:]
        for name, proc in gst.items():
            out, gst_err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (name, out[-1500:], gst_err[-1500:])
            assert "Got EOS" in out and "ERROR" not in out + gst_err, (name, out[-1500:])
    finally:
        for proc in [*gst.values(), *([client] if client else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        pub.kill()
        pub.wait(10)


def _gst(launch: str, element: str, url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [launch, element, f"uri={url}", "video-sink=fakesink", "audio-sink=fakesink"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_publisher_without_keyframes_still_makes_segments(appliance: ApplianceProcess) -> None:
    """Issue 10 item 7: one IDR and then none. Segments keep completing at the fixed target
    (so memory is bounded by retention and plain players get a playlist), marked as not
    independent, and the operator is told why with the setting that fixes it."""
    created = appliance.create_stream("no keyframes")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 16, gop=100_000)
    try:
        def segments() -> str | None:
            text = appliance.playlist(sid)
            return text if text and text.count("#EXTINF") >= 4 else None

        text = appliance.wait_for(segments, timeout=30, interval=0.5)
        pl = m3u8.loads(text)
        assert pl.target_duration == 2
        assert all(round(s.duration) <= 2 for s in pl.segments if s.duration is not None)
        assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text
        assert_strictly_valid([text])
        show = appliance.wait_for(lambda: (s := appliance.cli_json("stream", "show", sid))
                                  and s["ingest"] and s["ingest"]["verdict"] == "warn" and s)
        assert any("Keyframe Interval" in r for r in show["ingest"]["verdict_reasons"]), show
    finally:
        pub.kill()
        pub.wait(10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_watch_page_recovers_from_a_bad_join(appliance: ApplianceProcess) -> None:
    """Issue 11 item 2/8: a player that ends up seconds behind live (the 6 s stall seen with
    drifting PDT) is brought back within the latency bound by watch.js."""
    created = appliance.create_stream("latency")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 45, gop=50)
    try:
        _first_part(appliance, sid)
        with chromium_page() as page:
            page.goto(f"{appliance.base}/watch/{sid}?mode=llhls")
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 11", timeout=40_000)
            assert not page.evaluate("() => window.hearthPlayer.latencyJumps")
            # Fall 6 s behind, as a stalled join did (hls.js's rate catch-up gives up beyond
            # target latency + one target duration, so only watch.js's bound brings it back).
            was = page.evaluate("() => { const v = document.getElementById('player');"
                                " const t = v.currentTime; v.currentTime = t - 6; return t; }")
            assert page.evaluate("() => document.getElementById('player').currentTime") < was - 4
            page.wait_for_function(
                "() => { const h = window.hearthPlayer.hls;"
                " return h.latency < h.targetLatency + 3.0 && window.hearthPlayer.latencyJumps; }",
                timeout=15_000)
            # The page's beacon and media requests count this player once.
            assert appliance.get(f"/api/streams/{sid}").json()["viewers"] == 1
    finally:
        pub.kill()
        pub.wait(10)
