"""The delivery service: recorders, thumbnails, downloads and retention of one appliance.

The composition root creates one :class:`Delivery`, calls :meth:`Delivery.start` (finalises
recordings a crash left open) and :meth:`Delivery.attach` whenever a broadcast goes live (or
its publisher returns) with the live HLS muxer it should record from. Everything blocking
runs on the recording writer thread or a PyAV worker; every method here is safe on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.api.schema import RecordingChange
from appliance.bus import Bus, RecordingChanged
from appliance.delivery.index import (
    KEEP,
    POSTER,
    Recording,
    finalise_interrupted,
    list_recordings,
    load,
)
from appliance.delivery.paths import (
    BROADCAST_ID_RE,
    RECORDINGS,
    THUMBNAILS,
    check_id,
    recording_dir,
    thumbnail_path,
)
from appliance.delivery.recorder import DiskWriter, Recorder, RecordingStatus
from appliance.delivery.retention import RetentionItem, run_retention
from appliance.delivery.storage import DiskStorage, Storage
from appliance.delivery.thumbnails import INTERVAL_SECONDS, Thumbnailer
from appliance.delivery.vod import Downloads
from media.hls.segmenter import CompletedSegment, HlsMuxer, SegmentSink

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0
"""Seconds shutdown waits for pending recording writes."""

LogFn = Callable[[str, str, str, str | None], None]
"""``log(level, kind, message, broadcast_id)``: the operator-visible event log."""


class SinkGroup:
    """Fans one muxer's segments out to several sinks; one failing sink spares the others."""

    def __init__(self, *sinks: SegmentSink) -> None:
        self.sinks = list(sinks)

    def segment(self, segment: CompletedSegment) -> None:
        for sink in self.sinks:
            try:
                sink.segment(segment)
            except Exception:
                logger.exception("segment sink %r failed", sink)

    def end(self) -> None:
        for sink in self.sinks:
            try:
                sink.end()
            except Exception:
                logger.exception("segment sink %r failed at end", sink)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """A recording for listings: from disk, overlaid with the live recorder's status."""

    broadcast_id: str
    state: str
    started_at: float
    ended_at: float | None
    duration: float
    bytes: int
    segments: int
    error: str
    has_poster: bool
    kept: bool


