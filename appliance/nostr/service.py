"""The appliance's Nostr side: NIP-53 live events, live chat, moderation, durable outbox.

:class:`NostrService` owns a :class:`relay_client.RelayPool` and three tasks:

* ``nostr-bus`` follows :class:`~appliance.bus.StreamChanged` / ``ViewersChanged`` and rebuilds
  the stream's kind 30311 from SQLite: immediately on every status or metadata change, and at
  most every ``republish_interval`` for viewer figures (they coalesce), plus a keep-alive every
  ``refresh_interval`` while live (NIP-53: clients may treat a live event silent for 1 h as
  ended).
* ``nostr-outbox`` sends what the outbox holds. Every event is committed to ``nostr_outbox``
  (with one delivery row per relay) *before* it is sent; a delivery is done only on ``OK true``
  and is otherwise retried with backoff, across restarts.
* chat subscriptions ``{"kinds":[1311,9735],"#a":["30311:<pk>:<d>"]}`` per active stream; the
  pool verifies id and signature before the callback, then the chat rules
  (:mod:`appliance.nostr.chat`) apply and the message is committed before it is shown.

With zero relays everything still works locally: events are kept as the latest state and chat
flows between pages through the public WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.api.schema import ChatMessage, RelayInfo
from appliance.bus import Bus, ChatChanged, RelayChanged, StreamChanged, ViewersChanged
from appliance.config import Config, ConfigError
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.domain import StreamState
from appliance.nostr.chat import (
    MAX_CONTENT_BYTES,
    DuplicateGuard,
    RateLimiter,
    chat_reject_reason,
    display_name,
    display_text,
    reply_target,
    zap_amount,
)
from appliance.nostr.keys import (
    NostrKeyError,
    load_operator_key,
    load_or_create_service_key,
    parse_pubkey,
)
from appliance.streams import StreamNotFound, StreamService
from appliance.tasks import BackgroundTasks
from relay_client import (
    EventError,
    NostrEvent,
    PoolConfig,
    PrivateKeySigner,
    RelayPool,
    RelayState,
    RelayStatus,
    UnsignedEvent,
    activity_address,
    build_chat_message,
    build_deletion,
    build_live_event,
)
from relay_client.live import CHAT_KIND, LIVE_ACTIVITY_KIND, ZAP_RECEIPT_KIND, LiveStatus
from relay_client.nip19 import encode_npub

logger = logging.getLogger(__name__)

MUTE_LIST_KIND = 10000  # NIP-51 mute list (replaceable)
PROFILE_KIND = 0
_STATUS: dict[StreamState, LiveStatus] = {
    StreamState.CREATED: "planned", StreamState.LIVE: "live", StreamState.ENDED: "ended"}
# NIP-01 OK prefixes that will not change on retry.
_PERMANENT = ("invalid", "blocked", "pow")


class ChatRejected(ValueError):
    """A chat message was refused; the message is meant for the sender (and ``reason`` is the
    counter it was added to)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NostrNotFound(LookupError):
    """No such chat message in that stream."""


@dataclass
class _Flags:
    dirty: set[str] = field(default_factory=set)
    last_publish: dict[str, float] = field(default_factory=dict)


