"""In-memory sessionisation of viewers into per-broadcast tallies (no I/O, injected clock).

The request path calls :meth:`AnalyticsTracker.hit` (a dict lookup and two float stores for a
known session); :meth:`AnalyticsTracker.flush` is called about once a minute and at a
broadcast's end and returns :class:`TallyDelta` values: what the Store should *add* to the
persisted aggregates. Deltas are additive (and minute rows are maxima), so a restart loses
nothing that was flushed and the figures of a broadcast that continues after a restart add up.

Definitions (docs/analytics.md):

* A *session* is one player's continuous watching: its requests (media objects, beacons,
  WebRTC consent) with no silence longer than the session's gap (a few HLS target durations,
  a minute for recordings; a WebRTC session also ends when its peer closes). It lasts from its
  first to its last request: watch time = last - first.
* *Concurrent viewers* at an instant = live sessions whose [first, last] contains it; a
  minute's figure is the most at any instant of that minute; the peak is the largest minute
  figure, with the first instant it was reached. Minutes still open are handed out as lower
  bounds too (provisional), so a crash loses none up to the last flush.
* A *viewer* is a keyed hash of the client address and a coarse User-Agent bucket under a
  secret that changes every UTC day and is never written anywhere (like Plausible). Unique
  viewers are distinct viewer keys within a broadcast for as long as the process runs.
* Bots (by User-Agent) are kept as sessions only to show in the split; they count in no
  viewer figure. Recording playback (``VOD``) is tallied apart from the live figures.

Bounded memory (docs/threat-model.md §analytics): at most ``max_sessions`` open sessions and
``max_keys`` remembered viewer keys per broadcast, ``max_tallies`` broadcasts; beyond that new
sessions are not tallied (``overflow`` counts them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.analytics.ua import device_class, ua_bucket
from appliance.api.schema import DeviceClass, PlayerKind

MINUTE = 60
MAX_SESSIONS = 20_000
MAX_KEYS = 100_000
MAX_TALLIES = 1_000
LIVE_KINDS = frozenset({PlayerKind.LLHLS, PlayerKind.HLS, PlayerKind.WEBRTC})

SplitKey = tuple[PlayerKind, DeviceClass]


class DailyKeys:
    """Viewer keys: HMAC-SHA256(address, UA bucket) under a random secret per UTC day.

    The secret lives only in this object and is replaced when the day changes, so keys from
    different days cannot be linked, and nothing on disk can be matched to an address.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._day = -1
        self._secret = b""

    def viewer(self, address: str, bucket: str) -> str:
        day = int(self._clock() // 86400)
        if day != self._day:
            self._day, self._secret = day, secrets.token_bytes(32)
        msg = f"{address[:64]}\0{bucket}".encode(errors="replace")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:24]

    def chatter(self, pubkey: str) -> str:
        """A chatter key (hex pubkeys are public, but only a count is kept either way)."""
        return self.viewer("chat", pubkey[:128])


@dataclass(slots=True)
class _Session:
    first: float
    last: float
    kind: PlayerKind
    device: DeviceClass
    viewer: str
    gap: float
    accounted: bool = False
    """Counted in ``sessions``/``viewers`` of its split (at its first flush or its close)."""
    credited: float = 0.0
    """Watch seconds already handed out in a delta."""


@dataclass(slots=True)
class SplitDelta:
    sessions: int = 0
    viewers: int = 0
    watch_seconds: float = 0.0


@dataclass(slots=True)
class TallyDelta:
    """What to add to one broadcast's persisted analytics."""

    broadcast_id: str
    minutes: list[tuple[int, int]] = field(default_factory=list)
    """(minute start, concurrent viewers) of minutes finalized now (rows are maxima)."""
    peak: int = 0
    peak_at: float | None = None
    unique_viewers: int = 0
    chat_messages: int = 0
    chatters: int = 0
    split: dict[SplitKey, SplitDelta] = field(default_factory=dict)
    first_view: float | None = None
    last_view: float | None = None

    def empty(self) -> bool:
        return not (self.minutes or self.unique_viewers or self.chat_messages
                    or self.chatters or self.split or self.peak)


