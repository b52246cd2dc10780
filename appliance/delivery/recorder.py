"""The recorder: the live muxer's completed segments → files, written off the event loop.

A :class:`Recorder` is a :class:`media.hls.segmenter.SegmentSink`: the HLS muxer hands it every
segment it completes (the very bytes the live playlist serves, so nothing is muxed twice) on
the loop; the recorder only queues a job for the :class:`DiskWriter` (one thread for every
recording: they share a disk) and returns. The writer writes the segment (temp + rename), then
appends its index line (see :mod:`appliance.delivery.index`).

Bounded: a recorder with more than :data:`MAX_BACKLOG_SEGMENTS` segments (or
:data:`MAX_BACKLOG_BYTES`) not yet on disk stops, with an error the operator sees — a slow or
stalled disk costs the recording, never the live stream. A write error (``ENOSPC``, ``EIO``,
…) stops it the same way. What was written stays playable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.delivery.index import (
    DOWNLOAD,
    INDEX,
    META,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_RECORDING,
    IndexEntry,
    Meta,
    read_entries,
)
from appliance.delivery.paths import check_id, is_vod_name
from appliance.delivery.storage import Storage
from media.hls.segmenter import CompletedSegment

logger = logging.getLogger(__name__)

MAX_BACKLOG_SEGMENTS = 16
"""Segments (≈ 32 s at the default 2 s target) that may wait for the disk before the recording
is stopped. Memory held is bounded by this times the segment size."""
MAX_BACKLOG_BYTES = 64 << 20


class DiskWriter:
    """The one thread that performs recording writes, in submission order.

    A daemon thread (not a ThreadPoolExecutor worker): a write stuck in the kernel on a dead
    disk must not keep the process from exiting after shutdown gave up waiting for it.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], object], concurrent.futures.Future[object]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="recording-writer",
                                        daemon=True)
        self._closed = False
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to whoever waits on the future
                fut.set_exception(exc)

    def submit(self, fn: Callable[[], object]) -> concurrent.futures.Future[object]:
        fut: concurrent.futures.Future[object] = concurrent.futures.Future()
        if self._closed:  # after shutdown: the job fails like a write error would
            fut.set_exception(OSError(errno.ESHUTDOWN, "the recording writer is closed"))
            return fut
        self._jobs.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` on the writer thread and wait for it (from the loop)."""
        return await asyncio.wrap_future(self.submit(fn))

    def close(self, wait: bool = True) -> None:
        """Finish queued writes (``wait``) or abandon them; idempotent."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        if wait:
            self._thread.join()


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    """What the operator sees about one recording."""

    broadcast_id: str
    state: str
    segments: int
    bytes: int
    duration: float
    error: str
    backlog: int


class Recorder:
    """Records one broadcast. Create with :meth:`start`; feed it through the muxer's sink.

    Args:
        on_change: called on the loop when the recording stops (``failed`` or ``complete``);
            the composition root logs the error for the operator and updates the database.
    """

    def __init__(self, broadcast_id: str, directory: Path, storage: Storage, writer: DiskWriter,
                 loop: asyncio.AbstractEventLoop, *,
                 on_change: Callable[[Recorder], None] | None = None,
                 max_backlog: int = MAX_BACKLOG_SEGMENTS,
                 max_backlog_bytes: int = MAX_BACKLOG_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        self.broadcast_id = check_id(broadcast_id)
        self.directory = directory
        self._storage = storage
        self._writer = writer
        self._loop = loop
        self.on_change = on_change
        self._max_backlog = max_backlog
        self._max_backlog_bytes = max_backlog_bytes
        self._clock = clock
        self.state = STATE_RECORDING
        self.error = ""
        self.started_at = clock()
        # Loop-side bookkeeping.
        self._next_seg = 0
        self._next_init = 0
        self._init_bytes: bytes | None = None
        self._init_name = ""
        self._force_discontinuity = False
        self._pending = 0
        self._pending_bytes = 0
        self._segments = 0
        self._bytes = 0
        self._duration = 0.0
        # Set by the loop when stopping; read by queued jobs on the writer thread so that a
        # failed recording does not keep writing what was already queued.
        self._stopped = threading.Event()
        self._ready = False
        self._early: list[CompletedSegment] = []
        self._end_requested = False

    # --- lifecycle (loop) -------------------------------------------------------------------

    @classmethod
    async def start(cls, broadcast_id: str, directory: Path, storage: Storage,
                    writer: DiskWriter, **kwargs: Any) -> Recorder:
        """Create (or resume) a recording and wait until its directory is ready."""
        rec = cls(broadcast_id, directory, storage, writer, asyncio.get_running_loop(),
                  **kwargs)
        await asyncio.wrap_future(rec.open())
        for _ in range(2):
            await asyncio.sleep(0)  # let _opened run
        return rec

    def open(self) -> concurrent.futures.Future[object]:
        """Prepare the directory on the writer thread (create it, or resume what is there).

        Segments that arrive before it is ready are held (bounded like the backlog) and
        written in order once it is.
        """
        fut = self._writer.submit(self._open)

        def done(f: concurrent.futures.Future[object]) -> None:
            exc = f.exception()
            with contextlib.suppress(RuntimeError):  # loop closed: shutting down
                self._loop.call_soon_threadsafe(self._opened, exc)

        fut.add_done_callback(done)
        return fut

    def _opened(self, exc: BaseException | None) -> None:
        if self._ready:
            return
        self._ready = True
        early, self._early = self._early, []
        if exc is not None:
            self._fail(f"cannot start the recording: {_describe(exc)}")
            return
        for seg in early:
            self.segment(seg)
        if self._end_requested:
            self.end()

    def _open(self) -> None:
        self._storage.makedirs(self.directory)
        existing = read_entries(self.directory)
        # Resuming (the broadcast continued after a restart): append after what exists, files
        # renamed into place but not yet indexed at a crash included, so that a name is never
        # reused for different bytes (VOD objects are served as immutable).
        taken = [n for n in os.listdir(self.directory) if is_vod_name(n)]
        if taken:
            self._next_seg = 1 + max((int(n[4:-4]) for n in taken if n.startswith("seg-")),
                                     default=-1)
            self._next_init = 1 + max((int(n[5:-4]) for n in taken if n.startswith("init-")),
                                      default=-1)
        if existing:
            # Resuming (the broadcast continued after a restart): append after what exists.
            self._force_discontinuity = True
            self._segments = len(existing)
            self._duration = sum(e.duration for e in existing)
            self._bytes = sum(e.size for e in existing)
            meta = Meta.maybe_read(self.directory / META)
            if meta is not None:
                self.started_at = meta.started_at
            self._storage.remove(self.directory / DOWNLOAD)  # stale now
        self._storage.write_atomic(self.directory / META, Meta(
            self.broadcast_id, STATE_RECORDING, self.started_at).to_bytes())

    def segment(self, segment: CompletedSegment) -> None:
        """SegmentSink: queue ``segment`` for the disk; never blocks."""
        if self.state != STATE_RECORDING:
            return
        if not self._ready:
            if len(self._early) >= self._max_backlog:
                self._fail("disk too slow: the recording directory could not be prepared")
            else:
                self._early.append(segment)
            return
        if (self._pending >= self._max_backlog
                or self._pending_bytes + segment.size > self._max_backlog_bytes):
            self._fail(f"disk too slow: {self._pending} segments waiting to be written; "
                       "recording stopped (live delivery continues)")
            return
        init_job: tuple[str, bytes] | None = None
        new_init = segment.init is not self._init_bytes and segment.init != self._init_bytes
        if new_init:
            self._init_name = f"init-{self._next_init}.mp4"
            self._next_init += 1
            self._init_bytes = segment.init
            init_job = (self._init_name, segment.init)
        name = f"seg-{self._next_seg}.m4s"
        self._next_seg += 1
        entry = IndexEntry(
            seg=name, init=self._init_name, duration=segment.duration,
            discontinuity=segment.discontinuity or self._force_discontinuity or (
                new_init and self._next_seg > 1),
            size=segment.size, program_date_time=segment.program_date_time,
            independent=segment.independent)
        self._force_discontinuity = False
        data = segment.parts
        self._pending += 1
        self._pending_bytes += entry.size

        def job() -> None:
            if self._stopped.is_set():
                return
            if init_job is not None:
                self._storage.write_atomic(self.directory / init_job[0], init_job[1])
            self._storage.write_atomic(self.directory / name, data)
            self._storage.append(self.directory / INDEX, entry.to_line())

        fut = self._writer.submit(job)
        fut.add_done_callback(lambda f: self._from_writer(f, entry))

    def end(self) -> None:
        """SegmentSink: the broadcast's media ended; mark the recording complete."""
        if self.state != STATE_RECORDING:
            return
        if not self._ready:
            self._end_requested = True
            return
        self.state = STATE_COMPLETE
        meta = Meta(self.broadcast_id, STATE_COMPLETE, self.started_at, self._clock())

        def job() -> None:
            self._storage.write_atomic(self.directory / META, meta.to_bytes())

        fut = self._writer.submit(job)
        fut.add_done_callback(lambda f: self._from_writer(f, None))

    def stop(self, reason: str) -> None:
        """Stop recording now (operator action or shutdown); what is on disk stays."""
        if self.state == STATE_RECORDING:
            self._fail(reason)

    @property
    def status(self) -> RecordingStatus:
        return RecordingStatus(self.broadcast_id, self.state, self._segments, self._bytes,
                               self._duration, self.error, self._pending)

    # --- writer → loop ----------------------------------------------------------------------

    def _from_writer(self, fut: concurrent.futures.Future[object],
                     entry: IndexEntry | None) -> None:
        exc = fut.exception()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to report to
            self._loop.call_soon_threadsafe(self._written, entry, exc)

    def _written(self, entry: IndexEntry | None, exc: BaseException | None) -> None:
        if entry is not None:
            self._pending -= 1
            self._pending_bytes -= entry.size
        if exc is not None:
            self._fail(f"recording stopped: write failed: {_describe(exc)}")
            return
        if entry is not None and not self._stopped.is_set():
            self._segments += 1
            self._bytes += entry.size
            self._duration += entry.duration
        elif entry is None and self.state == STATE_COMPLETE and self.on_change is not None:
            self._notify()

    def _fail(self, error: str, *, notify: bool = True) -> None:
        if self.state == STATE_FAILED:
            return
        was_complete = self.state == STATE_COMPLETE
        self.state = STATE_FAILED
        self.error = error
        self._stopped.set()
        logger.warning("recording %s: %s", self.broadcast_id, error)
        if not was_complete:
            meta = Meta(self.broadcast_id, STATE_FAILED, self.started_at, self._clock(), error)

            def job() -> None:
                try:
                    self._storage.write_atomic(self.directory / META, meta.to_bytes())
                except OSError:
                    pass  # the disk that failed may refuse this too; the index still plays

            self._writer.submit(job)
        if notify:
            self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                logger.exception("recording %s: on_change failed", self.broadcast_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return str(exc) or type(exc).__name__
