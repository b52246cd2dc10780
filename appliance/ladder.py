"""The quality ladder of one broadcast: decode the source once, encode each rendition in its own
thread, package each rendition as LL-HLS next to the source (docs/architecture.md, "The
quality ladder").

Shape. A synchronous hub sink (like the source's HLS feed) hands, on the loop, each video
unit to a bounded queue for one decoder thread; the decoder hands each frame to one bounded
queue per rendition; each rendition's encoder thread scales and encodes
(:mod:`media.transcode`) and posts its units back to the loop (``call_soon_threadsafe``),
where they are published on the rendition's own hub
:class:`~appliance.hub.Publisher` with the source's AAC units (shared, not re-encoded). An
:class:`~appliance.live.HlsFeed` packages each rendition's publisher; WebRTC may read it too.

CPU guard. Nothing here can slow the source: the loop only ever ``put_nowait``\\ s (a full queue
drops the frame and counts it), libavcodec runs in the threads. Every
:data:`GUARD_INTERVAL` the loop checks each rendition's lag (source arrival → encoded unit
back on the loop) and drops; a ladder that cannot keep real time sheds its *lowest* rendition
(removed from the multivariant playlist, its playlist answers 404, the operator is told in the
event log, the admin status and the TUI), one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.hub import Publisher
from media.hls.segmenter import HlsMuxer
from media.ladder import Rendition, SegmentCuts, plan_renditions
from media.transcode import (
    SOFTWARE_ENCODER,
    Decoder,
    EncodedFrame,
    RenditionEncoder,
    TranscodeError,
    encoder_codec,
    frame_rate_of,
    rendition_unit,
)
from media.units import CLOCK_RATE, CodecConfig, MediaUnit, TrackKind, VideoConfig

logger = logging.getLogger(__name__)

GUARD_INTERVAL = 0.5
"""Seconds between CPU-guard checks."""
DECODE_QUEUE = 90
"""Source video units waiting for the decoder (3 s at 30 fps); beyond that they are dropped."""
SHED_COOLDOWN = 3.0
"""Seconds after a shed before another rendition may be shed (the others' backlog drains)."""
MAX_META = 600
"""Timing records of units inside the decoder (its reorder delay is a few frames)."""


class EncoderLike(Protocol):
    """What the ladder needs from an encoder (:class:`media.transcode.RenditionEncoder`; tests
    inject a slow one through :attr:`Ladder.encoder_factory`)."""

    config: VideoConfig
    cpu_seconds: float

    def encode(self, frame: Any, *, keyframe: bool) -> list[EncodedFrame]: ...

    def close(self) -> None: ...


EncoderFactory = Callable[[Rendition, float, str], EncoderLike]


class FeedLike(Protocol):
    """An HLS packager of one hub publisher (:class:`appliance.live.HlsFeed`, a hub sink)."""

    muxer: HlsMuxer

    def start(self) -> None: ...

    def cancel(self) -> None: ...


FeedFactory = Callable[[str, Publisher, HlsMuxer], FeedLike]


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """Which encoder the ladder uses, decided once at start from ``ladder.encoder`` and what
    :func:`media.transcode.detect_hardware_encoders` found."""

    codec: str = SOFTWARE_ENCODER
    detected: tuple[str, ...] = ()
    note: str = "software (libx264); hardware encoders: not probed"


def choose_encoder(setting: str, detected: list[str]) -> EncoderChoice:
    """``auto``: the first hardware encoder found, else software; a named one that was not
    found falls back to software (and says so)."""
    found = ", ".join(detected) or "none"
    if setting == "auto" and detected:
        codec = encoder_codec(detected[0])
        return EncoderChoice(codec, tuple(detected), f"{detected[0]} ({codec}); hardware "
                                                     f"encoders found: {found}")
    if setting not in ("auto", "software"):
        if setting in detected:
            codec = encoder_codec(setting)
            return EncoderChoice(codec, tuple(detected), f"{setting} ({codec}); hardware "
                                                         f"encoders found: {found}")
        return EncoderChoice(SOFTWARE_ENCODER, tuple(detected),
                             f"software (libx264): ladder.encoder = {setting} but no such "
                             f"device works here; hardware encoders found: {found}")
    return EncoderChoice(SOFTWARE_ENCODER, tuple(detected),
                         f"software (libx264); hardware encoders found: {found}")


@dataclass(frozen=True, slots=True)
class LadderSetup:
    """What a broadcast needs to run its channel's ladder."""

    presets: tuple[str, ...]
    encoder: EncoderChoice
    max_lag: float
    on_event: Callable[[str, str, str], None]
    """``(level, kind, message)`` → the operator's event log."""


@dataclass(frozen=True, slots=True)
class RenditionSnapshot:
    """One rendition as the operator sees it."""

    name: str
    width: int
    height: int
    state: str
    """``starting`` (no picture yet), ``live``, or ``dropped`` (the CPU guard shed it)."""
    speed: float | None
    """Real-time factor: media seconds encoded per CPU second of its thread (> 1 keeps up)."""
    lag: float | None
    """Seconds from the source frame's arrival to its encoded frame (the added latency)."""
    frames_dropped: int
    encoder: str


# Items on the decoder's and encoders' queues besides media.
_END = "end"
_DISCONTINUITY = "discontinuity"


class _Queue:
    """A bounded hand-off between threads for media; control items always fit."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[Any] = deque()
        self._capacity = capacity
        self._media = 0
        self._cond = threading.Condition()

    def put_media(self, item: Any) -> bool:
        with self._cond:
            if self._media >= self._capacity:
                return False
            self._media += 1
            self._items.append((True, item))
            self._cond.notify()
            return True

    def put_control(self, item: Any) -> None:
        with self._cond:
            self._items.append((False, item))
            self._cond.notify()

    def get(self) -> Any:
        with self._cond:
            while not self._items:
                self._cond.wait()
            media, item = self._items.popleft()
            if media:
                self._media -= 1
            return item

    def __len__(self) -> int:
        return self._media


@dataclass(eq=False)
class LadderRendition:
    """One transcoded rendition: its encoder thread's queue, hub publisher and HLS feed."""

    rendition: Rendition
    publisher: Publisher
    feed: FeedLike
    queue: _Queue
    codec: str
    thread: threading.Thread | None = None
    video_config: VideoConfig | None = None
    shed: bool = False
    stop: bool = False
    frames_dropped: int = 0
    lag: float | None = None
    media_seconds: float = 0.0
    cpu_seconds: float = 0.0
    _last_pts: int | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.rendition.name

    @property
    def muxer(self) -> HlsMuxer:
        return self.feed.muxer

    @property
    def ready(self) -> bool:
        """Its first picture is encoded (its config and units are on its publisher)."""
        return self.video_config is not None and not self.shed

    def snapshot(self) -> RenditionSnapshot:
        state = "dropped" if self.shed else "live" if self.video_config else "starting"
        speed = self.media_seconds / self.cpu_seconds if self.cpu_seconds > 0 else None
        return RenditionSnapshot(
            name=self.name, width=self.rendition.width, height=self.rendition.height,
            state=state, speed=round(speed, 2) if speed is not None else None,
            lag=round(self.lag, 3) if self.lag is not None else None,
            frames_dropped=self.frames_dropped, encoder=self.codec)


@dataclass
class _EncoderState:
    """An encoder thread's own state."""

    encoder: EncoderLike | None = None
    offset: int = 0


def _default_encoder(rendition: Rendition, frame_rate: float, codec: str) -> EncoderLike:
    return RenditionEncoder(rendition, frame_rate, codec)


encoder_factory: EncoderFactory = _default_encoder
"""The seam through which tests inject a slow encoder (read when a :class:`Ladder` is made)."""


class Ladder:
    """The ladder of one broadcast (module docstring). Loop-side methods run on the loop.

    Args:
        name: the broadcast id (thread names, logs).
        presets: the channel's preset names, tallest first. :meth:`start` attaches the
            ladder to the source's hub as a sink.
        make_feed: packages a rendition's hub publisher (:class:`appliance.live.HlsFeed`).
        make_muxer: a new HLS muxer for a rendition (the source's targets and first number,
            and ``keyframe_cuts``: each rendition keyframe starts a segment).
        cuts: predicts where the source's segments start; renditions get an IDR there.
        encoder: which H.264 encoder to use.
        max_lag: seconds of lag (or any dropped frame) that make the guard shed a rendition.
        on_event: ``(level, kind, message)`` for the operator's event log.
    """

    def __init__(self, name: str, presets: tuple[str, ...], *,
                 make_feed: FeedFactory, make_muxer: Callable[[], HlsMuxer],
                 encoder: EncoderChoice, max_lag: float, cuts: SegmentCuts,
                 on_event: Callable[[str, str, str], None]) -> None:
        self.name = name
        self.encoder_factory: EncoderFactory = encoder_factory
        """Makes each rendition's encoder (the module's :data:`encoder_factory` by default)."""
        self.presets = presets
        self._publisher: Publisher | None = None
        self._make_feed = make_feed
        self._make_muxer = make_muxer
        self.encoder = encoder
        self._max_lag = max_lag
        self._on_event = on_event
        self._cuts = cuts
        self._renditions: list[LadderRendition] = []
        self._decode_queue = _Queue(DECODE_QUEUE)
        self._decode_thread: threading.Thread | None = None
        self._source_video: VideoConfig | None = None
        self._audio: Any = None
        self._composition_offset = 0
        self._dts_deltas: list[int] = []
        self._last_dts: int | None = None
        self._frame_rate = 30.0
        self._skipping = False  # the decoder queue overflowed: frames lost to the next keyframe
        self._awaiting_keyframe = True  # a decoder starts on one (not a loss)
        self.decode_dropped = 0
        self._last_shed = 0.0
        self._dropped_seen = 0
        self.notice = ""
        """Why the ladder is smaller than asked (the CPU guard), for the operator."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: asyncio.Task[None] | None = None
        self._closed = False

    # ---- read side (loop) ----------------------------------------------------------------------

    def renditions(self) -> list[LadderRendition]:
        """The renditions being served (ready, not shed), tallest first."""
        return [r for r in self._renditions if r.ready]

    def rendition(self, name: str) -> LadderRendition | None:
        return next((r for r in self._renditions if r.name == name and r.ready), None)

    def webrtc_rendition(self) -> LadderRendition | None:
        """The tallest served rendition (no B-frames: WebRTC can carry it)."""
        ready = self.renditions()
        return ready[0] if ready else None

    def snapshot(self) -> list[RenditionSnapshot]:
        return [r.snapshot() for r in self._renditions]

    @property
    def planned(self) -> bool:
        """The source's size is known and at least one rendition was planned."""
        return bool(self._renditions)

    # ---- lifecycle (loop) ------------------------------------------------------------------------

    def start(self, publisher: Publisher) -> None:
        """Attach to the source's hub as a synchronous sink (no task wake-up per unit: the
        loop-side work is a queue hand-off) and start the CPU guard."""
        self._loop = asyncio.get_running_loop()
        self._publisher = publisher
        self._guard = self._loop.create_task(self._guard_loop(), name=f"ladder-guard-{self.name}")
        publisher.add_sink(self)

    def abort(self) -> None:
        """Shutdown: stop threads and feeds without draining."""
        self._closed = True
        if self._guard is not None:
            self._guard.cancel()
        if self._publisher is not None:
            self._publisher.remove_sink(self)
        self._decode_queue.put_control(_END)
        for r in self._renditions:
            r.stop = True
            r.queue.put_control(_END)
            r.feed.cancel()  # first: closing the publisher would end the feed's playlist
            r.publisher.close()

    # ---- the hub sink (appliance.hub.Sink): inline on the loop, never raises -----------------

    def unit(self, unit: MediaUnit) -> None:
        try:
            if unit.kind is TrackKind.VIDEO:
                self._video(unit)
            else:
                for r in self.renditions():
                    r.publisher.publish(unit)
        except Exception:
            logger.exception("[%s] ladder failed on a unit", self.name)

    def config(self, config: CodecConfig) -> None:
        try:
            self._config(config)
        except Exception:
            logger.exception("[%s] ladder failed on a codec config", self.name)

    def discontinuity(self) -> None:
        self._last_dts = None
        self._awaiting_keyframe = True  # the decoder restarts at the new publisher's keyframe
        self._cuts.reset()  # the source muxer restarts at the next keyframe
        self._decode_queue.put_control(_DISCONTINUITY)

    def close(self) -> None:
        self._decode_queue.put_control(_END)
        if self._guard is not None:
            self._guard.cancel()

    def _config(self, config: CodecConfig) -> None:
        self._audio = config.audio
        for r in self.renditions():
            r.publisher.set_config(CodecConfig(r.video_config, config.audio))
        video = config.video
        if video is None or video == self._source_video:
            return
        first = self._source_video is None
        self._source_video = video
        self._cuts.reset()  # a codec change closes the source's segment too
        if first:
            self._plan(video)
        if self._renditions:
            self._decode_queue.put_control(video)

    def _plan(self, video: VideoConfig) -> None:
        planned = plan_renditions(self.presets, video.width, video.height)
        skipped = [n for n in self.presets if n not in {p.name for p in planned}]
        if skipped:
            self.notice = (f"ladder: {', '.join(skipped)} skipped: not below the source's "
                           f"{video.height}p (renditions are never upscaled)")
            self._on_event("info", "ladder.plan", self.notice)
        for rendition in planned:
            muxer = self._make_muxer()
            publisher = Publisher(f"{self.name}/{rendition.name}")
            feed = self._make_feed(f"{self.name}/{rendition.name}", publisher, muxer)
            r = LadderRendition(rendition, publisher, feed, _Queue(DECODE_QUEUE),
                                self.encoder.codec)
            r.thread = threading.Thread(target=self._encode_thread, args=(r,), daemon=True,
                                        name=f"ladder-{rendition.name}")
            self._renditions.append(r)
            feed.start()
            r.thread.start()
        if planned:
            self._decode_thread = threading.Thread(target=self._decode_thread_main, daemon=True,
                                                   name=f"ladder-decode-{self.name}")
            self._decode_thread.start()
            self._on_event("info", "ladder.start", "ladder: encoding " + ", ".join(
                f"{r.name} ({r.width}x{r.height})" for r in planned)
                + f" next to the source with {self.encoder.codec}")

    def _video(self, unit: MediaUnit) -> None:
        if not self._renditions or not any(not r.shed for r in self._renditions):
            return
        if self._last_dts is not None and len(self._dts_deltas) < 30:
            self._dts_deltas.append(unit.dts - self._last_dts)
            self._frame_rate = frame_rate_of(self._dts_deltas)
        self._last_dts = unit.dts
        starts_segment = self._cuts.push(unit.dts, unit.keyframe)
        if unit.keyframe:
            self._composition_offset = unit.pts - unit.dts
            self._skipping = self._awaiting_keyframe = False
        elif self._awaiting_keyframe:
            return
        elif self._skipping:
            self.decode_dropped += 1
            return
        item = (unit, self._composition_offset, self._frame_rate, starts_segment)
        if not self._decode_queue.put_media(item):
            # The decoder cannot keep up: resume at the next keyframe (a decoder needs one).
            self.decode_dropped += 1
            self._skipping = True

    # ---- threads -------------------------------------------------------------------------------

    def _decode_thread_main(self) -> None:
        decoder: Decoder | None = None
        meta: dict[int, tuple[float, int, float]] = {}
        cuts: deque[int] = deque()  # dts where the source's next segments start
        while True:
            item = self._decode_queue.get()
            if isinstance(item, VideoConfig):
                if decoder is not None:
                    self._dispatch(decoder.decode(None), meta, cuts)
                decoder = Decoder(item)
                continue
            if item == _END or item == _DISCONTINUITY:
                if decoder is not None:
                    self._dispatch(decoder.decode(None), meta, cuts)
                    # A flushed libavcodec decoder takes no more packets: a new one for the
                    # reconnected publisher (its first unit is a keyframe).
                    decoder = Decoder(decoder.config)
                meta.clear()
                cuts.clear()
                for r in self._renditions:
                    r.queue.put_control(item)
                if item == _END:
                    return
                continue
            unit, offset, rate, starts_segment = item
            if decoder is None or all(r.shed for r in self._renditions):
                continue
            meta[unit.pts] = (unit.arrival, offset, rate)
            if starts_segment:
                cuts.append(unit.dts)
            if len(meta) > MAX_META:
                for pts in sorted(meta)[: len(meta) - MAX_META]:
                    del meta[pts]
            self._dispatch(decoder.decode(unit), meta, cuts)

    def _dispatch(self, frames: list[Any], meta: dict[int, tuple[float, int, float]],
                  cuts: deque[int]) -> None:
        """Hand decoded frames to every rendition's encoder. A frame is made a keyframe when
        its rendition dts (pts − offset, media/transcode.py) reaches a source segment start."""
        for frame in frames:
            if frame.pts is None:
                continue
            arrival, offset, rate = meta.pop(frame.pts, (time.time(), 0, 30.0))
            keyframe = False
            while cuts and frame.pts - offset >= cuts[0]:
                cuts.popleft()
                keyframe = True
            for r in self._renditions:
                if r.shed:
                    continue
                if not r.queue.put_media((frame, keyframe, arrival, offset, rate)):
                    r.frames_dropped += 1

    def _encode_thread(self, r: LadderRendition) -> None:
        state = _EncoderState()
        try:
            while not r.stop:
                item = r.queue.get()
                if item == _END:
                    if state.encoder is not None:
                        flushed = state.encoder.encode(None, keyframe=False)
                        self._post(r, "units", [(f, state.offset, time.time()) for f in flushed])
                    break
                if item == _DISCONTINUITY:
                    self._post(r, "discontinuity", None)
                elif not r.stop:
                    self._encode_one(r, state, item)
        except TranscodeError as exc:
            logger.warning("[%s] %s encoder failed: %s", self.name, r.name, exc)
            self._post(r, "failed", str(exc))
        except Exception:
            logger.exception("[%s] %s encoder crashed", self.name, r.name)
            self._post(r, "failed", "encoder crashed (see the log)")
        finally:
            if state.encoder is not None:
                state.encoder.close()
            self._post(r, "end", None)

    def _encode_one(self, r: LadderRendition, state: _EncoderState, item: Any) -> None:
        frame, keyframe, arrival, offset, rate = item
        state.offset = offset
        if state.encoder is None:
            if not keyframe:
                return  # a rendition starts on a source keyframe, like the source
            state.encoder = self.encoder_factory(r.rendition, rate, r.codec)
            self._post(r, "config", state.encoder.config)
        encoder = state.encoder
        before = encoder.cpu_seconds
        encoded = encoder.encode(frame, keyframe=keyframe)
        r.cpu_seconds += encoder.cpu_seconds - before
        if r._last_pts is not None and frame.pts > r._last_pts:
            r.media_seconds += (frame.pts - r._last_pts) / CLOCK_RATE
        r._last_pts = frame.pts
        if encoded:
            self._post(r, "units", [(f, offset, arrival) for f in encoded])

    def _post(self, r: LadderRendition, kind: str, payload: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
            loop.call_soon_threadsafe(self._deliver, r, kind, payload)

    # ---- back on the loop ------------------------------------------------------------------------

    def _deliver(self, r: LadderRendition, kind: str, payload: Any) -> None:
        if kind == "end":
            r.publisher.close()  # its HLS feed ends its playlist
            return
        if r.shed or self._closed:
            return
        if kind == "config":
            r.video_config = payload
            r.publisher.set_config(CodecConfig(payload, self._audio))
        elif kind == "units":
            now = time.time()
            for frame, offset, arrival in payload:
                r.publisher.publish(rendition_unit(frame, offset, arrival))
                r.lag = now - arrival
        elif kind == "discontinuity":
            r.publisher.discontinuity()
        elif kind == "failed":
            self._shed(r, f"ladder: the {r.name} rendition stopped: {payload}")

    async def _guard_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(GUARD_INTERVAL)
            self.check()

    def check(self, now: float | None = None) -> None:
        """One CPU-guard pass (see the module docstring); called every GUARD_INTERVAL."""
        now = time.monotonic() if now is None else now
        live = [r for r in self._renditions if not r.shed]
        if not live:
            return
        dropped = self.decode_dropped + sum(r.frames_dropped for r in live)
        new_drops = dropped > self._dropped_seen
        self._dropped_seen = dropped
        worst = max(live, key=lambda r: r.lag or 0.0)
        lagging = worst.lag is not None and worst.lag > self._max_lag
        if not (lagging or new_drops) or now - self._last_shed < SHED_COOLDOWN:
            return
        self._last_shed = now
        lowest = live[-1]
        why = (f"{worst.name} is {worst.lag:.1f} s behind the source" if lagging
               else "frames were dropped")
        self._shed(lowest, f"ladder: this machine cannot encode the ladder in real time "
                           f"({why}): dropped the lowest rendition, {lowest.name}")

    def _shed(self, r: LadderRendition, message: str) -> None:
        if r.shed:
            return
        r.shed = True
        r.stop = True
        r.queue.put_control(_END)
        r.publisher.close()
        left = [x.name for x in self._renditions if not x.shed]
        self.notice = message + (f"; serving the source and {', '.join(left)}" if left
                                 else "; serving the source only")
        self._on_event("warning", "ladder.shed", self.notice)