class NostrService:
    """See the module docstring. ``await start()`` / ``await close()`` from the lifecycle."""

    def __init__(self, config: Config, store: Store, streams: StreamService, bus: Bus,
                 *, pool_config: PoolConfig | None = None) -> None:
        self.config = config
        self.store = store
        self.streams = streams
        self.bus = bus
        self.rejected: Counter[str] = Counter()
        # Per pubkey: 2 msgs / 3 s (§4.4). Per IP the bucket is wider, because many viewers can
        # share one address (NAT), yet it stops one client cycling through fresh keys (B19).
        self.ip_limiter = RateLimiter(capacity=10, period=3.0)
        self.pubkey_limiter = RateLimiter()
        self.duplicates = DuplicateGuard()
        self._pool_config = pool_config or PoolConfig(publish_timeout=10.0)
        self._pool: RelayPool | None = None
        self._service: PrivateKeySigner | None = None
        self._operator_signer: PrivateKeySigner | None = None
        self.operator_pubkey: str | None = None
        self._tasks = BackgroundTasks("nostr")
        self._inflight: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._flags = _Flags()
        self._mutes: set[str] = set()
        self._remote_mutes: set[str] = set()
        self._remote_mutes_at = 0
        self._names: dict[str, str] = {}
        self._unknown_authors: set[str] = set()
        self._pending: dict[str, int] = {}
        self._subscribed: set[str] = set()

    # ---- identities ------------------------------------------------------------------------

    @property
    def signer(self) -> PrivateKeySigner:
        """Who signs 30311 and operator chat: the imported operator key, else the service."""
        if self._operator_signer is not None:
            return self._operator_signer
        assert self._service is not None, "NostrService not started"
        return self._service

    @property
    def service_pubkey(self) -> str:
        assert self._service is not None
        return self._service.public_key

    @property
    def activity_pubkey(self) -> str:
        return self.signer.public_key

    def address(self, stream_id: str) -> str:
        """NIP-53 coordinate ``30311:<pubkey>:<d>`` of a stream (``d`` = stream id)."""
        return activity_address(self.activity_pubkey, stream_id)

    @property
    def relays(self) -> tuple[str, ...]:
        return tuple(self.config.nostr.relays)

    def host_label(self) -> str:
        """The operator as shown on pages: kind-0 name when known, else a short npub."""
        if not self.operator_pubkey:
            return ""
        name = self._names.get(self.operator_pubkey)
        if name:
            return name
        npub = encode_npub(self.operator_pubkey)
        return f"{npub[:12]}…{npub[-6:]}"

    def page_config(self, stream_id: str) -> dict[str, object]:
        """What chat.js needs: the ``a`` coordinate to sign into, relays, host pubkey."""
        return {"address": self.address(stream_id), "relays": list(self.relays),
                "host": self.operator_pubkey or self.activity_pubkey}

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        nostr = self.config.nostr
        self._service = await asyncio.to_thread(load_or_create_service_key,
                                                self.config.data_path)
        if nostr.operator_pubkey:
            self.operator_pubkey = parse_pubkey(nostr.operator_pubkey)
        if nostr.operator_key_file:
            # A relative path is relative to the data dir.
            key_path = self.config.data_path / nostr.operator_key_file
            try:
                self._operator_signer = await asyncio.to_thread(load_operator_key, key_path)
            except NostrKeyError as exc:
                raise ConfigError("nostr.operator_key_file", str(exc)) from None
            if self.operator_pubkey is None:
                self.operator_pubkey = self._operator_signer.public_key
            elif self.operator_pubkey != self._operator_signer.public_key:
                raise ConfigError("nostr.operator_key_file",
                                  "the key does not belong to nostr.operator_pubkey")
        logger.info("nostr: service pubkey %s, signing as %s, %d relay(s)", self.service_pubkey,
                    "operator" if self._operator_signer else "service", len(self.relays))
        self._mutes = await self.store.read(nq.list_mutes)
        self._pending = await self.store.read(nq.pending_counts)
        self._pool = RelayPool(self.relays, signer=self._service, config=self._pool_config,
                               on_status_change=self._on_relay_status)
        await self._pool.start()
        if self.operator_pubkey and self.relays:
            # NIP-51: the host's mute list is applied to chat (zap.stream does the same).
            self._pool.subscribe("mutes", [{"kinds": [MUTE_LIST_KIND],
                                            "authors": [self.operator_pubkey], "limit": 1}],
                                 self._on_mute_list)

    def start_tasks(self) -> None:
        """Start following the bus and sending the outbox (once the public URL is final)."""
        self._spawn(self._follow_bus(), "nostr-bus")
        self._spawn(self._send_outbox(), "nostr-outbox")
        self._spawn(self._tick(), "nostr-tick")
        self._spawn(self._reconcile(), "nostr-reconcile")

    async def close(self) -> None:
        await self._tasks.close()
        if self._pool is not None:
            await self._pool.close()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

    async def _reconcile(self) -> None:
        """Rebuild 30311 state from SQLite: subscribe active streams' chat and publish any
        status the relays have not been given yet (e.g. after kill -9), and live ones fresh."""
        streams = await self.streams.list_streams()
        for s in streams:
            if s.status is not StreamState.ENDED:
                self._subscribe_chat(s.id)
            st = await self.store.read(functools.partial(nq.live_state, stream_id=s.id))
            if s.status is StreamState.LIVE or st["last_status"] != _STATUS[s.status]:
                await self.publish_activity(s.id)

    # ---- 30311 -----------------------------------------------------------------------------

    async def _follow_bus(self) -> None:
        async with self.bus.subscribe(StreamChanged, ViewersChanged) as events:
            async for ev in events:
                try:
                    if isinstance(ev, StreamChanged):
                        if ev.reason in ("created", "updated", "live", "ended"):
                            await self.publish_activity(ev.stream_id)
                        if ev.reason in ("created", "live"):
                            self._subscribe_chat(ev.stream_id)
                        if ev.reason == "deleted":
                            await self.publish_deletion(ev.stream_id)
                    elif isinstance(ev, ViewersChanged):
                        self._flags.dirty.add(ev.stream_id)
                except Exception:
                    logger.exception("nostr: handling %r failed", ev)

    async def _tick(self) -> None:
        nostr = self.config.nostr
        while True:
            await asyncio.sleep(min(1.0, nostr.republish_interval))
            now = time.monotonic()
            for ls in self.streams.live_streams():
                if ls.ended:
                    continue
                sid = ls.stream_id
                since = now - self._flags.last_publish.get(sid, 0.0)
                if (sid in self._flags.dirty and since >= nostr.republish_interval) or (
                        since >= nostr.refresh_interval):
                    try:
                        await self.publish_activity(sid)
                    except Exception:
                        logger.exception("nostr: republishing %s failed", sid)
            if self._unknown_authors and self._pool is not None and self.relays:
                authors = sorted(self._unknown_authors)[:500]
                self._unknown_authors.clear()
                self._pool.subscribe("profiles", [{"kinds": [PROFILE_KIND], "authors": authors}],
                                     self._on_profile)

    async def publish_activity(self, stream_id: str) -> NostrEvent | None:
        """Build the stream's kind 30311 from SQLite, commit it to the outbox, wake the sender.

        ``created_at`` is strictly increasing per stream (persisted); the new event supersedes
        any unsent older version (NIP-01: addressable events replace by kind+pubkey+d).
        """
        try:
            stream = await self.streams.get(stream_id)
        except StreamNotFound:
            return None
        base = self.config.public_base_url
        status = _STATUS[stream.status]
        live = stream.status is StreamState.LIVE
        streaming: list[str] = []
        if stream.status is not StreamState.ENDED:
            streaming.append(f"{base}/hls/{stream.id}/index.m3u8")
            webrtc = getattr(self.config, "webrtc", None)
            if webrtc is not None and getattr(webrtc, "enabled", False):
                streaming.append(f"{base}/whep/{stream.id}")
        ls = self.streams.live_stream(stream.id)
        total = max(stream.total_viewers, ls.viewers.total if ls and not ls.ended else 0)
        signer = self.signer
        relays = self.relays
        operator = self.operator_pubkey
        self._flags.dirty.discard(stream_id)
        self._flags.last_publish[stream_id] = time.monotonic()
        current = self.streams.viewers(stream.id) if live else None

        def tx(db: Any) -> NostrEvent:
            pinned = nq.live_state(db, stream.id)["pinned"]
            created_at = nq.claim_created_at(db, stream.id, int(time.time()))
            unsigned = build_live_event(
                d=stream.id, status=status, title=stream.title,
                summary=stream.summary or None, image=stream.image or None, tags=stream.tags,
                streaming=streaming,
                starts=int(stream.started_at) if stream.started_at else None,
                ends=int(stream.ended_at) if stream.ended_at and not live else None,
                current_participants=current,
                total_participants=total if stream.status is not StreamState.CREATED else None,
                host_pubkey=operator, relays=relays, pinned=pinned,
                # NIP-31 alt text for clients that do not know kind 30311.
                extra_tags=[("alt", f"Live stream: {stream.title} at {base}/watch/{stream.id}")],
                created_at=created_at,
            )
            event = signer.sign_event(unsigned)
            nq.enqueue_event(db, event_id=event.id, kind=event.kind, event_json=event.to_json(),
                             created_at=event.created_at, relays=relays, stream_id=stream.id,
                             supersede_key=self.address(stream.id))
            nq.set_live_published(db, stream.id, event.id, status)
            return event

        event = await self.store.write(tx)
        logger.info("nostr: 30311 %s for %s (%s, %s viewers)", event.id[:12], stream_id, status,
                    current)
        await self._after_enqueue()
        return event

    async def publish_deletion(self, stream_id: str) -> NostrEvent:
        """NIP-09: ask relays to delete the stream's live event (``a`` and last ``e``).

        Signed by the key that signed the 30311 (only the author may delete). It supersedes
        any unsent version of the 30311, which then never goes out.
        """
        signer = self.signer
        relays = self.relays
        address = self.address(stream_id)

        def tx(db: Any) -> NostrEvent:
            last = nq.live_state(db, stream_id)["last_event_id"]
            unsigned = build_deletion(
                event_ids=[last] if last else [], addresses=[address],
                reason="stream deleted by its host",
                created_at=nq.claim_created_at(db, stream_id, int(time.time())))
            event = signer.sign_event(unsigned)
            nq.enqueue_event(db, event_id=event.id, kind=event.kind, event_json=event.to_json(),
                             created_at=event.created_at, relays=relays, stream_id=stream_id,
                             supersede_key=address)
            return event

        event = await self.store.write(tx)
        logger.info("nostr: NIP-09 deletion %s for %s", event.id[:12], stream_id)
        await self._after_enqueue()
        return event

    # ---- outbox ----------------------------------------------------------------------------

    async def _after_enqueue(self) -> None:
        self._wake.set()
        await self._refresh_pending()

    async def _refresh_pending(self) -> None:
        counts = await self.store.read(nq.pending_counts)
        changed = counts != self._pending
        self._pending = counts
        if changed and self._pool is not None:
            for st in self._pool.statuses():
                self.bus.publish(RelayChanged(relay=self._relay_info(st).to_dict()))

    async def _send_outbox(self) -> None:
        while True:
            relays = self.relays
            if relays and self._pool is not None:
                due = await self.store.read(functools.partial(
                    nq.due_deliveries, relays=relays, now=time.time()))
                for d in due:
                    key = (d.event_id, d.relay)
                    if key not in self._inflight:
                        self._inflight.add(key)
                        self._spawn(self._deliver(d), f"nostr-send-{d.event_id[:8]}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _deliver(self, d: nq.Delivery) -> None:
        assert self._pool is not None
        try:
            event = NostrEvent.from_json(d.event_json)
            result = await self._pool.publish(event, relays=[d.relay])
            r = result.results[0]
            retry_at: float | None = None
            if not r.accepted:
                prefix = r.message.split(":", 1)[0].strip()
                if prefix not in _PERMANENT:
                    delay = min(300.0, 2.0 * 1.5 ** min(d.attempts, 20))
                    retry_at = time.time() + delay * random.uniform(0.8, 1.2)
                logger.info("nostr: %s not accepted by %s: %s", d.event_id[:12], d.relay,
                            r.message[:200])
            await self.store.write(lambda db: nq.record_delivery(
                db, d.event_id, d.relay, r.accepted, r.message, retry_at))
            await self._refresh_pending()
        finally:
            self._inflight.discard((d.event_id, d.relay))

    async def enqueue(self, event: NostrEvent, *, stream_id: str | None = None,
                      supersede_key: str | None = None) -> None:
        """Commit ``event`` to the outbox (durable before return) and wake the sender."""
        relays = self.relays
        await self.store.write(lambda db: nq.enqueue_event(
            db, event_id=event.id, kind=event.kind, event_json=event.to_json(),
            created_at=event.created_at, relays=relays, stream_id=stream_id,
            supersede_key=supersede_key))
        await self._after_enqueue()

    # ---- relays ----------------------------------------------------------------------------

    def _relay_info(self, st: RelayStatus) -> RelayInfo:
        state = st.state.value if st.state is not RelayState.CLOSED else "disconnected"
        return RelayInfo(url=st.url, state=state, last_error=st.last_error,
                         last_ok_at=st.last_ok_at, failures=st.failures, published=st.published,
                         rejected=st.rejected, outbox_depth=self._pending.get(st.url, 0))

    def _on_relay_status(self, st: RelayStatus) -> None:
        self.bus.publish(RelayChanged(relay=self._relay_info(st).to_dict()))
        if st.state is RelayState.CONNECTED:
            self._wake.set()  # deliveries waiting for this relay go now

    def relay_infos(self) -> list[RelayInfo]:
        """Per-relay state for ``GET /v1/relays`` (and the TUI)."""
        if self._pool is None:
            return []
        return [self._relay_info(st) for st in self._pool.statuses()]

    def counters(self) -> dict[str, Any]:
        pool_rejected: Mapping[str, int] = self._pool.rejected_events if self._pool else {}
        return {"rejected": dict(self.rejected), "relay_rejected": dict(pool_rejected),
                "duplicates": self._pool.duplicate_events if self._pool else 0}

    # ---- chat: inbound ---------------------------------------------------------------------

    def _subscribe_chat(self, stream_id: str) -> None:
        if self._pool is None or not self.relays or stream_id in self._subscribed:
            return
        self._subscribed.add(stream_id)
        flt = {"kinds": [CHAT_KIND, ZAP_RECEIPT_KIND], "#a": [self.address(stream_id)],
               "limit": 200}
        self._pool.subscribe(f"chat-{stream_id}", [flt], self._on_relay_chat,
                             max_age=7 * 24 * 3600)

    def _on_relay_chat(self, event: NostrEvent, relay: str) -> None:
        # The pool has verified id and signature (B17) before calling us.
        self._spawn(self._ingest_relay_event(event), "nostr-chat-in")

    async def _ingest_relay_event(self, event: NostrEvent) -> None:
        stream_id = self._stream_of(event)
        if stream_id is None:
            self.rejected["other-activity"] += 1
            return
        try:
            await self._store_chat(event, stream_id, source="relay")
        except ChatRejected:
            pass

    def _stream_of(self, event: NostrEvent) -> str | None:
        prefix = f"{LIVE_ACTIVITY_KIND}:{self.activity_pubkey}:"
        for value in event.tag_values("a"):
            if value.startswith(prefix):
                return value[len(prefix):]
        return None

    async def _store_chat(self, event: NostrEvent, stream_id: str, *, source: str,
                          publish: bool = False) -> ChatMessage:
        reason = chat_reject_reason(event, self.address(stream_id))
        if reason is not None:
            self.rejected[reason] += 1
            raise ChatRejected(reason, f"message refused: {reason}")
        try:
            await self.streams.get(stream_id)
        except StreamNotFound:
            self.rejected["unknown-stream"] += 1
            raise ChatRejected("unknown-stream", "no such stream") from None
        relays = self.relays if publish else ()
        zap = zap_amount(event)
        reply = reply_target(event)

        def tx(db: Any) -> bool:
            inserted = nq.insert_chat(
                db, event_id=event.id, stream_id=stream_id, pubkey=event.pubkey,
                created_at=event.created_at, kind=event.kind, content=event.content,
                event_json=event.to_json(), source=source, zap_msats=zap, reply_to=reply)
            if inserted and publish:
                nq.enqueue_event(db, event_id=event.id, kind=event.kind,
                                 event_json=event.to_json(), created_at=event.created_at,
                                 relays=relays, stream_id=stream_id)
            return inserted

        if not await self.store.write(tx):
            self.rejected["duplicate-id"] += 1
            raise ChatRejected("duplicate-id", "this message was already received")
        if publish:
            await self._after_enqueue()
        if event.pubkey not in self._names:
            self._unknown_authors.add(event.pubkey)
        pinned = await self._pinned(stream_id)
        row = nq.ChatRow(event.id, stream_id, event.pubkey, event.created_at, event.kind,
                         event.content, False, zap, reply, source)
        msg = self._message(row, pinned)
        self.bus.publish(ChatChanged(stream_id=stream_id, reason="new", message=msg.to_dict()))
        return msg

    async def accept_browser_event(self, stream_id: str, obj: object, ip: str) -> ChatMessage:
        """Check, store and queue a kind 1311 signed in a viewer's browser.

        Order (B17/B19): rate limits (per IP, then per pubkey) → shape → activity, time window
        and size → id and Schnorr signature → identical-text spam → commit (+ outbox).

        Raises:
            ChatRejected: with a message fit to show the sender.
        """
        wait = self.ip_limiter.check(ip)
        if wait:
            self.rejected["rate-limited"] += 1
            raise ChatRejected("rate-limited",
                               f"slow down: at most 2 messages every 3 s; try again in "
                               f"{wait:.0f} s")
        try:
            event = NostrEvent.from_dict(obj)
        except EventError as exc:
            self.rejected["malformed"] += 1
            raise ChatRejected("malformed", f"malformed event: {exc}") from None
        if event.kind != CHAT_KIND:
            self.rejected["wrong-kind"] += 1
            raise ChatRejected("wrong-kind", "only kind 1311 chat messages are accepted")
        wait = self.pubkey_limiter.check(event.pubkey)
        if wait:
            self.rejected["rate-limited"] += 1
            raise ChatRejected("rate-limited",
                               f"slow down: at most 2 messages every 3 s; try again in "
                               f"{wait:.0f} s")
        reason = chat_reject_reason(event, self.address(stream_id))
        if reason is not None:
            self.rejected[reason] += 1
            raise ChatRejected(reason, f"message refused: {reason}")
        if event.compute_id() != event.id:
            self.rejected["bad-id"] += 1
            raise ChatRejected("bad-id", "event id does not match its content")
        if not event.verify():
            self.rejected["bad-signature"] += 1
            raise ChatRejected("bad-signature", "event signature is invalid")
        if self.duplicates.is_duplicate(event.pubkey, event.content):
            self.rejected["duplicate-text"] += 1
            raise ChatRejected("duplicate-text", "you just sent the same message")
        if event.pubkey in self._mutes or event.pubkey in self._remote_mutes:
            self.rejected["muted"] += 1
            raise ChatRejected("muted", "you are muted in this chat")
        return await self._store_chat(event, stream_id, source="web", publish=True)

    def _on_mute_list(self, event: NostrEvent, relay: str) -> None:
        if event.pubkey != self.operator_pubkey or event.created_at <= self._remote_mutes_at:
            return
        self._remote_mutes_at = event.created_at
        self._remote_mutes = {v for v in event.tag_values("p") if len(v) == 64}

    def _on_profile(self, event: NostrEvent, relay: str) -> None:
        try:
            meta = json.loads(event.content)
        except ValueError:
            return
        if not isinstance(meta, dict):
            return
        name = meta.get("display_name") or meta.get("name")
        if not isinstance(name, str) or not display_name(name):
            return
        clean = display_name(name)
        self._names[event.pubkey] = clean
        self._spawn(self.store.write(lambda db: nq.upsert_profile(
            db, event.pubkey, clean, event.created_at)), "nostr-profile")

    # ---- chat: reading and moderation ------------------------------------------------------

    async def _pinned(self, stream_id: str) -> list[str]:
        st = await self.store.read(lambda db: nq.live_state(db, stream_id))
        pinned: list[str] = st["pinned"]
        return pinned

    def _message(self, row: nq.ChatRow, pinned: list[str]) -> ChatMessage:
        operators = {self.service_pubkey, self.activity_pubkey}
        if self.operator_pubkey:
            operators.add(self.operator_pubkey)
        return ChatMessage(
            id=row.id, stream_id=row.stream_id, pubkey=row.pubkey, created_at=row.created_at,
            content=display_text(row.content), kind=row.kind,
            display_name=self._names.get(row.pubkey), from_operator=row.pubkey in operators,
            hidden=row.hidden, muted=row.pubkey in self._mutes or row.pubkey in self._remote_mutes,
            pinned=row.id in pinned, zap_msats=row.zap_msats, reply_to=row.reply_to)

    async def list_chat(self, stream_id: str, limit: int = 200,
                        public: bool = False) -> list[ChatMessage]:
        """Messages oldest first. ``public`` leaves out hidden messages and muted authors."""
        rows = await self.store.read(
            lambda db: nq.list_chat(db, stream_id, limit * 2 if public else limit))
        unknown = {r.pubkey for r in rows} - self._names.keys()
        if unknown:
            self._names.update(await self.store.read(lambda db: nq.profile_names(db, unknown)))
        pinned = await self._pinned(stream_id)
        out = [self._message(r, pinned) for r in rows]
        if public:
            out = [m for m in out if not m.hidden and not m.muted][-limit:]
        return out

    async def send_operator_chat(self, stream_id: str, content: str,
                                 reply_to: str | None = None) -> ChatMessage:
        """Sign a 1311 as the operator/service, commit it with its outbox entry, publish."""
        await self.streams.get(stream_id)  # StreamNotFound → 404
        if not content.strip():
            raise ChatRejected("empty", "content must not be empty")
        if len(content.encode()) > MAX_CONTENT_BYTES:
            raise ChatRejected("too-large", f"content is larger than {MAX_CONTENT_BYTES} bytes")
        unsigned: UnsignedEvent = build_chat_message(self.address(stream_id), content, reply_to)
        event = self.signer.sign_event(unsigned)
        return await self._store_chat(event, stream_id, source="operator", publish=True)

    async def set_hidden(self, stream_id: str, event_id: str, hidden: bool) -> ChatMessage:
        row = await self.store.write(lambda db: nq.set_hidden(db, stream_id, event_id, hidden))
        if row is None:
            raise NostrNotFound(event_id)
        msg = self._message(row, await self._pinned(stream_id))
        self.bus.publish(ChatChanged(stream_id=stream_id,
                                     reason="hidden" if hidden else "unhidden",
                                     message=msg.to_dict()))
        return msg

    async def pin(self, stream_id: str, event_id: str) -> ChatMessage:
        """Set the 30311 ``pinned`` tag to this message and republish (NIP-53)."""
        row = await self.store.read(lambda db: nq.get_chat(db, event_id))
        if row is None or row.stream_id != stream_id:
            raise NostrNotFound(event_id)
        await self.store.write(lambda db: nq.set_pinned(db, stream_id, [event_id]))
        await self.publish_activity(stream_id)
        msg = self._message(row, [event_id])
        self.bus.publish(ChatChanged(stream_id=stream_id, reason="pinned",
                                     message=msg.to_dict()))
        return msg

    async def mute(self, pubkey_text: str) -> str:
        """Add to the host mute list (applied locally; published as kind 10000 when signing
        as the operator). Returns the hex pubkey."""
        pubkey = parse_pubkey(pubkey_text)
        await self.store.write(lambda db: nq.add_mute(db, pubkey))
        self._mutes.add(pubkey)
        await self._publish_mutes()
        self.bus.publish(ChatChanged(stream_id="", reason="muted",
                                     message={"pubkey": pubkey, "muted": True}))
        return pubkey

    async def unmute(self, pubkey_text: str) -> str:
        pubkey = parse_pubkey(pubkey_text)
        await self.store.write(lambda db: nq.remove_mute(db, pubkey))
        self._mutes.discard(pubkey)
        await self._publish_mutes()
        self.bus.publish(ChatChanged(stream_id="", reason="unmuted",
                                     message={"pubkey": pubkey, "muted": False}))
        return pubkey

    def mutes(self) -> list[str]:
        return sorted(self._mutes)

    async def _publish_mutes(self) -> None:
        if self._operator_signer is None:
            return  # a mute list must be signed by the host; the service key cannot
        signer = self._operator_signer
        mutes = sorted(self._mutes | self._remote_mutes)
        relays = self.relays

        def tx(db: Any) -> None:
            created_at = nq.claim_created_at(db, f"kind:{MUTE_LIST_KIND}", int(time.time()))
            event = signer.sign_event(UnsignedEvent(
                kind=MUTE_LIST_KIND, content="", tags=tuple(("p", pk) for pk in mutes),
                created_at=created_at))
            nq.enqueue_event(db, event_id=event.id, kind=event.kind,
                             event_json=event.to_json(), created_at=event.created_at,
                             relays=relays, supersede_key=f"{MUTE_LIST_KIND}:{signer.public_key}")

        await self.store.write(tx)
        await self._after_enqueue()
