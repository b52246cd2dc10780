"""Quality-ladder presets and planning: which renditions to encode for a given source.

Pure data and functions. A *preset* names a height and a rate budget (``720p``: 2.8 Mbit/s,
VBV max rate and buffer); :func:`plan_renditions` turns the presets a channel chose into
concrete output sizes for one source: never upscaled (presets at or above the source height
are skipped: the source passthrough is the top rendition), aspect ratio kept, both dimensions
even (4:2:0 chroma needs them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FRAME_TICKS",
    "MAX_PRESETS",
    "PRESETS",
    "LadderError",
    "Preset",
    "Rendition",
    "SegmentCuts",
    "parse_ladder",
    "plan_renditions",
]


class LadderError(ValueError):
    """A ladder specification names an unknown preset or too many of them."""


@dataclass(frozen=True, slots=True)
class Preset:
    """A rendition's height and rate budget (kbit/s): the x264 ``bitrate``, and the VBV
    ``maxrate``/``bufsize`` that cap its peaks (what HLS BANDWIDTH then measures)."""

    name: str
    height: int
    bitrate: int
    maxrate: int
    bufsize: int


# Rates follow the common 16:9 ladders (Apple's HLS authoring spec §2.3 table, rounded):
# maxrate 107 % of the average, a buffer of 1.5× the average.
PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset("1080p", 1080, 5000, 5350, 7500),
        Preset("720p", 720, 2800, 2996, 4200),
        Preset("480p", 480, 1400, 1498, 2100),
        Preset("360p", 360, 800, 856, 1200),
        Preset("240p", 240, 400, 428, 600),
        Preset("180p", 180, 250, 268, 375),
        Preset("144p", 144, 150, 161, 225),
    )
}
"""Every preset by name, tallest first."""

MAX_PRESETS = 4
"""Renditions one channel may ask for (each costs a software encoder's CPU)."""

_NAME_RE = re.compile(r"^[0-9]{3,4}p$")


def parse_ladder(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"720p,480p"`` (or an iterable of names) → ``("720p", "480p")``, tallest first.

    ``"off"``, ``""`` and an empty iterable mean no ladder: ``()``. Duplicates collapse.

    Raises:
        LadderError: an unknown name, ``off`` mixed with presets, or more than
            :data:`MAX_PRESETS`.
    """
    if isinstance(spec, str):
        if len(spec) > 200:
            raise LadderError("ladder: too long")
        names = [n.strip().lower() for n in spec.split(",")]
    else:
        names = []
        for n in spec:
            if not isinstance(n, str) or len(n) > 16:
                raise LadderError("ladder: preset names are short strings")
            names.append(n.strip().lower())
    names = [n for n in names if n]
    if names == ["off"]:
        return ()
    chosen: list[str] = []
    for n in names:
        if n == "off":
            raise LadderError("ladder: 'off' cannot be combined with presets")
        if not _NAME_RE.fullmatch(n) or n not in PRESETS:
            known = ", ".join(PRESETS)
            raise LadderError(f"ladder: unknown preset {n[:16]!r} (known: {known}, or off)")
        if n not in chosen:
            chosen.append(n)
    if len(chosen) > MAX_PRESETS:
        raise LadderError(f"ladder: at most {MAX_PRESETS} presets")
    return tuple(sorted(chosen, key=lambda n: -PRESETS[n].height))


@dataclass(frozen=True, slots=True)
class Rendition:
    """One transcoded rendition for a given source: its preset and exact output size."""

    preset: Preset
    width: int
    height: int

    @property
    def name(self) -> str:
        return self.preset.name


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def plan_renditions(names: Iterable[str], source_width: int, source_height: int
                    ) -> tuple[Rendition, ...]:
    """The renditions to encode for a ``source_width``×``source_height`` source, tallest first.

    Presets whose height is at or above the source's are skipped (the source passthrough
    already is that quality: never upscale); the width keeps the source's aspect ratio
    (sample aspect ratio 1:1 assumed, as OBS sends) rounded to an even number.
    """
    out: list[Rendition] = []
    if source_width <= 0 or source_height <= 0:
        return ()
    for name in parse_ladder(list(names)):
        preset = PRESETS[name]
        if preset.height >= source_height:
            continue
        height = _even(preset.height)
        width = _even(source_width * height / source_height)
        out.append(Rendition(preset, width, height))
    return tuple(out)


DEFAULT_FRAME_TICKS = 90_000 // 30
"""The segmenter's frame-duration guess before it has seen two frames (90 kHz ticks)."""


class SegmentCuts:
    """Where the source's HLS segments start, predicted from its video (dts, keyframe) sequence.

    A mirror of :class:`media.hls.segmenter.HlsMuxer`'s segment rules for the master track
    (a cut at the first keyframe at or after the target; the next keyframe as soon as a part
    long after a cut made between keyframes; a cut between keyframes before a segment would
    pass target + 0.5 s). The ladder forces a rendition keyframe at each predicted start and
    packages renditions with ``keyframe_cuts``, so every rendition segment starts with an IDR
    at the source segment's start — also when the source's GOP (OBS: 250 frames) is longer
    than a segment, where the source's own segments cannot start with one. tests check the
    mirror against the muxer.
    """

    def __init__(self, segment_target: float, part_target: float) -> None:
        self._target = round(segment_target * 90_000)
        self._part_target = round(part_target * 90_000)
        target_duration = max(1, math.ceil(round(segment_target, 3)))
        self._max_segment = round((target_duration + 0.5) * 90_000) - 1
        self.reset()

    def reset(self) -> None:
        """A discontinuity or codec change: the next keyframe starts a segment."""
        self._start: int | None = None
        self._last: int | None = None
        self._delta: int | None = None
        self._independent = True

    def push(self, dts: int, keyframe: bool) -> bool:
        """The next video unit; True if a segment starts with it."""
        if self._start is None or self._last is None:
            if not keyframe:
                return False  # the muxer drops video until the first keyframe
            self._start = self._last = dts
            self._independent = True
            return True
        if dts < self._last:
            return False  # dropped by the muxer
        starts = False
        if dts > self._last:
            self._delta = dts - self._last
            length = dts - self._start
            if keyframe and (length >= self._target
                             or (not self._independent and length >= self._part_target)):
                starts, self._independent = True, True
            elif dts + 2 * (self._delta or DEFAULT_FRAME_TICKS) - self._start > self._max_segment:
                starts, self._independent = True, keyframe
            if starts:
                self._start = dts
        self._last = dts
        return starts
