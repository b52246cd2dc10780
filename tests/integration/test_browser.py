"""The watch page plays in a real browser: Debian's Chromium via Playwright, hls.js inside."""

from __future__ import annotations

import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

pytestmark = pytest.mark.skipif(FFMPEG is None or CHROMIUM is None,
                                reason="needs ffmpeg and chromium")


def test_watch_page_plays_in_chromium(appliance: ApplianceProcess) -> None:
    """hls.js in Chromium plays the stream: currentTime advances, frames are decoded."""
    created = appliance.create_stream("<b>browser</b> test")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 25)
    try:
        with chromium_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append("dialog: " + d.message))
            page.goto(f"{appliance.base}/watch/{sid}")
            assert page.text_content("#title") == "<b>browser</b> test"
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 2", timeout=30_000)
            t1 = page.evaluate("document.getElementById('player').currentTime")
            page.wait_for_timeout(2000)
            t2 = page.evaluate("document.getElementById('player').currentTime")
            assert t2 > t1 + 1.0, (t1, t2)
            quality = page.evaluate(
                "document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames")
            assert quality > 30
            assert page.evaluate("document.getElementById('player').videoWidth") == 320
            assert page.evaluate("!!window.hearthPlayer.hls") is True
            # The page counted itself as a viewer through the playlist session token.
            assert appliance.get(f"/api/streams/{sid}").json()["viewers"] >= 1
            assert not errors, errors
            page.goto(f"{appliance.base}/")
            assert page.locator(f"a[href='/watch/{sid}']").count() == 1
            assert "LIVE" in page.text_content("main")
    finally:
        pub.kill()
        pub.wait(10)


def test_watch_page_waits_for_a_stream_that_is_not_live(appliance: ApplianceProcess) -> None:
    """Opened before OBS starts, the page waits and then plays without a reload."""
    created = appliance.create_stream("later")
    with chromium_page() as page:
        page.goto(f"{appliance.base}/watch/{created['id']}")
        page.wait_for_function(
            "() => document.getElementById('player-status').textContent.includes('Waiting')",
            timeout=15_000)
        pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 20)
        try:
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1", timeout=30_000)
        finally:
            pub.kill()
            pub.wait(10)
