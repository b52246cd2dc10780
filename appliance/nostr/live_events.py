"""NIP-53 live events (kind 30311) of Hearth's broadcasts, and NIP-09 deletions.

Each broadcast is its own activity: ``d`` = the broadcast id. A planned broadcast is announced
with ``status planned`` and its planned ``starts``; a live one carries its real start and
playback URLs; an ended one ``ends`` and, once the recorder has it, ``recording``.

Two pieces, kept apart on purpose:

* :class:`LiveEventInput` + :func:`live_event_input` + :func:`build_activity` — *what* the
  30311 says: a small immutable input built from a stream (and its live figures), turned into
  an unsigned event. This is the part that changes when the domain changes (e.g. broadcasts
  instead of streams); it does no I/O.
* :class:`LiveEvents` — *when* it is said: follows the bus (immediately on status/metadata
  changes; viewer figures coalesce to at most one republish per ``republish_interval``; a
  keep-alive every ``refresh_interval`` while live, because NIP-53 clients may treat a live
  event silent for 1 h as ended), signs, and commits to the outbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.bus import BroadcastChanged, BroadcastReason, Bus, ViewersChanged
from appliance.channels import BroadcastMedia, BroadcastNotFound, ChannelService
from appliance.config import Config
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.domain import Broadcast, BroadcastStatus, Visibility
from appliance.nostr.identity import Identity, SigningDeferred
from appliance.nostr.outbox import Outbox, add_to_outbox
from appliance.periodic import sleep_to_grid
from relay_client import (
    NostrEvent,
    UnsignedEvent,
    activity_address,
    build_deletion,
    build_live_event,
)
from relay_client.live import LiveStatus

logger = logging.getLogger(__name__)

_STATUS: dict[BroadcastStatus, LiveStatus] = {
    BroadcastStatus.PLANNED: "planned", BroadcastStatus.LIVE: "live",
    BroadcastStatus.ENDED: "ended"}
DELETED = "deleted"
"""``nostr_live.last_status`` once a NIP-09 deletion was queued (nothing more to take back)."""
# Broadcast changes that alter the 30311 (title, status) and so republish it (NIP-53); losing
# or regaining the publisher within the grace changes nothing public.
_PUBLISH_ON = (BroadcastReason.PLANNED, BroadcastReason.STARTED, BroadcastReason.UPDATED,
               BroadcastReason.ENDED)


@dataclass(frozen=True, slots=True)
class LiveEventInput:
    """Everything a kind 30311 says about one activity, as plain values."""

    d: str
    status: LiveStatus
    title: str
    summary: str | None = None
    image: str | None = None
    hashtags: tuple[str, ...] = ()
    #: playback URLs (HLS first: zap.stream plays the first ``.m3u8``)
    streaming: tuple[str, ...] = ()
    recording: str | None = None
    starts: int | None = None
    ends: int | None = None
    current_participants: int | None = None
    total_participants: int | None = None
    #: the watch page (NIP-31 ``alt`` text names it for clients that do not know 30311)
    watch_url: str = ""


def live_event_input(stream: Broadcast, *, base_url: str, webrtc: bool,
                     current_viewers: int | None, live_total: int,
                     recording: str | None = None,
                     thumbnail: str | None = None) -> LiveEventInput:
    """The 30311 content of a broadcast (``d`` = broadcast id); ``recording`` is its
    recording's URL once there is one (used only once it has ended); ``thumbnail`` (its
    keyframe thumbnail's URL) is the ``image`` when the operator set none (issue 9 §5)."""
    status = _STATUS[stream.status]
    live = stream.status is BroadcastStatus.LIVE
    starts = stream.started_at or stream.starts
    streaming: list[str] = []
    if stream.status is not BroadcastStatus.ENDED:
        streaming.append(f"{base_url}/hls/{stream.id}/index.m3u8")
        if webrtc:
            streaming.append(f"{base_url}/whep/{stream.id}")
    total = max(stream.total_viewers, live_total)
    return LiveEventInput(
        d=stream.id, status=status, title=stream.title, summary=stream.summary or None,
        image=stream.image or thumbnail or None, hashtags=tuple(stream.tags),
        streaming=tuple(streaming),
        recording=recording if stream.status is BroadcastStatus.ENDED else None,
        starts=int(starts) if starts else None,
        ends=int(stream.ended_at) if stream.ended_at and not live else None,
        current_participants=current_viewers if live else None,
        total_participants=total if stream.status is not BroadcastStatus.PLANNED else None,
        watch_url=f"{base_url}/watch/{stream.id}")


