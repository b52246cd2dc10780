"""The 30311 builder as a pure function of a small input (no relay, no database)."""

from __future__ import annotations

from appliance.domain import Broadcast, BroadcastStatus
from appliance.nostr.live_events import LiveEventInput, build_activity, live_event_input

HOST = "ab" * 32


def _stream(status: BroadcastStatus, **kw: object) -> Broadcast:
    fields: dict[str, object] = dict(
        id="s1", channel_id="c1", title="Title", summary="", tags=("music",), image="",
        status=status, created_at=1.0, starts=None, started_at=None, ended_at=None,
        peak_viewers=0, total_viewers=3)
    fields.update(kw)
    return Broadcast(**fields)  # type: ignore[arg-type]


def test_planned_live_ended_inputs() -> None:
    planned = live_event_input(_stream(BroadcastStatus.PLANNED), base_url="https://h",
                               webrtc=True, current_viewers=None, live_total=0)
    assert planned.status == "planned"
    assert planned.streaming == ("https://h/hls/s1/index.m3u8", "https://h/whep/s1")
    assert planned.total_participants is None and planned.current_participants is None
    live = live_event_input(_stream(BroadcastStatus.LIVE, started_at=100.0), base_url="https://h",
                            webrtc=False, current_viewers=2, live_total=7)
    assert (live.status, live.starts, live.current_participants,
            live.total_participants) == ("live", 100, 2, 7)
    ended = live_event_input(_stream(BroadcastStatus.ENDED, started_at=100.0, ended_at=200.0),
                             base_url="https://h", webrtc=True, current_viewers=None,
                             live_total=0)
    assert ended.streaming == () and ended.ends == 200


def test_build_activity_tags() -> None:
    inp = LiveEventInput(d="s1", status="live", title="T", streaming=("https://h/x.m3u8",),
                         watch_url="https://h/watch/s1")
    ev = build_activity(inp, host_pubkey=HOST, relays=("wss://a", "wss://b"),
                        pinned=[], created_at=5)
    assert ev.kind == 30311 and ev.created_at == 5
    assert ("p", HOST, "", "host") in ev.tags
    assert ("relays", "wss://a", "wss://b") in ev.tags
    assert ("alt", "Live stream: T at https://h/watch/s1") in ev.tags


def test_a_planned_broadcast_carries_its_planned_start_and_an_ended_one_its_recording() -> None:
    planned = live_event_input(_stream(BroadcastStatus.PLANNED, starts=5000.0),
                               base_url="https://h", webrtc=False, current_viewers=None,
                               live_total=0, recording="https://h/vod/s1/index.m3u8")
    assert (planned.starts, planned.recording) == (5000, None)  # no recording before the end
    live = live_event_input(_stream(BroadcastStatus.LIVE, starts=5000.0, started_at=5100.0),
                            base_url="https://h", webrtc=False, current_viewers=1, live_total=1)
    assert live.starts == 5100  # the real start once it happened
    ended = live_event_input(
        _stream(BroadcastStatus.ENDED, started_at=5100.0, ended_at=6000.0),
        base_url="https://h", webrtc=False, current_viewers=None, live_total=0,
        recording="https://h/vod/s1/index.m3u8")
    assert ended.recording == "https://h/vod/s1/index.m3u8"
    ev = build_activity(ended, host_pubkey=HOST, relays=(), pinned=[], created_at=7)
    assert ("recording", "https://h/vod/s1/index.m3u8") in ev.tags