class Delivery:
    """Recordings, thumbnails and downloads of every broadcast (see module docstring)."""

    def __init__(self, data_dir: Path, *, storage: Storage | None = None,
                 log: LogFn | None = None, thumbnail_interval: float = INTERVAL_SECONDS,
                 download_concurrency: int = 1, bus: Bus | None = None) -> None:
        self.data_dir = data_dir
        self.bus = bus
        """Where :class:`~appliance.bus.RecordingChanged` (ready, deleted) is published."""
        self.storage = storage or DiskStorage()
        self.writer = DiskWriter()
        self.thumbnails = Thumbnailer(data_dir, self.storage, interval=thumbnail_interval)
        self.downloads = Downloads(concurrency=download_concurrency)
        self._log = log
        self.base_url: Callable[[], str] = lambda: ""
        """Public base URL for :meth:`recording_url`/:meth:`thumbnail_url` (set at start-up,
        once the listening port is known)."""
        # What exists, kept in memory so API answers never touch the disk (filled at start).
        self._has_recording: set[str] = set()
        self._lengths: dict[str, float] = {}  # seconds of finished recordings
        self._has_thumbnail: set[str] = set()
        self._recorders: dict[str, Recorder] = {}
        self._attached: dict[str, HlsMuxer] = {}
        self.on_recording_change: Callable[[Recorder], None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> list[Recording]:
        """Finalise recordings left open by a crash (before any new recorder starts)."""
        result = await self.writer.run(
            lambda: finalise_interrupted(self.data_dir, self.storage))
        assert isinstance(result, list)
        await self._scan()
        for rec in result:
            self.log("info", "recording.recovered",
                     f"recording finalised after an unclean shutdown ({rec.duration:.0f} s)",
                     rec.broadcast_id)
        return result

    async def _scan(self) -> None:
        def scan() -> tuple[dict[str, float], set[str]]:
            found = [r for r in list_recordings(self.data_dir) if r.entries]
            recs = {r.broadcast_id: r.duration for r in found}
            thumbs: set[str] = set()
            with contextlib.suppress(OSError):
                for name in os.listdir(self.data_dir / THUMBNAILS):
                    if name.endswith(".jpg") and BROADCAST_ID_RE.fullmatch(name[:-4]):
                        thumbs.add(name[:-4])
            return recs, thumbs

        recs, thumbs = await asyncio.to_thread(scan)
        self._lengths.update(recs)
        self._has_recording |= set(recs)
        self._has_thumbnail |= thumbs | {r for r in recs if (
            recording_dir(self.data_dir, r) / POSTER).exists()}

    # --- what exists (memory only: safe while building API answers) ------------------------

    def has_recording(self, broadcast_id: str) -> bool:
        """A recording with at least one playable segment exists (or is being written)."""
        if broadcast_id in self._has_recording:
            return True
        rec = self._recorders.get(broadcast_id)
        if rec is not None and rec.status.segments > 0:
            self._has_recording.add(broadcast_id)
            return True
        return False

    def recording_length(self, broadcast_id: str) -> float | None:
        """Seconds of media in the recording (memory only; None when unknown)."""
        rec = self._recorders.get(broadcast_id)
        if rec is not None and rec.status.segments > 0:
            return rec.status.duration
        return self._lengths.get(broadcast_id)

    def has_thumbnail(self, broadcast_id: str) -> bool:
        return (broadcast_id in self._has_thumbnail
                or self.thumbnails.latest(broadcast_id) is not None)

    def recording_url(self, broadcast: _HasId) -> str | None:
        """``/vod/{id}/index.m3u8`` (absolute) once the broadcast has a recording, else None."""
        if not self.has_recording(broadcast.id):
            return None
        return f"{self.base_url()}/vod/{broadcast.id}/index.m3u8"

    def thumbnail_url(self, broadcast: _HasId) -> str | None:
        """``/thumb/{id}.jpg`` (absolute) once the broadcast has a thumbnail, else None."""
        if not self.has_thumbnail(broadcast.id):
            return None
        return f"{self.base_url()}/thumb/{broadcast.id}.jpg"

    async def close(self) -> None:
        """Mark running recordings complete (a resumed broadcast reopens them) and flush."""
        self._log = None  # the event log's store closes around now: Python logging only
        for rec in list(self._recorders.values()):
            rec.end()
        await self.thumbnails.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.run(lambda: None)
        except TimeoutError:
            # A hung disk (a dead NFS mount) must not hold the rest of the shutdown; what is
            # not written is lost like at kill -9, and finalised on the next start.
            logger.error("recording writes still pending after %.0f s at shutdown; abandoned",
                         CLOSE_TIMEOUT)
            self.writer.close(wait=False)
            return
        self.writer.close()

    def log(self, level: str, kind: str, message: str, broadcast_id: str | None) -> None:
        if self._log is not None:
            self._log(level, kind, message, broadcast_id)
        else:
            logger.log(logging.WARNING if level != "info" else logging.INFO, "%s: %s", kind,
                       message)

    # --- live -------------------------------------------------------------------------------

    def attach(self, broadcast_id: str, muxer: HlsMuxer, *, record: bool = True) -> None:
        """Record (if ``record``) and thumbnail ``muxer``'s segments as ``broadcast_id``.

        Idempotent for the same muxer (a publisher returning within grace keeps the sink).
        """
        check_id(broadcast_id)
        if self._attached.get(broadcast_id) is muxer and muxer.sink is not None:
            return
        sinks: list[SegmentSink] = []
        directory = recording_dir(self.data_dir, broadcast_id)
        if record:
            rec = Recorder(broadcast_id, directory, self.storage, self.writer,
                           asyncio.get_running_loop(), on_change=self._changed)
            rec.open()
            self._recorders[broadcast_id] = rec
            sinks.append(rec)
        sinks.append(self.thumbnails.sink(broadcast_id, directory if record else None))
        muxer.sink = SinkGroup(*sinks)
        self._attached[broadcast_id] = muxer

    def detach(self, broadcast_id: str) -> None:
        """The broadcast ended. Its muxer's ``end()`` (after the feeder drains) finalises the
        recording through the sink, so the sink stays in place; only bookkeeping goes."""
        self._attached.pop(broadcast_id, None)
        rec = self._recorders.get(broadcast_id)
        if rec is not None and rec.state != "recording":
            del self._recorders[broadcast_id]

    def _changed(self, rec: Recorder) -> None:
        if rec.status.segments > 0:  # remembered before detach() forgets the recorder
            self._has_recording.add(rec.broadcast_id)
            self._lengths[rec.broadcast_id] = rec.status.duration
        if rec.state == "failed":
            self.log("error", "recording.failed", rec.error, rec.broadcast_id)
        elif rec.state == "complete":
            status = rec.status
            detail = f"{status.duration:.0f} s, {status.bytes / 1e6:.1f} MB"
            self.log("info", "recording.complete", f"recording complete: {detail}",
                     rec.broadcast_id)
            if self.bus is not None and status.segments > 0:
                self.bus.publish(RecordingChanged(broadcast_id=rec.broadcast_id,
                                                  reason=RecordingChange.READY, detail=detail))
        if self.on_recording_change is not None:
            self.on_recording_change(rec)

    def recorder_status(self, broadcast_id: str) -> RecordingStatus | None:
        rec = self._recorders.get(broadcast_id)
        return rec.status if rec is not None else None

    def is_recording(self, broadcast_id: str) -> bool:
        rec = self._recorders.get(broadcast_id)
        return rec is not None and rec.state == "recording"

    # --- reading ----------------------------------------------------------------------------

    async def recording(self, broadcast_id: str) -> Recording | None:
        """The recording of a broadcast as on disk now (None if there is none)."""
        directory = recording_dir(self.data_dir, broadcast_id)
        return await asyncio.to_thread(load, directory)

    async def recordings(self) -> list[RecordingInfo]:
        recs = await asyncio.to_thread(list_recordings, self.data_dir)

        def info(r: Recording) -> RecordingInfo:
            live = self._recorders.get(r.broadcast_id)
            state = live.state if live is not None else r.meta.state
            error = live.error if live is not None and live.error else r.meta.error
            return RecordingInfo(r.broadcast_id, state, r.meta.started_at, r.meta.ended_at,
                                 r.duration, r.size, len(r.entries), error,
                                 (r.directory / POSTER).is_file(), r.kept)

        return await asyncio.to_thread(lambda: [info(r) for r in recs])

    async def thumbnail(self, broadcast_id: str) -> bytes | None:
        """Newest thumbnail of a broadcast (memory, made afresh first if the broadcast is live
        and it is older than the interval; else disk, else the recording's poster)."""
        check_id(broadcast_id)
        thumb = await self.thumbnails.current(broadcast_id)
        if thumb is not None:
            return thumb.jpeg

        def read() -> bytes | None:
            for path in (thumbnail_path(self.data_dir, broadcast_id),
                         recording_dir(self.data_dir, broadcast_id) / POSTER):
                try:
                    return path.read_bytes()
                except OSError:
                    continue
            return None

        return await asyncio.to_thread(read)

    async def thumbnail_age(self, broadcast_id: str) -> float | None:
        """Seconds since the newest thumbnail was taken (None without one)."""
        thumb = self.thumbnails.latest(broadcast_id)
        if thumb is not None:
            return max(0.0, time.time() - thumb.taken_at)
        path = thumbnail_path(self.data_dir, broadcast_id)

        def mtime() -> float | None:
            try:
                return path.stat().st_mtime
            except OSError:
                return None

        at = await asyncio.to_thread(mtime)
        return None if at is None else max(0.0, time.time() - at)

    async def download(self, broadcast_id: str) -> Path | None:
        """Path of the recording's MP4 (remuxed and cached on first request)."""
        rec = await self.recording(broadcast_id)
        if rec is None or not rec.complete or not rec.entries:
            return None
        return await self.downloads.get(rec)

    # --- operator ---------------------------------------------------------------------------

    async def delete(self, broadcast_id: str, reason: str = "deleted by the operator") -> bool:
        """Delete a recording and its files (stopping it first if it runs). False if none."""
        directory = recording_dir(self.data_dir, broadcast_id)
        rec = self._recorders.pop(broadcast_id, None)
        if rec is not None:
            rec.stop("recording deleted")
        self._attached.pop(broadcast_id, None)

        def remove() -> bool:
            if not directory.is_dir():
                return False
            self.storage.remove_tree(directory)
            return True

        removed = await self.writer.run(remove)
        self._has_recording.discard(broadcast_id)
        self._lengths.pop(broadcast_id, None)
        if removed:
            self.log("info", "recording.deleted", f"recording deleted: {reason}", broadcast_id)
            if self.bus is not None:
                self.bus.publish(RecordingChanged(broadcast_id=broadcast_id,
                                                  reason=RecordingChange.DELETED, detail=reason))
        return bool(removed)

    async def set_kept(self, broadcast_id: str, kept: bool) -> bool:
        """Exempt a recording from retention (or make it subject again). False if none."""
        directory = recording_dir(self.data_dir, broadcast_id)

        def mark() -> bool:
            if not directory.is_dir():
                return False
            if kept:
                self.storage.write_atomic(directory / KEEP, b"")
            else:
                self.storage.remove(directory / KEEP)
            return True

        done = bool(await self.writer.run(mark))
        if done:
            self.log("info", "recording.kept" if kept else "recording.unkept",
                     "recording kept: exempt from retention" if kept
                     else "recording no longer exempt from retention", broadcast_id)
        return done

    async def retention_items(self, max_age: Callable[[str], float | None]
                              ) -> list[RetentionItem]:
        """Every recording as the retention policy sees it; ``max_age(id)`` in seconds."""
        infos = await self.recordings()
        return [RetentionItem(i.broadcast_id,
                              i.ended_at if i.state != "recording" else None,
                              i.bytes, i.kept, max_age(i.broadcast_id)) for i in infos]

    async def apply_retention(self, items: list[RetentionItem], disk_cap: int | None,
                              now: float | None = None) -> list[str]:
        """Delete what the policy selects (see :mod:`appliance.delivery.retention`)."""
        async def listed() -> list[RetentionItem]:
            return items

        return await run_retention(listed, self.delete, time.time() if now is None else now,
                                   disk_cap)

    @property
    def root(self) -> Path:
        return self.data_dir / RECORDINGS