def build_activity(inp: LiveEventInput, *, host_pubkey: str | None, relays: tuple[str, ...],
                   pinned: list[str], created_at: int,
                   goal: str | None = None) -> UnsignedEvent:
    """The unsigned kind 30311 for ``inp`` (NIP-53); ``goal`` links a NIP-75 zap goal."""
    return build_live_event(
        d=inp.d, status=inp.status, title=inp.title, summary=inp.summary, image=inp.image,
        tags=inp.hashtags, streaming=inp.streaming, recording=inp.recording, starts=inp.starts,
        ends=inp.ends, current_participants=inp.current_participants,
        total_participants=inp.total_participants, host_pubkey=host_pubkey, relays=relays,
        pinned=pinned, goal=goal,
        # NIP-31 alt text for clients that do not know kind 30311.
        extra_tags=[("alt", f"Live stream: {inp.title} at {inp.watch_url}")],
        created_at=created_at)


@dataclass(frozen=True, slots=True)
class _Waiting:
    reason: str
    deletion: bool
    attempts: int
    retry_at: float


@dataclass
class _Schedule:
    dirty: set[str] = field(default_factory=set)
    last_publish: dict[str, float] = field(default_factory=dict)


class LiveEvents:
    """Publishes each broadcast's 30311 (see the module docstring for when)."""

    def __init__(self, *, config: Config, store: Store, streams: ChannelService, bus: Bus,
                 identity: Identity, outbox: Outbox, relays: tuple[str, ...],
                 on_active: Callable[[str], None],
                 on_waiting_changed: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.store = store
        self.streams = streams
        self.bus = bus
        self.identity = identity
        self.outbox = outbox
        self.relays = relays
        #: called with the id of a stream whose chat should be followed
        self.on_active = on_active
        #: called when the set of events waiting for the signer (or the reason) changes
        self.on_waiting_changed = on_waiting_changed
        self._schedule = _Schedule()
        self._waiting: dict[str, _Waiting] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: where recordings are served (set once a recorder provides URLs)
        self.media: BroadcastMedia | None = None

    async def reconcile(self) -> None:
        """Rebuild 30311 state from SQLite: follow active streams' chat and publish any
        status the relays have not been given yet (e.g. after kill -9), and live ones fresh."""
        for s in await self.streams.list_broadcasts(limit=100_000):
            if s.status is not BroadcastStatus.ENDED:
                self.on_active(s.id)
            st = await self.store.read(functools.partial(nq.live_state, stream_id=s.id))
            if s.status is BroadcastStatus.LIVE or st["last_status"] != _STATUS[s.status]:
                await self.publish_activity(s.id)

    async def follow_bus(self) -> None:
        async with self.bus.subscribe(BroadcastChanged, ViewersChanged) as events:
            async for ev in events:
                try:
                    if isinstance(ev, BroadcastChanged):
                        if ev.reason in _PUBLISH_ON:
                            await self.publish_activity(ev.broadcast_id)
                        if ev.reason in (BroadcastReason.PLANNED, BroadcastReason.STARTED):
                            self.on_active(ev.broadcast_id)
                        if ev.reason is BroadcastReason.DELETED:
                            await self.publish_deletion(ev.broadcast_id)
                    elif isinstance(ev, ViewersChanged):
                        self._schedule.dirty.add(ev.broadcast_id)
                except Exception:
                    logger.exception("nostr: handling %r failed", ev)

    async def tick(self) -> None:
        """Republish coalesced viewer figures and keep-alives (one task)."""
        nostr = self.config.nostr
        while True:
            await sleep_to_grid(min(1.0, nostr.republish_interval))  # appliance/periodic.py
            now = time.monotonic()
            for lb in self.streams.live_broadcasts():
                sid = lb.broadcast_id
                since = now - self._schedule.last_publish.get(sid, 0.0)
                if (sid in self._schedule.dirty and since >= nostr.republish_interval) or (
                        since >= nostr.refresh_interval):
                    try:
                        await self.publish_activity(sid)
                    except Exception:
                        logger.exception("nostr: republishing %s failed", sid)
            try:
                await self.retry_waiting()
            except Exception:
                logger.exception("nostr: retrying events that wait for the signer failed")

    def waiting(self) -> dict[str, str]:
        """Streams whose event waits for the operator's signer, with the reason."""
        return {sid: w.reason for sid, w in self._waiting.items()}

    def _lock(self, stream_id: str) -> asyncio.Lock:
        # One publish per stream at a time: with a remote signer, signing yields to the loop,
        # and an older version must never be committed after a newer one.
        return self._locks.setdefault(stream_id, asyncio.Lock())

    async def retry_waiting(self) -> None:
        """Retry events that wait for the signer (called by :meth:`tick`), with backoff."""
        now = time.monotonic()
        for sid, w in list(self._waiting.items()):
            if now < w.retry_at:
                continue
            if w.deletion:
                await self.publish_deletion(sid)
            else:
                await self.publish_activity(sid)

    def _defer(self, stream_id: str, reason: str, *, deletion: bool) -> None:
        previous = self._waiting.get(stream_id)
        attempts = previous.attempts + 1 if previous else 1
        delay = min(60.0, 2.0 * 1.5 ** min(attempts, 10))
        self._waiting[stream_id] = _Waiting(reason, deletion, attempts,
                                            time.monotonic() + delay)
        if previous is None or previous.reason != reason:
            logger.warning("nostr: 30311 for %s waits for the operator's signer: %s",
                           stream_id, reason)
            self.on_waiting_changed()

    def _undefer(self, stream_id: str) -> None:
        if self._waiting.pop(stream_id, None) is not None:
            self.on_waiting_changed()

    async def publish_activity(self, stream_id: str) -> NostrEvent | None:
        """Build the stream's kind 30311 from SQLite, sign it as the operator, commit it to
        the outbox and wake the sender. Returns ``None`` when the stream is gone or the
        event waits for the signer (see :meth:`waiting`).

        ``created_at`` is strictly increasing per stream (persisted); the new event supersedes
        any unsent older version (NIP-01: addressable events replace by kind+pubkey+d).

        Only public broadcasts are announced (issue 14 §1). An unlisted or private one that
        was announced gets a NIP-09 deletion instead, once; one never announced gets nothing.
        """
        try:
            current = await self.streams.get_broadcast(stream_id)
        except BroadcastNotFound:
            current = None
        if current is not None and current.visibility is not Visibility.PUBLIC:
            st = await self.store.read(functools.partial(nq.live_state, stream_id=stream_id))
            if st["last_status"] in _STATUS.values():
                await self.publish_deletion(stream_id, reason="no longer public")
            return None
        if current is not None and current.status is not BroadcastStatus.ENDED:
            self.on_active(stream_id)  # follow its chat (idempotent): it may have turned public
        async with self._lock(stream_id):
            try:
                stream = await self.streams.get_broadcast(stream_id)
            except BroadcastNotFound:
                self._undefer(stream_id)
                return None
            live = stream.status is BroadcastStatus.LIVE
            lb = self.streams.runtime(stream.id)
            inp = live_event_input(
                stream, base_url=self.config.public_base_url,
                webrtc=self.config.webrtc.enabled,
                current_viewers=self.streams.viewers(stream.id) if live else None,
                live_total=lb.viewer_figures()[2] if lb and not lb.ended else 0,
                recording=self.media.recording_url(stream) if self.media else None,
                thumbnail=self.media.thumbnail_url(stream) if self.media else None)
            relays = self.relays
            host = self.identity.operator_pubkey
            self._schedule.dirty.discard(stream_id)
            self._schedule.last_publish[stream_id] = time.monotonic()

            def claim(db: Any) -> tuple[list[str], int, str | None]:
                goal = nq.get_goal(db, stream.id)
                return (nq.live_state(db, stream.id)["pinned"],
                        nq.claim_created_at(db, stream.id, int(time.time())),
                        goal.event_id if goal else None)

            pinned, created_at, goal = await self.store.write(claim)
            unsigned = build_activity(inp, host_pubkey=host, relays=relays, pinned=pinned,
                                      created_at=created_at, goal=goal)
            try:
                event = await self.identity.sign(unsigned)
            except SigningDeferred as exc:
                self._defer(stream_id, str(exc), deletion=False)
                return None
            address = activity_address(event.pubkey, stream.id)

            def commit(db: Any) -> None:
                add_to_outbox(db, event, relays, stream_id=stream.id, supersede_key=address)
                nq.set_live_published(db, stream.id, event.id, inp.status)

            await self.store.write(commit)
            self._undefer(stream_id)
        viewers = ("" if inp.current_participants is None
                   else f", {inp.current_participants} watching")
        logger.info("nostr: 30311 %s for %s (%s%s)", event.id[:12], stream_id, inp.status,
                    viewers)
        await self.outbox.wake()
        return event

    async def publish_deletion(self, stream_id: str, *,
                               reason: str = "broadcast deleted by its host"
                               ) -> NostrEvent | None:
        """NIP-09: ask relays to delete the stream's live event (``a`` and last ``e``).

        Signed by the operator (only the author may delete). It supersedes any unsent
        version of the 30311, which then never goes out. ``None`` when it waits for the
        signer.
        """
        async with self._lock(stream_id):
            relays = self.relays
            address = self.identity.address(stream_id)

            def claim(db: Any) -> tuple[str | None, int]:
                return (nq.live_state(db, stream_id)["last_event_id"],
                        nq.claim_created_at(db, stream_id, int(time.time())))

            last, created_at = await self.store.write(claim)
            unsigned = build_deletion(event_ids=[last] if last else [], addresses=[address],
                                      reason=reason, created_at=created_at)
            try:
                event = await self.identity.sign(unsigned)
            except SigningDeferred as exc:
                self._defer(stream_id, str(exc), deletion=True)
                return None
            def commit(db: Any) -> None:
                add_to_outbox(db, event, relays, stream_id=stream_id, supersede_key=address)
                nq.set_live_status(db, stream_id, DELETED)

            await self.store.write(commit)
            self._undefer(stream_id)
        logger.info("nostr: NIP-09 deletion %s for %s", event.id[:12], stream_id)
        await self.outbox.wake()
        return event