class Tally:
    """One broadcast's open sessions and not-yet-flushed figures."""

    def __init__(self, broadcast_id: str, *, max_sessions: int = MAX_SESSIONS,
                 max_keys: int = MAX_KEYS) -> None:
        self.broadcast_id = broadcast_id
        self.sessions: dict[str, _Session] = {}
        self.ended = False
        self.overflow = 0
        self._max_sessions = max_sessions
        self._max_keys = max_keys
        self._low_latency: dict[str, None] = {}  # sessions seen doing blocking reloads
        self._closed: list[tuple[float, float]] = []  # live sessions not yet past a final minute
        self._next_minute: int | None = None
        self._max_gap = 0.0
        self._viewers: set[str] = set()  # live viewer keys (unique viewers)
        self._pairs: set[tuple[str, PlayerKind, DeviceClass]] = set()
        self._chatters: set[str] = set()
        self._delta = TallyDelta(broadcast_id)

    # ---- request path ---------------------------------------------------------------------

    def hit(self, now: float, session: str, kind: PlayerKind, gap: float,
            identify: Callable[[], tuple[str, DeviceClass]]) -> None:
        """Activity of ``session``; ``identify`` → (viewer key, device) runs only for a new
        session (the keyed hash and UA classification are not paid per request)."""
        s = self.sessions.get(session)
        if s is not None:
            if now - s.last <= s.gap:
                s.last = max(s.last, now)
                if kind is PlayerKind.LLHLS and s.kind is PlayerKind.HLS:
                    self._upgrade(s)
                return
            self._close(session, s)
        if kind in LIVE_KINDS and self.ended:
            return
        if len(self.sessions) >= self._max_sessions:
            self.overflow += 1
            return
        viewer, device = identify()
        if kind is PlayerKind.HLS and session in self._low_latency:
            kind = PlayerKind.LLHLS
        self.sessions[session] = _Session(now, now, kind, device, viewer, gap)
        if kind in LIVE_KINDS and device is not DeviceClass.BOT:
            self._max_gap = max(self._max_gap, gap)
            if self._next_minute is None:
                self._next_minute = int(now // MINUTE) * MINUTE

    def low_latency(self, session: str) -> None:
        """``session`` made a blocking playlist reload (``_HLS_msn``): it plays LL-HLS."""
        s = self.sessions.get(session)
        if s is not None:
            if s.kind is PlayerKind.HLS:
                self._upgrade(s)
        elif len(self._low_latency) < self._max_sessions:
            self._low_latency[session] = None

    def leave(self, session: str) -> None:
        """The session ended for sure (a WebRTC peer closed)."""
        s = self.sessions.get(session)
        if s is not None:
            self._close(session, s)

    def chat(self, chatter: str) -> None:
        self._delta.chat_messages += 1
        if chatter not in self._chatters and len(self._chatters) < self._max_keys:
            self._chatters.add(chatter)
            self._delta.chatters += 1

    def current(self, now: float) -> int:
        """Live, non-bot sessions active now."""
        return sum(1 for s in self.sessions.values()
                   if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT
                   and now - s.last <= s.gap)

    # ---- accounting -----------------------------------------------------------------------

    def _split(self, kind: PlayerKind, device: DeviceClass) -> SplitDelta:
        d = self._delta.split.get((kind, device))
        if d is None:
            d = self._delta.split[(kind, device)] = SplitDelta()
        return d

    def _upgrade(self, s: _Session) -> None:
        if s.accounted:  # move what was counted as plain HLS (the distinct viewer stays)
            old, new = self._split(PlayerKind.HLS, s.device), self._split(PlayerKind.LLHLS,
                                                                          s.device)
            old.sessions -= 1
            new.sessions += 1
            old.watch_seconds -= s.credited
            new.watch_seconds += s.credited
            pair = (s.viewer, PlayerKind.LLHLS, s.device)
            if pair not in self._pairs and len(self._pairs) < self._max_keys:
                self._pairs.add(pair)
                new.viewers += 1
        s.kind = PlayerKind.LLHLS

    def _account(self, s: _Session) -> None:
        """Credit a session's watch time so far (and count it, the first time)."""
        d = self._split(s.kind, s.device)
        if not s.accounted:
            s.accounted = True
            d.sessions += 1
            pair = (s.viewer, s.kind, s.device)
            if pair not in self._pairs and len(self._pairs) < self._max_keys:
                self._pairs.add(pair)
                d.viewers += 1
            if (s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT
                    and s.viewer not in self._viewers and len(self._viewers) < self._max_keys):
                self._viewers.add(s.viewer)
                self._delta.unique_viewers += 1
        watched = max(0.0, s.last - s.first)
        d.watch_seconds += watched - s.credited
        s.credited = watched
        if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT:
            delta = self._delta
            delta.first_view = s.first if delta.first_view is None else min(delta.first_view,
                                                                            s.first)
            delta.last_view = s.last if delta.last_view is None else max(delta.last_view, s.last)

    def _close(self, key: str, s: _Session) -> None:
        del self.sessions[key]
        self._low_latency.pop(key, None)
        self._account(s)
        if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT:
            self._closed.append((s.first, s.last))

    # ---- flush ----------------------------------------------------------------------------

    def flush(self, now: float, *, final: bool = False) -> TallyDelta:
        """Close expired sessions (all of them when ``final``), finalize every minute no open
        session can still change, and hand out the delta accumulated since the last flush."""
        for key, s in list(self.sessions.items()):
            if final or now - s.last > s.gap:
                self._close(key, s)
            else:
                self._account(s)
        self._finalize_minutes(now, final)
        delta, self._delta = self._delta, TallyDelta(self.broadcast_id)
        return delta

    def _live_intervals(self) -> list[tuple[float, float]]:
        return [*self._closed, *((s.first, s.last) for s in self.sessions.values()
                                 if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT)]

    def _finalize_minutes(self, now: float, final: bool) -> None:
        # A minute is final once every open live session's last request is after its end:
        # an open session satisfies now - last <= gap, so minutes ending by now - max gap are.
        if self._next_minute is None:
            return
        horizon = float("inf") if final else now - self._max_gap
        intervals = self._live_intervals()
        minute = self._next_minute
        while intervals and minute + MINUTE <= horizon:
            active = [(a, b) for a, b in intervals if a < minute + MINUTE and b >= minute]
            if not active:
                later = [a for a, _ in intervals if a >= minute + MINUTE]
                if not later:
                    minute += MINUTE
                    break
                minute = int(min(later) // MINUTE) * MINUTE
                continue
            viewers, at = _max_concurrency(active, minute)
            self._delta.minutes.append((minute, viewers))
            self._note_peak(viewers, at)
            minute += MINUTE
            intervals = [(a, b) for a, b in intervals if b >= minute]
        self._next_minute = minute
        self._closed = [(a, b) for a, b in self._closed if b >= minute]
        if not final:
            self._provisional(intervals, minute, now)

    def _provisional(self, intervals: list[tuple[float, float]], minute: int,
                     now: float) -> None:
        """Minutes that are not final yet, from what is known now (open sessions up to their
        last request so far). That is a lower bound of each minute's final figure, since
        sessions only grow to the right; it is written so that a crash loses no minute up to
        the last flush, and the final figure replaces it later (minute rows are maxima)."""
        current = int(now // MINUTE) * MINUTE
        while intervals and minute <= current:
            active = [(a, b) for a, b in intervals if a < minute + MINUTE and b >= minute]
            if active:
                viewers, at = _max_concurrency(active, minute)
                self._delta.minutes.append((minute, viewers))
                self._note_peak(viewers, at)
            minute += MINUTE

    def _note_peak(self, viewers: int, at: float) -> None:
        d = self._delta
        if viewers > d.peak or (viewers == d.peak and viewers and d.peak_at is not None
                                and at < d.peak_at):
            d.peak, d.peak_at = viewers, at

    def idle(self) -> bool:
        """Nothing open and nothing left to flush."""
        return not self.sessions and self._delta.empty()

    def has_live(self) -> bool:
        """Whether live viewers or chat were tallied (kept until the broadcast ends, so its
        distinct viewers and chatters stay distinct)."""
        return self._next_minute is not None or bool(self._chatters)


def _max_concurrency(intervals: list[tuple[float, float]], start: float) -> tuple[int, float]:
    """Most intervals (closed: [a, b]) covering one instant at or after ``start``, and the
    first such instant; intervals have been clipped to the minute by the caller's filter."""
    events: list[tuple[float, int]] = []
    for a, b in intervals:
        events.append((max(a, start), 0))  # 0 sorts before 1: a start before an end at t
        events.append((b, 1))
    events.sort()
    best, at, count = 0, start, 0
    for t, kind in events:
        if kind == 0:
            count += 1
            if count > best:
                best, at = count, t
        else:
            count -= 1
    return best, at


@dataclass(frozen=True, slots=True)
class Gaps:
    """Silence after which a session ends, per player kind (seconds)."""

    hls: float = 12.0
    webrtc: float = 15.0
    vod: float = 60.0


class AnalyticsTracker:
    """Every broadcast's :class:`Tally`; see the module docstring. Runs on the event loop."""

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 keys: DailyKeys | None = None, gaps: Gaps | None = None,
                 max_tallies: int = MAX_TALLIES, max_sessions: int = MAX_SESSIONS) -> None:
        self.clock = clock
        self.keys = keys or DailyKeys(clock)
        self.gaps = gaps or Gaps()
        self.tallies: dict[str, Tally] = {}
        self.overflow = 0
        self._max_tallies = max_tallies
        self._max_sessions = max_sessions
        self._ended: dict[str, None] = {}  # recently ended broadcasts (FIFO, bounded)

    def tally(self, broadcast_id: str) -> Tally | None:
        t = self.tallies.get(broadcast_id)
        if t is None:
            if len(self.tallies) >= self._max_tallies:
                self.overflow += 1
                return None
            t = self.tallies[broadcast_id] = Tally(broadcast_id, max_sessions=self._max_sessions)
            t.ended = broadcast_id in self._ended
        return t

    def hit(self, broadcast_id: str, session: str, kind: PlayerKind, address: str,
            user_agent: str, *, gap: float | None = None) -> None:
        """A request of ``session`` (an opaque per-process key) for ``broadcast_id``.

        ``address`` and ``user_agent`` are read only when the session is new, to derive the
        viewer key and the device class; neither is kept.
        """
        t = self.tallies.get(broadcast_id)
        if t is None:
            t = self.tally(broadcast_id)
            if t is None:
                return
        now = self.clock()
        s = t.sessions.get(session)
        if s is not None and now - s.last <= s.gap:  # the common case: a known session
            if now > s.last:
                s.last = now
            if kind is PlayerKind.LLHLS and s.kind is PlayerKind.HLS:
                t.low_latency(session)
            return

        def identify() -> tuple[str, DeviceClass]:
            device = device_class(user_agent)
            return self.keys.viewer(address, ua_bucket(user_agent, device)), device

        if gap is None:
            gaps = self.gaps
            gap = (gaps.webrtc if kind is PlayerKind.WEBRTC
                   else gaps.vod if kind is PlayerKind.VOD else gaps.hls)
        t.hit(now, session, kind, gap, identify)

    def low_latency(self, broadcast_id: str, session: str) -> None:
        t = self.tallies.get(broadcast_id)
        if t is not None:
            t.low_latency(session)

    def leave(self, broadcast_id: str, session: str) -> None:
        t = self.tallies.get(broadcast_id)
        if t is not None:
            t.leave(session)

    def chat(self, broadcast_id: str, pubkey: str) -> None:
        t = self.tally(broadcast_id)
        if t is not None:
            t.chat(self.keys.chatter(pubkey))

    def end(self, broadcast_id: str) -> TallyDelta | None:
        """The broadcast ended: close its live sessions and hand out its final delta."""
        self._ended[broadcast_id] = None
        if len(self._ended) > self._max_tallies:
            del self._ended[next(iter(self._ended))]
        t = self.tallies.get(broadcast_id)
        if t is None:
            return None
        t.ended = True
        delta = t.flush(self.clock(), final=True)
        if t.idle():
            del self.tallies[broadcast_id]
        return delta

    def current(self, broadcast_id: str) -> int:
        t = self.tallies.get(broadcast_id)
        return 0 if t is None else t.current(self.clock())

    def flush(self, *, final: bool = False) -> list[TallyDelta]:
        """Deltas of every tally; idle tallies of ended broadcasts (or recording-only ones)
        are forgotten."""
        now = self.clock()
        out: list[TallyDelta] = []
        for bid, t in list(self.tallies.items()):
            delta = t.flush(now, final=final)
            if not delta.empty():
                out.append(delta)
            if final or (t.idle() and (t.ended or not t.has_live())):
                del self.tallies[bid]
        return out
