"""Channels and broadcasts: the one owner of their state, in memory and in SQLite.

Design note (for the recorder, thumbnails, pages and anyone else building on this):

* A **channel** is persistent (title, summary, tags, image, key digest, ``record``,
  ``retention_days``). Its key ``hk_<channel id>_<secret>`` lasts until rotated.
* A **broadcast** is one live session of a channel, or a planned one. Status
  :class:`~appliance.domain.BroadcastStatus` planned → live → ended. Its id is its NIP-53 ``d``.
* A publish with a channel's key continues the channel's current broadcast when there is one
  (a reconnect within ``rtmp.grace_seconds``, or an immediate same-key takeover); otherwise it
  takes the channel's next planned broadcast whose start is near or past
  (:data:`PLANNED_LEAD` / :data:`PLANNED_STALE`), else starts a new broadcast. The broadcast id
  is chosen synchronously in :meth:`ChannelService.attach`, so it is known from the first frame.
* **Bus events** (:mod:`appliance.bus`), each published after COMMIT:
  ``BroadcastChanged(reason=STARTED | PUBLISHER_LOST | RECONNECTED | ENDED | PLANNED |
  DELETED)``, ``ChannelChanged``, ``ViewersChanged``.
* **Attaching a consumer to live media**: on ``BroadcastChanged(STARTED)`` (or any time),
  ``service.runtime(broadcast_id)`` / ``service.live_broadcast(channel_id)`` returns the
  :class:`~appliance.live.LiveBroadcast`; ``open_reader(name)`` gives a hub
  :class:`~appliance.hub.Reader` primed with the codec config and starting at a keyframe. It
  yields :class:`~media.units.CodecConfig`, :class:`~media.units.MediaUnit` and
  :class:`~appliance.hub.Discontinuity` (at reconnects) and returns None once the broadcast
  has ended and the backlog is drained: that is the recorder's "finalise" signal.
* **Database**: ``channels`` and ``broadcasts`` tables (migration
  ``m004_channels_and_broadcasts``), queries in :mod:`appliance.db.queries`. A recordings
  table can reference ``broadcasts(id)``; the admin/public JSON has a ``recording_url`` and a
  ``thumbnail_url`` per broadcast, filled through :class:`BroadcastMedia` (None by default).
* Every method runs on the event loop; time and timers come from an injected :class:`Clock`
  so grace and takeover are unit-tested without processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from appliance.api.schema import safe_text
from appliance.bus import (
    BroadcastChanged,
    BroadcastReason,
    Bus,
    ChannelChanged,
    ChannelReason,
    LogRecorded,
    ViewersChanged,
)
from appliance.config import Config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import (
    Broadcast,
    BroadcastStatus,
    Channel,
    ChannelFields,
    ValidationError,
    Visibility,
    hash_key,
    key_matches,
    new_id,
    new_stream_key,
    split_key,
    validated_title,
)
from appliance.ladder import EncoderChoice, LadderSetup
from appliance.live import Cancellable, LiveBroadcast, PublisherLink
from appliance.tasks import BackgroundTasks

logger = logging.getLogger(__name__)

ENDED_RETENTION_SECONDS = 3600.0
"""How long an ended broadcast's final HLS window stays in memory."""
PLANNED_LEAD = 3600.0
"""A publish up to an hour before a planned start takes that planned broadcast."""
PLANNED_STALE = 24 * 3600.0
"""A planned broadcast whose start is more than a day past is no longer taken by a publish."""
MAX_PLAN_AHEAD = 366 * 24 * 3600.0


