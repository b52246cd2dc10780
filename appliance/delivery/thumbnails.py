"""Thumbnails: a JPEG from a recent keyframe of each live broadcast, made when wanted.

A :class:`ThumbnailSink` (one per broadcast) is a :class:`media.hls.segmenter.SegmentSink`:
segments start with an IDR picture (the muxer cuts at keyframes, bar forced cuts in GOPs
longer than the target), so a thumbnail is the first keyframe of a recent segment.
:func:`make_thumbnail` demuxes that segment with PyAV, decodes exactly one packet (the IDR),
scales it to at most :data:`MAX_WIDTH` pixels wide and encodes a JPEG — in a worker thread.

When: the first :data:`EAGER` thumbnails are made as segments arrive, ``interval`` seconds
apart (the first lets the announce and the pages name a thumbnail URL at once; the second,
≈ 10 s in, past fades from black, becomes the recording's ``poster.jpg``). After that the
sink only keeps a reference to the newest segment (its bytes are the muxer's, already in
memory), and a thumbnail is made from it when someone asks (:meth:`Thumbnailer.current`)
and the newest one is older than ``interval``; one more is made when the broadcast ends, so
the one kept shows its end. A decode of a 720p IDR costs ~8 ms of CPU: made every 10 s for
every live stream whether or not anyone looked, it was 6-12 % of the ingest cost per stream
at ten streams (docs/architecture.md "Ingest hot path"). Requests cannot raise the rate
above the old one (at most one per broadcast per ``interval``, however many ask), and CPU is
bounded twice: at most one decode in flight per broadcast, and a global semaphore across
broadcasts.

The newest thumbnail is kept in memory and at ``<data dir>/thumbnails/<id>.jpg`` (so it
survives the broadcast and a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from appliance.delivery.index import POSTER
from appliance.delivery.paths import check_id, thumbnail_path
from appliance.delivery.storage import Storage
from media.hls.segmenter import CompletedSegment

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 10.0
EAGER = 2
"""Thumbnails made as segments arrive, before any is asked for (see the module docstring)."""
REFRESH_WAIT = 1.0
"""How long a request waits for a fresh thumbnail before it is served the newest one (the
decode queues behind other broadcasts' on the global semaphore; a viewer is not held)."""
MAX_WIDTH = 640
JPEG_QUALITY = 5
"""FFmpeg mjpeg qscale (2 best … 31 worst): 5 gives ~20–40 kB at 640×360."""
MAX_INPUT_BYTES = 32 << 20
"""A segment larger than this is not decoded for a thumbnail (a 2 s segment is ~1 MB)."""
MAX_TRACKS = 2
"""Tracks in a live init segment (video and audio; media/fmp4.py)."""


class ThumbnailError(ValueError):
    """The media could not be turned into a thumbnail."""


def scaled_size(width: int, height: int, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """Keep the aspect ratio, at most ``max_width`` wide, even dimensions (4:2:0 JPEG)."""
    if width <= 0 or height <= 0:
        raise ThumbnailError(f"bad picture size {width}x{height}")
    if width > max_width:
        height = max(2, round(height * max_width / width))
        width = max_width
    return max(2, width - width % 2), max(2, height - height % 2)


def make_thumbnail(mp4: bytes, max_width: int = MAX_WIDTH) -> tuple[bytes, int, int]:
    """JPEG of the first picture of an fMP4 (init + segment). Blocking: call in a worker.

    Returns:
        (jpeg bytes, width, height).

    Raises:
        ThumbnailError: no video, nothing decodable, or input too large.
    """
    import av  # PyAV only in workers

    if len(mp4) > MAX_INPUT_BYTES:
        raise ThumbnailError("segment too large for a thumbnail")
    try:
        # The streams come from the init's moov; probing (avformat_find_stream_info) would
        # decode several frames first: ~60 % of a thumbnail's CPU, for every live stream
        # every interval (measured for issue 17's ingest cost). Even held to 32 bytes it
        # decodes the IDR once to learn the pixel format (which avcC does not carry), before
        # we decode it again: its decoders skip every frame (the stream options apply only
        # to that probe; ours below is a new context). 720p: open 6.1 -> 0.6 ms, decode 5.4.
        with av.open(io.BytesIO(mp4), "r", format="mp4",
                     options={"probesize": "32", "analyzeduration": "0"},
                     # PyAV's stub says list[str]; it takes one dict per stream
                     stream_options=[{"skip_frame": "all"}] * MAX_TRACKS,  # type: ignore[call-overload]
                     ) as container:
            if not container.streams.video:
                raise ThumbnailError("no video track")
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = 1
            frames: list[Any] = []
            for packet in container.demux(stream):
                # A segment cut inside a long GOP does not start with a keyframe: use the
                # first IDR in it (decoding anything before it needs references we lack).
                if packet.size == 0 or not packet.is_keyframe:
                    continue
                frames = list(stream.codec_context.decode(packet))
                if not frames:
                    frames = list(stream.codec_context.decode(None))  # flush: one picture
                break
            if not frames:
                raise ThumbnailError("no keyframe in the segment")
            frame = frames[0]
            width, height = scaled_size(frame.width, frame.height, max_width)
            picture = frame.reformat(width=width, height=height, format="yuvj420p")
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height = width, height
            encoder.pix_fmt = "yuvj420p"
            encoder.time_base = Fraction(1, 25)
            encoder.thread_count = 1
            encoder.options = {"qmin": str(JPEG_QUALITY), "qmax": str(JPEG_QUALITY)}
            packets = [*encoder.encode(picture), *encoder.encode(None)]
    except av.FFmpegError as exc:
        raise ThumbnailError(f"cannot decode: {exc}") from exc
    jpeg = b"".join(bytes(p) for p in packets)
    if not jpeg.startswith(b"\xff\xd8"):
        raise ThumbnailError("encoder produced no JPEG")
    return jpeg, width, height


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    width: int
    height: int
    taken_at: float  # wall clock


class Thumbnailer:
    """Owns the thumbnail workers of every broadcast (one global CPU bound).

    Args:
        run: runs a blocking callable in a worker and returns an awaitable (default
            :func:`asyncio.to_thread`); injected by benchmarks to count CPU.
    """

    def __init__(self, data_dir: Path, storage: Storage, *, interval: float = INTERVAL_SECONDS,
                 max_width: int = MAX_WIDTH, concurrency: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.data_dir = data_dir
        self.storage = storage
        self.interval = interval
        self.max_width = max_width
        self.clock = clock
        self.wall_clock = wall_clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._latest: dict[str, Thumbnail] = {}
        self._live: dict[str, ThumbnailSink] = {}  # sinks of broadcasts not ended
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False  # no decode starts once the appliance shuts down
        self.made = 0
        self.failed = 0
        self.skipped = 0

    def sink(self, broadcast_id: str, poster_dir: Path | None = None) -> ThumbnailSink:
        sink = ThumbnailSink(self, check_id(broadcast_id), poster_dir)
        self._live[sink.broadcast_id] = sink
        return sink

    def latest(self, broadcast_id: str) -> Thumbnail | None:
        """The newest thumbnail in memory, as it is (no decode)."""
        return self._latest.get(broadcast_id)

    async def current(self, broadcast_id: str) -> Thumbnail | None:
        """The newest thumbnail, first made afresh from the newest segment when the broadcast
        is live and its newest thumbnail is older than ``interval`` (waits at most
        :data:`REFRESH_WAIT`; concurrent callers share one decode, and a caller that goes
        away does not cancel it for the others)."""
        sink = self._live.get(broadcast_id)
        if sink is not None:
            task = sink.refresh()
            if task is not None:
                # shield: the task is shared; wait_for would cancel it on timeout.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), REFRESH_WAIT)
        return self._latest.get(broadcast_id)

    def forget(self, broadcast_id: str) -> None:
        self._latest.pop(broadcast_id, None)

    async def close(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, sink: ThumbnailSink, mp4: tuple[bytes, ...]) -> asyncio.Task[None]:
        """Make a thumbnail of the fMP4 that is the concatenation of ``mp4`` (joined on the
        worker, not here on the loop)."""
        task = asyncio.get_running_loop().create_task(self._make(sink, mp4),
                                                      name=f"thumbnail-{sink.broadcast_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _make(self, sink: ThumbnailSink, mp4: tuple[bytes, ...]) -> None:
        try:
            async with self._semaphore:
                jpeg, width, height = await asyncio.to_thread(
                    lambda: make_thumbnail(b"".join(mp4), self.max_width))
            thumb = Thumbnail(jpeg, width, height, self.wall_clock())
            self._latest[sink.broadcast_id] = thumb
            self.made += 1
            sink.count += 1
            path = thumbnail_path(self.data_dir, sink.broadcast_id)

            def write() -> None:
                self.storage.makedirs(path.parent)
                self.storage.write_atomic(path, jpeg)
                if sink.poster_dir is not None and sink.count <= EAGER and sink.poster_dir.is_dir():
                    self.storage.write_atomic(sink.poster_dir / POSTER, jpeg)

            await asyncio.to_thread(write)
        except (ThumbnailError, OSError) as exc:
            self.failed += 1
            logger.warning("thumbnail for %s failed: %s", sink.broadcast_id, exc)
        finally:
            sink.in_flight = False


class ThumbnailSink:
    """SegmentSink of one broadcast: the first :data:`EAGER` thumbnails as segments arrive,
    then one on request (:meth:`refresh`) at most every ``interval`` seconds, and one at the
    end (see the module docstring)."""

    def __init__(self, owner: Thumbnailer, broadcast_id: str, poster_dir: Path | None) -> None:
        self.owner = owner
        self.broadcast_id = broadcast_id
        self.poster_dir = poster_dir
        self.in_flight = False
        self.count = 0
        self.started = 0  # decodes started (eager, requested or final)
        self._task: asyncio.Task[None] | None = None
        self._newest: tuple[bytes, ...] | None = None  # init + parts of the newest segment
        self._newest_taken = True  # the newest segment already had its thumbnail started
        self._last: float | None = None  # clock when the last decode started
        self._ended = False

    def segment(self, segment: CompletedSegment) -> None:
        if self._ended:
            return
        # A segment that starts with a keyframe needs only its first part (the IDR opens it):
        # less to join and less for the demuxer to walk. One cut inside a long GOP is
        # searched whole for its first IDR (make_thumbnail). Only references are kept.
        parts = segment.parts[:1] if segment.independent else segment.parts
        self._newest = (segment.init, *parts)
        self._newest_taken = False
        if self.started >= EAGER or not self._due() or self.owner.closed:
            return
        if self.in_flight:
            self.owner.skipped += 1  # the previous decode is still running: bound the CPU
            return
        self._start()

    def refresh(self) -> asyncio.Task[None] | None:
        """Start a thumbnail of the newest segment if one is due; return the decode to wait
        for (the running one, if any), or None when the newest thumbnail is fresh enough."""
        if self.in_flight:
            return self._task
        if self._ended or self._newest_taken or not self._due() or self.owner.closed:
            return None
        return self._start()

    def end(self) -> None:
        self._ended = True
        if self.owner._live.get(self.broadcast_id) is self:
            del self.owner._live[self.broadcast_id]
        if not self._newest_taken and not self.in_flight and not self.owner.closed:
            self._start()  # the kept thumbnail shows how the broadcast ended

    def _due(self) -> bool:
        return self._last is None or self.owner.clock() - self._last >= self.owner.interval

    def _start(self) -> asyncio.Task[None]:
        assert self._newest is not None
        self._last = self.owner.clock()
        self._newest_taken = True
        self.in_flight = True
        self.started += 1
        self._task = self.owner._spawn(self, self._newest)
        return self._task
