"""The stream aggregate: the one owner of stream state, in memory and in SQLite.

:class:`StreamService` creates, edits, ends and rotates streams, decides publish requests
(key check, takeover, grace), and owns a :class:`LiveStream` per stream that has media: its
hub publisher, HLS muxer, timeline, health meter and viewer counter. Every state change that
matters after a crash is committed before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.api.schema import StreamChange, safe_text
from appliance.bus import Bus, LogRecorded, StreamChanged, ViewersChanged
from appliance.config import Config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import (
    KEY_PREFIX,
    Stream,
    StreamFields,
    StreamState,
    hash_key,
    key_matches,
    new_stream_id,
    new_stream_key,
)
from appliance.hub import Discontinuity, Publisher, Reader, StreamConfig
from appliance.tasks import BackgroundTasks
from appliance.viewers import ViewerCounter
from media.depacketizer import ConfigChanged, FlvDepacketizer
from media.health import HealthMeter
from media.hls.segmenter import HlsMuxer
from media.units import MediaUnit

logger = logging.getLogger(__name__)

ENDED_RETENTION_SECONDS = 3600.0
"""How long an ended stream's final HLS window stays in memory."""


class PublisherLink(Protocol):
    """What the stream needs from an ingest connection (implemented in :mod:`appliance.ingest`)."""

    id: int
    remote: str
    connected_at: float

    def end(self, code: str, description: str) -> None: ...


class StreamNotFound(LookupError):
    pass


class StreamEnded(RuntimeError):
    """The operation needs a stream that has not ended."""


class PublishRefused(Exception):
    """A publish request is refused; ``code`` is the RTMP onStatus code to send."""

    def __init__(self, code: str, description: str, *, auth: bool = False) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.auth = auth


