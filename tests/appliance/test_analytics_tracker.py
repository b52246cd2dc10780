"""Analytics sessionisation on an injected clock: simulated viewers with known join and leave
times give the exact concurrency per minute, peak, unique viewers and watch time."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analytics.tracker import AnalyticsTracker, DailyKeys, Gaps, TallyDelta
from appliance.analytics.ua import device_class, ua_bucket
from appliance.api.schema import DeviceClass, PlayerKind

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute boundary
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Viewer:
    session: str
    join: float  # seconds after T0
    leave: float
    kind: PlayerKind = PlayerKind.HLS
    address: str = "198.51.100.1"
    ua: str = FIREFOX


def simulate(viewers: list[Viewer], *, step: float = 1.0, flush_every: float = 60.0,
             end: float | None = None) -> list[TallyDelta]:
    """Each viewer requests every ``step`` s from join to leave inclusive; the tracker is
    flushed every ``flush_every`` s and finally at ``end`` (the broadcast's end)."""
    clock = Clock()
    tracker = AnalyticsTracker(clock, gaps=Gaps(hls=6.0, webrtc=15.0, vod=60.0))
    last = max(v.leave for v in viewers)
    end = last + 1 if end is None else end
    deltas: list[TallyDelta] = []
    t = 0.0
    next_flush = flush_every
    while t <= end:
        clock.now = T0 + t
        for v in viewers:
            if v.join <= t <= v.leave and (t - v.join) % step == 0:
                tracker.hit("b1", v.session, v.kind, v.address, v.ua)
        if t >= next_flush:
            deltas += tracker.flush()
            next_flush += flush_every
        t += 1.0
    clock.now = T0 + end
    final = tracker.end("b1")
    if final is not None:
        deltas.append(final)
    return deltas


@dataclass
class Totals:
    minutes: dict[int, int]
    peak: int
    peak_at: float | None
    unique: int
    sessions: dict[PlayerKind, int]
    watch: dict[PlayerKind, float]
    viewers: dict[tuple[PlayerKind, DeviceClass], int]


def total(deltas: list[TallyDelta]) -> Totals:
    """Add deltas up as the Store does (sums; minute rows and peak are maxima)."""
    out = Totals({}, 0, None, 0, {}, {}, {})
    for d in deltas:
        for minute, n in d.minutes:
            out.minutes[minute] = max(out.minutes.get(minute, 0), n)
        if d.peak > out.peak:
            out.peak, out.peak_at = d.peak, d.peak_at
        elif d.peak and d.peak == out.peak and d.peak_at is not None:
            out.peak_at = min(out.peak_at or d.peak_at, d.peak_at)
        out.unique += d.unique_viewers
        for (kind, device), s in d.split.items():
            out.sessions[kind] = out.sessions.get(kind, 0) + s.sessions
            out.watch[kind] = out.watch.get(kind, 0.0) + s.watch_seconds
            out.viewers[(kind, device)] = out.viewers.get((kind, device), 0) + s.viewers
    return out


def test_known_join_and_leave_times_give_exact_figures() -> None:
    # a: 0–150 s; b: 30–90 s; c: 70–200 s; d (same address and UA as a, another tab via a
    # distinct session key): 100–130 s. Concurrency: minute 0 → 2 (a+b from 30 s),
    # minute 1 → 3 (a, b, c between 70 and 90 s; d joins at 100 after b left),
    # minute 2 → 3 (a, c, d from 120 to 130), minute 3 → 1 (c).
    deltas = simulate([Viewer("a", 0, 150), Viewer("b", 30, 90, address="198.51.100.2"),
                       Viewer("c", 70, 200, address="198.51.100.3", ua=IPHONE),
                       Viewer("d", 100, 130)])
    t = total(deltas)
    m = int(T0)
    assert t.minutes == {m: 2, m + 60: 3, m + 120: 3, m + 180: 1}
    assert t.peak == 3 and t.peak_at == T0 + 70
    assert t.unique == 3  # a and d are one viewer (address + UA bucket)
    assert t.sessions == {PlayerKind.HLS: 4}
    assert t.watch[PlayerKind.HLS] == 150 + 60 + 130 + 30
    assert t.viewers == {(PlayerKind.HLS, DeviceClass.DESKTOP): 2,
                         (PlayerKind.HLS, DeviceClass.MOBILE): 1}


def test_open_minutes_are_handed_out_as_lower_bounds() -> None:
    """A flush mid-broadcast writes the minutes so far (a crash then loses none); the final
    figure only ever raises them."""
    clock = Clock()
    tracker = AnalyticsTracker(clock, gaps=Gaps(hls=6.0))
    for t in range(0, 31, 2):
        clock.now = T0 + t
        tracker.hit("b1", "a", PlayerKind.HLS, "198.51.100.1", FIREFOX)
        if t >= 20:
            tracker.hit("b1", "b", PlayerKind.HLS, "198.51.100.2", IPHONE)
    (mid,) = tracker.flush()
    assert mid.minutes == [(int(T0), 2)] and mid.peak == 2 and mid.peak_at == T0 + 20
    clock.now = T0 + 62
    tracker.hit("b1", "a", PlayerKind.HLS, "198.51.100.1", FIREFOX)  # a gap: a new session
    last = tracker.end("b1")
    assert last is not None
    assert total([mid, last]).minutes == {int(T0): 2, int(T0) + 60: 1}


def test_a_gap_longer_than_the_session_gap_starts_a_new_session() -> None:
    clock = Clock()
    tracker = AnalyticsTracker(clock, gaps=Gaps(hls=6.0))
    for t in (0, 5, 10, 30, 35):  # silence of 20 s > 6 s between 10 and 30
        clock.now = T0 + t
        tracker.hit("b1", "s", PlayerKind.HLS, "a", FIREFOX)
    d = tracker.end("b1")
    assert d is not None
    split = d.split[(PlayerKind.HLS, DeviceClass.DESKTOP)]
    assert (split.sessions, split.viewers, split.watch_seconds) == (2, 1, 15.0)
    assert d.unique_viewers == 1


def test_player_kinds_bots_and_recordings_are_apart() -> None:
    clock = Clock()
    tracker = AnalyticsTracker(clock)
    for t in range(0, 31):
        clock.now = T0 + t
        tracker.hit("b1", "ll", PlayerKind.HLS, "a1", FIREFOX)
        if t == 2:
            tracker.low_latency("b1", "ll")  # a blocking reload: LL-HLS from now on
        tracker.hit("b1", "web", PlayerKind.WEBRTC, "a2", IPHONE)
        tracker.hit("b1", "bot", PlayerKind.HLS, "a3", GOOGLEBOT)
        tracker.hit("b1", "v:rec", PlayerKind.VOD, "a4", FIREFOX)
    assert tracker.current("b1") == 2  # bots and recording playback are not live viewers
    tracker.leave("b1", "web")  # peer closed at 30 s
    d = tracker.end("b1")
    assert d is not None
    assert {k: (s.sessions, s.watch_seconds) for k, s in d.split.items()} == {
        (PlayerKind.LLHLS, DeviceClass.DESKTOP): (1, 30.0),
        (PlayerKind.WEBRTC, DeviceClass.MOBILE): (1, 30.0),
        (PlayerKind.HLS, DeviceClass.BOT): (1, 30.0),
        (PlayerKind.VOD, DeviceClass.DESKTOP): (1, 30.0)}
    assert d.unique_viewers == 2 and d.peak == 2
    assert d.minutes == [(int(T0), 2)]


def test_an_upgrade_after_a_flush_moves_the_session_to_llhls() -> None:
    clock = Clock()
    tracker = AnalyticsTracker(clock)
    tracker.hit("b1", "s", PlayerKind.HLS, "a", FIREFOX)
    clock.now = T0 + 4
    tracker.hit("b1", "s", PlayerKind.HLS, "a", FIREFOX)
    first = tracker.flush()
    tracker.low_latency("b1", "s")
    clock.now = T0 + 10
    tracker.hit("b1", "s", PlayerKind.HLS, "a", FIREFOX)
    last = tracker.end("b1")
    assert last is not None
    t = total([*first, last])
    assert t.sessions == {PlayerKind.HLS: 0, PlayerKind.LLHLS: 1}
    assert t.watch == {PlayerKind.HLS: 0.0, PlayerKind.LLHLS: 10.0}


def test_hits_after_the_end_are_not_live_viewers() -> None:
    clock = Clock()
    tracker = AnalyticsTracker(clock)
    tracker.hit("b1", "s", PlayerKind.HLS, "a", FIREFOX)
    tracker.end("b1")
    tracker.hit("b1", "s2", PlayerKind.HLS, "a", FIREFOX)
    assert tracker.current("b1") == 0
    assert all(d.empty() for d in tracker.flush())


def test_chat_messages_and_distinct_chatters() -> None:
    tracker = AnalyticsTracker(Clock())
    for pubkey in ("aa", "bb", "aa", "aa"):
        tracker.chat("b1", pubkey)
    (d,) = tracker.flush()
    assert (d.chat_messages, d.chatters) == (4, 2)


def test_memory_is_bounded() -> None:
    tracker = AnalyticsTracker(Clock(), max_tallies=2, max_sessions=3)
    for i in range(10):
        tracker.hit("b1", f"s{i}", PlayerKind.HLS, f"a{i}", FIREFOX)
        tracker.hit(f"x{i}", "s", PlayerKind.VOD, "a", FIREFOX)
    assert len(tracker.tallies) == 2 and len(tracker.tallies["b1"].sessions) == 3
    assert tracker.tallies["b1"].overflow == 7 and tracker.overflow == 9


def test_viewer_keys_are_opaque_and_change_daily() -> None:
    clock = Clock()
    keys = DailyKeys(clock)
    k = keys.viewer("203.0.113.9", ua_bucket(FIREFOX))
    assert k == keys.viewer("203.0.113.9", ua_bucket(FIREFOX))
    assert "203" not in k and "firefox" not in k.lower()
    clock.now += 86400
    assert keys.viewer("203.0.113.9", ua_bucket(FIREFOX)) != k


# ---- invariants ------------------------------------------------------------------------------


viewer_st = st.builds(
    lambda s, join, length, kind, ua: Viewer(f"s{s}", join, join + length, kind,
                                             f"10.0.0.{s % 5}", ua),
    st.integers(0, 30), st.integers(0, 200), st.integers(0, 200),
    st.sampled_from([PlayerKind.HLS, PlayerKind.WEBRTC]),
    st.sampled_from([FIREFOX, IPHONE]))


@settings(max_examples=25, deadline=None)
@given(st.lists(viewer_st, min_size=1, max_size=8, unique_by=lambda v: v.session),
       st.sampled_from([7.0, 60.0, 1000.0]))
def test_invariants(viewers: list[Viewer], flush_every: float) -> None:
    t = total(simulate(viewers, step=2.0, flush_every=flush_every))
    # Peak is the largest minute figure and every minute is within [1, sessions].
    assert t.peak == max(t.minutes.values())
    assert all(1 <= n <= len(viewers) for n in t.minutes.values())
    # Watch time is the sum of the sessions' (last - first); each session is one join..leave
    # (requests every 2 s, gap 6 s/15 s) and its last request is the last even offset.
    expected = sum((v.leave - v.join) - (v.leave - v.join) % 2 for v in viewers)
    assert sum(t.watch.values()) == expected
    assert sum(t.sessions.values()) == len(viewers)
    assert t.unique == len({(v.address, ua_bucket(v.ua)) for v in viewers})
    # Flushing more or less often never changes the figures.
    once = total(simulate(viewers, step=2.0, flush_every=10_000.0))
    assert (once.minutes, once.peak, once.peak_at, once.unique, once.watch) == (
        t.minutes, t.peak, t.peak_at, t.unique, t.watch)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_ua_classification_never_raises(ua: str) -> None:
    assert isinstance(device_class(ua), DeviceClass)
    assert ua_bucket(ua)


UA_TABLE = [
    (FIREFOX, DeviceClass.DESKTOP),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", DeviceClass.DESKTOP),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15", DeviceClass.DESKTOP),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36", DeviceClass.DESKTOP),
    (IPHONE, DeviceClass.MOBILE),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36", DeviceClass.MOBILE),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", DeviceClass.TABLET),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36", DeviceClass.TABLET),
    ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/120.0 Mobile Safari/537.36", DeviceClass.TV),
    ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/4.0 Chrome/76.0 TV Safari/537.36", DeviceClass.TV),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0",
     DeviceClass.TV),
    ("AppleCoreMedia/1.0.0.21J354 (Apple TV; U; CPU OS 17_0 like Mac OS X; en_us)",
     DeviceClass.TV),
    ("Roku/DVP-12.5 (12.5.0.4180-46)", DeviceClass.TV),
    (GOOGLEBOT, DeviceClass.BOT),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/126.0.0.0 Safari/537.36", DeviceClass.BOT),
    ("curl/8.5.0", DeviceClass.BOT),
    ("Python/3.11 aiohttp/3.9.5", DeviceClass.BOT),
    ("facebookexternalhit/1.1", DeviceClass.BOT),
    ("Lavf/60.16.100", DeviceClass.OTHER),
    ("VLC/3.0.20 LibVLC/3.0.20", DeviceClass.OTHER),
    ("", DeviceClass.OTHER),
]


def test_ua_classification_table() -> None:
    assert [(ua, device_class(ua)) for ua, _ in UA_TABLE] == UA_TABLE
