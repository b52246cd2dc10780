"""A channel's week, in Chromium (hls.js) and PyAV: the channel page waits, switches to the
player when the broadcast starts, goes back to waiting; a second publish past the grace window
is a second broadcast; both recordings play to the end and seek; the front page lists live,
upcoming and recorded broadcasts with thumbnails.

Real parts: ``hearth serve``, ffmpeg publishing, Debian's Chromium via Playwright, FFmpeg's
HLS demuxer (PyAV) over HTTP.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.integration.test_recordings import play_url

pytestmark = pytest.mark.skipif(FFMPEG is None or CHROMIUM is None,
                                reason="needs ffmpeg and chromium")

VIDEO = "document.getElementById('player')"


def _ended(app: ApplianceProcess, channel: str, n: int) -> list[dict[str, object]]:
    got: list[dict[str, object]] = app.wait_for(
        lambda: (bs := app.cli_json("broadcast", "list", "--channel", channel))
        and sum(1 for b in bs if b["status"] == "ended" and b["recording_url"]) >= n and bs,
        timeout=30)
    return got


def test_channel_week_pages_and_recordings(appliance: ApplianceProcess) -> None:
    """The issue's journey, end to end (see module docstring)."""
    ch = appliance.cli_json("channel", "create", "--title", "Friday <jam>")
    cid, key = ch["id"], ch["stream_key"]
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    appliance.cli("broadcast", "plan", "--channel", cid, "--title", "Next week's jam",
                  "--starts", tomorrow)
    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{appliance.base}/c/{cid}")
        page.wait_for_function(
            "() => document.getElementById('player-status').textContent.includes('Waiting')",
            timeout=15_000)
        assert page.text_content("h1 .badge") == "NOT LIVE YET"
        assert "Next week's jam" in (page.text_content(".next") or "")
        icon = page.get_attribute("link[rel=icon]", "href")
        assert icon and appliance.get(icon).headers["Content-Type"] == "image/svg+xml"
        pub = ffmpeg_publish(f"{appliance.rtmp_base}/{key}", 6)
        try:
            # Opened before the start: the page switches to the player by itself.
            page.wait_for_function(f"() => {VIDEO}.currentTime > 1", timeout=30_000)
            assert page.text_content("h1 .badge") == "LIVE"
            assert page.is_visible("#live-indicator")  # not "0:13 / 0:13"
            assert int(page.text_content("#viewers") or "0") >= 1  # never "0 watching"
            page.wait_for_selector("#unmute", state="visible", timeout=10_000)
            page.click("#unmute")
            assert page.evaluate(f"{VIDEO}.muted") is False
        finally:
            pub.wait(30)
        # Past the grace window the channel page waits for the next broadcast again.
        page.wait_for_function("() => document.querySelector('h1 .badge').textContent"
                               " === 'NOT LIVE YET'", timeout=30_000)
        assert not errors, errors
    first = _ended(appliance, cid, 1)
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{key}", 4)  # same key, a new broadcast
    assert pub.wait(30) == 0
    broadcasts = _ended(appliance, cid, 2)
    ended = sorted((b for b in broadcasts if b["status"] == "ended"),
                   key=lambda b: float(b["started_at"]))  # type: ignore[arg-type]
    assert len(ended) == 2 and ended[0]["id"] != ended[1]["id"]
    assert ended[0]["id"] == next(b["id"] for b in first if b["status"] == "ended")
    for b, published in zip(ended, (6.0, 4.0), strict=True):
        seconds, _ = play_url(f"{appliance.base}/vod/{b['id']}/index.m3u8")
        assert abs(seconds - published) < 1.0, (b["id"], seconds)
        assert b["thumbnail_url"]

    with chromium_page() as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # An ended broadcast's page plays its recording from the start, seekable.
        page.goto(f"{appliance.base}/watch/{ended[0]['id']}")
        page.wait_for_function("() => window.hearthPlayer.mode === 'vod'", timeout=15_000)
        page.wait_for_function(f"() => {VIDEO}.duration > 0 && {VIDEO}.currentTime > 0.5",
                               timeout=20_000)
        duration = page.evaluate(f"{VIDEO}.duration")
        assert abs(duration - 6.0) < 1.0, duration  # the whole broadcast, not a 12 s loop
        assert "Ended" in (page.text_content("#player-status") or "")
        assert page.text_content("h1 .badge") == "ENDED"
        mid = duration / 2
        page.evaluate(f"{VIDEO}.currentTime = {mid}")
        page.wait_for_function(f"() => !{VIDEO}.seeking && {VIDEO}.currentTime > {mid} + 0.5",
                               timeout=20_000)
        # The front page: upcoming and recorded broadcasts, with our thumbnails.
        page.goto(f"{appliance.base}/")
        assert "Next week's jam" in (page.text_content(".streams.upcoming") or "")
        recorded = page.locator(".streams.ended li.card")
        assert recorded.count() == 2
        srcs = {page.get_attribute(f".streams.ended a[href='/watch/{b['id']}'] img", "src")
                for b in ended}
        assert srcs == {f"/thumb/{b['id']}.jpg" for b in ended}
        assert page.text_content(".streams.ended .channel") == "Friday <jam>"  # escaped
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth)")
        # The channel page lists both past broadcasts.
        page.goto(f"{appliance.base}/c/{cid}")
        assert page.locator(".past li.card").count() == 2
        assert not errors, errors