def split_key(key: str) -> tuple[str, str] | None:
    """``hk_<stream id>_<secret>`` → (stream id, key); None if it cannot be one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return parts[1], key


@dataclass
class LiveStream:
    """Runtime state of a stream that has (or had, recently) a publisher."""

    stream_id: str
    publisher: Publisher
    muxer: HlsMuxer
    depacketizer: FlvDepacketizer
    health: HealthMeter = field(default_factory=HealthMeter)
    viewers: ViewerCounter = field(default_factory=ViewerCounter)
    link: PublisherLink | None = None
    ingest_session_id: int | None = None
    reconnects: int = 0
    grace_until: float | None = None
    ended: bool = False
    ended_at: float | None = None
    hls_reader: Reader | None = None
    hls_task: asyncio.Task[None] | None = None
    grace_handle: asyncio.TimerHandle | None = None
    malformed_frames: int = 0
    last_error: str = ""

    def ingest_frames(self, outputs: list[MediaUnit | ConfigChanged]) -> None:
        for out in outputs:
            if isinstance(out, MediaUnit):
                self.health.add(out)
                self.publisher.publish(out)
            else:
                self.health.set_config(out.video, out.audio)
                self.publisher.set_config(StreamConfig(out.video, out.audio))


class StreamService:
    """Owner of every stream's state. All methods run on the event loop."""

    def __init__(self, config: Config, store: Store, bus: Bus | None = None) -> None:
        self.config = config
        self.store = store
        self.bus = bus or Bus()
        self._last_viewers: dict[str, tuple[int, int, int]] = {}
        self._keys: dict[str, str] = {}  # stream id → key hash, for streams that may publish
        self._live: dict[str, LiveStream] = {}
        self._tasks = BackgroundTasks("streams")

    # ---- start-up and shutdown ---------------------------------------------------------------

    async def start(self) -> None:
        """Load key hashes and reconcile streams a crash or restart left ``live``.

        A stream still ``live`` in the database lost its publisher with the old process. It
        gets the normal reconnect grace from now: OBS reconnecting within it continues the same
        stream; otherwise it ends.
        """
        hashes = await self.store.read(q.key_hashes)
        self._keys = {sid: h for h, sid in hashes.items()}
        now = time.time()
        closed = await self.store.write(
            lambda db: q.close_open_ingest_sessions(db, now, "appliance restarted")
        )
        live = await self.store.read(lambda db: q.list_streams(db, StreamState.LIVE))
        for stream in live:
            ls = self._ensure_live(stream.id)
            self._start_grace(ls)
        if live or closed:
            self.log("warning", "reconcile",
                     f"restarted with {len(live)} live stream(s); waiting "
                     f"{self.config.rtmp.grace_seconds:.0f} s for their publishers")

    async def close(self) -> None:
        for ls in list(self._live.values()):
            if ls.link is not None:
                ls.link.end("NetStream.Unpublish.Success", "server shutting down")
            await self._persist_health(ls, ended=True, reason="server shutdown")
            if ls.grace_handle:
                ls.grace_handle.cancel()
            ls.publisher.close()
            if ls.hls_task:
                ls.hls_task.cancel()
        await self._tasks.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name)

    def log(self, level: str, kind: str, message: str, stream_id: str | None = None) -> None:
        """Record an operator-visible event (DB log + Python log)."""
        message = safe_text(message, 2000)  # may quote peers; the TUI and CLI show it as is
        getattr(logger, "warning" if level == "warning" else level, logger.info)(
            "%s%s: %s", f"[{stream_id}] " if stream_id else "", kind, message)
        at = time.time()

        async def record() -> None:
            # Published once stored, so the event carries its row id (the TUI orders by it).
            row_id = await self.store.write(
                lambda db: q.insert_event(db, level, kind, message, stream_id, at))
            self.bus.publish(LogRecorded(id=row_id, level=level, kind=kind, message=message,
                                         stream_id=stream_id, at=at))

        self.spawn(record(), "log-event")

    # ---- operator actions --------------------------------------------------------------------

    async def create(self, fields: StreamFields) -> tuple[Stream, str]:
        fields = fields.validated()
        stream_id = new_stream_id()
        key = f"{KEY_PREFIX}{stream_id}_{new_stream_key()[len(KEY_PREFIX):]}"
        key_hash = hash_key(key)
        stream = await self.store.write(lambda db: q.insert_stream(db, stream_id, fields, key_hash))
        self._keys[stream_id] = key_hash
        self.log("info", "stream.created", f"stream {stream.title!r} created", stream_id)
        self.bus.publish(StreamChanged(stream_id=stream_id, reason=StreamChange.CREATED))
        return stream, key

    async def get(self, stream_id: str) -> Stream:
        stream = await self.store.read(lambda db: q.get_stream(db, stream_id))
        if stream is None:
            raise StreamNotFound(stream_id)
        return stream

    async def list_streams(self, status: StreamState | None = None) -> list[Stream]:
        return await self.store.read(lambda db: q.list_streams(db, status))

    async def update(self, stream_id: str, fields: StreamFields) -> Stream:
        fields = fields.validated()
        stream = await self.get(stream_id)
        if stream.status is StreamState.ENDED:
            raise StreamEnded(stream_id)
        await self.store.write(lambda db: q.update_stream_fields(db, stream_id, fields))
        self.bus.publish(StreamChanged(stream_id=stream_id, reason=StreamChange.UPDATED))
        return await self.get(stream_id)

    async def rotate_key(self, stream_id: str) -> tuple[Stream, str]:
        """Issue a new key; the old one stops working at once (its publisher is dropped)."""
        stream = await self.get(stream_id)
        if stream.status is StreamState.ENDED:
            raise StreamEnded(stream_id)
        key = f"{KEY_PREFIX}{stream_id}_{new_stream_key()[len(KEY_PREFIX):]}"
        key_hash = hash_key(key)
        await self.store.write(lambda db: q.set_key_hash(db, stream_id, key_hash))
        self._keys[stream_id] = key_hash
        ls = self._live.get(stream_id)
        if ls is not None and ls.link is not None:
            ls.link.end("NetStream.Publish.BadName", "stream key rotated")
            self._detach(ls, "stream key rotated")
        self.log("info", "stream.key_rotated", "stream key rotated", stream_id)
        self.bus.publish(StreamChanged(stream_id=stream_id, reason=StreamChange.KEY_ROTATED))
        return stream, key

    async def end(self, stream_id: str, reason: str = "ended by the operator") -> Stream:
        """End a stream now (no grace); a connected publisher is told and disconnected."""
        stream = await self.get(stream_id)
        if stream.status is StreamState.ENDED:
            return stream
        ls = self._live.get(stream_id)
        if ls is not None and ls.link is not None:
            ls.link.end("NetStream.Publish.BadName", reason)
            self._detach(ls, reason)
        await self._finish(stream_id, reason)
        return await self.get(stream_id)

    async def delete(self, stream_id: str) -> None:
        """End the stream if needed, then remove it from every listing, page and lookup.

        The row stays (chat and history reference it); consumers of ``StreamChanged``
        with reason ``deleted`` (the Nostr service) ask relays to delete its events (NIP-09).
        """
        await self.end(stream_id, "deleted by the operator")
        await self.store.write(lambda db: q.mark_deleted(db, stream_id, time.time()))
        ls = self._live.pop(stream_id, None)
        if ls is not None:
            ls.publisher.close()
        self.log("info", "stream.deleted", "stream deleted", stream_id)
        self.bus.publish(StreamChanged(stream_id=stream_id, reason=StreamChange.DELETED))

    # ---- runtime queries -------------------------------------------------------------------

    def live_stream(self, stream_id: str) -> LiveStream | None:
        return self._live.get(stream_id)

    def live_streams(self) -> list[LiveStream]:
        return list(self._live.values())

    def viewers(self, stream_id: str) -> int:
        ls = self._live.get(stream_id)
        return ls.viewers.current() if ls and not ls.ended else 0

    # ---- ingest ------------------------------------------------------------------------------

    def authorize(self, key: str) -> str:
        """Check a presented stream key; returns the stream id or raises PublishRefused.

        The same refusal (code and text) for unknown, malformed, rotated and ended keys, so
        the answer is no oracle (docs/threat-model.md §stream-keys). Digests are compared in
        constant time.
        """
        parsed = split_key(key)
        stored = self._keys.get(parsed[0]) if parsed else None
        # Compare even when there is nothing stored, against a dummy digest, so the time taken
        # does not reveal whether the stream id exists.
        ok = key_matches(key, stored or "0" * 64) and stored is not None
        if not ok or parsed is None:
            raise PublishRefused("NetStream.Publish.BadName",
                                 "invalid stream key (check OBS Settings → Stream)", auth=True)
        return parsed[0]

    def attach(self, stream_id: str, link: PublisherLink) -> LiveStream:
        """Make ``link`` the stream's publisher, taking over from any previous one."""
        ls = self._ensure_live(stream_id)
        if ls.link is not None:
            old = ls.link
            self.log("warning", "ingest.takeover",
                     f"new publisher from {link.remote} replaced connection #{old.id} "
                     f"from {old.remote}", stream_id)
            old.end("NetStream.Unpublish.Success", "replaced by a new connection")
            self._detach(ls, "replaced by a new connection", start_grace=False)
        resumed = ls.grace_until is not None or ls.health.units > 0
        if ls.grace_handle is not None:
            ls.grace_handle.cancel()
            ls.grace_handle = None
        ls.grace_until = None
        ls.link = link
        ls.depacketizer.new_session()
        if resumed:
            ls.reconnects += 1
            ls.publisher.discontinuity()
        now = time.time()

        async def persist() -> None:
            def tx(db: object) -> int:
                q.mark_live(db, stream_id, now)  # type: ignore[arg-type]
                return q.insert_ingest_session(db, stream_id, link.remote, now)  # type: ignore[arg-type]

            session_id = await self.store.write(tx)
            if ls.link is link:
                ls.ingest_session_id = session_id
            else:  # replaced before the write finished
                await self.store.write(
                    lambda db: q.update_ingest_session(db, session_id, q.IngestHealthRow(),
                                                       time.time(), "replaced"))
            # Published after COMMIT: consumers (Nostr, dashboards) may read the new state.
            self.bus.publish(StreamChanged(stream_id=stream_id,
                                           reason=StreamChange.PUBLISHER_BACK if resumed
                                           else StreamChange.LIVE))

        self.spawn(persist(), f"attach-{stream_id}")
        self.log("info", "ingest.publish",
                 f"publishing from {link.remote}" + (" (reconnect)" if resumed else ""), stream_id)
        return ls

    def detach(self, stream_id: str, link: PublisherLink, reason: str) -> None:
        """The publisher's connection ended; the stream waits out the grace window."""
        ls = self._live.get(stream_id)
        if ls is None or ls.link is not link:
            return  # an old, replaced connection
        self._detach(ls, reason)

    def _detach(self, ls: LiveStream, reason: str, start_grace: bool = True) -> None:
        ls.link = None
        self.spawn(self._persist_health(ls, ended=True, reason=reason), f"detach-{ls.stream_id}")
        if start_grace and not ls.ended:
            self.log("info", "ingest.disconnected",
                     f"publisher gone ({reason}); waiting {self.config.rtmp.grace_seconds:.0f} s",
                     ls.stream_id)
            self._start_grace(ls)
            self.bus.publish(StreamChanged(stream_id=ls.stream_id,
                                           reason=StreamChange.PUBLISHER_LOST))

    def _start_grace(self, ls: LiveStream) -> None:
        loop = asyncio.get_running_loop()
        grace = self.config.rtmp.grace_seconds
        ls.grace_until = time.time() + grace
        if ls.grace_handle:
            ls.grace_handle.cancel()
        ls.grace_handle = loop.call_later(
            grace, lambda: self.spawn(self._finish(ls.stream_id, "publisher did not return"),
                                      f"end-{ls.stream_id}"))

    async def _finish(self, stream_id: str, reason: str) -> None:
        ls = self._live.get(stream_id)
        now = time.time()
        if ls is not None:
            if ls.link is not None:  # came back while we were scheduled
                return
            if ls.grace_handle:
                ls.grace_handle.cancel()
                ls.grace_handle = None
            ls.grace_until = None
            ls.ended = True
            ls.ended_at = now
            ls.publisher.close()  # the HLS feeder drains, then ends the playlist
            peak, total = ls.viewers.peak, ls.viewers.total
            await self.store.write(lambda db: q.record_viewers(db, stream_id, peak, total))
            asyncio.get_running_loop().call_later(
                ENDED_RETENTION_SECONDS, lambda: self._live.pop(stream_id, None))
        await self.store.write(lambda db: q.mark_ended(db, stream_id, now))
        self._keys.pop(stream_id, None)
        self._last_viewers.pop(stream_id, None)
        self.log("info", "stream.ended", f"stream ended: {reason}", stream_id)
        self.bus.publish(StreamChanged(stream_id=stream_id, reason=StreamChange.ENDED))

    async def _persist_health(self, ls: LiveStream, ended: bool = False,
                              reason: str | None = None) -> None:
        session_id = ls.ingest_session_id
        if session_id is None:
            return
        snap = ls.health.snapshot()
        row = q.IngestHealthRow(
            video_codec=snap.video_codec, width=snap.width, height=snap.height, fps=snap.fps,
            bitrate_kbps=snap.bitrate_kbps, keyframe_interval=snap.keyframe_interval,
            bframes=snap.bframes, audio_codec=snap.audio_codec, sample_rate=snap.sample_rate,
            channels=snap.channels, bytes_in=snap.bytes_in,
        )
        peak, total = ls.viewers.peak, ls.viewers.total
        stream_id = ls.stream_id

        def tx(db: object) -> None:
            q.update_ingest_session(db, session_id, row,  # type: ignore[arg-type]
                                    time.time() if ended else None, reason)
            q.record_viewers(db, stream_id, peak, total)  # type: ignore[arg-type]

        if ended:
            ls.ingest_session_id = None
        await self.store.write(tx)

    async def persist_all_health(self) -> None:
        """Periodic: write live health and viewer figures (called by a lifecycle task)."""
        for ls in list(self._live.values()):
            if ls.link is not None:
                await self._persist_health(ls)

    def emit_viewers(self) -> None:
        """Periodic: publish :class:`ViewersChanged` for live streams whose figures moved."""
        for ls in list(self._live.values()):
            if ls.ended:
                continue
            figures = (ls.viewers.current(), ls.viewers.peak, ls.viewers.total)
            if self._last_viewers.get(ls.stream_id) != figures:
                self._last_viewers[ls.stream_id] = figures
                self.bus.publish(ViewersChanged(stream_id=ls.stream_id, current=figures[0],
                                                peak=figures[1], total=figures[2]))

    def _ensure_live(self, stream_id: str) -> LiveStream:
        ls = self._live.get(stream_id)
        if ls is not None and not ls.ended:
            return ls
        hls = self.config.hls
        ls = LiveStream(
            stream_id=stream_id,
            publisher=Publisher(stream_id),
            muxer=HlsMuxer(segment_target=hls.segment_target, part_target=hls.part_target,
                           window=hls.window),
            depacketizer=FlvDepacketizer(),
        )
        ls.hls_reader = ls.publisher.add_reader(f"hls:{stream_id}")
        ls.hls_task = asyncio.get_running_loop().create_task(
            self._feed_hls(ls), name=f"hls-{stream_id}")
        self._live[stream_id] = ls
        return ls

    async def _feed_hls(self, ls: LiveStream) -> None:
        """Drain the stream's hub reader into its HLS muxer; end the playlist at the end."""
        reader = ls.hls_reader
        assert reader is not None
        errors = 0
        while (item := await reader.get()) is not None:
            try:
                if isinstance(item, MediaUnit):
                    ls.muxer.push(item)
                elif isinstance(item, StreamConfig):
                    if item.video is not None or item.audio is not None:
                        ls.muxer.set_config(item.video, item.audio)
                elif isinstance(item, Discontinuity):
                    ls.muxer.mark_discontinuity()
            except Exception as exc:  # a muxer bug must not kill the stream's feeder
                errors += 1
                if errors <= 3 or errors % 1000 == 0:
                    logger.exception("[%s] HLS muxer rejected an item (%d so far)", ls.stream_id,
                                     errors)
                ls.last_error = f"HLS packaging error: {exc}"
        with contextlib.suppress(Exception):
            ls.muxer.end()
