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

import bisect
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from appliance.analytics.ua import device_class, ua_bucket
from appliance.api.schema import DeviceClass, PlayerKind

MINUTE = 60
MAX_SESSIONS = 20_000
MAX_KEYS = 100_000
MAX_TALLIES = 1_000
LIVE_KINDS = frozenset({PlayerKind.LLHLS, PlayerKind.HLS, PlayerKind.WEBRTC})
FLUSH_STEP = 500
"""Sessions, intervals or concurrency events a flush handles in one step, between two of
which the event loop runs (bench/analytics_hits.py: a step of the slowest kind, the walk over
open sessions, takes 1.5 to 3.5 ms on the 2-core test box). A step also sorts one second's
starts or ends: more than this only if more sessions than this start or end within one
second (sorting 100,000 that arrived in order takes about 1 ms)."""

_T = TypeVar("_T")
Steps: TypeAlias = Generator[None, None, _T]
"""Work done in bounded steps: each ``next`` runs one, the return value is the result."""

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
        self._walked: dict[str, _Session] | None = None  # see flush_steps
        self._next_minute: int | None = None
        self._max_gap = 0.0
        self._viewers: set[str] = set()  # live viewer keys (unique viewers)
        # Distinct (viewer, kind, device) as strings, not tuples: a tuple per first-counted
        # session is a tracked container, and 20,000 of them in one flush set off a full
        # garbage collection that held the loop for 40-80 ms (bench/analytics_hits.py).
        self._pairs: set[str] = set()
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
            pair = _pair_key(s.viewer, PlayerKind.LLHLS, s.device)
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
            pair = _pair_key(s.viewer, s.kind, s.device)
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
            if self._walked is not None:  # a flush's walk noted it open: count it closed
                self._walked.pop(key, None)

    # ---- flush ----------------------------------------------------------------------------

    def flush_steps(self, now: float, *, final: bool = False) -> Steps[TallyDelta]:
        """Close expired sessions (all of them when ``final``), finalize every minute no open
        session can still change, and hand out the delta accumulated since the last flush.

        A generator that yields after each bounded step (:data:`FLUSH_STEP`), so that the
        caller can let the event loop run in between; requests may arrive meanwhile. Every
        step leaves the tally consistent: a flush dropped halfway loses nothing, the next one
        redoes what it did not hand out. Flushes of one tally must not overlap.

        Why requests in between change no final figure: one on a session the walk has not
        reached yet is as if it came before the flush, one on a session the walk has passed
        (or a new session) as if after it. Each live session's interval is counted once:
        the walk notes the open live sessions it passes (``_walked``), and strikes one of
        them closed before the walk ends (its interval is then in ``_closed``); one closed
        later is counted as open, and its interval kept for the next flush. A request
        changes a session's interval only after ``now - gap``, which no minute finalized now
        contains (:meth:`_minutes_steps`); a provisional minute may see it or not, either is
        a lower bound.
        """
        # No object is made per session (nor per interval below): besides its cost, that
        # would set off the garbage collector, whose full passes hold the loop far longer
        # than a step; and freeing them would be a long step too. So is letting go of a list
        # of 100,000 references (2 ms: a cache miss each), hence the ``del`` below and no
        # copy of ``walked``.
        walked: dict[str, _Session] = {}
        self._walked = walked
        try:
            keys, sessions = list(self.sessions), list(self.sessions.values())
            for i in range(0, len(keys), FLUSH_STEP):
                for key, s in zip(keys[i:i + FLUSH_STEP], sessions[i:i + FLUSH_STEP],
                                  strict=True):
                    if self.sessions.get(key) is not s:
                        continue  # closed by a request meanwhile, and counted there
                    if final or now - s.last > s.gap:
                        self._close(key, s)
                    else:
                        self._account(s)
                        if s.kind in LIVE_KINDS and s.device is not DeviceClass.BOT:
                            walked[key] = s
                yield
            del keys, sessions
        finally:
            self._walked = None
        found: list[tuple[int, int, float]] = []
        if self._next_minute is not None:
            closed = self._closed
            taken = len(closed)  # intervals closed by now; later ones belong to the next flush
            minute = yield from self._minutes_steps(closed[:taken], walked.values(), now, final,
                                                    found)
            kept: list[tuple[float, float]] = []
            for i in range(0, taken, FLUSH_STEP):
                kept += [iv for iv in closed[i:min(i + FLUSH_STEP, taken)] if iv[1] >= minute]
                yield
            self._closed = kept + closed[taken:]
            self._next_minute = minute
        for minute, viewers, at in found:
            self._delta.minutes.append((minute, viewers))
            self._note_peak(viewers, at)
        delta, self._delta = self._delta, TallyDelta(self.broadcast_id)
        return delta

    def _minutes_steps(self, closed: list[tuple[float, float]], open_: Iterable[_Session],
                       now: float, final: bool,
                       found: list[tuple[int, int, float]]) -> Steps[int]:
        """Append (minute, concurrent viewers, first instant reached) to ``found`` for every
        minute from ``_next_minute`` that is final, then for the minutes up to ``now`` that
        are not (provisional); return the first minute that is not final. The live sessions
        are the ``closed`` intervals and the ``open_`` sessions (up to their last request:
        one after the flush began only adds instants after ``now - gap``).

        A minute is final once every open live session's last request is after its end: an
        open session satisfies now - last <= gap, so minutes ending by now - max gap are.
        Provisional minutes come from what is known now (open sessions up to their last
        request so far): a lower bound of each minute's final figure, since sessions only
        grow to the right; they are written so that a crash loses no minute up to the last
        flush, and the final figure replaces them later (minute rows are maxima).
        """
        first = self._next_minute
        assert first is not None
        horizon = float("inf") if final else now - self._max_gap
        index = yield from _MinuteIndex.build(closed, open_, first)
        # The minutes visited, and the one returned, are those of the earlier algorithm, which
        # walked a list of intervals minute by minute: it stopped once no interval ended at or
        # after the minute (``reaches``), jumped over a minute without viewers to the next
        # one in which an interval starts, and dropped the intervals ended before a minute
        # only after a minute with viewers (``reach``; None: nothing dropped yet).
        minute = first
        reach: int | None = None
        while index.reaches(reach) and minute + MINUTE <= horizon:
            if not index.active(minute):
                later = index.next_start(minute + MINUTE)
                if later is None:
                    minute += MINUTE
                    break
                minute = later
                continue
            viewers, at = yield from index.concurrency(minute)
            found.append((minute, viewers, at))
            minute += MINUTE
            reach = minute
        if not final:
            current = int(now // MINUTE) * MINUTE
            provisional = minute
            while index.reaches(reach) and provisional <= current:
                if index.active(provisional):
                    viewers, at = yield from index.concurrency(provisional)
                    found.append((provisional, viewers, at))
                provisional += MINUTE
        return minute

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


def _pair_key(viewer: str, kind: PlayerKind, device: DeviceClass) -> str:
    """One viewer on one kind of player and device (kind and device hold no "/")."""
    return f"{kind.value}/{device.value}/{viewer}"


class _MinuteIndex:
    """One flush's live sessions as intervals [first, last] (closed), indexed by minute so
    that a minute's concurrency costs the sessions that start or end in it, not all of them.

    The most intervals covering one instant of minute M, and the first such instant, come
    from a sweep in time order: the intervals covering M's first instant (``_covering``,
    from a difference array over minutes), then the starts after it and the ends within the
    minute, kept by whole second (sorting each second's and taking the seconds in order
    sorts the minute's). An end after the minute follows every start in it, so it cannot
    change the figure and is not swept.
    """

    def __init__(self, first_minute: int) -> None:
        self.count = 0
        self.last_end = float("-inf")
        self._first_minute = first_minute
        self._start_minutes: set[int] = set()
        self._starts: list[int] = []
        """The minutes in which intervals start, ascending."""
        self._changes: dict[int, int] = {}
        self._cover_at: list[int] = []
        """Minutes (ascending) from which ``_cover`` holds until the next one."""
        self._cover: list[int] = []
        self._starts_in: dict[int, list[float]] = {}
        """By whole second, the starts after the first instant of their minute."""
        self._ends_in: dict[int, list[float]] = {}

    @classmethod
    def build(cls, closed: list[tuple[float, float]], open_: Iterable[_Session],
              first_minute: int) -> Steps[_MinuteIndex]:
        """Index ``closed`` and the ``open_`` sessions for minutes from ``first_minute`` on,
        in steps (``open_`` must not change meanwhile)."""
        index = cls(first_minute)
        index.count = len(closed)
        add = index._add
        for i in range(0, len(closed), FLUSH_STEP):
            for a, b in closed[i:i + FLUSH_STEP]:
                add(a, b)
            yield
        sessions = iter(open_)
        while chunk := list(itertools.islice(sessions, FLUSH_STEP)):
            index.count += len(chunk)
            for s in chunk:
                add(s.first, s.last)
            yield
        index._starts = sorted(index._start_minutes)
        total = 0
        for minute in sorted(index._changes):
            total += index._changes[minute]
            index._cover_at.append(minute)
            index._cover.append(total)
        return index

    def _add(self, a: float, b: float) -> None:
        start = int(a // MINUTE) * MINUTE
        self._start_minutes.add(start)
        if b > self.last_end:
            self.last_end = b
        if b < self._first_minute:
            return
        end = int(b // MINUTE) * MINUTE
        covered = max(self._first_minute, start if start == a else start + MINUTE)
        if covered <= end:  # it covers the first instant of minutes covered..end
            self._changes[covered] = self._changes.get(covered, 0) + 1
            self._changes[end + MINUTE] = self._changes.get(end + MINUTE, 0) - 1
        if a > start >= self._first_minute:
            self._starts_in.setdefault(int(a), []).append(a)
        self._ends_in.setdefault(int(b), []).append(b)

    def reaches(self, minute: int | None) -> bool:
        """Whether an interval ends at or after ``minute`` (None: whether there is one)."""
        return self.count > 0 if minute is None else self.last_end >= minute

    def next_start(self, minute: int) -> int | None:
        """The first minute from ``minute`` on in which an interval starts."""
        i = bisect.bisect_left(self._starts, minute)
        return self._starts[i] if i < len(self._starts) else None

    def active(self, minute: int) -> bool:
        """Whether an interval overlaps ``minute`` (covers its first instant or starts in
        it)."""
        return minute in self._start_minutes or bool(self._covering(minute))

    def _covering(self, minute: int) -> int:
        i = bisect.bisect_right(self._cover_at, minute)
        return self._cover[i - 1] if i else 0

    def concurrency(self, minute: int) -> Steps[tuple[int, float]]:
        """The most intervals covering one instant of ``minute``, and the first instant.
        Each minute is swept once (its seconds are dropped)."""
        count = best = self._covering(minute)
        at: float = minute
        swept = 0
        for second in range(minute, minute + MINUTE):
            starts = self._starts_in.pop(second, None)
            ends = self._ends_in.pop(second, None)
            if ends is None:
                if starts is None:
                    continue
                ends = []
            else:
                ends.sort()
            if starts is not None:
                starts.sort()
                j = 0
                for t in starts:
                    while j < len(ends) and ends[j] < t:  # an end at t comes after the start
                        count -= 1
                        j += 1
                    count += 1
                    if count > best:
                        best, at = count, t
                    swept += 1
                    if swept >= FLUSH_STEP:
                        swept = 0
                        yield
            count -= len(ends) if starts is None else len(ends) - j
        return best, at


def finish(steps: Steps[_T]) -> _T:
    """Run ``steps`` to the end at once (tests and benches; on the event loop, step them)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            result: _T = stop.value
            return result


@dataclass(frozen=True, slots=True)
class Gaps:
    """Silence after which a session ends, per player kind (seconds)."""

    hls: float = 12.0
    webrtc: float = 15.0
    vod: float = 60.0


class AnalyticsTracker:
    """Every broadcast's :class:`Tally`; see the module docstring. Runs on the event loop,
    which runs between the steps of a flush (:func:`appliance.analytics.service.sliced`)."""

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
        """:meth:`end_steps` at once."""
        return finish(self.end_steps(broadcast_id))

    def end_steps(self, broadcast_id: str) -> Steps[TallyDelta | None]:
        """The broadcast ended: close its live sessions and hand out its final delta (in
        steps, see :meth:`Tally.flush_steps`)."""
        self._ended[broadcast_id] = None
        if len(self._ended) > self._max_tallies:
            del self._ended[next(iter(self._ended))]
        t = self.tallies.get(broadcast_id)
        if t is None:
            return None
        t.ended = True
        delta = yield from t.flush_steps(self.clock(), final=True)
        if t.idle():
            del self.tallies[broadcast_id]
        return delta

    def current(self, broadcast_id: str) -> int:
        t = self.tallies.get(broadcast_id)
        return 0 if t is None else t.current(self.clock())

    def flush(self, *, final: bool = False) -> list[TallyDelta]:
        """:meth:`flush_steps` at once."""
        return finish(self.flush_steps(final=final))

    def flush_steps(self, *, final: bool = False) -> Steps[list[TallyDelta]]:
        """Deltas of every tally, in steps (:meth:`Tally.flush_steps`); idle tallies of ended
        broadcasts (or recording-only ones) are forgotten. Flushes (and :meth:`end_steps`)
        must not overlap."""
        now = self.clock()
        out: list[TallyDelta] = []
        for bid, t in list(self.tallies.items()):
            delta = yield from t.flush_steps(now, final=final)
            if not delta.empty():
                out.append(delta)
            if final or (t.idle() and (t.ended or not t.has_live())):
                del self.tallies[bid]
        return out
