"""Per-stream ingest health: bitrate, frame rate, keyframe interval, B-frames.

Fed with every :class:`~media.units.MediaUnit`; computes figures over a sliding window of
:data:`WINDOW_SECONDS` of media time so that one slow second doesn't flap the verdict.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from media.units import CLOCK_RATE, AudioConfig, MediaUnit, TrackKind, VideoConfig

WINDOW_SECONDS = 5.0
_WINDOW_TICKS = int(WINDOW_SECONDS * CLOCK_RATE)

MAX_KEYFRAME_INTERVAL = 4.0
"""Seconds between keyframes above which the verdict warns: segments are cut at keyframes,
so a longer interval means long segments, slow starts and late joins for viewers."""
MIN_FPS = 10.0


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Figures over the last few seconds of media. ``None`` when not yet measurable."""

    bitrate_kbps: float | None
    video_kbps: float | None
    audio_kbps: float | None
    fps: float | None
    keyframe_interval: float | None
    bframes: bool
    width: int | None
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    units: int
    bytes_in: int
    keyframe_overdue: bool = False
    """The GOP still running is longer than :data:`MAX_KEYFRAME_INTERVAL` (no keyframe since)."""

    def verdict(self) -> str:
        """One word for dashboards: ``ok``, ``warn`` (playable but off-advice) or ``starting``.

        Every ``warn`` has its reasons in :meth:`reasons`.
        """
        if self.fps is None or self.bitrate_kbps is None:
            return "starting"
        return "warn" if self.reasons() else "ok"

    def reasons(self) -> list[str]:
        """Why the verdict is ``warn``, each with the OBS setting that fixes it."""
        out: list[str] = []
        if self.keyframe_overdue:
            # Worded without the growing figure: the event log records reasons when they change.
            out.append(f"no keyframe for over {MAX_KEYFRAME_INTERVAL:g} s (segments are cut "
                       "between keyframes; new viewers wait for a picture): OBS Output → "
                       "Keyframe Interval: 2 s")
        elif self.keyframe_interval is not None and self.keyframe_interval > MAX_KEYFRAME_INTERVAL:
            out.append(f"keyframe interval {self.keyframe_interval:g} s (over "
                       f"{MAX_KEYFRAME_INTERVAL:g} s makes long segments and slow starts): "
                       "OBS Output → Keyframe Interval: 2 s")
        if self.bframes:
            out.append("B-frames (add latency; WebRTC cannot play them): "
                       "OBS Output → Profile: high, B-frames: 0")
        if self.fps is not None and self.fps < MIN_FPS:
            out.append(f"{self.fps:g} fps (below {MIN_FPS:g}): OBS Video → Common FPS "
                       "Values: 30 (or lower the encoder load: Output → CPU Usage Preset: "
                       "veryfast)")
        return out


class HealthMeter:
    """Accumulates health figures for one stream (across reconnects)."""

    def __init__(self) -> None:
        self._video: deque[tuple[int, int]] = deque()  # (dts, size)
        self._audio: deque[tuple[int, int]] = deque()
        self._keyframes: deque[int] = deque(maxlen=8)
        self._max_pts: int | None = None
        self._last_video_dts: int | None = None
        self.bframes = False
        self.units = 0
        self.bytes_in = 0
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None

    def set_config(self, video: VideoConfig | None, audio: AudioConfig | None) -> None:
        self.video_config = video
        self.audio_config = audio

    def add(self, unit: MediaUnit) -> None:
        self.units += 1
        size = len(unit.data)
        self.bytes_in += size
        dts = unit.dts
        if unit.kind is TrackKind.VIDEO:
            q = self._video
            if unit.keyframe:
                self._keyframes.append(dts)
            self._last_video_dts = dts
            # Presentation order differing from decode order means B-frames (reordering).
            pts = unit.pts
            max_pts = self._max_pts
            if max_pts is None or pts > max_pts:
                self._max_pts = pts
            elif pts < max_pts:
                self.bframes = True
        else:
            q = self._audio
        q.append((dts, size))
        start = dts - _WINDOW_TICKS
        while q and q[0][0] < start:
            q.popleft()

    @staticmethod
    def _rate(q: deque[tuple[int, int]]) -> tuple[float, float] | None:
        if len(q) < 2:
            return None
        span = (q[-1][0] - q[0][0]) / CLOCK_RATE
        if span <= 0:
            return None
        # n samples span n-1 intervals
        count_rate = (len(q) - 1) / span
        bits = sum(size for _, size in list(q)[:-1]) * 8
        return count_rate, bits / span / 1000

    def snapshot(self) -> HealthSnapshot:
        v = self._rate(self._video)
        a = self._rate(self._audio)
        kfi = None
        if len(self._keyframes) >= 2:
            kf = list(self._keyframes)
            kfi = (kf[-1] - kf[0]) / (len(kf) - 1) / CLOCK_RATE
        overdue = False
        if self._keyframes and self._last_video_dts is not None:
            # A GOP still running is at least this long: a publisher that stops sending
            # keyframes (x264 keyint=infinite) shows up here, not after its next keyframe.
            running = (self._last_video_dts - self._keyframes[-1]) / CLOCK_RATE
            if running > MAX_KEYFRAME_INTERVAL and (kfi is None or running > kfi):
                kfi = running
                overdue = True
        total = None
        if v is not None or a is not None:
            total = (v[1] if v else 0.0) + (a[1] if a else 0.0)
        vc, ac = self.video_config, self.audio_config
        return HealthSnapshot(
            bitrate_kbps=None if total is None else round(total, 1),
            video_kbps=None if v is None else round(v[1], 1),
            audio_kbps=None if a is None else round(a[1], 1),
            fps=None if v is None else round(v[0], 2),
            keyframe_interval=None if kfi is None else round(kfi, 2),
            bframes=self.bframes,
            width=vc.width if vc else None,
            height=vc.height if vc else None,
            video_codec=vc.codec_string if vc else None,
            audio_codec=ac.codec_string if ac else None,
            sample_rate=ac.sample_rate if ac else None,
            channels=ac.channels if ac else None,
            units=self.units,
            bytes_in=self.bytes_in,
            keyframe_overdue=overdue,
        )
