"""Normalize RTMP timestamps onto one monotonic 64-bit 90 kHz timeline per stream.

RTMP timestamps are 32-bit milliseconds (RTMP §5.3.1.2.1) that wrap after ~49.7 days, restart
near zero when OBS reconnects, and occasionally jump. Players break on timestamps that go
backwards or jump without a discontinuity (hls.js #325, docs/threat-model.md §media), so:

* successive timestamps are unwrapped by their signed 32-bit difference;
* a jump of more than :data:`MAX_JUMP_MS` either way is treated as a restart of the clock and
  rebased to continue just after the highest timestamp seen so far;
* a new publisher session (reconnect) is rebased the same way.

Audio and video of one session share a single offset so A/V sync survives rebasing.
"""

from __future__ import annotations

from media.units import CLOCK_RATE

MAX_JUMP_MS = 10_000
"""A step larger than this between consecutive timestamps is a clock restart, not media."""
REBASE_GAP_TICKS = CLOCK_RATE // 30
"""Gap left after the high-water mark when rebasing (one 30 fps frame)."""
_TICKS_PER_MS = CLOCK_RATE // 1000


class Timeline:
    """Maps a publisher's 32-bit millisecond timestamps to monotonic 90 kHz ticks."""

    def __init__(self) -> None:
        self._offset: int | None = None  # ticks added to the unwrapped input
        self._last_raw: int | None = None
        self._last_ext = 0  # unwrapped input, ms
        self._high_water = -1  # highest output tick so far
        self.rebases = 0

    @property
    def high_water(self) -> int:
        """The highest timestamp handed out so far (-1 before the first)."""
        return self._high_water

    def new_session(self, floor: int = -1) -> None:
        """A new publisher connection: the next timestamp starts just after the high water
        (or after ``floor``, the stream's high water when another ingest fed it meanwhile)."""
        self._offset = None
        self._last_raw = None
        self._high_water = max(self._high_water, floor)

    def map(self, timestamp_ms: int) -> int:
        """Convert one RTMP timestamp (any 32-bit value) to timeline ticks."""
        raw = timestamp_ms & 0xFFFFFFFF
        if self._last_raw is None:
            ext = raw
        else:
            delta = (raw - self._last_raw) & 0xFFFFFFFF
            if delta >= 1 << 31:
                delta -= 1 << 32
            ext = self._last_ext + delta
            if abs(delta) > MAX_JUMP_MS:
                self._offset = None  # clock restart inside the session
        self._last_raw = raw
        self._last_ext = ext
        if self._offset is None:
            start = 0 if self._high_water < 0 else self._high_water + REBASE_GAP_TICKS
            if self._high_water >= 0:
                self.rebases += 1
            self._offset = start - ext * _TICKS_PER_MS
        out = ext * _TICKS_PER_MS + self._offset
        if out > self._high_water:
            self._high_water = out
        return out


class SessionRebaser:
    """Maps a publisher session's own 90 kHz ticks (any origin) onto the stream's timeline.

    For ingest protocols that deliver 90 kHz timestamps already unwrapped (WHIP after RTP/RTCP
    synchronisation, SRT after MPEG-TS PTS unwrapping): the first timestamp of a session, and
    any jump of more than :data:`MAX_JUMP_MS`, continues just after the stream's high water;
    each track stays strictly increasing; ``pts - dts`` is kept.
    """

    def __init__(self) -> None:
        self._offset: int | None = None
        self._last_in: int | None = None
        self._floor = -1
        self.rebases = 0

    def new_session(self, floor: int) -> None:
        """A new publisher session; ``floor`` is the highest tick the stream has used so far."""
        self._offset = None
        self._last_in = None
        self._floor = floor

    def map(self, ticks: int) -> int:
        """The stream-timeline tick of a session tick (callers keep tracks increasing)."""
        if self._last_in is not None and abs(ticks - self._last_in) > MAX_JUMP_MS * _TICKS_PER_MS:
            self._offset = None
        self._last_in = ticks
        if self._offset is None:
            start = 0 if self._floor < 0 else self._floor + REBASE_GAP_TICKS
            if self._floor >= 0:
                self.rebases += 1
            self._offset = start - ticks
        out = ticks + self._offset
        if out > self._floor:
            self._floor = out
        return out