class Clock(Protocol):
    """Wall time and timers (the loop's in production; a fake one in unit tests)."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopClock:
    def time(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, callback)


class BroadcastMedia(Protocol):
    """Where a broadcast's recording and thumbnail are served (set by the recorder).

    Called while building API answers: answer from memory, never block.
    """

    def recording_url(self, broadcast: Broadcast) -> str | None: ...

    def thumbnail_url(self, broadcast: Broadcast) -> str | None: ...


class ChannelNotFound(LookupError):
    pass


class BroadcastNotFound(LookupError):
    pass


class PublishRefused(Exception):
    """A publish request is refused; ``code`` is the RTMP onStatus code to send (other ingest
    protocols map ``auth`` refusals to their own answer, e.g. WHIP's 401)."""

    def __init__(self, code: str, description: str, *, auth: bool = False) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.auth = auth
        self.delay = 0.0
        """Seconds to wait before telling the publisher (set by the ingest gate for wrong
        keys: it slows brute force)."""


INVALID_KEY = "invalid stream key (check OBS Settings → Stream)"


class ChannelService:
    """Owner of every channel's and broadcast's state. All methods run on the event loop."""

    def __init__(self, config: Config, store: Store, bus: Bus | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.store = store
        self.bus = bus or Bus()
        self.clock: Clock = clock or LoopClock()
        self._keys: dict[str, str] = {}  # channel id → key digest
        self._ladders: dict[str, tuple[str, ...]] = {}  # channel id → ladder presets (if on)
        self.ladder_encoder = EncoderChoice()
        """The ladder's encoder, chosen at start (lifecycle probes the hardware)."""
        self._current: dict[str, LiveBroadcast] = {}  # channel id → its live broadcast
        self._runtimes: dict[str, LiveBroadcast] = {}  # broadcast id → live or recently ended
        self._last_ended: dict[str, LiveBroadcast] = {}  # channel id → its last, recently ended
        self._planned: dict[str, dict[str, float | None]] = {}  # channel → {broadcast: starts}
        self._last_viewers: dict[str, tuple[int, int, int]] = {}
        # Visibility, in memory so every media request can be checked without SQLite:
        # channel id → its visibility; broadcast id → (channel id, its own or None).
        self._channel_vis: dict[str, Visibility] = {}
        self._broadcast_vis: dict[str, tuple[str, Visibility | None]] = {}
        self._tasks = BackgroundTasks("channels")

    # ---- start-up and shutdown ---------------------------------------------------------------

    async def start(self) -> None:
        """Load key digests and plans; give broadcasts a restart left ``live`` their grace.

        A broadcast still ``live`` in the database lost its publisher with the old process.
        OBS reconnecting within the grace continues it; otherwise it ends.
        """
        hashes = await self.store.read(q.key_hashes)
        self._keys = {cid: h for h, cid in hashes.items()}
        self._channel_vis, self._broadcast_vis = await self.store.read(q.visibilities)
        self._ladders = await self.store.read(q.channel_ladders)
        planned = await self.store.read(
            lambda db: q.list_broadcasts(db, status=BroadcastStatus.PLANNED, limit=100_000))
        for b in planned:
            self._planned.setdefault(b.channel_id, {})[b.id] = b.starts
        now = self.clock.time()
        closed = await self.store.write(
            lambda db: q.close_open_ingest_sessions(db, now, "appliance restarted"))
        live = await self.store.read(
            lambda db: q.list_broadcasts(db, status=BroadcastStatus.LIVE, limit=100_000))
        for b in live:
            lb = self._new_runtime(b.id, b.channel_id)
            self._start_grace(lb)
        if live or closed:
            self.log("warning", "reconcile",
                     f"restarted with {len(live)} live broadcast(s); waiting "
                     f"{self.config.rtmp.grace_seconds:.0f} s for their publishers")

    async def close(self) -> None:
        for lb in list(self._current.values()):
            if lb.link is not None:
                lb.link.end("NetStream.Unpublish.Success", "server shutting down")
            await self._persist_health(lb, session_end="server shutdown")
            lb._abort()
        await self._tasks.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name)

    def log(self, level: str, kind: str, message: str, channel_id: str | None = None) -> None:
        """Record an operator-visible event (DB log + Python log)."""
        message = safe_text(message, 2000)  # may quote peers; the TUI and CLI show it as is
        getattr(logger, "warning" if level == "warning" else level, logger.info)(
            "%s%s: %s", f"[{channel_id}] " if channel_id else "", kind, message)
        at = time.time()

        async def record() -> None:
            # Published once stored, so the event carries its row id (the TUI orders by it).
            row_id = await self.store.write(
                lambda db: q.insert_event(db, level, kind, message, channel_id, at))
            self.bus.publish(LogRecorded(id=row_id, level=level, kind=kind, message=message,
                                         stream_id=channel_id, at=at))

        self.spawn(record(), "log-event")

    # ---- channels ----------------------------------------------------------------------------

    async def create_channel(self, fields: ChannelFields, *,
                             first_broadcast: bool = False) -> tuple[Channel, str]:
        """Create a channel; returns it with its key (shown once, stored as a digest).

        ``first_broadcast`` (the pre-channels ``stream create``) also plans an unscheduled
        broadcast with the channel's own id, taken by the first publish: announced on Nostr
        and open for chat from now on, as a stream was.
        """
        fields = fields.validated()
        channel_id = new_id()
        key = new_stream_key(channel_id)
        key_hash = hash_key(key)

        def tx(db: Any) -> Channel:
            channel = q.insert_channel(db, channel_id, fields, key_hash)
            if first_broadcast:
                q.insert_planned(db, channel_id, channel_id, None, None)
            return channel

        channel = await self.store.write(tx)
        self._keys[channel_id] = key_hash
        self._channel_vis[channel_id] = fields.visibility
        self._set_ladder(channel_id, fields.ladder)
        if first_broadcast:
            self._planned.setdefault(channel_id, {})[channel_id] = None
            self._broadcast_vis[channel_id] = (channel_id, None)
        self.log("info", "channel.created", f"channel {channel.title!r} created", channel_id)
        self.bus.publish(ChannelChanged(channel_id=channel_id, reason=ChannelReason.CREATED))
        if first_broadcast:
            self.bus.publish(BroadcastChanged(broadcast_id=channel_id, channel_id=channel_id,
                                              reason=BroadcastReason.PLANNED))
        return channel, key

    async def get_channel(self, channel_id: str) -> Channel:
        channel = await self.store.read(lambda db: q.get_channel(db, channel_id))
        if channel is None:
            raise ChannelNotFound(channel_id)
        return channel

    async def list_channels(self) -> list[Channel]:
        return await self.store.read(q.list_channels)

    async def update_channel(self, channel_id: str, fields: ChannelFields) -> Channel:
        """Edit a channel. A visibility change applies at once to its live and planned
        broadcasts that follow it (the next request of a viewer without a grant is refused;
        the Nostr side deletes or announces their events on ``BroadcastChanged(UPDATED)``)."""
        fields = fields.validated()
        before = await self.get_channel(channel_id)
        await self.store.write(lambda db: q.update_channel_fields(db, channel_id, fields))
        self._channel_vis[channel_id] = fields.visibility
        changed = before.visibility is not fields.visibility
        if changed:
            self.log("info", "channel.visibility",
                     f"channel visibility {before.visibility.value} → {fields.visibility.value}",
                     channel_id)
        self._set_ladder(channel_id, fields.ladder)  # from the channel's next broadcast on
        self.bus.publish(ChannelChanged(channel_id=channel_id, reason=ChannelReason.UPDATED))
        lb = self._current.get(channel_id)
        following = {lb.broadcast_id} if lb is not None else set()
        if changed:  # planned ones are announced too: their 30311 follows the change
            following |= {bid for bid in self._planned.get(channel_id, {})
                          if self._broadcast_vis.get(bid, (channel_id, None))[1] is None}
        for bid in sorted(following):  # their description (or visibility) changed: republish
            self.bus.publish(BroadcastChanged(broadcast_id=bid, channel_id=channel_id,
                                              reason=BroadcastReason.UPDATED))
        return await self.get_channel(channel_id)

    async def set_broadcast_visibility(self, broadcast_id: str,
                                       visibility: Visibility | None) -> Broadcast:
        """Give one broadcast its own visibility (None: follow its channel again)."""
        b = await self.get_broadcast(broadcast_id)
        await self.store.write(
            lambda db: q.set_broadcast_visibility(db, broadcast_id, visibility))
        b = await self.get_broadcast(broadcast_id)
        own = b.visibility if b.status is BroadcastStatus.ENDED else visibility
        self._broadcast_vis[broadcast_id] = (b.channel_id, own)
        self.log("info", "broadcast.visibility",
                 f"broadcast {broadcast_id} is now {b.visibility.value}", b.channel_id)
        self.bus.publish(BroadcastChanged(broadcast_id=broadcast_id, channel_id=b.channel_id,
                                          reason=BroadcastReason.UPDATED))
        return b

    def touch_channel(self, channel_id: str) -> None:
        """Tell consumers the channel's access changed (grants revoked): ``ChannelChanged``
        (UPDATED), so open chat sockets and WHEP peers re-check their grants."""
        self.bus.publish(ChannelChanged(channel_id=channel_id, reason=ChannelReason.UPDATED))

    def visibility(self, broadcast_id: str) -> Visibility | None:
        """A broadcast's effective visibility from memory (None: no such broadcast)."""
        entry = self._broadcast_vis.get(broadcast_id)
        if entry is None:
            return None
        channel_id, own = entry
        return own or self._channel_vis.get(channel_id, Visibility.PUBLIC)

    def channel_of(self, broadcast_id: str) -> str | None:
        entry = self._broadcast_vis.get(broadcast_id)
        return entry[0] if entry else None

    def channel_visibility(self, channel_id: str) -> Visibility | None:
        """A channel's visibility from memory (None: no such channel)."""
        return self._channel_vis.get(channel_id)

    def is_public(self, broadcast_id: str) -> bool:
        return self.visibility(broadcast_id) is Visibility.PUBLIC
    def _set_ladder(self, channel_id: str, presets: tuple[str, ...]) -> None:
        if presets:
            self._ladders[channel_id] = presets
        else:
            self._ladders.pop(channel_id, None)

    def _ladder_setup(self, channel_id: str) -> LadderSetup | None:
        presets = self._ladders.get(channel_id)
        if not presets:
            return None

        def on_event(level: str, kind: str, message: str) -> None:
            self.log(level, kind, message, channel_id)

        return LadderSetup(presets, self.ladder_encoder, self.config.ladder.max_lag, on_event)

    async def rotate_key(self, channel_id: str) -> tuple[Channel, str]:
        """Issue a new key; the old one stops working at once (its publisher is dropped)."""
        channel = await self.get_channel(channel_id)
        key = new_stream_key(channel_id)
        key_hash = hash_key(key)
        await self.store.write(lambda db: q.set_key_hash(db, channel_id, key_hash))
        self._keys[channel_id] = key_hash
        lb = self._current.get(channel_id)
        if lb is not None and lb.link is not None:
            lb.link.end("NetStream.Publish.BadName", "stream key rotated")
            self._disconnect(lb, "stream key rotated", grace=True)
        self.log("info", "channel.key_rotated", "stream key rotated", channel_id)
        self.bus.publish(ChannelChanged(channel_id=channel_id, reason=ChannelReason.KEY_ROTATED))
        return channel, key

    async def delete_channel(self, channel_id: str) -> None:
        """End the channel's live and planned broadcasts, then remove it everywhere.

        Rows stay (chat and history reference them). Consumers of
        ``BroadcastChanged(DELETED)`` (the Nostr side) ask relays to delete each broadcast's
        events (NIP-09).
        """
        await self.get_channel(channel_id)
        lb = self._current.get(channel_id)
        if lb is not None:
            await self.end_broadcast(lb.broadcast_id, "channel deleted by the operator")
        for b in await self.list_broadcasts(channel_id):
            if b.status is not BroadcastStatus.ENDED:
                await self.end_broadcast(b.id, "channel deleted by the operator")
        broadcasts = await self.list_broadcasts(channel_id)
        await self.store.write(lambda db: q.mark_channel_deleted(db, channel_id, time.time()))
        self._keys.pop(channel_id, None)
        self._ladders.pop(channel_id, None)
        self._planned.pop(channel_id, None)
        self._channel_vis.pop(channel_id, None)
        for b in broadcasts:
            self._broadcast_vis.pop(b.id, None)
        self.log("info", "channel.deleted", "channel deleted", channel_id)
        self.bus.publish(ChannelChanged(channel_id=channel_id, reason=ChannelReason.DELETED))
        for b in broadcasts:
            self.bus.publish(BroadcastChanged(broadcast_id=b.id, channel_id=channel_id,
                                              reason=BroadcastReason.DELETED))

    # ---- broadcasts --------------------------------------------------------------------------

    async def plan(self, channel_id: str, title: str, starts: float,
                   visibility: Visibility | None = None) -> Broadcast:
        """Announce a broadcast ahead (status planned); the channel's publish near ``starts``
        takes it. ``visibility`` None: it follows the channel's."""
        title = validated_title(title)
        now = self.clock.time()
        if not now - PLANNED_STALE < starts < now + MAX_PLAN_AHEAD:
            raise ValidationError("starts", "must be within the last day or the next year")
        await self.get_channel(channel_id)
        broadcast_id = new_id()
        b = await self.store.write(
            lambda db: q.insert_planned(db, broadcast_id, channel_id, title, starts, visibility))
        self._planned.setdefault(channel_id, {})[broadcast_id] = starts
        self._broadcast_vis[broadcast_id] = (channel_id, visibility)
        self.log("info", "broadcast.planned", f"broadcast {title!r} planned", channel_id)
        self.bus.publish(BroadcastChanged(broadcast_id=broadcast_id, channel_id=channel_id,
                                          reason=BroadcastReason.PLANNED))
        return b

    async def get_broadcast(self, broadcast_id: str) -> Broadcast:
        b = await self.store.read(lambda db: q.get_broadcast(db, broadcast_id))
        if b is None:
            raise BroadcastNotFound(broadcast_id)
        return b

    async def list_broadcasts(self, channel_id: str | None = None,
                              status: BroadcastStatus | None = None,
                              limit: int = 500) -> list[Broadcast]:
        return await self.store.read(lambda db: q.list_broadcasts(db, channel_id, status, limit))

    async def resolve_broadcast(self, ident: str) -> Broadcast:
        """A broadcast by its id, else a channel's live (or latest) broadcast by channel id.

        Old ``/watch/<stream id>`` links and chat commands given a channel id land here.
        """
        def read(db: Any) -> Broadcast | None:
            return q.get_broadcast(db, ident) or q.latest_broadcast(db, ident)

        b = await self.store.read(read)
        if b is None:
            raise BroadcastNotFound(ident)
        return b

    async def end_broadcast(self, broadcast_id: str,
                            reason: str = "ended by the operator") -> Broadcast:
        """End a live broadcast now (no grace: its publisher is told and disconnected), or
        cancel a planned one."""
        lb = self._runtimes.get(broadcast_id)
        if lb is not None and not lb.ended:  # (its row may not be committed yet)
            if lb.link is not None:
                lb.link.end("NetStream.Publish.BadName", reason)
                self._disconnect(lb, reason, grace=False)
            await self._finish(lb, reason)
            return await self.get_broadcast(broadcast_id)
        b = await self.get_broadcast(broadcast_id)
        if b.status is not BroadcastStatus.ENDED:
            self._planned.get(b.channel_id, {}).pop(broadcast_id, None)
            now = self.clock.time()
            await self.store.write(lambda db: q.end_broadcast(db, broadcast_id, now, reason))
            self._freeze_visibility(broadcast_id, b.channel_id)
            self.log("info", "broadcast.ended", f"broadcast {b.title!r} ended: {reason}",
                     b.channel_id)
            self.bus.publish(BroadcastChanged(broadcast_id=broadcast_id,
                                              channel_id=b.channel_id,
                                              reason=BroadcastReason.ENDED))
        return await self.get_broadcast(broadcast_id)

    # ---- runtime queries ---------------------------------------------------------------------

    def live_broadcast(self, channel_id: str) -> LiveBroadcast | None:
        """The channel's current broadcast runtime (publishing or in its grace), if any."""
        return self._current.get(channel_id)

    def runtime(self, ident: str) -> LiveBroadcast | None:
        """Media of a channel's current broadcast (by channel id) or of a broadcast (by its id),
        including one that ended within :data:`ENDED_RETENTION_SECONDS` (its final window)."""
        return (self._current.get(ident) or self._runtimes.get(ident)
                or self._last_ended.get(ident))

    def live_broadcasts(self) -> list[LiveBroadcast]:
        return list(self._current.values())

    def viewers(self, broadcast_id: str) -> int:
        lb = self._runtimes.get(broadcast_id)
        return lb.viewers() if lb is not None else 0

    # ---- ingest ------------------------------------------------------------------------------

    def authorize(self, key: str) -> str:
        """Check a presented stream key; returns the channel id or raises PublishRefused.

        The same refusal (code and text) for unknown, malformed and rotated keys, so the answer
        is no oracle (docs/threat-model.md §stream-keys). Digests are compared in constant time.

        The one method also called off the loop: SRT checks keys on libsrt's handshake thread
        (appliance/srt/ingest.py, docs/threat-model.md §srt). Keep it a pure read of the key
        table (one dict lookup, atomic under the GIL): no awaits, no writes, no bus events.
        """
        channel_id = split_key(key)
        stored = self._keys.get(channel_id) if channel_id else None
        # Compare even when there is nothing stored, against a dummy digest, so the time taken
        # does not reveal whether the channel exists.
        ok = key_matches(key, stored or "0" * 64) and stored is not None
        if not ok or channel_id is None:
            raise PublishRefused("NetStream.Publish.BadName", INVALID_KEY, auth=True)
        return channel_id

    def attach(self, channel_id: str, link: PublisherLink) -> LiveBroadcast:
        """Make ``link`` the publisher of the channel's broadcast (see the module docstring)."""
        lb = self._current.get(channel_id)
        started = lb is None
        if lb is None:
            broadcast_id = self._take_planned(channel_id) or new_id()
            lb = self._new_runtime(broadcast_id, channel_id)
        elif lb.link is not None:
            old = lb.link
            self.log("warning", "ingest.takeover",
                     f"new publisher from {link.remote} replaced connection #{old.id} "
                     f"from {old.remote}", channel_id)
            old.end("NetStream.Unpublish.Success", "replaced by a new connection")
            self._disconnect(lb, "replaced by a new connection", grace=False)
        resumed = lb._connect(link)
        now = self.clock.time()
        broadcast_id = lb.broadcast_id

        def tx(db: Any) -> int:
            if started:
                q.start_broadcast(db, broadcast_id, channel_id, now)
            return q.insert_ingest_session(db, channel_id, broadcast_id, link.remote, now)

        # Queued now, so any later write about this broadcast (an end) runs after it.
        written = self.store.write_soon(tx)

        async def persist() -> None:
            session_id = await written
            if lb.link is link:
                lb.ingest_session_id = session_id
            else:  # replaced before the write finished
                await self.store.write(
                    lambda db: q.update_ingest_session(db, session_id, q.IngestHealthRow(),
                                                       time.time(), "replaced"))
            # Published after COMMIT: consumers (Nostr, recorder, dashboards) read the new row.
            self.bus.publish(BroadcastChanged(
                broadcast_id=broadcast_id, channel_id=channel_id,
                reason=BroadcastReason.STARTED if started else BroadcastReason.RECONNECTED))

        self.spawn(persist(), f"attach-{broadcast_id}")
        self.log("info", "ingest.publish",
                 f"publishing from {link.remote} "
                 + (f"(broadcast {broadcast_id} continues)" if resumed and not started
                    else f"(broadcast {broadcast_id})"), channel_id)
        return lb

    def detach(self, channel_id: str, link: PublisherLink, reason: str) -> None:
        """The publisher's connection ended; the broadcast waits out the grace window."""
        lb = self._current.get(channel_id)
        if lb is None or lb.link is not link:
            return  # an old, replaced connection
        self._disconnect(lb, reason, grace=True)

    def _freeze_visibility(self, broadcast_id: str, channel_id: str) -> None:
        # Mirrors q.end_broadcast: an ended broadcast keeps the visibility it ended with.
        self._broadcast_vis[broadcast_id] = (
            channel_id, self.visibility(broadcast_id) or self._channel_vis.get(
                channel_id, Visibility.PUBLIC))

    def _take_planned(self, channel_id: str) -> str | None:
        plans = self._planned.get(channel_id)
        if not plans:
            return None
        now = self.clock.time()
        due = [(starts if starts is not None else float("-inf"), bid)
               for bid, starts in plans.items()
               if starts is None or now - PLANNED_STALE <= starts <= now + PLANNED_LEAD]
        if not due:
            return None
        _, broadcast_id = min(due)
        del plans[broadcast_id]
        return broadcast_id

    def _new_runtime(self, broadcast_id: str, channel_id: str) -> LiveBroadcast:
        # A channel's playlist URL outlives its broadcasts, and caches keep media objects for a
        # while (appliance/api/hls.py): the next broadcast's seg-/part-/init- names start above
        # every name the previous one used (HlsMuxer first_msn).
        first_msn = int(self.clock.time())
        prev = self._current.get(channel_id)
        if prev is not None and prev.muxer.last_msn is not None:
            first_msn = max(first_msn, prev.muxer.last_msn + 1)
        lb = LiveBroadcast(broadcast_id, channel_id, self.config.hls, first_msn=first_msn,
                           ladder=self._ladder_setup(channel_id))
        lb.start()
        self._broadcast_vis.setdefault(broadcast_id, (channel_id, None))
        self._current[channel_id] = lb
        self._runtimes[broadcast_id] = lb
        return lb

    def _disconnect(self, lb: LiveBroadcast, reason: str, *, grace: bool) -> None:
        lb._disconnect()
        self.spawn(self._persist_health(lb, session_end=reason), f"detach-{lb.broadcast_id}")
        if grace and not lb.ended:
            self.log("info", "ingest.disconnected",
                     f"publisher gone ({reason}); waiting {self.config.rtmp.grace_seconds:.0f} s "
                     "for it to come back", lb.channel_id)
            self._start_grace(lb)
            self.bus.publish(BroadcastChanged(broadcast_id=lb.broadcast_id,
                                              channel_id=lb.channel_id,
                                              reason=BroadcastReason.PUBLISHER_LOST))

    def _start_grace(self, lb: LiveBroadcast) -> None:
        grace = self.config.rtmp.grace_seconds

        def expired() -> None:
            self.spawn(self._finish(lb, "publisher did not return"), f"end-{lb.broadcast_id}")

        lb._set_grace(self.clock.time() + grace, self.clock.call_later(grace, expired))

    async def _finish(self, lb: LiveBroadcast, reason: str) -> None:
        if lb.link is not None or lb.ended:  # came back while we were scheduled, or done
            return
        now = self.clock.time()
        lb._end(now)
        if self._current.get(lb.channel_id) is lb:
            del self._current[lb.channel_id]
            self._last_ended[lb.channel_id] = lb  # /hls/<channel> ends its playlist too
        self._last_viewers.pop(lb.broadcast_id, None)
        _, peak, total = lb.viewer_figures()
        health = lb.health_record()
        broadcast_id = lb.broadcast_id

        def tx(db: Any) -> None:
            q.record_viewers(db, broadcast_id, peak, total)
            if lb.reconnects or health.get("units"):
                q.set_broadcast_health(db, broadcast_id, health, lb.reconnects)
            q.end_broadcast(db, broadcast_id, now, reason)

        await self.store.write(tx)
        self._freeze_visibility(broadcast_id, lb.channel_id)

        def forget() -> None:
            if self._runtimes.get(broadcast_id) is lb:
                del self._runtimes[broadcast_id]
            if self._last_ended.get(lb.channel_id) is lb:
                del self._last_ended[lb.channel_id]

        self.clock.call_later(ENDED_RETENTION_SECONDS, forget)
        self.log("info", "broadcast.ended", f"broadcast {broadcast_id} ended: {reason}",
                 lb.channel_id)
        self.bus.publish(BroadcastChanged(broadcast_id=broadcast_id, channel_id=lb.channel_id,
                                          reason=BroadcastReason.ENDED))

    async def _persist_health(self, lb: LiveBroadcast, session_end: str | None = None) -> None:
        session_id = lb.ingest_session_id
        snap = lb.health()
        row = q.IngestHealthRow(
            video_codec=snap.video_codec, width=snap.width, height=snap.height, fps=snap.fps,
            bitrate_kbps=snap.bitrate_kbps, keyframe_interval=snap.keyframe_interval,
            bframes=snap.bframes, audio_codec=snap.audio_codec, sample_rate=snap.sample_rate,
            channels=snap.channels, bytes_in=snap.bytes_in,
        )
        _, peak, total = lb.viewer_figures()
        health = lb.health_record()
        broadcast_id, reconnects = lb.broadcast_id, lb.reconnects
        if session_end is not None:
            lb.ingest_session_id = None

        def tx(db: Any) -> None:
            if session_id is not None:
                q.update_ingest_session(db, session_id, row,
                                        time.time() if session_end else None, session_end)
            q.record_viewers(db, broadcast_id, peak, total)
            if snap.units:
                q.set_broadcast_health(db, broadcast_id, health, reconnects)

        await self.store.write(tx)

    async def persist_all_health(self) -> None:
        """Periodic: write live health and viewer figures (called by a lifecycle task)."""
        for lb in list(self._current.values()):
            if lb.link is not None:
                await self._persist_health(lb)

    def emit_viewers(self) -> None:
        """Periodic: publish :class:`ViewersChanged` for live broadcasts whose figures moved."""
        for lb in list(self._current.values()):
            figures = lb.viewer_figures()
            if self._last_viewers.get(lb.broadcast_id) != figures:
                self._last_viewers[lb.broadcast_id] = figures
                self.bus.publish(ViewersChanged(broadcast_id=lb.broadcast_id,
                                                channel_id=lb.channel_id, current=figures[0],
                                                peak=figures[1], total=figures[2]))
