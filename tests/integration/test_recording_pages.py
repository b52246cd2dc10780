"""The watch page follows a broadcast in Chromium (hls.js): waiting → live → ended → VOD.

Real parts: ``hearth serve``, ffmpeg publishing, Debian's Chromium via Playwright.
"""

from __future__ import annotations

import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

pytestmark = pytest.mark.skipif(FFMPEG is None or CHROMIUM is None,
                                reason="needs ffmpeg and chromium")

VIDEO = "document.getElementById('player')"


def test_page_switches_to_live_then_offers_and_plays_the_recording(
        appliance: ApplianceProcess) -> None:
    """Opened before going live: the badge turns LIVE with the player (LIVE indicator, unmute
    prompt, never "0 watching"); after the end: "Ended · watch the recording"; a page opened
    then plays the VOD from the start, and seeking to the middle plays on from there."""
    created = appliance.create_stream("pages")
    sid = created["id"]
    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{appliance.base}/watch/{sid}")
        page.wait_for_function(
            "() => document.getElementById('player-status').textContent.includes('Waiting')",
            timeout=15_000)
        assert page.text_content("h1 .badge") == "NOT LIVE YET"
        assert page.is_hidden("#viewers")
        icon = page.get_attribute("link[rel=icon]", "href")
        assert icon and appliance.get(icon).headers["Content-Type"] == "image/svg+xml"
        pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 8)
        try:
            page.wait_for_function(f"() => {VIDEO}.currentTime > 1", timeout=30_000)
            assert page.text_content("h1 .badge") == "LIVE"
            assert page.is_visible("#live-indicator")
            assert int(page.text_content("#viewers") or "0") >= 1
            page.wait_for_selector("#unmute", state="visible", timeout=10_000)
            page.click("#unmute")
            assert page.evaluate(f"{VIDEO}.muted") is False
            page.wait_for_function("() => document.getElementById('unmute').hidden")
        finally:
            pub.wait(30)
        # The publisher stopped; after the grace window the page offers the recording.
        page.wait_for_selector("#watch-recording", timeout=30_000)
        assert "Ended" in (page.text_content("#player-status") or "")
        assert page.text_content("h1 .badge") == "ENDED"
        page.click("#watch-recording")
        page.wait_for_function("() => window.hearthPlayer.mode === 'vod'")
        assert not errors, errors

    with chromium_page() as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{appliance.base}/watch/{sid}")
        page.wait_for_function("() => window.hearthPlayer.mode === 'vod'", timeout=15_000)
        page.wait_for_function(f"() => {VIDEO}.duration > 0 && {VIDEO}.currentTime > 0.5",
                               timeout=20_000)
        duration = page.evaluate(f"{VIDEO}.duration")
        assert abs(duration - 8.0) < 1.0, duration  # the whole broadcast, not a 12 s loop
        assert "recording" in (page.text_content("#player-status") or "")
        assert page.is_hidden("#live-indicator")
        mid = duration / 2
        page.evaluate(f"{VIDEO}.currentTime = {mid}")
        page.wait_for_function(f"() => !{VIDEO}.seeking && {VIDEO}.currentTime > {mid} + 0.5",
                               timeout=20_000)
        assert not errors, errors
