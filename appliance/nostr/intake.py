"""Chat intake: kind 1311 (and 9735 zap receipts) from relays and browsers, checked, stored
and shown; plus the chat read model (:meth:`ChatIntake.message`, :meth:`list_chat`).

Order for a browser event (docs/threat-model.md §chat): rate limits (per IP, then per pubkey)
→ shape → activity, time window and size → id and Schnorr signature → identical-text spam →
mutes → commit (+ outbox). Relay events arrive verified by the pool and go through the same
activity and commit steps.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from typing import Any

from appliance.api.schema import ChatChange, ChatMessage
from appliance.bus import Bus, ChatChanged, GoalChanged
from appliance.channels import BroadcastNotFound, ChannelService
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.chat import (
    MAX_CONTENT_BYTES,
    DuplicateGuard,
    RateLimiter,
    chat_reject_reason,
    display_text,
    reply_target,
    zap_amount,
)
from appliance.nostr.errors import ChatRejected, SignerUnavailableError
from appliance.nostr.identity import Identity, SigningDeferred
from appliance.nostr.mutes import MuteList
from appliance.nostr.outbox import Outbox, add_to_outbox
from appliance.nostr.profiles import Profiles
from appliance.nostr.reactions import Reactions, reaction_target
from appliance.tasks import BackgroundTasks
from relay_client import EventError, NostrEvent, RelayPool, activity_address, build_chat_message
from relay_client.live import (
    CHAT_KIND,
    LIVE_ACTIVITY_KIND,
    REACTION_KIND,
    ZAP_RECEIPT_KIND,
    zap_sender,
)

logger = logging.getLogger(__name__)

#: chat older than this is not asked from relays (7 days)
CHAT_MAX_AGE = 7 * 24 * 3600
#: chat messages whose id-only reactions are followed (relays cap filter sizes)
RECENT_MESSAGES = 250


class ChatIntake:
    """Accepts, stores and lists chat; see the module docstring for the order of checks."""

    def __init__(self, *, store: Store, streams: ChannelService, bus: Bus, identity: Identity,
                 outbox: Outbox, profiles: Profiles, mutes: MuteList, pool: RelayPool,
                 relays: tuple[str, ...], tasks: BackgroundTasks, rejected: Counter[str],
                 ip_limiter: RateLimiter, pubkey_limiter: RateLimiter,
                 duplicates: DuplicateGuard, reactions: Reactions) -> None:
        self.store = store
        self.streams = streams
        self.bus = bus
        self.identity = identity
        self.outbox = outbox
        self.profiles = profiles
        self.mutes = mutes
        self.pool = pool
        self.relays = relays
        self.rejected = rejected
        self.ip_limiter = ip_limiter
        self.pubkey_limiter = pubkey_limiter
        self.duplicates = duplicates
        self.reactions = reactions
        #: goal event id → stream id (NIP-75 zaps that tag only the goal)
        self.goals: dict[str, str] = {}
        #: recent chat message id → stream id (reactions that tag only the message)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._recent_dirty = False
        self._tasks = tasks
        self._subscribed: set[str] = set()

    # ---- from relays -----------------------------------------------------------------------

    def subscribe(self, stream_id: str) -> None:
        """Follow the stream's chat and zap receipts on the relays (idempotent). Unlisted and
        private broadcasts are never followed: their chat stays on this server."""
        if not self.relays or stream_id in self._subscribed:
            return
        if not self.streams.is_public(stream_id):
            return
        self._subscribed.add(stream_id)
        self._subscribe(stream_id)

    def _subscribe(self, stream_id: str) -> None:
        flt = {"kinds": [CHAT_KIND, ZAP_RECEIPT_KIND, REACTION_KIND],
               "#a": self.addresses(stream_id), "limit": 500}
        self.pool.subscribe(f"chat-{stream_id}", [flt], self._on_relay_chat,
                            max_age=CHAT_MAX_AGE)

    def resubscribe(self) -> None:
        """The activity pubkey changed (remote signer paired/unpaired): follow the new
        coordinates (same subscription ids, so the old REQs are replaced)."""
        for stream_id in self._subscribed:
            self._subscribe(stream_id)

    def addresses(self, stream_id: str) -> list[str]:
        """Every coordinate of this stream's live event that is ours."""
        return [activity_address(pk, stream_id) for pk in self.identity.activity_pubkeys()]

    def _address_of(self, event: NostrEvent, stream_id: str) -> str:
        ours = self.addresses(stream_id)
        tagged = set(event.tag_values("a"))
        return next((a for a in ours if a in tagged), ours[0])

    def _on_relay_chat(self, event: NostrEvent, relay: str) -> None:
        # The pool has verified id and signature before calling us.
        self._tasks.spawn(self._ingest_relay_event(event), "nostr-chat-in")

    async def _ingest_relay_event(self, event: NostrEvent) -> None:
        stream_id = self._stream_of(event)
        via_goal = False
        if stream_id is None and event.kind == ZAP_RECEIPT_KIND:
            # NIP-75: zaps to a goal tag the goal event, not necessarily the activity.
            stream_id = next((self.goals[e] for e in event.tag_values("e") if e in self.goals),
                             None)
            via_goal = stream_id is not None
        via_message = False
        if stream_id is None and event.kind == REACTION_KIND:
            # NIP-25: other clients may react to a chat message with only its "e" tag.
            stream_id = self._recent.get(reaction_target(event))
            via_message = stream_id is not None
        if stream_id is None:
            self.rejected["other-activity"] += 1
            return
        if not self.streams.is_public(stream_id):  # its chat is not bridged to Nostr
            self.rejected["not-public"] += 1
            return
        try:
            if event.kind == REACTION_KIND:
                await self._store_reaction(event, stream_id, publish=False,
                                           require_address=not via_message)
            else:
                await self._store_chat(event, stream_id, source="relay", via_goal=via_goal)
        except ChatRejected:
            pass

    def follow_goal(self, goal_id: str, stream_id: str) -> None:
        """Count zap receipts of ``goal_id`` toward ``stream_id`` (and ask relays for them)."""
        self.goals[goal_id] = stream_id
        if self.relays:
            self.pool.subscribe("goal-zaps", [{"kinds": [ZAP_RECEIPT_KIND],
                                               "#e": sorted(self.goals)[-100:], "limit": 500}],
                                self._on_relay_chat, max_age=CHAT_MAX_AGE)

    def flush_reaction_subscription(self) -> None:
        """Follow reactions that tag recent chat messages by id only (called once a second;
        re-subscribes only when new messages arrived)."""
        if not self._recent_dirty or not self.relays or not self._recent:
            return
        self._recent_dirty = False
        self.pool.subscribe("message-reactions", [{"kinds": [REACTION_KIND],
                                                   "#e": list(self._recent), "limit": 500}],
                            self._on_relay_chat, max_age=CHAT_MAX_AGE)

    def _remember_message(self, event_id: str, stream_id: str) -> None:
        self._recent[event_id] = stream_id
        while len(self._recent) > RECENT_MESSAGES:
            self._recent.popitem(last=False)
        self._recent_dirty = True

    async def _store_reaction(self, event: NostrEvent, stream_id: str, *, publish: bool,
                              require_address: bool = True) -> None:
        reason = chat_reject_reason(event, self._address_of(event, stream_id),
                                    require_address=require_address)
        if reason is not None:
            raise self._reject(reason, f"reaction refused: {reason}")
        if self.mutes.is_muted(event.pubkey):
            raise self._reject("muted", "you are muted in this chat")
        try:
            added = await self.reactions.add(event, stream_id, publish=publish)
        except ChatRejected as exc:
            self.rejected[exc.reason] += 1
            raise
        if not added:
            raise self._reject("duplicate-id", "this reaction was already received")

    def _stream_of(self, event: NostrEvent) -> str | None:
        prefixes = [f"{LIVE_ACTIVITY_KIND}:{pk}:" for pk in self.identity.activity_pubkeys()]
        for value in event.tag_values("a"):
            for prefix in prefixes:
                if value.startswith(prefix):
                    return value[len(prefix):]
        return None

    # ---- from browsers and the operator ----------------------------------------------------

    def _reject(self, reason: str, message: str) -> ChatRejected:
        self.rejected[reason] += 1
        return ChatRejected(reason, message)

    async def accept_browser_event(self, stream_id: str, obj: object,
                                   ip: str) -> ChatMessage | None:
        """Check, store and queue a kind 1311 (or a kind 7 reaction: returns ``None``) signed
        in a viewer's browser.

        Raises:
            ChatRejected: with a message fit to show the sender.
        """
        # The address cannot be forged: charge it first. The pubkey can, until the signature
        # is checked, so its bucket is charged only after verification (a forged event carrying
        # a victim's pubkey must not use up the victim's allowance). Error texts come from the
        # limiters, so they always state the limits actually applied.
        wait = self.ip_limiter.check(ip)
        if wait:
            raise self._reject("rate-limited", f"slow down: {self.ip_limiter.describe()} per "
                                               f"address; try again in {wait:.0f} s")
        try:
            event = NostrEvent.from_dict(obj)
        except EventError as exc:
            raise self._reject("malformed", f"malformed event: {exc}") from None
        if event.kind not in (CHAT_KIND, REACTION_KIND):
            raise self._reject("wrong-kind",
                               "only kind 1311 chat messages and kind 7 reactions are accepted")
        reason = chat_reject_reason(event, self._address_of(event, stream_id))
        if reason is not None:
            raise self._reject(reason, f"message refused: {reason}")
        if event.compute_id() != event.id:
            raise self._reject("bad-id", "event id does not match its content")
        if not event.verify():
            raise self._reject("bad-signature", "event signature is invalid")
        wait = self.pubkey_limiter.check(event.pubkey)
        if wait:
            raise self._reject("rate-limited", f"slow down: {self.pubkey_limiter.describe()}; "
                                               f"try again in {wait:.0f} s")
        if event.kind == REACTION_KIND:
            await self._store_reaction(event, stream_id,
                                       publish=self.streams.is_public(stream_id))
            return None
        if self.duplicates.is_duplicate(event.pubkey, event.content):
            raise self._reject("duplicate-text", "you just sent the same message")
        if self.mutes.is_muted(event.pubkey):
            raise self._reject("muted", "you are muted in this chat")
        # Unlisted and private chat stays here: stored and shown, never sent to relays.
        return await self._store_chat(event, stream_id, source="web",
                                      publish=self.streams.is_public(stream_id))

    async def send_operator_chat(self, stream_id: str, content: str,
                                 reply_to: str | None = None) -> ChatMessage:
        """Sign a 1311 as the operator/service, commit it with its outbox entry, publish."""
        await self.streams.get_broadcast(stream_id)  # BroadcastNotFound → 404
        if not content.strip():
            raise ChatRejected("empty", "content must not be empty")
        if len(content.encode()) > MAX_CONTENT_BYTES:
            raise ChatRejected("too-large", f"content is larger than {MAX_CONTENT_BYTES} bytes")
        unsigned = build_chat_message(self.identity.address(stream_id), content, reply_to)
        try:
            event = await self.identity.sign(unsigned)
        except SigningDeferred as exc:
            raise SignerUnavailableError(f"the operator's signer cannot sign now: {exc}") from None
        return await self._store_chat(event, stream_id, source="operator",
                                      publish=self.streams.is_public(stream_id))

    async def _store_chat(self, event: NostrEvent, stream_id: str, *, source: str,
                          publish: bool = False, via_goal: bool = False) -> ChatMessage:
        reason = chat_reject_reason(event, self._address_of(event, stream_id),
                                    require_address=not via_goal)
        if reason is not None:
            raise self._reject(reason, f"message refused: {reason}")
        try:
            await self.streams.get_broadcast(stream_id)
        except BroadcastNotFound:
            raise self._reject("unknown-stream", "no such stream") from None
        relays = self.relays if publish else ()
        zap = zap_amount(event)
        reply = reply_target(event)
        # A zap is shown as its sender's (the zap request's author) with their comment; the
        # receipt's own pubkey is the LNURL server's (NIP-57).
        author, content = event.pubkey, event.content
        sender = zap_sender(event) if event.kind == ZAP_RECEIPT_KIND else None
        if sender is not None:
            author, content = sender

        def tx(db: Any) -> bool:
            inserted = nq.insert_chat(
                db, event_id=event.id, stream_id=stream_id, pubkey=author,
                created_at=event.created_at, kind=event.kind, content=content,
                event_json=event.to_json(), source=source, zap_msats=zap, reply_to=reply)
            if inserted and publish:
                add_to_outbox(db, event, relays, stream_id=stream_id)
            return inserted

        if not await self.store.write(tx):
            raise self._reject("duplicate-id", "this message was already received")
        if publish:
            await self.outbox.wake()
        self.profiles.note_author(author)
        if event.kind == CHAT_KIND:
            self._remember_message(event.id, stream_id)
        if zap is not None and reply in self.goals:
            self.bus.publish(GoalChanged(stream_id=stream_id))
        row = nq.ChatRow(event.id, stream_id, author, event.created_at, event.kind,
                         content, False, zap, reply, source)
        msg = self.message(row, await self.pinned(stream_id))
        self.bus.publish(ChatChanged(stream_id=stream_id, reason=ChatChange.NEW, message=msg))
        return msg

    # ---- read model ------------------------------------------------------------------------

    async def pinned(self, stream_id: str) -> list[str]:
        st = await self.store.read(lambda db: nq.live_state(db, stream_id))
        pinned: list[str] = st["pinned"]
        return pinned

    def message(self, row: nq.ChatRow, pinned: list[str]) -> ChatMessage:
        """A stored chat row as shown to the admin API, pages and the TUI."""
        return ChatMessage(
            id=row.id, stream_id=row.stream_id, pubkey=row.pubkey, created_at=row.created_at,
            content=display_text(row.content), kind=row.kind,
            display_name=self.profiles.name(row.pubkey),
            from_operator=row.pubkey in self.identity.operators(), hidden=row.hidden,
            muted=self.mutes.is_muted(row.pubkey), pinned=row.id in pinned,
            zap_msats=row.zap_msats, reply_to=row.reply_to)

    async def list_chat(self, stream_id: str, limit: int = 200,
                        public: bool = False) -> list[ChatMessage]:
        """Messages oldest first. ``public`` leaves out hidden messages and muted authors."""
        rows = await self.store.read(
            lambda db: nq.list_chat(db, stream_id, limit * 2 if public else limit))
        await self.profiles.load({r.pubkey for r in rows})
        pinned = await self.pinned(stream_id)
        out = [self.message(r, pinned) for r in rows]
        if public:
            out = [m for m in out if not m.hidden and not m.muted][-limit:]
        return out
