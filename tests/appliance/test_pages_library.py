"""Front page and channel page rendering: sections, thumbnails, escaping (pure functions)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from appliance.domain import Broadcast, BroadcastStatus
from appliance.pages import Card, channel_extra, discovery_page, watch_page

T = 1_700_000_000.0


def b(i: int, status: BroadcastStatus, title: str = "t", **kw: object) -> Broadcast:
    fields: dict[str, object] = dict(
        id=f"b{i:011d}", channel_id="c00000000001", title=title, summary="", tags=(),
        image="", status=status, created_at=T, starts=None, started_at=T, ended_at=None,
        peak_viewers=0, total_viewers=0)
    fields.update(kw)
    return Broadcast(**fields)  # type: ignore[arg-type]


def test_sections_and_order() -> None:
    cards = [
        Card(b(1, BroadcastStatus.LIVE, "Live one"), "Chan", viewers=3, thumbnail=True),
        Card(b(2, BroadcastStatus.PLANNED, "Later", starts=T + 7200), "Chan"),
        Card(b(3, BroadcastStatus.PLANNED, "Sooner", starts=T + 3600), "Chan"),
        Card(b(4, BroadcastStatus.ENDED, "Old", ended_at=T + 60), "Chan", recording=True),
        Card(b(5, BroadcastStatus.ENDED, "New", ended_at=T + 120), "Chan", recording=True,
             length=3725.0),
        Card(b(6, BroadcastStatus.ENDED, "Unrecorded", ended_at=T + 130), "Chan"),
    ]
    html = discovery_page(cards)
    assert html.index("Live one") < html.index("Upcoming") < html.index("Recent recordings")
    assert html.index("Sooner") < html.index("Later")
    assert html.index(">New<") < html.index(">Old<")
    assert "Unrecorded" not in html
    assert 'src="/thumb/b00000000001.jpg"' in html
    assert "3 watching · live for" in html
    assert "· 1:02:05 · recording" in html  # the recording's length, not the span + grace
    assert '<time datetime="2023-11-14T23:13:20Z">' in html


def test_no_zero_watching_on_cards() -> None:
    html = discovery_page([Card(b(1, BroadcastStatus.LIVE), "C", viewers=0)])
    assert "0 watching" not in html


@given(st.text(max_size=40), st.text(max_size=40))
def test_user_text_is_escaped(title: str, channel: str) -> None:
    cards = [Card(b(1, BroadcastStatus.LIVE, title), channel),
             Card(b(2, BroadcastStatus.ENDED, title, ended_at=T), channel, recording=True)]
    for html in (discovery_page(cards), channel_extra(cards[0], cards[1:])):
        assert not re.search(r"<(?!/?(a|ul|li|span|img|h1|h2|p|section|time|main|header|body|"
                             r"html|head|meta|title|link|script)\b|!doctype)", html, re.I)


def test_watch_page_config_for_a_broadcast_and_a_channel() -> None:
    ended = b(1, BroadcastStatus.ENDED, ended_at=T)
    html = watch_page(ended, 0, recording=True)
    assert "/vod/b00000000001/index.m3u8" in html and "/api/broadcasts/b00000000001" in html
    follow = watch_page(b(2, BroadcastStatus.LIVE), 1, play_id="c00000000001")
    assert "/api/channels/c00000000001" in follow and "&quot;follow&quot;" in follow
    assert "/vod/" not in follow


def test_30311_image_falls_back_to_the_thumbnail() -> None:
    """Issue 9 §5: the keyframe thumbnail is the 30311 ``image`` when the operator set none."""
    from appliance.nostr.live_events import live_event_input

    live = b(1, BroadcastStatus.LIVE)
    inp = live_event_input(live, base_url="http://h", webrtc=False, current_viewers=1,
                           live_total=1, thumbnail="http://h/thumb/b00000000001.jpg")
    assert inp.image == "http://h/thumb/b00000000001.jpg"
    own = b(2, BroadcastStatus.LIVE, image="https://img.example/x.png")
    inp = live_event_input(own, base_url="http://h", webrtc=False, current_viewers=1,
                           live_total=1, thumbnail="http://h/thumb/b00000000002.jpg")
    assert inp.image == "https://img.example/x.png"
